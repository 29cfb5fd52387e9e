-- Training and the analyst functions: a synthetic dataset with planted
-- groups, the model registry, group neighbours and interests, and every
-- bad input with its SQLSTATE.
\set VERBOSITY terse
SET client_min_messages = warning;

SELECT isrf.create_synthetic_dataset('groups', users => 300, items => 120, groups => 6, per_user => 10, seed => 3);
CALL isrf_train('groups', '{"group_k": 10, "dm": 32, "layers": 2}');
SELECT name, version, dataset, status, stage, deployed, message IS NULL AS no_message,
       metrics->>'users' AS users, metrics->>'items' AS items, metrics->>'group_edges' AS edges,
       metrics->>'evaluated_users' AS evaluated
  FROM isrf.models;

-- the group graph recovers the planted groups
SELECT round(avg((u.group_id = n.group_id)::int), 1) >= 0.8 AS neighbours_share_group
  FROM isrf.group_graph g
  JOIN groups.user_descriptions u ON u.user_id = g.user_id
  JOIN groups.user_descriptions n ON n.user_id = g.neighbour_id;
SELECT count(*) AS edges, count(DISTINCT user_id) AS users, bool_and(user_id <> neighbour_id) AS never_self,
       max(rank) AS max_rank
  FROM isrf.group_graph WHERE model = 'groups';

-- neighbours: most similar first, k respected, never the user
SELECT count(*), bool_and(neighbour_id <> 1) AS not_self FROM isrf_group_neighbours(1, 5);
SELECT bool_and(similarity <= lag_sim) AS descending FROM (
    SELECT similarity, lag(similarity) OVER (ORDER BY ordinality) AS lag_sim
      FROM isrf_group_neighbours(7, 10) WITH ORDINALITY) s WHERE lag_sim IS NOT NULL;
-- k larger than the group (or the user count) returns what there is
SELECT count(*) FROM isrf_group_neighbours(1, 100000);

-- interests: items of the group the user has not touched, with support
SELECT count(*) <= 5 AS at_most_k, bool_and(support >= 1) AS supported,
       bool_and(score > 0 AND score <= 1) AS score_in_range
  FROM isrf_group_interests(1, 5);
SELECT count(*) AS seen_items_returned FROM isrf_group_interests(1, 1000) gi
  JOIN groups.reviews r ON r.user_id = 1 AND r.item_id = gi.item_id;
-- the group's interests are the group's items
SELECT round(avg((i.group_id = u.group_id)::int), 1) >= 0.6 AS interests_from_group
  FROM groups.user_descriptions u, LATERAL isrf_group_interests(u.user_id, 5) gi
  JOIN groups.items i ON i.item_id = gi.item_id
 WHERE u.user_id <= 50;

-- the stored model reads back
SELECT model_name, version, users, items, dim, group_edges FROM isrf.model_check();
SELECT split, count(*) FROM isrf.model_interactions WHERE model = 'groups' GROUP BY split ORDER BY split;

-- a second version becomes the deployed one; the first stays, undeployed
CALL isrf_train('groups', '{"group_k": 5, "dm": 16, "layers": 1}');
-- the effective configuration is stored with the version: every key that
-- has an effect, defaults included, and nothing else
SELECT config->>'model' AS model, config->>'group_k' AS group_k, config->>'d_model' AS d_model,
       config->>'lr' AS lr, config->>'use_align' AS use_align, config ? 'lambda1' AS has_lambda1
  FROM isrf.models WHERE name = 'groups' ORDER BY version DESC LIMIT 1;
SELECT version, status, deployed FROM isrf.models ORDER BY version;
SELECT count(*) FROM isrf_group_neighbours(1, 100);

