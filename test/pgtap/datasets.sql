-- pgTAP: dataset binding, every bad input with its SQLSTATE, and stats.
BEGIN;
SELECT plan(21);

CREATE TABLE t_reviews (user_id bigint, item_id int, ts timestamptz);
INSERT INTO t_reviews SELECT u, i, timestamptz '2024-01-01' + (i || ' hours')::interval
  FROM generate_series(1, 5) u, generate_series(1, 4) i;
INSERT INTO t_reviews VALUES (1, 1, now()), (NULL, 2, now());
CREATE TABLE t_items (item_id int, title text, colour text, weight int);
INSERT INTO t_items VALUES (1, 'a', 'red'), (2, 'b', NULL), (3, NULL, NULL), (4, 'd', 'blue');

SELECT lives_ok($$SELECT isrf.create_dataset('tap', 't_reviews', items => 't_items')$$, 'binds reviews and items');
SELECT results_eq($$SELECT users, items, interactions, catalogue_items, items_with_text FROM isrf.dataset_stats('tap')$$,
    $$VALUES (5::bigint, 4::bigint, 20::bigint, 4::bigint, 3::bigint)$$, 'stats count clean rows');
SELECT is((SELECT skipped FROM isrf.dataset_stats('tap')),
    '{"duplicate": 1, "null_order": 0, "null_item_id": 0, "null_user_id": 1, "unknown_item": 0, "descriptions_of_unknown_items": 0}'::jsonb,
    'skipped rows are counted with their reason');
SELECT is((SELECT order_column::text FROM isrf.datasets WHERE name = 'tap'), 'ts', 'order column found by name');

SELECT throws_ok($$SELECT isrf.create_dataset('tap', 't_reviews')$$, '42710', 'dataset "tap" already exists', 'duplicate name');
SELECT throws_ok($$SELECT isrf.create_dataset(NULL, 't_reviews')$$, '22004', NULL, 'NULL name');
SELECT throws_ok($$SELECT isrf.create_dataset('a b', 't_reviews')$$, '42602', NULL, 'invalid name');
SELECT throws_ok($$SELECT isrf.create_dataset('x', 'missing_table')$$, '42P01', NULL, 'missing table');
CREATE TABLE t_bad1 (uid int, item_id int, ts int);
SELECT throws_ok($$SELECT isrf.create_dataset('x', 't_bad1')$$, '42703', 'table public.t_bad1 has no column "user_id"', 'missing user_id');
CREATE TABLE t_bad2 (user_id numeric, item_id int, ts int);
SELECT throws_ok($$SELECT isrf.create_dataset('x', 't_bad2')$$, '42804', NULL, 'mistyped user_id');
CREATE TABLE t_bad3 (user_id int, item_id int);
SELECT throws_ok($$SELECT isrf.create_dataset('x', 't_bad3')$$, '42703', 'table public.t_bad3 has no order column', 'no order column');
CREATE TABLE t_bad4 (user_id int, item_id int, ts boolean);
SELECT throws_ok($$SELECT isrf.create_dataset('x', 't_bad4')$$, '42804', NULL, 'mistyped order column');
CREATE TABLE t_noid (id int, title text);
SELECT throws_ok($$SELECT isrf.create_dataset('x', 't_reviews', items => 't_noid')$$, '42703',
    'table public.t_noid has no column "item_id"', 'items table without item_id');
SELECT throws_ok($$SELECT isrf.create_dataset('x', 't_reviews', user_descriptions => 't_items')$$, '42703', NULL, 'user descriptions need user_id');
SELECT throws_ok($$SELECT isrf.create_dataset('x', 't_reviews', items => 't_items', text_columns => '{weight}')$$,
    '42703', NULL, 'text_columns must name text columns');
SELECT throws_ok($$SELECT isrf.dataset_stats('nope')$$, '42704', NULL, 'unknown dataset');

-- quoting is safe
CREATE TABLE "t; drop table t_items" (user_id int, item_id int, "position" int);
SELECT lives_ok($$SELECT isrf.create_dataset('quoted', '"t; drop table t_items"')$$, 'odd table names are quoted');
SELECT is((SELECT interactions FROM isrf.dataset_stats('quoted')), 0::bigint, 'empty table gives zero interactions');
SELECT has_table('t_items', 'no injection happened');

SELECT lives_ok($$SELECT isrf.drop_dataset('tap')$$, 'drop');
SELECT is((SELECT count(*) FROM isrf.datasets WHERE name = 'tap'), 0::bigint, 'dropped');

SELECT * FROM finish();
ROLLBACK;
