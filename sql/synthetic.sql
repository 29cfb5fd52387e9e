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