-- bad inputs
SELECT err($$CALL isrf_train('nope')$$);
SELECT err($$CALL isrf_train(NULL)$$);
-- unaligned: the list of known keys grows, the column's width should not matter
\pset format unaligned
SELECT err($$CALL isrf_train('groups', '{"no_such_key": 1}')$$);
\pset format aligned
SELECT err($$CALL isrf_train('groups', '{"group_k": 0}')$$);
SELECT err($$CALL isrf_train('groups', '{"group_k": "many"}')$$);
SELECT err($$CALL isrf_train('groups', '{"dm": [1, 2]}')$$);
-- keys are validated together, whatever their order; a key the rest of the
-- configuration makes ineffective is refused, saying why
SELECT err($$CALL isrf_train('groups', '{"n_heads": 3}')$$);
SELECT err($$CALL isrf_train('groups', '{"lambda1": 0.2}')$$);
SELECT err($$CALL isrf_train('groups', '{"use_group_interest": true, "use_align": false, "tau": 0.5}')$$);
SELECT err($$CALL isrf_train('groups', '{"epochs": 0, "d_model": 32}')$$);
SELECT err($$CALL isrf_train('groups', '{"use_group": false, "group_k": 5}')$$);
SELECT err($$CALL isrf_train('groups', '[1, 2]')$$);
SELECT err($$CALL isrf_train('groups', '{"model": "bad name"}')$$);
SELECT err($$CALL isrf_train('groups', '{"model": 5}')$$);
SELECT err($$SELECT * FROM isrf_group_neighbours(NULL, 5)$$);
SELECT err($$SELECT * FROM isrf_group_neighbours(1, NULL)$$);
SELECT err($$SELECT * FROM isrf_group_neighbours(1, 0)$$);
SELECT err($$SELECT * FROM isrf_group_neighbours(1, -3)$$);
SELECT err($$SELECT * FROM isrf_group_neighbours(999999, 5)$$);
SELECT err($$SELECT * FROM isrf_group_neighbours(1, 5, 'nope')$$);
SELECT err($$SELECT * FROM isrf_group_interests(999999, 5)$$);
SELECT err($$SELECT * FROM isrf_group_interests(1, 0)$$);
SELECT err($$SELECT * FROM isrf.model_check('nope')$$);

-- an empty dataset cannot be trained, and says why
CREATE TABLE empty_reviews (user_id int, item_id int, "position" int);
SELECT isrf.create_dataset('empty', 'empty_reviews');
SELECT err($$CALL isrf_train('empty')$$);
-- called at top level (non-atomic), the failed version is recorded with why
CALL isrf_train('empty');
SELECT version, status, stage, deployed, message FROM isrf.models WHERE name = 'empty';

-- a model belongs to one dataset
SELECT err($$CALL isrf_train('empty', '{"model": "groups"}')$$);

-- users with one interaction and items without text still train
CREATE TABLE sparse_reviews (user_id int, item_id int, "position" int);
INSERT INTO sparse_reviews VALUES (1, 1, 1), (2, 1, 1), (2, 2, 2), (3, 2, 1), (3, 3, 2), (3, 4, 3), (4, 3, 1);
CREATE TABLE sparse_items (item_id int, title text);
INSERT INTO sparse_items VALUES (1, 'red apple juice'), (2, 'green apple pie'), (3, NULL), (4, ''), (5, 'unsold apple cider');
SELECT isrf.create_dataset('sparse', 'sparse_reviews', items => 'sparse_items');
CALL isrf_train('sparse', '{"group_k": 2, "dm": 4, "min_df": 1}');
SELECT status, metrics->>'users' AS users, metrics->>'items' AS items, metrics->>'evaluated_users' AS evaluated,
       metrics->>'items_with_text' AS with_text
  FROM isrf.models WHERE name = 'sparse';
SELECT count(*) <= 2 AS ok FROM isrf_group_neighbours(1, 2, 'sparse');

-- precomputed embeddings (a real[] column of the items table) replace the text features
CREATE TABLE emb_items (item_id int, title text, emb real[]);
INSERT INTO emb_items VALUES (1, 'red apple juice', '{1, 0, 0}'), (2, 'green apple pie', '{0.9, 0.1, 0}'),
    (3, NULL, '{0, 1, 0}'), (4, '', NULL), (5, 'unsold apple cider', '{0, 0, 1}');
SELECT isrf.create_dataset('emb', 'sparse_reviews', items => 'emb_items');
CALL isrf_train('emb', '{"group_k": 2, "dm": 2, "epochs": 1}');
SELECT status, metrics->>'items_with_text' AS items_with_embedding FROM isrf.models WHERE name = 'emb';
UPDATE emb_items SET emb = '{1, 2}' WHERE item_id = 2;
SELECT err($$CALL isrf_train('emb', '{"group_k": 2, "dm": 2, "epochs": 1}')$$);
UPDATE emb_items SET emb = '{1, NULL, 2}' WHERE item_id = 2;
SELECT err($$CALL isrf_train('emb', '{"group_k": 2, "dm": 2, "epochs": 1}')$$);
SELECT isrf.drop_dataset('emb', cascade => true);
DROP TABLE emb_items;

