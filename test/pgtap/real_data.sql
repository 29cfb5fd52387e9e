-- pgTAP: the real MovieLens 100K data set, loaded by bench/load_dataset.sh
-- before the tests run (test/run_tests.sh), has the published sizes.
BEGIN;
SELECT plan(4);

SELECT CASE WHEN EXISTS (SELECT 1 FROM isrf.datasets WHERE name = 'ml100k')
            THEN pass('ml100k is loaded')
            ELSE fail('ml100k is loaded (bench/load_dataset.sh ml100k ../shared/data/ml100k)') END;
SELECT results_eq($$SELECT users, items, interactions, catalogue_items FROM isrf.dataset_stats('ml100k')$$,
    $$VALUES (943::bigint, 1682::bigint, 100000::bigint, 1682::bigint)$$, 'ml100k sizes');
SELECT is((SELECT order_column::text FROM isrf.datasets WHERE name = 'ml100k'), 'timestamp', 'ml100k is ordered by timestamp');
SELECT is((SELECT isrf._text_columns(items, NULL) FROM isrf.datasets WHERE name = 'ml100k'),
    ARRAY['title', 'genres', 'plot', 'directors', 'cast']::name[], 'year is not a text feature');

SELECT * FROM finish();
ROLLBACK;
