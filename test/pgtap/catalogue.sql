-- pgTAP: the extension's objects exist, are documented, and the catalogue
-- tables are protected and dumped as pg_dump expects.
BEGIN;
SELECT plan(18);

SELECT has_schema('isrf');
SELECT has_table('isrf', 'datasets', 'isrf.datasets exists');
SELECT has_table('isrf', 'models', 'isrf.models exists');
SELECT has_function('isrf', 'create_dataset',
    ARRAY['text', 'regclass', 'regclass', 'regclass', 'regclass', 'name', 'text[]', 'boolean']);
SELECT has_function('isrf', 'dataset_stats', ARRAY['text']);
SELECT has_function('isrf', 'drop_dataset', ARRAY['text', 'boolean']);

-- every function and table of the extension has a COMMENT
SELECT is_empty($$
    SELECT p.oid::regprocedure::text FROM pg_proc p
      JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
      JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'isrf'
     WHERE obj_description(p.oid, 'pg_proc') IS NULL$$,
    'every isrf function has a comment');
SELECT is_empty($$
    SELECT c.oid::regclass::text FROM pg_class c
     WHERE c.relnamespace = 'isrf'::regnamespace AND c.relkind = 'r'
       AND obj_description(c.oid, 'pg_class') IS NULL$$,
    'every isrf table has a comment');

-- row-level security and pg_dump registration
SELECT ok((SELECT relrowsecurity FROM pg_class WHERE oid = 'isrf.datasets'::regclass), 'datasets use row-level security');
SELECT ok((SELECT relrowsecurity FROM pg_class WHERE oid = 'isrf.models'::regclass), 'models use row-level security');
SELECT set_eq($$SELECT unnest(extconfig)::regclass::text FROM pg_extension WHERE extname = 'isrf'$$,
              ARRAY['isrf.datasets', 'isrf.models', 'isrf.model_chunks', 'isrf.group_edges', 'isrf.model_interactions',
                    'isrf.llm_embeddings', 'isrf.deployments', 'isrf.model_settings', 'isrf.model_grants'],
              'catalogue tables are dumped by pg_dump');

-- no SECURITY DEFINER function reads user tables with the owner's rights
SELECT is_empty($$
    SELECT p.proname FROM pg_proc p WHERE p.pronamespace = 'isrf'::regnamespace AND p.prosecdef$$,
    'no isrf function is SECURITY DEFINER');

-- every SQL and PL/pgSQL function of the extension has a fixed search_path
-- (C functions run their SQL under the same path, src/pg/pg_spi.c)
SELECT is_empty($$
    SELECT p.oid::regprocedure::text FROM pg_proc p
      JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
      JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'isrf'
      JOIN pg_language l ON l.oid = p.prolang
     WHERE l.lanname IN ('sql', 'plpgsql')
       AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false)$$,
    'every SQL and PL/pgSQL function of isrf runs with search_path = pg_catalog, pg_temp');

-- the catalogue is written only through the extension's functions
SELECT is_empty($$
    SELECT c.relname, p.privilege_type FROM pg_class c, aclexplode(c.relacl) p
     WHERE c.relnamespace = 'isrf'::regnamespace AND p.grantee = 0 AND p.privilege_type <> 'SELECT'$$,
    'PUBLIC may only read the isrf tables');
SELECT is_empty($$
    SELECT p.oid::regprocedure::text FROM pg_proc p
     WHERE p.pronamespace = 'isrf'::regnamespace AND p.proname LIKE '\_cat\_%'
       AND has_function_privilege('public', p.oid, 'EXECUTE')$$,
    'PUBLIC may not execute the catalogue writers');
SELECT ok(has_function_privilege('public', 'isrf._catalogue(text, "any")', 'EXECUTE'),
    'PUBLIC may call the gate to the writers SQL may use');

-- isrf is preloaded in this cluster and its settings are reserved
SELECT is(current_setting('shared_preload_libraries'), 'isrf', 'isrf is preloaded');
SELECT throws_ok($$SET isrf.no_such_setting = 1$$, '42602', NULL, 'the isrf.* prefix is reserved');

SELECT * FROM finish();
ROLLBACK;
