-- Datasets: binding tables, validation of every bad input (SQLSTATE and
-- message), stats with skipped rows, replace, drop, dropped tables.
\set VERBOSITY terse

CREATE TABLE reviews (user_id int, item_id bigint, reviewed_at timestamptz, rating real, review_text text);
INSERT INTO reviews VALUES
    (1, 10, '2024-01-01', 5, 'great'),
    (1, 11, '2024-01-02', 4, NULL),
    (1, 12, '2024-01-02', 3, NULL),       -- tie on time: broken by item_id
    (1, 10, '2024-01-05', 1, 'again'),    -- duplicate pair
    (2, 10, '2024-02-01', 5, NULL),
    (2, 13, '2024-02-02', 5, NULL),
    (2, 99, '2024-02-03', 5, NULL),       -- item missing from the items table
    (NULL, 10, '2024-02-03', 5, NULL),    -- NULL user
    (3, NULL, '2024-02-03', 5, NULL),     -- NULL item
    (3, 11, NULL, 5, NULL),               -- NULL order
    (3, 12, '2024-03-01', 2, NULL);
CREATE TABLE items (item_id int PRIMARY KEY, title text, brand varchar(20), code int);
INSERT INTO items VALUES (10, 'red lipstick', 'acme', 7), (11, 'blue mascara', NULL, 8),
    (12, '   ', NULL, 9), (13, NULL, NULL, 10), (14, 'unreviewed serum', 'zen', 11);
CREATE TABLE item_desc (item_id bigint, positive text, negative text, feature text);
INSERT INTO item_desc VALUES (11, 'fans of bold looks', NULL, NULL), (12, NULL, NULL, 'long lasting'),
    (500, 'an item nobody sells', NULL, NULL);
CREATE TABLE user_desc (user_id smallint, preference text);
INSERT INTO user_desc VALUES (1, 'likes bright colours'), (2, ''), (7, 'not a reviewer');

SELECT isrf.create_dataset('shop', 'reviews', items => 'items', item_descriptions => 'item_desc',
                           user_descriptions => 'user_desc');
SELECT name, owner = current_user AS mine, reviews, items, order_column, text_columns FROM isrf.datasets;
SELECT * FROM isrf.dataset_stats('shop');

-- the clean interactions the trainer will read: ties broken by item id
DO $$
DECLARE r record;
BEGIN
    FOR r IN EXECUTE (SELECT isrf._interactions_sql(d) || ' ORDER BY user_id, ord' FROM isrf.datasets d WHERE name = 'shop') LOOP
        RAISE NOTICE 'user % item % ord %', r.user_id, r.item_id, r.ord;
    END LOOP;
END $$;

-- text columns: all text columns unless named; codes and ids are not features
SELECT isrf._text_columns('items', NULL), isrf._text_columns('items', '{title}'),
       isrf._text_columns('user_desc', NULL);

-- bad inputs, each with its SQLSTATE and message
SELECT err($$SELECT isrf.create_dataset(NULL, 'reviews')$$);
SELECT err($$SELECT isrf.create_dataset('bad name!', 'reviews')$$);
SELECT err($$SELECT isrf.create_dataset('x', NULL)$$);
SELECT err($$SELECT isrf.create_dataset('x', 'no_such_table')$$);
SELECT err($$SELECT isrf.create_dataset('shop', 'reviews')$$);
SELECT err($$SELECT isrf.create_dataset('x', 'reviews', replace => NULL)$$);

CREATE TABLE r_no_user (customer int, item_id int, ts bigint);
SELECT err($$SELECT isrf.create_dataset('x', 'r_no_user')$$);
CREATE TABLE r_text_user (user_id text, item_id int, ts bigint);
SELECT err($$SELECT isrf.create_dataset('x', 'r_text_user')$$);
CREATE TABLE r_no_item (user_id int, ts bigint);
SELECT err($$SELECT isrf.create_dataset('x', 'r_no_item')$$);
CREATE TABLE r_float_item (user_id int, item_id float8, ts bigint);
SELECT err($$SELECT isrf.create_dataset('x', 'r_float_item')$$);
CREATE TABLE r_no_order (user_id int, item_id int, rating int);
SELECT err($$SELECT isrf.create_dataset('x', 'r_no_order')$$);
SELECT err($$SELECT isrf.create_dataset('x', 'r_no_order', order_column => 'created')$$);
CREATE TABLE r_text_order (user_id int, item_id int, ts text);
SELECT err($$SELECT isrf.create_dataset('x', 'r_text_order')$$);
CREATE TABLE i_no_id (id int, title text);
SELECT err($$SELECT isrf.create_dataset('x', 'reviews', items => 'i_no_id')$$);
SELECT err($$SELECT isrf.create_dataset('x', 'reviews', user_descriptions => 'items')$$);
SELECT err($$SELECT isrf.create_dataset('x', 'reviews', items => 'items', text_columns => '{title,nope}')$$);
SELECT err($$SELECT isrf.create_dataset('x', 'reviews', items => 'items', text_columns => '{code}')$$);
CREATE SEQUENCE not_a_table;
SELECT err($$SELECT isrf.create_dataset('x', 'not_a_table')$$);
SELECT err($$SELECT * FROM isrf.dataset_stats('nope')$$);
SELECT err($$SELECT * FROM isrf.dataset_stats(NULL)$$);
SELECT err($$SELECT isrf.drop_dataset('nope')$$);
SELECT err($$SELECT isrf.drop_dataset(NULL)$$);