-- more than one model deployed: NULL model is ambiguous unless the setting names one
SELECT err($$SELECT * FROM isrf_group_neighbours(1, 5)$$);
SET isrf.default_model = 'sparse';
SELECT count(*) <= 2 AS uses_default FROM isrf_group_neighbours(1, 5);
RESET isrf.default_model;

-- other roles see neither the models nor their graphs
CREATE ROLE regress_isrf_carol;
SET ROLE regress_isrf_carol;
SELECT count(*) AS models, (SELECT count(*) FROM isrf.group_graph) AS edges FROM isrf.models;
SELECT err($$SELECT * FROM isrf_group_neighbours(1, 5, 'sparse')$$);
RESET ROLE;
DROP ROLE regress_isrf_carol;

-- a flipped byte of a stored model is caught (XX001) or, in padding that is
-- never read, leaves the model as it was; never another outcome.  Every
-- header byte, then 30 bytes spread over the rest.
CREATE TEMP TABLE flips (pos integer, outcome text);
DO $$
DECLARE
    len integer;
    pos integer;
    st text;
    before text := (SELECT m::text FROM isrf.model_check('sparse') m);
    after text;
BEGIN
    SELECT length(data) INTO len FROM isrf.model_chunks WHERE name = 'sparse' AND seq = 0;
    FOR pos IN SELECT g FROM generate_series(0, 27) g
               UNION SELECT 28 + (len - 29) * k / 29 FROM generate_series(0, 29) k LOOP
        UPDATE isrf.model_chunks SET data = set_byte(data, pos, get_byte(data, pos) # 16) WHERE name = 'sparse' AND seq = 0;
        BEGIN
            SELECT m::text INTO after FROM isrf.model_check('sparse') m;
            st := CASE WHEN after = before THEN 'unchanged' ELSE 'read differently' END;
        EXCEPTION WHEN OTHERS THEN
            st := SQLSTATE;
        END;
        UPDATE isrf.model_chunks SET data = set_byte(data, pos, get_byte(data, pos) # 16) WHERE name = 'sparse' AND seq = 0;
        INSERT INTO flips VALUES (pos, st);
    END LOOP;
END $$;
SELECT count(*) AS flips, count(*) FILTER (WHERE outcome = 'XX001') > 50 AS mostly_caught,
       count(*) FILTER (WHERE outcome NOT IN ('XX001', 'unchanged')) AS other_outcomes,
       count(*) FILTER (WHERE pos < 28 AND outcome <> 'XX001') AS header_not_caught
  FROM flips;
SELECT model_name, users FROM isrf.model_check('sparse');

-- a corrupt model is reported as such, never read
UPDATE isrf.model_chunks SET data = set_byte(data, length(data) - 10, get_byte(data, length(data) - 10) # 1)
 WHERE name = 'sparse' AND seq = 0;
SELECT err($$SELECT * FROM isrf.model_check('sparse')$$);
UPDATE isrf.model_chunks SET data = set_byte(data, 40, get_byte(data, 40) # 1)
 WHERE name = 'sparse' AND seq = 0;
SELECT err($$SELECT * FROM isrf.model_check('sparse')$$);
UPDATE isrf.model_chunks SET data = substring(data from 1 for 100) WHERE name = 'sparse' AND seq = 0;
-- (the size the header names depends on the model's layout)
SELECT regexp_replace(err($$SELECT * FROM isrf.model_check('sparse')$$), 'says [0-9]+ bytes', 'says N bytes');

-- inside a transaction block training is atomic: a rollback leaves no trace
BEGIN;
CALL isrf_train('sparse', '{"group_k": 2, "dm": 4, "min_df": 1}');
SELECT count(*) FROM isrf.models WHERE name = 'sparse';
ROLLBACK;
SELECT count(*) FROM isrf.models WHERE name = 'sparse';

-- dropping
SELECT err($$SELECT isrf.drop_dataset('sparse')$$);
SELECT isrf.drop_model('sparse');
SELECT err($$SELECT isrf.drop_model('sparse')$$);
SELECT isrf.drop_dataset('sparse');
SELECT isrf.drop_dataset('empty', cascade => true);
SELECT isrf.drop_dataset('groups', cascade => true);
SELECT count(*) FROM isrf.models;
SELECT count(*) FROM isrf.group_edges;
SELECT count(*) FROM isrf.model_chunks;
DROP SCHEMA groups CASCADE;
DROP TABLE empty_reviews, sparse_reviews, sparse_items;
