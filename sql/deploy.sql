-- Deploying as operators expect (issue 13): isrf.deploy() and
-- isrf.rollback() with a deploy history, the per-model deploy policy
-- (always, if_better), and isrf.grant_model() / isrf.revoke_model(): an
-- application role serves a model it does not own; only the owner (or a
-- superuser) deploys, rolls back, grants, sets the policy, trains and drops.
\set VERBOSITY terse
SET client_min_messages = warning;

CREATE ROLE regress_isrf_owner;
CREATE ROLE regress_isrf_app;
CREATE ROLE regress_isrf_appuser IN ROLE regress_isrf_app;
CREATE ROLE regress_isrf_other;
DO $$ BEGIN
    EXECUTE format('GRANT CREATE ON DATABASE %I TO regress_isrf_owner', current_database());
END $$;

SET ROLE regress_isrf_owner;
SELECT isrf.create_synthetic_dataset('dep', users => 60, items => 30, groups => 3, per_user => 6);
CALL isrf_train('dep', '{"epochs": 1, "dm": 4, "group_k": 3, "min_df": 1}');
CALL isrf_train('dep', '{"epochs": 1, "dm": 4, "group_k": 3, "min_df": 1, "seed": 2}');
SELECT seq, version, previous, action, undoes, owner, by_role, reason FROM isrf.deployments ORDER BY seq;

-- deploy an older version: the next call resolves it
SELECT isrf.deploy('dep', 1, 'version 2 answers worse');
SELECT version, deployed FROM isrf.models ORDER BY version;
SELECT model_name, version FROM isrf.model_check('dep');
SELECT count(*) FROM isrf_recommend(1, 3, 'dep');
SET client_min_messages = notice;
SELECT isrf.deploy('dep', 1);
SET client_min_messages = warning;
SELECT err($$SELECT isrf.deploy('dep', 7)$$);
SELECT err($$SELECT isrf.deploy('dep', NULL)$$);
SELECT err($$SELECT isrf.deploy(NULL, 1)$$);
SELECT err($$SELECT isrf.deploy('no_such_model', 1)$$);
SELECT err($$SELECT isrf.deploy('bad name', 1)$$);

-- a failed version cannot be deployed: train on an empty table, bind back
CREATE TABLE dep.no_reviews (LIKE dep.reviews);
SELECT isrf.create_dataset('dep', 'dep.no_reviews', replace => true);
CALL isrf_train('dep', '{"epochs": 1, "dm": 4, "group_k": 3, "min_df": 1}');
SELECT isrf.create_dataset('dep', 'dep.reviews', items => 'dep.items', item_descriptions => 'dep.item_descriptions',
                           user_descriptions => 'dep.user_descriptions', replace => true);
SELECT version, status, deployed FROM isrf.models ORDER BY version;
SELECT err($$SELECT isrf.deploy('dep', 3)$$);

-- rollback undoes the latest deployment not undone yet, back through the
-- history, until there is nothing before
SELECT isrf.rollback('dep', 'the deploy was a mistake');
SELECT isrf.rollback('dep');
SELECT err($$SELECT isrf.rollback('dep')$$);
SELECT err($$SELECT isrf.rollback(NULL)$$);
SELECT err($$SELECT isrf.rollback('no_such_model')$$);
SELECT seq, version, previous, action, undoes, reason FROM isrf.deployments ORDER BY seq;
SELECT model_name, version FROM isrf.model_check('dep');

-- deploy policy if_better: a version whose validation NDCG@10 is below the
-- deployed one's is stored, not deployed, and its row says why; one at
-- least as good (the same configuration: the same figure) is deployed
SELECT err($$SELECT isrf.set_deploy_policy('dep', 'sometimes')$$);
SELECT err($$SELECT isrf.set_deploy_policy('dep', NULL)$$);
SELECT err($$SELECT isrf.set_deploy_policy('no_such_model', 'always')$$);
SELECT isrf.set_deploy_policy('dep', 'if_better');
SELECT model, owner, deploy_policy FROM isrf.model_settings;
CALL isrf_train('dep', '{"epochs": 0, "dm": 4, "group_k": 3, "min_df": 1}');
SELECT version, status, stage, deployed, message LIKE 'not deployed (deploy policy if_better): validation NDCG@10 % is below % of deployed version 1' AS says_why
  FROM isrf.models WHERE version = 4;