-- other order column types are accepted; an explicit order column wins
SELECT isrf.create_dataset('by_rating', 'r_no_order', order_column => 'rating');
SELECT order_column FROM isrf.datasets WHERE name = 'by_rating';
SELECT isrf.drop_dataset('by_rating');

-- an empty reviews table binds and reports zeros
CREATE TABLE r_empty (user_id int, item_id int, position int);
SELECT isrf.create_dataset('empty', 'r_empty');
SELECT users, items, interactions, catalogue_items, items_with_text FROM isrf.dataset_stats('empty');

-- replace rebinds; text_columns restrict the features
SELECT isrf.create_dataset('shop', 'reviews', items => 'items', text_columns => '{title}', replace => true);
SELECT items_with_text, users_with_descriptions FROM isrf.dataset_stats('shop');

-- quoting: tables with names that need quotes
CREATE SCHEMA "My Schema";
CREATE TABLE "My Schema"."Reviews; DROP TABLE reviews" (user_id int, item_id int, "position" int);
INSERT INTO "My Schema"."Reviews; DROP TABLE reviews" VALUES (1, 1, 1), (1, 2, 2);
SELECT isrf.create_dataset('quoted', '"My Schema"."Reviews; DROP TABLE reviews"');
SELECT users, items, interactions FROM isrf.dataset_stats('quoted');
SELECT count(*) FROM reviews;

-- a table dropped after binding is named when the dataset is used
DROP TABLE "My Schema"."Reviews; DROP TABLE reviews";
SELECT err($$SELECT * FROM isrf.dataset_stats('quoted')$$);
SELECT isrf.drop_dataset('quoted');

-- models depend on datasets
INSERT INTO isrf.models (name, version, dataset) VALUES ('shop', 1, 'shop');
SELECT err($$SELECT isrf.drop_dataset('shop')$$);
SELECT isrf.drop_dataset('shop', cascade => true);
SELECT count(*) FROM isrf.models;
SELECT isrf.drop_dataset('empty');
SELECT count(*) FROM isrf.datasets;

-- catalogue_items counts distinct item ids, not rows (issue 11, finding 8)
CREATE TABLE dup_items (item_id int, title text);
INSERT INTO dup_items VALUES (10, 'red lipstick'), (10, 'red lipstick'), (11, 'blue mascara'), (NULL, 'no id');
SELECT isrf.create_dataset('dups', 'reviews', items => 'dup_items');
SELECT catalogue_items FROM isrf.dataset_stats('dups');
SELECT isrf.drop_dataset('dups');
DROP TABLE dup_items;

-- an over-long name is an invalid dataset name wherever it is given, and
-- the message does not repeat all of it
SELECT split_part(err($$SELECT isrf.create_dataset(repeat('x', 1000000), 'reviews')$$), E'\n', 1) AS err;
SELECT split_part(err($$SELECT * FROM isrf.dataset_stats(repeat('x', 1000000))$$), E'\n', 1) AS err;
SELECT split_part(err($$SELECT isrf.drop_dataset(repeat('x', 1000000))$$), E'\n', 1) AS err;
SELECT split_part(err($$CALL isrf_train(repeat('x', 1000000))$$), E'\n', 1) AS err;
SELECT split_part(err($$SELECT isrf.create_synthetic_dataset(repeat('x', 1000000))$$), E'\n', 1) AS err;
SELECT length(err($$CALL isrf_train(repeat('x', 1000000))$$)) < 200 AS short_message;
SELECT err($$SELECT * FROM isrf.dataset_stats('bad name')$$);
