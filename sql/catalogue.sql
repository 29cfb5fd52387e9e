-- The catalogue is written only through the extension's functions (issue
-- 11, finding 5): no role writes isrf.* tables itself, a role acts only on
-- its own datasets and models, names another role holds cannot be claimed,
-- model bytes cannot be forged, and isrf_status() shows a role only the
-- models it may see (finding 8).
\set VERBOSITY terse
SET client_min_messages = warning;

CREATE ROLE regress_isrf_alice;
CREATE ROLE regress_isrf_bob;
GRANT CREATE ON SCHEMA public TO regress_isrf_alice, regress_isrf_bob;
DO $$ BEGIN
    EXECUTE format('GRANT CREATE ON DATABASE %I TO regress_isrf_alice, regress_isrf_bob', current_database());
END $$;

-- PUBLIC may read the catalogue (under row-level security), never write it
SELECT c.relname, array_agg(p.privilege_type ORDER BY p.privilege_type) AS public_may
  FROM pg_class c
  LEFT JOIN LATERAL aclexplode(c.relacl) p ON p.grantee = 0
 WHERE c.relnamespace = 'isrf'::regnamespace AND c.relkind IN ('r', 'v')
 GROUP BY c.relname ORDER BY c.relname;

-- alice: a dataset and a model of her own
SET ROLE regress_isrf_alice;
SELECT isrf.create_synthetic_dataset('alice_ds', users => 60, items => 30, groups => 3, per_user => 6);
CALL isrf_train('alice_ds', '{"model": "amodel", "epochs": 1, "dm": 4, "group_k": 3}');
SELECT name, version, owner, status, deployed FROM isrf.models;
SELECT count(*) FROM isrf_recommend(1, 3, 'amodel');
DO $$ BEGIN    -- the model server loads what it was asked for
    FOR i IN 1 .. 200 LOOP
        EXIT WHEN EXISTS (SELECT FROM isrf_status() WHERE database = current_database() AND models LIKE '%amodel v1%');
        PERFORM pg_sleep(0.05);
    END LOOP;
END $$;
SELECT count(*) FILTER (WHERE models LIKE '%amodel v1%') AS sees_amodel FROM isrf_status();
RESET ROLE;

SET ROLE regress_isrf_bob;
CREATE TABLE bob_reviews (user_id int, item_id int, "position" int);
INSERT INTO bob_reviews VALUES (1, 1, 1), (1, 2, 2), (2, 1, 1), (2, 3, 2), (3, 2, 1), (3, 3, 2);
SELECT isrf.create_dataset('bob_ds', 'bob_reviews');
-- bob cannot write the catalogue directly: not squat alice's model name
-- with a row pointing at her dataset (foreign keys do not see row-level
-- security), not forge rows of his own, not touch model bytes
SELECT err($$INSERT INTO isrf.models (name, version, dataset) VALUES ('amodel', 2, 'alice_ds')$$);
SELECT err($$INSERT INTO isrf.models (name, version, dataset) VALUES ('bobm', 1, 'bob_ds')$$);
SELECT err($$INSERT INTO isrf.datasets (name, reviews, order_column, bound_names) VALUES ('x', 'bob_reviews', 'position', '{}')$$);
SELECT err($$UPDATE isrf.datasets SET order_column = 'user_id'$$);
SELECT err($$DELETE FROM isrf.datasets$$);
SELECT err($$UPDATE isrf.models SET deployed = false$$);
SELECT err($$DELETE FROM isrf.models$$);
SELECT err($$INSERT INTO isrf.model_chunks VALUES ('amodel', 1, 99, '\x00')$$);
SELECT err($$INSERT INTO isrf.group_edges VALUES ('amodel', 1, 1, 2, 0.5, 99)$$);
SELECT err($$INSERT INTO isrf.model_interactions VALUES ('amodel', 1, 1, 2, 99, 'train')$$);
SELECT err($$INSERT INTO isrf.synthetic_tables (relid, dataset, owner, relname) VALUES ('bob_reviews'::regclass, 'x', 'regress_isrf_bob', 'bob_reviews')$$);
-- nor call the writers behind the extension's functions
SELECT err($$SELECT isrf._cat_dataset_drop(0, 'alice_ds', true)$$);
SELECT err($$SELECT isrf._cat_train_chunk(0, 'amodel', 1, 99, '\x00')$$);
-- the gate to them acts as bob, and opens only to the writers SQL may use
SELECT err($$SELECT isrf._catalogue('_cat_dataset_drop', 'alice_ds'::text, true)$$);
SELECT err($$SELECT isrf._catalogue('_cat_model_drop', 'amodel'::text)$$);
SELECT err($$SELECT isrf._catalogue('_cat_train_chunk', 'amodel'::text, 1, 99, '\x00'::bytea)$$);
SELECT err($$SELECT isrf._catalogue('_cat_train_begin', 'amodel'::text, 'alice_ds'::text, '{}'::jsonb)$$);
SELECT err($$SELECT isrf._catalogue('_cat_dataset_put; DROP TABLE x', 'a'::text)$$);
SELECT err($$SELECT isrf._catalogue('_cat_model_drop', VARIADIC ARRAY['amodel'])$$);
SELECT err($$SELECT isrf._catalogue('_cat_synthetic_register', 'alice_ds'::text,
    ARRAY(SELECT c.oid::regclass FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'alice_ds' AND c.relname = 'reviews'))$$);