SELECT model_name, version FROM isrf.model_check('dep');
CALL isrf_train('dep', '{"epochs": 1, "dm": 4, "group_k": 3, "min_df": 1}');
SELECT version, status, stage, deployed,
       metrics -> 'val_ndcg10' = (SELECT metrics -> 'val_ndcg10' FROM isrf.models WHERE version = 1) AS same_ndcg
  FROM isrf.models WHERE version = 5;
-- an explicit deploy is the owner's decision, whatever the policy
SELECT isrf.deploy('dep', 4);
SELECT version, stage, deployed, message FROM isrf.models WHERE version = 4;
SELECT isrf.set_deploy_policy('dep', 'always');
SELECT seq, version, previous, action, undoes FROM isrf.deployments WHERE seq > 4 ORDER BY seq;

-- the catalogue of deploys is written only through the extension's functions
SELECT err($$INSERT INTO isrf.deployments (model, seq, version, action, owner, by_role) VALUES ('dep', 99, 1, 'deploy', 'x', 'x')$$);
SELECT err($$UPDATE isrf.model_settings SET deploy_policy = 'always'$$);
SELECT err($$INSERT INTO isrf.model_grants (model, grantee, owner, granted_by) VALUES ('dep', 'regress_isrf_other', 'x', 'x')$$);
SELECT err($$SELECT isrf._cat_deploy(0, 'dep', 1, NULL)$$);
SELECT err($$SELECT isrf._catalogue('_cat_deploy_version', 'dep'::text, 1, 'deploy'::text, NULL::integer, NULL::text)$$);

-- grants: to a role and, through it, to its members
SELECT err($$SELECT isrf.grant_model('dep', 'regress_isrf_no_such_role')$$);
SELECT err($$SELECT isrf.grant_model('dep', NULL)$$);
SELECT isrf.grant_model('dep', 'regress_isrf_app');
SET client_min_messages = notice;
SELECT isrf.grant_model('dep', 'regress_isrf_app');
SELECT isrf.grant_model('dep', 'regress_isrf_owner');
SET client_min_messages = warning;
SELECT model, grantee, owner, granted_by FROM isrf.model_grants;
RESET ROLE;

SET ROLE regress_isrf_appuser;
-- the grantee sees the model and its dataset, not their history or settings
SELECT name, version, owner, deployed FROM isrf.models ORDER BY version;
SELECT name, owner FROM isrf.datasets;
SELECT count(*) AS deployments, (SELECT count(*) FROM isrf.model_settings) AS settings FROM isrf.deployments;
-- serving reads the reviews table with the caller's rights: none yet
SELECT err($$SELECT count(*) FROM isrf_recommend(1, 3, 'dep')$$);
RESET ROLE;
SET ROLE regress_isrf_owner;
GRANT USAGE ON SCHEMA dep TO regress_isrf_app;
GRANT SELECT ON dep.reviews, dep.items TO regress_isrf_app;
RESET ROLE;
SET ROLE regress_isrf_appuser;
SELECT count(*) FROM isrf_recommend(1, 3, 'dep');
SELECT count(*) FROM isrf_recommend(1, 3);
SET isrf.device = 'cpu';
SELECT count(*) FROM isrf_recommend(1, 3, 'dep');
RESET isrf.device;
SELECT count(*) FROM isrf_recommend_items(ARRAY[1, 2], 3, 'dep');
SELECT count(*) FROM isrf_rank(1, ARRAY[1, 2, 3], 'dep');
SELECT count(*) FROM isrf_group_neighbours(1, 2, 'dep');
SELECT err($$SELECT count(*) FROM isrf_group_interests(1, 5, 'dep')$$);
SELECT count(*) FROM isrf_evaluate('dep');
SELECT model_name, version FROM isrf.model_check('dep');
SELECT count(*) > 0 AS sees_graph FROM isrf.group_graph WHERE model = 'dep';
-- ... but changes nothing
SELECT err($$SELECT isrf.deploy('dep', 1)$$);
SELECT err($$SELECT isrf.rollback('dep')$$);
SELECT err($$SELECT isrf.set_deploy_policy('dep', 'if_better')$$);
SELECT err($$SELECT isrf.grant_model('dep', 'regress_isrf_other')$$);
SELECT err($$SELECT isrf.revoke_model('dep', 'regress_isrf_app')$$);
SELECT err($$SELECT isrf.drop_model('dep')$$);
SELECT err($$SELECT isrf.drop_dataset('dep', cascade => true)$$);
SELECT err($$CALL isrf_train('dep', '{"epochs": 0}')$$);
SELECT err($$SELECT isrf._catalogue('_cat_deploy', 'dep'::text, 1, NULL::text)$$);
RESET ROLE;

