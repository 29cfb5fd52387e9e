-- LLM reasoning: the prompts, the isrf.llm_* settings (the key is never
-- shown, never stored in a catalog; the endpoint is a superuser's), and the
-- argument checks of the jobs.  The jobs themselves run against a mock
-- server in test/tap/llm.t.

-- our prompts, in one place
SELECT name, kind, step, writes FROM isrf.llm_prompts ORDER BY step, kind;
SELECT name FROM isrf.llm_prompts
 WHERE (kind = 'items' AND template NOT LIKE '%{item}%') OR (kind = 'users' AND step < 3 AND template NOT LIKE '%{items}%')
    OR (step > 1 AND template NOT LIKE '%{positive}%');

-- the key: a mask for everyone, even the superuser who set it
SET isrf.llm_api_key = 'sk-regress-secret';
SHOW isrf.llm_api_key;
SELECT current_setting('isrf.llm_api_key');
SELECT count(*) AS "in pg_settings" FROM pg_settings WHERE name = 'isrf.llm_api_key';
SELECT count(*) AS leaks FROM pg_settings WHERE setting LIKE '%sk-regress%' OR reset_val LIKE '%sk-regress%';
RESET isrf.llm_api_key;
SHOW isrf.llm_api_key;
-- ... and it cannot go where a catalog table would keep it
SELECT err($$ALTER ROLE CURRENT_USER SET isrf.llm_api_key = 'sk-regress-secret'$$);
SELECT err(format('ALTER DATABASE %I SET isrf.llm_api_key = %L', current_database(), 'sk-regress-secret'));
SELECT err($$CREATE FUNCTION leak() RETURNS int LANGUAGE sql SET isrf.llm_api_key = 'sk-regress-secret' AS 'SELECT 1'$$);
SELECT count(*) AS stored FROM pg_db_role_setting WHERE array_to_string(setconfig, ',') LIKE '%sk-regress%';

-- the endpoint: an http(s) URL
SHOW isrf.llm_endpoint;
SELECT err($$SET isrf.llm_endpoint = 'ftp://127.0.0.1/v1'$$);
SELECT err($$SET isrf.llm_endpoint = 'http://127.0.0.1/v 1'$$);
SET isrf.llm_endpoint = 'https://llm.example.com/v1/';
RESET isrf.llm_endpoint;

-- a role that is not a superuser can neither point the server elsewhere nor read the key
CREATE ROLE regress_llm_carol;
SET ROLE regress_llm_carol;
SELECT err($$SET isrf.llm_endpoint = 'http://evil.example.com/v1'$$);
SELECT err($$SET isrf.llm_api_key = 'sk-other'$$);
SELECT err($$SHOW isrf.llm_api_key$$);
SELECT err($$SELECT current_setting('isrf.llm_api_key')$$);
SELECT count(*) FROM pg_settings WHERE name = 'isrf.llm_api_key';
-- the other settings are its own, and jobs take them from its session
SET isrf.llm_model = 'regress-model';
SET isrf.llm_concurrency = 8;
SET isrf.llm_timeout = '30s';
SELECT isrf._llm_session_settings();
SELECT err($$SET isrf.llm_concurrency = 0$$);
RESET ROLE;
RESET isrf.llm_model;
RESET isrf.llm_concurrency;
RESET isrf.llm_timeout;

-- argument checks
SELECT isrf.create_synthetic_dataset('llm_syn', users => 30, items => 20, groups => 3);
SELECT err($$SELECT isrf.describe_items(NULL)$$);
SELECT err($$SELECT isrf.describe_items('no_such_dataset')$$);
SELECT err($$SELECT isrf.describe_items('llm_syn', '[1]')$$);
SELECT err($$SELECT isrf.describe_items('llm_syn', '{"colour": 1}')$$);
SELECT err($$SELECT isrf.describe_items('llm_syn', '{"concurrency": 0}')$$);
SELECT err($$SELECT isrf.describe_items('llm_syn', '{"concurrency": 2.5}')$$);
SELECT err($$SELECT isrf.describe_items('llm_syn', '{"concurrency": "8"}')$$);
SELECT err($$SELECT isrf.describe_items('llm_syn', '{"temperature": 3}')$$);
SELECT err($$SELECT isrf.describe_items('llm_syn', '{"max_items": 3}')$$);
SELECT err($$SELECT isrf.describe_items('llm_syn', '{"model": ""}')$$);
SELECT err($$SELECT isrf.describe_items('llm_syn', '{"prompts": "forward"}')$$);
SELECT err($$SELECT isrf.describe_items('llm_syn', '{"prompts": {"user_positive": "x"}}')$$);
SELECT err($$SELECT isrf.describe_items('llm_syn', '{"prompts": {"item_negative": " "}}')$$);
SELECT err($$SELECT isrf.describe_items('llm_syn', '{"table": "a.b.c"}')$$);
SELECT err($$SELECT isrf.describe_items('llm_syn', '{"table": "llm_syn.\"unterminated"}')$$);
-- an existing table must fit
SELECT err($$SELECT isrf.describe_items('llm_syn', '{"table": "llm_syn.items"}')$$);
CREATE TABLE llm_syn.no_key (item_id int, positive text, negative text, feature text);
SELECT err($$SELECT isrf.describe_items('llm_syn', '{"table": "llm_syn.no_key"}')$$);
-- a model must be named
SELECT err($$SELECT isrf.describe_items('llm_syn', '{"table": "llm_syn.item_llm"}')$$);
SELECT to_regclass('llm_syn.item_llm') AS "not created";
-- users need items or item descriptions to reason from; items need an items table
CREATE TABLE llm_syn.bare_reviews AS SELECT * FROM llm_syn.reviews;
SELECT isrf.create_dataset('llm_bare', 'llm_syn.bare_reviews');
SELECT err($$SELECT isrf.describe_items('llm_bare', '{"model": "m"}')$$);
SELECT err($$SELECT isrf.describe_users('llm_bare', '{"model": "m"}')$$);

-- the job's worker logs in as the role that starts it: a NOLOGIN role is
-- refused, and nothing is left behind
GRANT USAGE, CREATE ON SCHEMA llm_syn TO regress_llm_carol;
GRANT SELECT ON llm_syn.items, llm_syn.reviews TO regress_llm_carol;
SET ROLE regress_llm_carol;
SELECT isrf.create_dataset('llm_carol', 'llm_syn.reviews', items => 'llm_syn.items');
SELECT err($$SELECT isrf.describe_items('llm_carol', '{"model": "m", "table": "llm_syn.carol_llm"}')$$);
SELECT to_regclass('llm_syn.carol_llm') AS "not created", item_descriptions FROM isrf.datasets;
SELECT count(*) AS jobs FROM isrf.llm_jobs;
SELECT isrf.drop_dataset('llm_carol');
RESET ROLE;

-- training on embeddings from the endpoint: the key's value, and the model to ask
SELECT err($$CALL isrf_train('llm_syn', '{"use_llm_embeddings": "maybe"}')$$);
SELECT err($$CALL isrf_train('llm_syn', '{"use_llm_embeddings": true, "use_text": false}')$$);
SELECT err($$CALL isrf_train('llm_syn', '{"use_llm_embeddings": true, "epochs": 0}')$$);
SELECT count(*) AS versions FROM isrf.models WHERE name = 'llm_syn';

-- a job is recorded (by the catalogue writer behind isrf._llm_launch) only
-- on a dataset and of a kind that exist, and a role runs at most 8 at once
SELECT err($$SELECT isrf._llm_launch('no_such_dataset', 'items', 'llm_syn.no_key', '{"model": "m"}')$$);
SELECT err($$SELECT isrf._llm_launch('llm_syn', 'things', 'llm_syn.no_key', '{"model": "m"}')$$);
SELECT err($$SELECT isrf._llm_launch('llm_syn', 'items', 'llm_syn.no_key', '[]')$$);
INSERT INTO isrf.llm_job_state (dataset, kind, target_name, options)
    SELECT 'busy_' || g, 'items', 'none', '{}' FROM generate_series(1, 8) g;
SELECT regexp_replace(err($$SELECT isrf.describe_items('llm_syn', '{"model": "m", "table": "llm_syn.busy_llm"}')$$),
                      'role "[^"]*"', 'role "..."');
SELECT to_regclass('llm_syn.busy_llm') AS "not created", count(*) AS jobs FROM isrf.llm_job_state;
DELETE FROM isrf.llm_job_state;

-- cancelling
SELECT err($$SELECT isrf.cancel_llm_job(NULL)$$);
SELECT err($$SELECT isrf.cancel_llm_job(-1)$$);

-- The LLM tables are written only through the extension's functions (issue
-- 11, finding 5): PUBLIC may read them (each role its own rows), and a role
-- writes neither another role's job rows, cache rows or datasets nor its
-- own, directly or through the writers, except as the functions do.
SELECT c.relname, array_agg(p.privilege_type ORDER BY p.privilege_type) AS public_may
  FROM pg_class c LEFT JOIN LATERAL aclexplode(c.relacl) p ON p.grantee = 0
 WHERE c.relnamespace = 'isrf'::regnamespace AND c.relname LIKE 'llm%' AND c.relkind IN ('r', 'v')
 GROUP BY c.relname ORDER BY c.relname;
