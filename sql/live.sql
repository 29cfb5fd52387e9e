-- Live recommendations: answers come from the user's history as it is in
-- the database at the moment of the call, for known users, users the model
-- has never seen and anonymous sessions; through the model server (isrf is
-- preloaded in the test cluster) and in-process alike.
\set VERBOSITY terse
SET client_min_messages = warning;

SELECT isrf.create_synthetic_dataset('live', users => 200, items => 80, groups => 4, per_user => 10, seed => 11);
CALL isrf_train('live', '{"group_k": 10, "dm": 16, "epochs": 3}');

-- the item just bought disappears from the next answer, and the list changes
CREATE TEMP TABLE before AS SELECT * FROM isrf_recommend(1, 5);
INSERT INTO live.reviews (user_id, item_id, "position")
     SELECT 1, item_id, 1000 FROM before WHERE rank = 1;
CREATE TEMP TABLE after AS SELECT * FROM isrf_recommend(1, 5);
SELECT (SELECT item_id FROM before WHERE rank = 1) NOT IN (SELECT item_id FROM after) AS bought_item_gone,
       (SELECT array_agg(item_id ORDER BY rank) FROM before) <>
       (SELECT array_agg(item_id ORDER BY rank) FROM after) AS list_changed,
       (SELECT bool_and(NOT cold_start) FROM after) AS personalised;
-- in-process the same
SET isrf.device = 'cpu';
SELECT (SELECT array_agg(item_id ORDER BY rank) FROM isrf_recommend(1, 5)) =
       (SELECT array_agg(item_id ORDER BY rank) FROM after) AS same_in_process;
RESET isrf.device;

-- inside a transaction, the transaction's own writes count; a rollback undoes them
BEGIN;
INSERT INTO live.reviews (user_id, item_id, "position")
     SELECT 1, item_id, 1001 FROM after WHERE rank = 1;
SELECT (SELECT item_id FROM after WHERE rank = 1) NOT IN (SELECT item_id FROM isrf_recommend(1, 5)) AS own_write_seen;
ROLLBACK;
SELECT (SELECT array_agg(item_id ORDER BY rank) FROM isrf_recommend(1, 5)) =
       (SELECT array_agg(item_id ORDER BY rank) FROM after) AS rolled_back;

-- a user the model has never seen, with five known items: a personalised
-- answer without their own items, a group and group interests
INSERT INTO live.reviews (user_id, item_id, "position")
     SELECT 5000, item_id, row_number() OVER (ORDER BY "position", item_id)
       FROM live.reviews WHERE user_id = 3 ORDER BY "position", item_id LIMIT 5;
CREATE TEMP TABLE newcomer AS SELECT * FROM isrf_recommend(5000, 5);
SELECT count(*) AS n, bool_and(NOT cold_start) AS personalised,
       count(*) FILTER (WHERE item_id IN (SELECT item_id FROM live.reviews WHERE user_id = 5000)) AS own_items
  FROM newcomer;
SELECT count(*) AS neighbours, bool_and(neighbour_id <> 5000) AS not_self FROM isrf_group_neighbours(5000, 3);
SELECT count(*) > 0 AS has_interests,
       count(*) FILTER (WHERE item_id IN (SELECT item_id FROM live.reviews WHERE user_id = 5000)) AS own_items
  FROM isrf_group_interests(5000, 5);
-- the same five items as an anonymous session give that answer too
SELECT (SELECT array_agg(item_id ORDER BY rank)
          FROM isrf_recommend_items((SELECT array_agg(item_id ORDER BY "position") FROM live.reviews WHERE user_id = 5000), 5)) =
       (SELECT array_agg(item_id ORDER BY rank) FROM newcomer) AS anonymous_same;
-- isrf_rank reads the current history too: its scores follow it
SELECT count(*) AS ranked, count(score) AS scored
  FROM isrf_rank(5000, (SELECT array_agg(item_id) FROM newcomer));

-- only a user with no usable interaction gets the popularity answer
SELECT count(*) AS n, bool_and(cold_start) AS cold FROM isrf_recommend(424242, 5);
INSERT INTO live.reviews (user_id, item_id, "position") VALUES (6000, 999999, 1);
SELECT count(*) AS n, bool_and(cold_start) AS cold FROM isrf_recommend(6000, 5);
SELECT err($$SELECT * FROM isrf_group_neighbours(6000, 3)$$);

-- anonymous sessions: unknown items skipped and counted, repeats once, bad input refused
SET client_min_messages = notice;
SELECT count(*) FROM isrf_recommend_items(ARRAY[1, 2, 999999, 888888, 2]::bigint[], 5);
SET client_min_messages = warning;
SELECT count(*) AS n, bool_and(item_id NOT IN (1, 2)) AS listed_excluded
  FROM isrf_recommend_items(ARRAY[1, 2]::bigint[], 5);
SELECT err($$SELECT * FROM isrf_recommend_items(ARRAY[1, NULL]::bigint[], 5)$$);
SELECT err($$SELECT * FROM isrf_recommend_items('{}'::bigint[], 5)$$);
SELECT err($$SELECT * FROM isrf_recommend_items(ARRAY[1]::bigint[], 0)$$);
SELECT err($$SELECT * FROM isrf_recommend_items(NULL, 5)$$);
SELECT err($$SELECT * FROM isrf_recommend_items(ARRAY[1]::bigint[], NULL)$$);
SELECT err($$SELECT * FROM isrf_recommend_items('{{1,2},{3,4}}'::bigint[], 5)$$);

-- a role that may no longer read its reviews table gets 42501, never another user's history
CREATE ROLE regress_live_owner;
CREATE TABLE public.live_shared_reviews AS SELECT * FROM live.reviews;
CREATE INDEX ON public.live_shared_reviews (user_id, "position");
GRANT SELECT ON public.live_shared_reviews TO regress_live_owner;
SET ROLE regress_live_owner;
SELECT isrf.create_dataset('live_shared', 'public.live_shared_reviews');
CALL isrf_train('live_shared', '{"group_k": 5, "dm": 8, "epochs": 1}');
SELECT count(*) FROM isrf_recommend(1, 3, 'live_shared');
RESET ROLE;
REVOKE SELECT ON public.live_shared_reviews FROM regress_live_owner;
SET ROLE regress_live_owner;
SELECT err($$SELECT * FROM isrf_recommend(1, 3, 'live_shared')$$);
SELECT err($$SELECT * FROM isrf_rank(1, ARRAY[1, 2]::bigint[], 'live_shared')$$);
SELECT err($$SELECT * FROM isrf_group_neighbours(1, 3, 'live_shared')$$);
SET isrf.device = 'cpu';
SELECT err($$SELECT * FROM isrf_recommend(1, 3, 'live_shared')$$);
RESET isrf.device;
SELECT isrf.drop_dataset('live_shared', cascade => true);
RESET ROLE;
DROP TABLE public.live_shared_reviews;
DROP ROLE regress_live_owner;

-- a table without an index leading with user_id: a NOTICE, once per session
CREATE TABLE live.reviews2 AS SELECT * FROM live.reviews;
SELECT isrf.create_dataset('live2', 'live.reviews2', items => 'live.items');
CALL isrf_train('live2', '{"group_k": 5, "dm": 8, "epochs": 1}');
SET client_min_messages = notice;
SELECT count(*) FROM isrf_recommend(1, 3, 'live2');
SELECT count(*) FROM isrf_recommend(2, 3, 'live2');
SET client_min_messages = warning;

SELECT isrf.drop_dataset('live2', cascade => true);
SELECT isrf.drop_dataset('live', cascade => true);