-- a role without a grant sees nothing and changes nothing
SET ROLE regress_isrf_other;
SELECT count(*) FROM isrf.models;
SELECT err($$SELECT count(*) FROM isrf_recommend(1, 3, 'dep')$$);
SELECT err($$SELECT isrf.deploy('dep', 1)$$);
SELECT err($$SELECT isrf.rollback('dep')$$);
SELECT err($$SELECT isrf.grant_model('dep', 'regress_isrf_other')$$);
RESET ROLE;

-- a grant to public: every role, with what it may read itself
SET ROLE regress_isrf_owner;
SELECT isrf.grant_model('dep', 'PUBLIC');
RESET ROLE;
SET ROLE regress_isrf_other;
SELECT count(*) FROM isrf_recommend_items(ARRAY[1, 2], 3, 'dep');
SELECT err($$SELECT count(*) FROM isrf_recommend(1, 3, 'dep')$$);
RESET ROLE;

-- revoking takes effect at the grantee's next call (same session)
SET ROLE regress_isrf_owner;
SELECT isrf.revoke_model('dep', 'public');
SELECT isrf.revoke_model('dep', 'regress_isrf_app');
SET client_min_messages = notice;
SELECT isrf.revoke_model('dep', 'regress_isrf_app');
SET client_min_messages = warning;
SELECT err($$SELECT isrf.revoke_model('dep', NULL)$$);
RESET ROLE;
SET ROLE regress_isrf_appuser;
SELECT err($$SELECT count(*) FROM isrf_recommend(1, 3, 'dep')$$);
SELECT err($$SELECT count(*) FROM isrf_rank(1, ARRAY[1, 2, 3], 'dep')$$);
SELECT count(*) FROM isrf.models;
RESET ROLE;

-- a superuser deploys any model; the history says who
SELECT isrf.deploy('dep', 2, 'by the DBA');
SELECT seq, version, action, owner, by_role = current_user AS by_me, reason FROM isrf.deployments
 WHERE model = 'dep' ORDER BY seq DESC LIMIT 1;

-- nothing is trained or deployed in a read-only transaction (as on a hot
-- standby, test/tap/standby.t): 25006 before any work
BEGIN READ ONLY;
SELECT err($$CALL isrf_train('dep', '{"epochs": 0}')$$);
SELECT err($$SELECT isrf.deploy('dep', 1)$$);
COMMIT;

-- dropping the model drops its history, settings and grants
SET ROLE regress_isrf_owner;
SELECT isrf.set_deploy_policy('dep', 'if_better');
SELECT isrf.grant_model('dep', 'regress_isrf_app');
SELECT isrf.drop_model('dep');
SELECT (SELECT count(*) FROM isrf.deployments) AS deployments, (SELECT count(*) FROM isrf.model_settings) AS settings,
       (SELECT count(*) FROM isrf.model_grants) AS grants;
SELECT isrf.drop_dataset('dep');
DROP SCHEMA dep CASCADE;
RESET ROLE;
DO $$ BEGIN
    EXECUTE format('REVOKE CREATE ON DATABASE %I FROM regress_isrf_owner', current_database());
END $$;
DROP ROLE regress_isrf_appuser, regress_isrf_app, regress_isrf_other, regress_isrf_owner;