CREATE ROLE regress_llm_alice LOGIN;
CREATE ROLE regress_llm_bob LOGIN;
GRANT USAGE, CREATE ON SCHEMA llm_syn TO regress_llm_alice, regress_llm_bob;
GRANT SELECT ON llm_syn.items, llm_syn.reviews TO regress_llm_alice, regress_llm_bob;
SET ROLE regress_llm_alice;
SELECT isrf.create_dataset('llm_alice', 'llm_syn.reviews', items => 'llm_syn.items');
CREATE TABLE llm_syn.alice_llm (item_id bigint PRIMARY KEY, positive text, negative text, feature text);
RESET ROLE;
-- alice's job, an error of it and a cached embedding, as her worker and her
-- training would write them
INSERT INTO isrf.llm_job_state (owner, dataset, kind, target, target_name, options, state)
VALUES ('regress_llm_alice', 'llm_alice', 'items', 'llm_syn.alice_llm', 'llm_syn.alice_llm', '{}', 'running');
INSERT INTO isrf.llm_job_errors (job, row_id, step, attempts, error)
    SELECT id, 1, 'item_positive', 1, 'HTTP 500' FROM isrf.llm_job_state;
INSERT INTO isrf.llm_embeddings (owner, model, hash, embedding) VALUES ('regress_llm_alice', 'emb', '\x01', '{1, 2}');
SELECT set_config('regress.alice_job', id::text, false) IS NOT NULL AS job_known FROM isrf.llm_job_state;

