-- Privileges: tables are read with the caller's rights; a role sees and
-- changes only its own datasets and models (row-level security).
\set VERBOSITY terse

CREATE ROLE regress_isrf_alice;
CREATE ROLE regress_isrf_bob;
GRANT CREATE ON SCHEMA public TO regress_isrf_alice, regress_isrf_bob;

SET ROLE regress_isrf_alice;
CREATE TABLE alice_reviews (user_id int, item_id int, "position" int);
INSERT INTO alice_reviews VALUES (1, 1, 1), (1, 2, 2), (2, 1, 1);
SELECT isrf.create_dataset('alice_ds', 'alice_reviews');
SELECT name, owner FROM isrf.datasets;
RESET ROLE;

SET ROLE regress_isrf_bob;
-- bob cannot read alice's table, so cannot bind it
SELECT err($$SELECT isrf.create_dataset('bob_ds', 'alice_reviews')$$);
-- nor see or use alice's dataset
SELECT count(*) FROM isrf.datasets;
SELECT err($$SELECT * FROM isrf.dataset_stats('alice_ds')$$);
SELECT err($$SELECT isrf.drop_dataset('alice_ds')$$);
-- nor take its name
CREATE TABLE bob_reviews (user_id int, item_id int, "position" int);
SELECT err($$SELECT isrf.create_dataset('alice_ds', 'bob_reviews')$$);
-- nor forge the owner column
SELECT err($$INSERT INTO isrf.datasets (name, owner, reviews, order_column, bound_names)
    VALUES ('forged', 'regress_isrf_alice', 'bob_reviews', 'position', '{}')$$);
RESET ROLE;

-- once alice grants read access, bob may bind the same table as his own dataset
SET ROLE regress_isrf_alice;
GRANT SELECT ON alice_reviews TO regress_isrf_bob;
RESET ROLE;
SET ROLE regress_isrf_bob;
SELECT isrf.create_dataset('bob_ds', 'alice_reviews');
SELECT users, interactions FROM isrf.dataset_stats('bob_ds');
SELECT isrf.drop_dataset('bob_ds');
DROP TABLE bob_reviews;
RESET ROLE;

-- the superuser sees everything
SELECT name, owner FROM isrf.datasets ORDER BY name;
SELECT isrf.drop_dataset('alice_ds');
DROP TABLE alice_reviews;
REVOKE CREATE ON SCHEMA public FROM regress_isrf_alice, regress_isrf_bob;
DROP ROLE regress_isrf_alice;
DROP ROLE regress_isrf_bob;
