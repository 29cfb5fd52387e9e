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

-- a worker starts only for a job that waits for one, and a role runs at most 8 at once
SELECT err($$SELECT isrf._llm_launch(-1)$$);
INSERT INTO isrf.llm_job_state (dataset, kind, target_name, options)
    SELECT 'llm_syn', 'items', 'none', '{}' FROM generate_series(1, 9);
SELECT regexp_replace(err(format('SELECT isrf._llm_launch(%s)', max(id))), 'role "[^"]*"', 'role "..."')
  FROM isrf.llm_job_state;
DELETE FROM isrf.llm_job_state;

-- cancelling
SELECT err($$SELECT isrf.cancel_llm_job(NULL)$$);
SELECT err($$SELECT isrf.cancel_llm_job(-1)$$);

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