SET ROLE regress_llm_bob;
CREATE TABLE llm_syn.bob_llm (item_id bigint PRIMARY KEY, positive text, negative text, feature text);
SELECT (SELECT count(*) FROM isrf.llm_job_state) AS jobs, (SELECT count(*) FROM isrf.llm_job_errors) AS errors,
       (SELECT count(*) FROM isrf.llm_embeddings) AS embeddings;
-- bob writes none of it directly, nor rows of his own
SELECT err(format('UPDATE isrf.llm_job_state SET cancel_requested = true WHERE id = %s', current_setting('regress.alice_job')));
SELECT err($$DELETE FROM isrf.llm_job_state$$);
SELECT err($$INSERT INTO isrf.llm_job_state (dataset, kind, target_name, options, state)
             VALUES ('llm_alice', 'items', 'llm_syn.bob_llm', '{}', 'running')$$);
SELECT err($$INSERT INTO isrf.llm_job_errors (job, row_id, step, attempts, error) VALUES (1, 1, 'x', 1, 'x')$$);
SELECT err($$DELETE FROM isrf.llm_job_errors$$);
SELECT err($$INSERT INTO isrf.llm_embeddings (model, hash, embedding) VALUES ('emb', '\x01', '{0, 0}')$$);
SELECT err($$DELETE FROM isrf.llm_embeddings$$);
SELECT err($$UPDATE isrf.datasets SET item_descriptions = 'llm_syn.bob_llm' WHERE name = 'llm_alice'$$);
-- nor calls the writers
SELECT err(format('SELECT isrf._cat_llm_job_cancel(0, %s)', current_setting('regress.alice_job')));
SELECT err($$SELECT isrf._cat_llm_bind(0, 'llm_alice', 'items', 'llm_syn.bob_llm')$$);
SELECT err($$SELECT isrf._cat_llm_embeddings_drop(0, 'regress_llm_alice', NULL)$$);
-- the gate acts as bob: not on alice's job, cache or dataset
SELECT replace(err(format('SELECT isrf._catalogue(%L, %s::bigint)', '_cat_llm_job_cancel', current_setting('regress.alice_job'))),
               current_setting('regress.alice_job'), 'N');
