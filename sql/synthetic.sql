-- The synthetic generator: deterministic by seed, sized by its arguments,
-- planted groups visible in the data, bad arguments refused.
\set VERBOSITY terse

SELECT count(*) AS rows, count(DISTINCT user_id) AS users, max(item_id) <= 60 AS items_in_range,
       min("position") AS first_pos
  FROM isrf.synthetic_reviews(200, 60, 4, 10, 7);

-- same seed, same data; another seed, other data
SELECT (SELECT array_agg(item_id ORDER BY user_id, "position") FROM isrf.synthetic_reviews(50, 40, 3, 8, 7)) =
       (SELECT array_agg(item_id ORDER BY user_id, "position") FROM isrf.synthetic_reviews(50, 40, 3, 8, 7)) AS same_seed_same,
       (SELECT array_agg(item_id ORDER BY user_id, "position") FROM isrf.synthetic_reviews(50, 40, 3, 8, 7)) <>
       (SELECT array_agg(item_id ORDER BY user_id, "position") FROM isrf.synthetic_reviews(50, 40, 3, 8, 8)) AS other_seed_differs;

-- no user repeats an item; positions are 1..n
SELECT count(*) = count(DISTINCT (user_id, item_id)) AS no_repeats,
       bool_and(n = maxpos) AS dense_positions
  FROM (SELECT user_id, item_id, count(*) OVER (PARTITION BY user_id) AS n,
               max("position") OVER (PARTITION BY user_id) AS maxpos
          FROM isrf.synthetic_reviews(200, 60, 4, 10, 7)) s;

-- the planted groups are real: most of a user's items come from the user's group
SELECT round(avg((u.group_id = i.group_id)::int), 1) >= 0.8 AS mostly_own_group
  FROM isrf.synthetic_reviews(300, 90, 5, 12, 3) r
  JOIN isrf.synthetic_users(300, 90, 5, 12, 3) u USING (user_id)
  JOIN isrf.synthetic_items(300, 90, 5, 12, 3) i USING (item_id);

SELECT * FROM isrf.synthetic_items(10, 6, 2, 4, 1) ORDER BY item_id LIMIT 3;
SELECT * FROM isrf.synthetic_item_descriptions(10, 6, 2, 4, 1) ORDER BY item_id LIMIT 2;
SELECT * FROM isrf.synthetic_users(10, 6, 2, 4, 1) ORDER BY user_id LIMIT 3;

-- bad arguments
SELECT err($$SELECT * FROM isrf.synthetic_reviews(0, 10, 2, 5, 1)$$);
SELECT err($$SELECT * FROM isrf.synthetic_reviews(10, 10, 11, 5, 1)$$);
SELECT err($$SELECT * FROM isrf.synthetic_reviews(10, 10, 2, 0, 1)$$);
SELECT err($$SELECT * FROM isrf.synthetic_reviews(10, NULL, 2, 5, 1)$$);
SELECT err($$SELECT * FROM isrf.synthetic_users(100000000, 10, 2, 5, 1)$$);

-- a whole synthetic dataset, bound and counted
SELECT isrf.create_synthetic_dataset('synth', users => 120, items => 40, groups => 4, per_user => 8, seed => 5);
SELECT users, items, interactions, catalogue_items, items_with_text, users_with_descriptions, skipped
  FROM isrf.dataset_stats('synth');
SELECT err($$SELECT isrf.create_synthetic_dataset('synth', users => 120, items => 40, groups => 4, per_user => 8, seed => 5)$$);
SELECT isrf.create_synthetic_dataset('synth', users => 50, items => 30, groups => 3, per_user => 6, seed => 5, replace => true);
SELECT users, catalogue_items FROM isrf.dataset_stats('synth');
SELECT err($$SELECT isrf.create_synthetic_dataset('1bad')$$);
SELECT isrf.drop_dataset('synth');
DROP SCHEMA synth CASCADE;

-- replace never drops a table the generator did not make (issue 11, finding 7)
CREATE SCHEMA mine;
CREATE TABLE mine.reviews (user_id int, item_id int, "position" int);
INSERT INTO mine.reviews VALUES (1, 1, 1), (1, 2, 2);
CREATE TABLE mine.items (item_id int, title text);
SELECT isrf.create_dataset('mine', 'mine.reviews', items => 'mine.items');
SELECT err($$SELECT isrf.create_synthetic_dataset('mine', users => 20, items => 10, groups => 2, per_user => 4, replace => true)$$);
SELECT count(*) AS my_reviews_kept FROM mine.reviews;
SELECT reviews, items FROM isrf.datasets WHERE name = 'mine';
SELECT err($$SELECT isrf.create_synthetic_dataset('mine', users => 20, items => 10, groups => 2, per_user => 4)$$);
SELECT isrf.drop_dataset('mine');
SELECT err($$SELECT isrf.create_synthetic_dataset('mine', users => 20, items => 10, groups => 2, per_user => 4, replace => true)$$);
SELECT count(*) AS my_reviews_kept FROM mine.reviews;
DROP TABLE mine.reviews;
SELECT err($$SELECT isrf.create_synthetic_dataset('mine', users => 20, items => 10, groups => 2, per_user => 4, replace => true)$$);
-- its own tables it replaces; one of them replaced by the user's is in the way,
-- and then nothing is dropped
SELECT isrf.create_synthetic_dataset('gen', users => 20, items => 10, groups => 2, per_user => 4);
SELECT isrf.create_synthetic_dataset('gen', users => 30, items => 10, groups => 2, per_user => 4, replace => true);
SELECT users FROM isrf.dataset_stats('gen');
DROP TABLE gen.user_descriptions;
CREATE TABLE gen.user_descriptions (user_id int PRIMARY KEY, preference text);
SELECT err($$SELECT isrf.create_synthetic_dataset('gen', users => 40, items => 10, groups => 2, per_user => 4, replace => true)$$);
SELECT count(DISTINCT user_id) AS generated_reviews_kept FROM gen.reviews;
SELECT count(*) AS user_table_kept FROM gen.user_descriptions;
DROP TABLE gen.user_descriptions;
SELECT isrf.create_synthetic_dataset('gen', users => 40, items => 10, groups => 2, per_user => 4, replace => true);
SELECT users FROM isrf.dataset_stats('gen');
-- another role's generated tables are not its to replace
CREATE ROLE regress_isrf_gen;
GRANT USAGE, CREATE ON SCHEMA gen TO regress_isrf_gen;
SET ROLE regress_isrf_gen;
SELECT err($$SELECT isrf.create_synthetic_dataset('gen', users => 20, items => 10, groups => 2, per_user => 4, replace => true)$$);
RESET ROLE;
REVOKE USAGE, CREATE ON SCHEMA gen FROM regress_isrf_gen;
DROP ROLE regress_isrf_gen;
SELECT isrf.drop_dataset('gen');
DROP SCHEMA gen CASCADE;
DROP SCHEMA mine CASCADE;