-- nor claim alice's names through the functions
SELECT err($$CALL isrf_train('bob_ds', '{"model": "amodel"}')$$);
SELECT err($$SELECT isrf.create_dataset('alice_ds', 'bob_reviews')$$);
SELECT err($$SELECT isrf.create_dataset('alice_ds', 'bob_reviews', replace => true)$$);
SELECT err($$SELECT isrf.drop_model('amodel')$$);
SELECT err($$SELECT isrf.drop_dataset('alice_ds', cascade => true)$$);
-- his own model: trained, and its bytes still out of his reach
CALL isrf_train('bob_ds', '{"model": "bobm", "epochs": 1, "dm": 2, "group_k": 1, "min_df": 1}');
SELECT name, version, owner, status, deployed FROM isrf.models;
SELECT err($$UPDATE isrf.model_chunks SET data = data WHERE name = 'bobm'$$);
SELECT err($$DELETE FROM isrf.model_chunks WHERE name = 'bobm'$$);
SELECT model_name, version FROM isrf.model_check('bobm');
-- isrf_status() does not show him alice's model, loaded in the same server
SELECT count(*) FROM isrf_recommend(1, 3, 'bobm');
SELECT count(*) FILTER (WHERE models LIKE '%amodel%') AS sees_amodel FROM isrf_status();
RESET ROLE;

-- alice is untroubled: she sees her model (not bob's), trains it again, drops it
SET ROLE regress_isrf_alice;
SELECT count(*) FILTER (WHERE models LIKE '%amodel v1%') AS sees_amodel,
       count(*) FILTER (WHERE models LIKE '%bobm%') AS sees_bobm
  FROM isrf_status() WHERE database = current_database();
CALL isrf_train('alice_ds', '{"model": "amodel", "epochs": 1, "dm": 4, "group_k": 3}');
SELECT name, version, owner, status, deployed FROM isrf.models ORDER BY version;
SELECT isrf.drop_model('amodel');
SELECT count(*) FROM isrf.models;
RESET ROLE;

-- the superuser sees both, may act on anything; a model is its dataset's owner's
SELECT name, owner FROM isrf.models ORDER BY name;
CALL isrf_train('alice_ds', '{"model": "amodel2", "epochs": 1, "dm": 4, "group_k": 3}');
SELECT name, version, owner, dataset FROM isrf.models WHERE name = 'amodel2';
SELECT err($$CALL isrf_train('bob_ds', '{"model": "amodel2"}')$$);
SELECT isrf.drop_model('bobm');

-- the role acting is the current user where the call is made: after SET
-- ROLE the role set, inside a SECURITY DEFINER function its owner
CREATE ROLE regress_isrf_team;
GRANT regress_isrf_team TO regress_isrf_bob;
GRANT CREATE ON SCHEMA public TO regress_isrf_team;
SET ROLE regress_isrf_bob;
SET ROLE regress_isrf_team;
CREATE TABLE team_reviews (user_id int, item_id int, "position" int);
SELECT isrf.create_dataset('team_ds', 'team_reviews');
SELECT name, owner FROM isrf.datasets;
SET ROLE regress_isrf_bob;
SELECT count(*) AS bob_sees_team_ds FROM isrf.datasets WHERE name = 'team_ds';
SELECT err($$SELECT isrf.drop_dataset('team_ds')$$);
RESET ROLE;
SET ROLE regress_isrf_alice;
CREATE TABLE alice_more (user_id int, item_id int, "position" int);
CREATE FUNCTION alice_bind() RETURNS void SECURITY DEFINER LANGUAGE sql SET search_path = pg_catalog AS $$
    SELECT isrf.create_dataset('alice_via_fn', 'public.alice_more')
$$;
GRANT EXECUTE ON FUNCTION alice_bind() TO regress_isrf_bob;
RESET ROLE;
SET ROLE regress_isrf_bob;
SELECT alice_bind();
SELECT count(*) AS bob_sees_alice_via_fn FROM isrf.datasets WHERE name = 'alice_via_fn';
RESET ROLE;
SELECT name, owner FROM isrf.datasets WHERE name IN ('team_ds', 'alice_via_fn') ORDER BY name;
SELECT isrf.drop_dataset('team_ds');
SELECT isrf.drop_dataset('alice_via_fn');
DROP TABLE team_reviews, alice_more;
DROP FUNCTION alice_bind();
REVOKE CREATE ON SCHEMA public FROM regress_isrf_team;
DROP ROLE regress_isrf_team;

-- drop_dataset by its owner takes the models with it
SET ROLE regress_isrf_alice;
SELECT err($$SELECT isrf.drop_dataset('alice_ds')$$);
SELECT isrf.drop_dataset('alice_ds', cascade => true);
SELECT count(*) AS datasets, (SELECT count(*) FROM isrf.models) AS models FROM isrf.datasets;
DROP SCHEMA alice_ds CASCADE;
RESET ROLE;
SELECT isrf.drop_dataset('bob_ds');
SELECT count(*) AS datasets, (SELECT count(*) FROM isrf.models) AS models,
       (SELECT count(*) FROM isrf.model_chunks) AS chunks FROM isrf.datasets;

DROP TABLE bob_reviews;
DROP OWNED BY regress_isrf_alice, regress_isrf_bob;
DROP ROLE regress_isrf_alice;
DROP ROLE regress_isrf_bob;