SELECT err($$SELECT isrf._catalogue('_cat_llm_embeddings_drop', 'regress_llm_alice'::name, NULL::text)$$);
SELECT err($$SELECT isrf._catalogue('_cat_llm_bind', 'llm_alice'::text, 'items'::text, 'llm_syn.bob_llm'::regclass)$$);
-- and opens to no writer of a job's row or of the cache
SELECT err(format('SELECT isrf._catalogue(%L, %s::bigint, 1::bigint, 0::bigint, 1::bigint, 0::bigint, 0::bigint,'
                  ' 0::bigint, 0::bigint, NULL::text, %L::text, %L::bigint[], %L::text[], %L::int[], %L::text[])',
                  '_cat_llm_job_flush', current_setting('regress.alice_job'), 'done', '{}', '{}', '{}', '{}'));
SELECT err(format('SELECT isrf._catalogue(%L, %s::bigint, 1, %L::text)', '_cat_llm_job_claim',
                  current_setting('regress.alice_job'), 'http://evil.example.com/v1'));
SELECT err($$SELECT isrf._catalogue('_cat_llm_job_put', 'llm_alice'::text, 'items'::text, 'llm_syn.bob_llm'::regclass,
                                    '{}'::jsonb, 'http://evil.example.com/v1'::text)$$);
SELECT err($$SELECT isrf._catalogue('_cat_llm_embeddings_put', 'emb'::text, '{a}'::text[], 1, '{0}'::real[])$$);
-- the functions act as bob too: alice's job, cache and dataset are not his
SELECT replace(err(format('SELECT isrf.cancel_llm_job(%s)', current_setting('regress.alice_job'))),
               current_setting('regress.alice_job'), 'N');
SELECT err($$SELECT isrf.drop_llm_embeddings(owner => 'regress_llm_alice')$$);
SELECT err($$SELECT isrf.describe_items('llm_alice', '{"model": "m", "table": "llm_syn.bob_llm"}')$$);
-- ... nor can he take the place of a job on it (one per dataset and kind)
SELECT err($$SELECT isrf._llm_launch('llm_alice', 'items', 'llm_syn.bob_llm', '{"model": "m"}')$$);
SELECT count(*) AS workers FROM pg_stat_activity WHERE backend_type = 'isrf llm job';
RESET ROLE;
-- alice's rows are as they were
SELECT j.owner, j.state, j.cancel_requested, j.pid, (SELECT count(*) FROM isrf.llm_job_errors) AS errors,
       (SELECT count(*) FROM isrf.llm_embeddings WHERE owner = 'regress_llm_alice') AS embeddings,
       (SELECT item_descriptions FROM isrf.datasets WHERE name = 'llm_alice') AS item_descriptions
  FROM isrf.llm_job_state j;

