-- Data that outgrows one table or one node (issue 13): a declaratively
-- partitioned reviews table, and a postgres_fdw foreign table, bound as a
-- dataset's reviews, train and serve exactly like the plain table holding
-- the same rows.
\set VERBOSITY terse
SET client_min_messages = warning;

SELECT isrf.create_synthetic_dataset('plain', users => 60, items => 30, groups => 3, per_user => 6);

-- the same reviews, hash-partitioned by user, indexed like the plain table
CREATE TABLE plain.reviews_part (LIKE plain.reviews) PARTITION BY HASH (user_id);
CREATE TABLE plain.reviews_part_0 PARTITION OF plain.reviews_part FOR VALUES WITH (MODULUS 3, REMAINDER 0);
CREATE TABLE plain.reviews_part_1 PARTITION OF plain.reviews_part FOR VALUES WITH (MODULUS 3, REMAINDER 1);
CREATE TABLE plain.reviews_part_2 PARTITION OF plain.reviews_part FOR VALUES WITH (MODULUS 3, REMAINDER 2);
INSERT INTO plain.reviews_part SELECT * FROM plain.reviews;
SELECT count(DISTINCT tableoid) AS partitions_used FROM plain.reviews_part;
CREATE INDEX ON plain.reviews_part (user_id, "position");
SELECT isrf.create_dataset('part', 'plain.reviews_part', items => 'plain.items',
    item_descriptions => 'plain.item_descriptions', user_descriptions => 'plain.user_descriptions');
SELECT (SELECT row(s.*)::text FROM isrf.dataset_stats('part') s) = (SELECT row(s.*)::text FROM isrf.dataset_stats('plain') s)
    AS same_stats;

CALL isrf_train('plain', '{"epochs": 1, "dm": 4, "group_k": 3, "min_df": 1}');
CALL isrf_train('part', '{"epochs": 1, "dm": 4, "group_k": 3, "min_df": 1}');
SELECT name, status, deployed, (metrics ->> 'interactions')::int AS interactions, (metrics ->> 'users')::int AS users
  FROM isrf.models WHERE name IN ('plain', 'part') ORDER BY name;
SELECT p.metrics - 'seconds' - 'seconds_total' - 'model_bytes' = q.metrics - 'seconds' - 'seconds_total' - 'model_bytes'
       AS same_metrics
  FROM isrf.models p, isrf.models q WHERE p.name = 'plain' AND q.name = 'part';

-- every user gets the same answers from both, in the server and in-process
CREATE FUNCTION pg_temp.differ(a text, b text) RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*) FROM generate_series(1, 60) u
     WHERE (SELECT array_agg(r.item_id ORDER BY r.rank) FROM isrf_recommend(u, 5, a) r)
           IS DISTINCT FROM (SELECT array_agg(r.item_id ORDER BY r.rank) FROM isrf_recommend(u, 5, b) r)
        OR (SELECT array_agg(r.item_id ORDER BY r.rank) FROM isrf_rank(u, ARRAY[1, 2, 3, 4, 5, 6], a) r)
           IS DISTINCT FROM (SELECT array_agg(r.item_id ORDER BY r.rank) FROM isrf_rank(u, ARRAY[1, 2, 3, 4, 5, 6], b) r)
        OR (SELECT array_agg(g.neighbour_id ORDER BY g.similarity DESC, g.neighbour_id) FROM isrf_group_neighbours(u, 3, a) g)
           IS DISTINCT FROM (SELECT array_agg(g.neighbour_id ORDER BY g.similarity DESC, g.neighbour_id) FROM isrf_group_neighbours(u, 3, b) g)
$$;
SELECT pg_temp.differ('plain', 'part') AS users_answered_differently;
SET isrf.device = 'cpu';
SELECT pg_temp.differ('plain', 'part') AS users_answered_differently_in_process;
RESET isrf.device;
SELECT (SELECT array_agg(task || method || hr_10 ORDER BY task, method) FROM isrf_evaluate('plain'))
     = (SELECT array_agg(task || method || hr_10 ORDER BY task, method) FROM isrf_evaluate('part')) AS same_evaluation;

-- a review written into a partition counts at the next call
CREATE TEMP TABLE top1 AS SELECT item_id FROM isrf_recommend(1, 1, 'part');
INSERT INTO plain.reviews_part SELECT 1, item_id, 1000 FROM top1;
SELECT count(*) AS bought_item_recommended FROM isrf_recommend(1, 10, 'part') r JOIN top1 USING (item_id);
SELECT count(*) AS bought_item_recommended_from_plain FROM isrf_recommend(1, 10, 'plain') r JOIN top1 USING (item_id);

-- the history is found through an index: one of the partitioned table, or
-- one of every partition; a partition without one is noticed
SELECT isrf._user_indexed('plain.reviews_part') AS parent_index;
DROP INDEX plain.reviews_part_user_id_position_idx;
SELECT isrf._user_indexed('plain.reviews_part') AS no_index;
CREATE INDEX ON plain.reviews_part_0 (user_id);
CREATE INDEX ON plain.reviews_part_1 (user_id);
SELECT isrf._user_indexed('plain.reviews_part') AS two_of_three;
CREATE INDEX ON plain.reviews_part_2 (user_id, "position");
SELECT isrf._user_indexed('plain.reviews_part') AS every_partition;
SELECT isrf._user_indexed('plain.reviews') AS plain_table, isrf._user_indexed('plain.items') AS items_table;

-- a foreign table (postgres_fdw, here a loopback to this database) as the
-- reviews table: trained and served like the plain one
CREATE EXTENSION postgres_fdw;
DO $$ BEGIN
    EXECUTE format('CREATE SERVER regress_isrf_loopback FOREIGN DATA WRAPPER postgres_fdw OPTIONS (dbname %L, port %L, host %L)',
                   current_database(), current_setting('port'),
                   split_part(current_setting('unix_socket_directories'), ',', 1));
    EXECUTE format('CREATE USER MAPPING FOR CURRENT_USER SERVER regress_isrf_loopback OPTIONS (user %L)', current_user);
END $$;
CREATE FOREIGN TABLE plain.reviews_remote (user_id bigint, item_id bigint, "position" integer)
    SERVER regress_isrf_loopback OPTIONS (schema_name 'plain', table_name 'reviews');
SELECT isrf._user_indexed('plain.reviews_remote') AS foreign_taken_as_indexed;
SELECT isrf.create_dataset('remote', 'plain.reviews_remote', items => 'plain.items',
    item_descriptions => 'plain.item_descriptions', user_descriptions => 'plain.user_descriptions');
CALL isrf_train('remote', '{"epochs": 1, "dm": 4, "group_k": 3, "min_df": 1}');
SELECT p.metrics - 'seconds' - 'seconds_total' - 'model_bytes' = q.metrics - 'seconds' - 'seconds_total' - 'model_bytes'
       AS same_metrics
  FROM isrf.models p, isrf.models q WHERE p.name = 'plain' AND q.name = 'remote';
SELECT pg_temp.differ('plain', 'remote') AS users_answered_differently;

SELECT isrf.drop_dataset('remote', cascade => true);
SELECT isrf.drop_dataset('part', cascade => true);
SELECT isrf.drop_dataset('plain', cascade => true);
DROP SCHEMA plain CASCADE;
DROP SERVER regress_isrf_loopback CASCADE;
DROP EXTENSION postgres_fdw;