SET ROLE regress_llm_alice;
-- alice writes her own rows only through the functions too
SELECT err(format('UPDATE isrf.llm_job_state SET state = %L WHERE id = %s', 'done', current_setting('regress.alice_job')));
SELECT err($$DELETE FROM isrf.llm_embeddings$$);
-- she binds a table of the right shape to her dataset (a job does it when it starts) ...
SELECT isrf._catalogue('_cat_llm_bind', 'llm_alice'::text, 'items'::text, 'llm_syn.alice_llm'::regclass);
SELECT err($$SELECT isrf._catalogue('_cat_llm_bind', 'llm_alice'::text, 'items'::text, 'llm_syn.items'::regclass)$$);
SELECT err($$SELECT isrf._catalogue('_cat_llm_bind', 'llm_alice'::text, 'things'::text, 'llm_syn.alice_llm'::regclass)$$);
-- ... but not one she cannot read
SELECT err($$SELECT isrf._catalogue('_cat_llm_bind', 'llm_alice'::text, 'items'::text, 'llm_syn.bob_llm'::regclass)$$);
SELECT item_descriptions, bound_names ->> 'item_descriptions' AS bound_name FROM isrf.datasets;
-- cancels her job (it has no worker: cancelled at once) and empties her cache
SELECT isrf.cancel_llm_job(current_setting('regress.alice_job')::bigint);
SET client_min_messages = warning;
SELECT isrf.cancel_llm_job(current_setting('regress.alice_job')::bigint) AS cancelled_again;
RESET client_min_messages;
SELECT state, cancel_requested FROM isrf.llm_job_state;
SELECT isrf.drop_llm_embeddings('other_model');
SELECT count(*) AS embeddings FROM isrf.llm_embeddings;
SELECT isrf.drop_llm_embeddings();
SELECT count(*) AS embeddings FROM isrf.llm_embeddings;
RESET ROLE;
-- a superuser may act on any role's
INSERT INTO isrf.llm_job_state (owner, dataset, kind, target, target_name, options, state)
VALUES ('regress_llm_alice', 'llm_alice', 'items', 'llm_syn.alice_llm', 'llm_syn.alice_llm', '{}', 'queued');
SELECT isrf.cancel_llm_job(max(id)) AS cancelled FROM isrf.llm_job_state;
SELECT owner, state FROM isrf.llm_job_state ORDER BY id;
INSERT INTO isrf.llm_embeddings (owner, model, hash, embedding) VALUES ('regress_llm_bob', 'emb', '\x02', '{1}');
SELECT isrf.drop_llm_embeddings('emb', owner => 'regress_llm_bob');
SELECT count(*) AS embeddings FROM isrf.llm_embeddings;
DELETE FROM isrf.llm_job_state;
SELECT isrf.drop_dataset('llm_alice');
DROP TABLE llm_syn.alice_llm, llm_syn.bob_llm;
REVOKE ALL ON SCHEMA llm_syn FROM regress_llm_alice, regress_llm_bob;
REVOKE ALL ON llm_syn.items, llm_syn.reviews FROM regress_llm_alice, regress_llm_bob;
DROP ROLE regress_llm_alice;
DROP ROLE regress_llm_bob;

-- every object of the LLM step is commented and immune to search_path
SELECT p.oid::regprocedure FROM pg_proc p
 WHERE p.pronamespace = 'isrf'::regnamespace AND (p.proname LIKE '%llm%' OR p.proname LIKE 'describe%')
   AND (obj_description(p.oid, 'pg_proc') IS NULL
        OR NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false));
SELECT c.oid::regclass FROM pg_class c
 WHERE c.relnamespace = 'isrf'::regnamespace AND c.relname LIKE 'llm%' AND c.relkind IN ('r', 'v')
   AND obj_description(c.oid, 'pg_class') IS NULL;

REVOKE ALL ON SCHEMA llm_syn FROM regress_llm_carol;
REVOKE ALL ON llm_syn.items, llm_syn.reviews FROM regress_llm_carol;
DROP ROLE regress_llm_carol;
SELECT isrf.drop_dataset('llm_bare');
SELECT isrf.drop_dataset('llm_syn');
DROP SCHEMA llm_syn CASCADE;
