/* isrf--0.1.sql: the isrf extension, version 0.1 */

\echo Use "CREATE EXTENSION isrf" to load this file. \quit

-- Two rules hold for every object below.
--
-- Every SQL and PL/pgSQL function runs with SET search_path = pg_catalog,
-- pg_temp, so that nothing another role planted in a schema of the caller's
-- search_path is ever called; it names the extension's own objects with
-- their schema.  C functions run their SQL under the same path (src/pg/
-- pg_spi.c).  Functions still run with the caller's rights: the caller's
-- tables are read as the caller.
--
-- The catalogue tables are written only through the extension's functions.
-- PUBLIC may read them (row-level security shows each role its own rows)
-- but not write them; the writers isrf._cat_*() run as the extension's owner
-- on behalf of the calling role, through a gate in C (src/pg/catalogue.c)
-- that alone knows who that role is, and check that it owns what it writes.

CREATE SCHEMA isrf;
COMMENT ON SCHEMA isrf IS 'isrf: in-database ISRF generative recommender (catalogue tables and admin functions)';
GRANT USAGE ON SCHEMA isrf TO PUBLIC;

----------------------------------------------------------------------------
-- Catalogue: datasets
----------------------------------------------------------------------------

CREATE TABLE isrf.datasets (
    name              text PRIMARY KEY,
    owner             name NOT NULL DEFAULT current_user,
    reviews           regclass NOT NULL,
    items             regclass,
    item_descriptions regclass,
    user_descriptions regclass,
    order_column      name NOT NULL,
    text_columns      text[],
    -- qualified table names at binding time, to name a table dropped since
    bound_names       jsonb NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE isrf.datasets IS 'Datasets: names bound to the user''s own tables of reviews, items and LLM descriptions';

ALTER TABLE isrf.datasets ENABLE ROW LEVEL SECURITY;
CREATE POLICY datasets_owner ON isrf.datasets
    USING (owner = current_user) WITH CHECK (owner = current_user);
GRANT SELECT ON isrf.datasets TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('isrf.datasets', '');

----------------------------------------------------------------------------
-- Catalogue: models (versions of a model trained on one dataset)
----------------------------------------------------------------------------

CREATE TABLE isrf.models (
    name        text NOT NULL,
    version     integer NOT NULL,
    dataset     text NOT NULL REFERENCES isrf.datasets (name) ON UPDATE CASCADE,
    owner       name NOT NULL DEFAULT current_user,
    status      text NOT NULL DEFAULT 'training'
                CHECK (status IN ('training', 'ready', 'failed', 'cancelled')),
    stage       text,
    config      jsonb NOT NULL DEFAULT '{}',
    metrics     jsonb NOT NULL DEFAULT '{}',
    progress    jsonb,          -- the last epoch's figures while training
    message     text,
    pid         integer,
    deployed    boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    deployed_at timestamptz,
    PRIMARY KEY (name, version)
);
CREATE UNIQUE INDEX models_one_deployed ON isrf.models (name) WHERE deployed;
CREATE UNIQUE INDEX models_one_training ON isrf.models (name) WHERE status = 'training';
COMMENT ON TABLE isrf.models IS 'Model versions: status, configuration, metrics and which version is deployed';

ALTER TABLE isrf.models ENABLE ROW LEVEL SECURITY;
CREATE POLICY models_owner ON isrf.models
    USING (owner = current_user) WITH CHECK (owner = current_user);
GRANT SELECT ON isrf.models TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('isrf.models', '');

-- The serialized model of each version, in chunks (src/core/model_io.h format).
CREATE TABLE isrf.model_chunks (
    name    text NOT NULL,
    version integer NOT NULL,
    seq     integer NOT NULL,
    data    bytea NOT NULL,
    PRIMARY KEY (name, version, seq),
    FOREIGN KEY (name, version) REFERENCES isrf.models (name, version) ON DELETE CASCADE
);
COMMENT ON TABLE isrf.model_chunks IS 'Serialized model versions, in chunks of 1 MB (versioned, checksummed format)';

-- The group graph of each version: each user's top-K semantic neighbours.
CREATE TABLE isrf.group_edges (
    model        text NOT NULL,
    version      integer NOT NULL,
    user_id      bigint NOT NULL,
    neighbour_id bigint NOT NULL,
    similarity   real NOT NULL,
    rank         integer NOT NULL,
    PRIMARY KEY (model, version, user_id, rank),
    FOREIGN KEY (model, version) REFERENCES isrf.models (name, version) ON DELETE CASCADE
);
COMMENT ON TABLE isrf.group_edges IS 'Group graphs: each user''s top-K neighbours by cosine of user semantic features, per model version';

-- The interactions each version was trained on, with their split.
CREATE TABLE isrf.model_interactions (
    model      text NOT NULL,
    version    integer NOT NULL,
    user_id    bigint NOT NULL,
    item_id    bigint NOT NULL,
    "position" integer NOT NULL,
    split      text NOT NULL CHECK (split IN ('train', 'validation', 'test')),
    PRIMARY KEY (model, version, user_id, "position"),
    FOREIGN KEY (model, version) REFERENCES isrf.models (name, version) ON DELETE CASCADE
);
COMMENT ON TABLE isrf.model_interactions IS 'The cleaned, ordered interactions a model version was trained on, with their train/validation/test split';

-- These tables follow the visibility of their model rows.
ALTER TABLE isrf.model_chunks ENABLE ROW LEVEL SECURITY;
CREATE POLICY model_chunks_owner ON isrf.model_chunks
    USING (EXISTS (SELECT 1 FROM isrf.models m WHERE m.name = model_chunks.name AND m.version = model_chunks.version));
ALTER TABLE isrf.group_edges ENABLE ROW LEVEL SECURITY;
CREATE POLICY group_edges_owner ON isrf.group_edges
    USING (EXISTS (SELECT 1 FROM isrf.models m WHERE m.name = group_edges.model AND m.version = group_edges.version));
ALTER TABLE isrf.model_interactions ENABLE ROW LEVEL SECURITY;
CREATE POLICY model_interactions_owner ON isrf.model_interactions
    USING (EXISTS (SELECT 1 FROM isrf.models m WHERE m.name = model_interactions.model AND m.version = model_interactions.version));
GRANT SELECT ON isrf.model_chunks, isrf.group_edges, isrf.model_interactions TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('isrf.model_chunks', '');
SELECT pg_catalog.pg_extension_config_dump('isrf.group_edges', '');
SELECT pg_catalog.pg_extension_config_dump('isrf.model_interactions', '');

-- Deploying: which version of a model is served is decided by training
-- (under the model's deploy policy), by isrf.deploy() and by isrf.rollback();
-- every change is recorded here, newest last.
CREATE TABLE isrf.deployments (
    model       text NOT NULL,
    seq         integer NOT NULL,       -- 1, 2, ... per model
    version     integer NOT NULL,       -- the version deployed
    previous    integer,                -- the version deployed before (NULL: none)
    action      text NOT NULL CHECK (action IN ('train', 'deploy', 'rollback')),
    undoes      integer,                -- a rollback: seq of the deployment it undid
    owner       name NOT NULL,          -- the model's owner
    by_role     name NOT NULL,          -- the role that deployed
    reason      text,
    deployed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (model, seq),
    FOREIGN KEY (model, version) REFERENCES isrf.models (name, version) ON DELETE CASCADE
);
COMMENT ON TABLE isrf.deployments IS 'Deploy history of each model: version deployed, version before, by training, isrf.deploy() or isrf.rollback(), by which role, when and why';
ALTER TABLE isrf.deployments ENABLE ROW LEVEL SECURITY;
CREATE POLICY deployments_owner ON isrf.deployments USING (owner = current_user);
GRANT SELECT ON isrf.deployments TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('isrf.deployments', '');

-- Settings of a model as a whole (not of one version).
CREATE TABLE isrf.model_settings (
    model         text PRIMARY KEY,
    owner         name NOT NULL,
    deploy_policy text NOT NULL DEFAULT 'always' CHECK (deploy_policy IN ('always', 'if_better')),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE isrf.model_settings IS 'Per-model settings: the deploy policy of its trainings (always, or if_better: only when validation NDCG@10 is at least the deployed version''s)';
ALTER TABLE isrf.model_settings ENABLE ROW LEVEL SECURITY;
CREATE POLICY model_settings_owner ON isrf.model_settings USING (owner = current_user);
GRANT SELECT ON isrf.model_settings TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('isrf.model_settings', '');

-- Roles a model's owner lets use the model (isrf.grant_model()).
CREATE TABLE isrf.model_grants (
    model      text NOT NULL,
    grantee    name NOT NULL,           -- a role, or public
    owner      name NOT NULL,           -- the model's owner
    granted_by name NOT NULL,
    granted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model, grantee)
);
COMMENT ON TABLE isrf.model_grants IS 'Roles that may use (serve, evaluate, read) a model they do not own, granted by its owner with isrf.grant_model()';

-- Whether the current user has the privileges of a role (is it, or
-- inherits from it), or the role is public.  A role dropped since matches
-- nobody.
CREATE FUNCTION isrf._has_role(role name) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp AS $$
    SELECT role = 'public'
        OR EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
                    WHERE r.rolname = role AND pg_catalog.pg_has_role(r.oid, 'USAGE'))
$$;
COMMENT ON FUNCTION isrf._has_role(name) IS 'internal: does the current user have the privileges of a role (or is the role public)';

-- A grant shows the model's rows (and through them its chunks, group graph
-- and interactions) and its dataset's row to the grantee, read-only: that
-- is all serving needs.  Writers check ownership, never visibility, so a
-- grantee deploys, rolls back, trains, grants and drops nothing.
ALTER TABLE isrf.model_grants ENABLE ROW LEVEL SECURITY;
CREATE POLICY model_grants_visible ON isrf.model_grants
    USING (owner = current_user OR isrf._has_role(grantee));
GRANT SELECT ON isrf.model_grants TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('isrf.model_grants', '');
CREATE POLICY models_granted ON isrf.models FOR SELECT
    USING (EXISTS (SELECT 1 FROM isrf.model_grants g WHERE g.model = models.name AND isrf._has_role(g.grantee)));
CREATE POLICY datasets_granted ON isrf.datasets FOR SELECT
    USING (EXISTS (SELECT 1 FROM isrf.models m JOIN isrf.model_grants g ON g.model = m.name
                    WHERE m.dataset = datasets.name AND isrf._has_role(g.grantee)));

-- The tables isrf.create_synthetic_dataset() created, the only ones it may
-- drop when it generates a dataset again.  Not dumped: after a restore the
-- tables have other oids, and the generator then leaves them alone.
CREATE TABLE isrf.synthetic_tables (
    relid      oid PRIMARY KEY,
    dataset    text NOT NULL,
    owner      name NOT NULL,
    relname    text NOT NULL,     -- schema-qualified name at creation
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE isrf.synthetic_tables IS 'Tables made by isrf.create_synthetic_dataset(), which it alone may replace';
ALTER TABLE isrf.synthetic_tables ENABLE ROW LEVEL SECURITY;
CREATE POLICY synthetic_tables_owner ON isrf.synthetic_tables USING (owner = current_user);
GRANT SELECT ON isrf.synthetic_tables TO PUBLIC;

-- The deployed group graph of every model, for JOINs.
CREATE VIEW isrf.group_graph WITH (security_invoker = true) AS
    SELECT e.model, e.user_id, e.neighbour_id, e.similarity, e.rank
      FROM isrf.group_edges e
      JOIN isrf.models m ON m.name = e.model AND m.version = e.version AND m.deployed;
COMMENT ON VIEW isrf.group_graph IS 'The deployed group graph of each model: user, neighbour, cosine similarity, rank (1 = most similar)';
GRANT SELECT ON isrf.group_graph TO PUBLIC;

-- Training runs in progress, for watching from another session.
CREATE VIEW isrf.training_progress WITH (security_invoker = true) AS
    SELECT name AS model, version, dataset, stage, pid, created_at AS started_at,
           clock_timestamp() - created_at AS elapsed, updated_at AS stage_started_at,
           progress ->> 'phase' AS phase, (progress ->> 'epoch')::integer AS epoch, (progress ->> 'epochs')::integer AS epochs,
           (progress ->> 'loss')::real AS loss, (progress ->> 'val_hr10')::real AS val_hr10,
           (progress ->> 'val_ndcg10')::real AS val_ndcg10,
           make_interval(secs => (progress ->> 'eta_seconds')::float8) AS eta,
           (progress ->> 'nonfinite_steps')::bigint AS nonfinite_steps
      FROM isrf.models m
     WHERE status = 'training'
       -- alive: its session still holds the model's training lock (src/pg/catalogue.c:
       -- advisory, objsubid 0x4953); a killed run's row says training until the next one
       AND EXISTS (SELECT FROM pg_catalog.pg_locks l
                    WHERE l.locktype = 'advisory' AND l.pid = m.pid AND l.objsubid = 18771 AND l.granted);
COMMENT ON VIEW isrf.training_progress IS 'Training runs in progress (whose session is alive): model, version, current stage, elapsed time, and after each epoch of the generative model its phase (fit; weights: the fit is over and the ranking score''s weights are being chosen on validation, with the kept epoch''s validation figures; or refit: the epochs on whole histories that follow, without validation figures), its number of the phase''s epochs, loss, validation HR@10 / NDCG@10, the time of epochs left at most, and steps skipped for a non-finite gradient';
GRANT SELECT ON isrf.training_progress TO PUBLIC;

----------------------------------------------------------------------------
-- Internal helpers (schema isrf, names starting with "_")
----------------------------------------------------------------------------

-- Error unless name is a valid dataset or model name: 1 to 63 letters,
-- digits and underscores, not starting with a digit.  A long name is
-- reported by its beginning.
CREATE FUNCTION isrf._check_name(what text, name text) RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF name IS NULL THEN
        RAISE EXCEPTION '% name must not be NULL', what USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF name !~ '^[A-Za-z_][A-Za-z0-9_]{0,62}$' THEN
        RAISE EXCEPTION 'invalid % name "%"', what,
            CASE WHEN length(name) > 63 THEN left(name, 63) || '...' ELSE name END
            USING ERRCODE = 'invalid_name',
                  HINT = 'Use 1 to 63 letters, digits and underscores, not starting with a digit.';
    END IF;
END
$$;
COMMENT ON FUNCTION isrf._check_name(text, text) IS 'internal: error unless a dataset or model name is valid';

-- Whether a type is one of the integer types an id column may have.
CREATE FUNCTION isrf._is_integer_type(t regtype) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp AS $$
    SELECT t IN ('smallint'::regtype, 'integer'::regtype, 'bigint'::regtype)
$$;
COMMENT ON FUNCTION isrf._is_integer_type(regtype) IS 'internal: true for smallint, integer and bigint';

-- The type of a column of a relation, or NULL when it has none.
CREATE FUNCTION isrf._column_type(rel regclass, col name) RETURNS regtype
LANGUAGE sql STABLE STRICT
SET search_path = pg_catalog, pg_temp AS $$
    SELECT a.atttypid::regtype FROM pg_catalog.pg_attribute a
     WHERE a.attrelid = rel AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped
$$;
COMMENT ON FUNCTION isrf._column_type(regclass, name) IS 'internal: type of a column, NULL if absent';

-- The text-typed feature columns of a relation, in column order, optionally
-- restricted to the names in wanted.
CREATE FUNCTION isrf._text_columns(rel regclass, wanted text[]) RETURNS name[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(array_agg(a.attname ORDER BY a.attnum), '{}')
      FROM pg_catalog.pg_attribute a
     WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped
       AND a.atttypid IN ('text'::regtype, 'varchar'::regtype, 'bpchar'::regtype)
       AND a.attname NOT IN ('user_id', 'item_id')
       AND (wanted IS NULL OR a.attname = ANY (wanted))
$$;
COMMENT ON FUNCTION isrf._text_columns(regclass, text[]) IS 'internal: text feature columns of a table';

-- Check that a bound table exists, is readable by the caller and has an
-- integer id column; raise a clear error naming table, column and expectation.
CREATE FUNCTION isrf._check_table(role text, rel regclass, id_col name) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t regtype;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = rel
                   AND c.relkind IN ('r', 'p', 'v', 'm', 'f')) THEN
        RAISE EXCEPTION '% is not a table or view', rel
            USING ERRCODE = 'wrong_object_type',
                  HINT = format('The %s of a dataset must be a table, view, materialized view or foreign table.', role);
    END IF;
    IF NOT pg_catalog.has_table_privilege(rel, 'SELECT') THEN
        RAISE EXCEPTION 'permission denied for table %', rel
            USING ERRCODE = 'insufficient_privilege',
                  HINT = format('The %s table is read with the rights of the role that binds or trains the dataset.', role);
    END IF;
    t := isrf._column_type(rel, id_col);
    IF t IS NULL THEN
        RAISE EXCEPTION 'table % has no column "%"', rel, id_col
            USING ERRCODE = 'undefined_column',
                  HINT = format('The %s table of a dataset needs a column "%s" of an integer type.', role, id_col);
    END IF;
    IF NOT isrf._is_integer_type(t) THEN
        RAISE EXCEPTION 'column "%" of table % is of type %, but an integer type (smallint, integer or bigint) was expected',
            id_col, rel, t
            USING ERRCODE = 'datatype_mismatch';
    END IF;
END
$$;
COMMENT ON FUNCTION isrf._check_table(text, regclass, name) IS 'internal: validate a table bound to a dataset';

-- The dataset row visible to the caller, or a clear error.
CREATE FUNCTION isrf._dataset(ds_name text) RETURNS isrf.datasets
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    d isrf.datasets;
    role text;
BEGIN
    PERFORM isrf._check_name('dataset', ds_name);
    SELECT * INTO d FROM isrf.datasets WHERE name = ds_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'dataset "%" does not exist', ds_name
            USING ERRCODE = 'undefined_object',
                  HINT = 'Create it with isrf.create_dataset(); isrf.datasets lists yours.';
    END IF;
    -- a bound table dropped since binding leaves a dangling oid: name it
    FOREACH role IN ARRAY ARRAY['reviews', 'items', 'item_descriptions', 'user_descriptions'] LOOP
        IF (to_jsonb(d) ->> role) IS NOT NULL AND NOT EXISTS (
               SELECT 1 FROM pg_catalog.pg_class c
                WHERE c.oid = (CASE role WHEN 'reviews' THEN d.reviews
                                         WHEN 'items' THEN d.items
                                         WHEN 'item_descriptions' THEN d.item_descriptions
                                         ELSE d.user_descriptions END)::oid) THEN
            RAISE EXCEPTION 'table % bound to dataset "%" as % no longer exists',
                d.bound_names ->> role, ds_name, role
                USING ERRCODE = 'undefined_table',
                      HINT = 'Recreate the table, or bind the dataset again with isrf.create_dataset(..., replace => true).';
        END IF;
    END LOOP;
    RETURN d;
END
$$;
COMMENT ON FUNCTION isrf._dataset(text) IS 'internal: look up a dataset and check its tables still exist';

-- The query giving a dataset's clean interactions: (user_id bigint,
-- item_id bigint, ord bigint) with NULL ids, NULL orders, items missing from
-- the items table and repeated (user, item) pairs removed; ord numbers each
-- user's interactions 1.. by (order column, item_id), so splits are
-- deterministic whatever the order column's type.  The training loader
-- runs this very query, so stats and training always agree.
CREATE FUNCTION isrf._interactions_sql(d isrf.datasets) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp AS $$
    SELECT format(
        'SELECT user_id, item_id, row_number() OVER (PARTITION BY user_id ORDER BY o, item_id) AS ord'
        ' FROM (SELECT r.user_id::bigint AS user_id, r.item_id::bigint AS item_id, r.%1$I AS o,'
        '         row_number() OVER (PARTITION BY r.user_id, r.item_id ORDER BY r.%1$I) AS dup'
        '       FROM %2$s r'
        '      WHERE r.user_id IS NOT NULL AND r.item_id IS NOT NULL AND r.%1$I IS NOT NULL%3$s) s'
        ' WHERE dup = 1',
        d.order_column, d.reviews,
        CASE WHEN d.items IS NULL THEN ''
             ELSE format(' AND EXISTS (SELECT 1 FROM %s i WHERE i.item_id = r.item_id)', d.items) END)
$$;
COMMENT ON FUNCTION isrf._interactions_sql(isrf.datasets) IS 'internal: SQL of a dataset''s clean interactions';

-- The query giving a dataset's text pieces for one role ('items',
-- 'item_descriptions' or 'user_descriptions'): (id bigint, field text,
-- value text), non-blank values of the text feature columns only; NULL when
-- the role is unbound or has no text column.
CREATE FUNCTION isrf._text_sql(d isrf.datasets, role text) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    rel regclass;
    id_col name := CASE WHEN role = 'user_descriptions' THEN 'user_id' ELSE 'item_id' END;
    cols name[];
    parts text[] := '{}';
    c name;
BEGIN
    rel := CASE role WHEN 'items' THEN d.items
                     WHEN 'item_descriptions' THEN d.item_descriptions
                     WHEN 'user_descriptions' THEN d.user_descriptions END;
    IF rel IS NULL THEN
        RETURN NULL;
    END IF;
    cols := isrf._text_columns(rel, d.text_columns);
    FOREACH c IN ARRAY cols LOOP
        parts := parts || format('SELECT %1$I::bigint AS id, %2$L::text AS field, %2$I::text AS value FROM %3$s'
                                 ' WHERE %1$I IS NOT NULL AND btrim(%2$I) <> %4$L',
                                 id_col, c, rel, '');
    END LOOP;
    IF cardinality(parts) = 0 THEN
        RETURN NULL;
    END IF;
    RETURN array_to_string(parts, ' UNION ALL ');
END
$$;
COMMENT ON FUNCTION isrf._text_sql(isrf.datasets, text) IS 'internal: SQL of a dataset''s text pieces for one table';

-- The query giving a dataset's precomputed item embeddings, (id bigint,
-- embedding real[]) from the first real[] or double precision[] column of
-- the items table; NULL when there is none.
CREATE FUNCTION isrf._embedding_sql(d isrf.datasets) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp AS $$
    SELECT format('SELECT item_id::bigint, %1$I::real[] FROM %2$s WHERE item_id IS NOT NULL AND %1$I IS NOT NULL',
                  a.attname, d.items)
      FROM pg_catalog.pg_attribute a
     WHERE d.items IS NOT NULL AND a.attrelid = d.items AND a.attnum > 0 AND NOT a.attisdropped
       AND a.atttypid IN ('real[]'::regtype, 'double precision[]'::regtype)
     ORDER BY a.attnum LIMIT 1
$$;
COMMENT ON FUNCTION isrf._embedding_sql(isrf.datasets) IS 'internal: SQL of a dataset''s precomputed item embeddings, if any';

----------------------------------------------------------------------------
-- Catalogue writers.  Each takes the acting role (invoker) first, is run
-- as the extension's owner by the gate isrf._catalogue() or by the C code
-- of isrf_train (src/pg/catalogue.c), and checks that the role may write
-- what it writes.  PUBLIC may not execute them.
----------------------------------------------------------------------------

CREATE FUNCTION isrf._catalogue(fn text, VARIADIC args "any") RETURNS void
AS 'MODULE_PATHNAME', 'isrf_catalogue_sql'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION isrf._catalogue(text, "any")
    IS 'internal: call a catalogue writer isrf._cat_*() that SQL may use, on behalf of the current user';

-- Whether role invoker may act on an object owned by owner: its own, or
-- anything for a superuser.
CREATE FUNCTION isrf._cat_may(invoker oid, owner name) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce((SELECT r.rolsuper OR r.rolname = owner FROM pg_roles r WHERE r.oid = invoker), false)
$$;
COMMENT ON FUNCTION isrf._cat_may(oid, name) IS 'internal: may a role act on an object of an owner (its own, or a superuser)';

-- Whether a model is granted to a role (to it, to a role whose privileges
-- it has, or to public).
CREATE FUNCTION isrf._cat_granted(invoker oid, model text) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp AS $$
    SELECT EXISTS (SELECT 1 FROM isrf.model_grants g
                    WHERE g.model = _cat_granted.model
                      AND (g.grantee = 'public'
                           OR EXISTS (SELECT 1 FROM pg_roles r
                                       WHERE r.rolname = g.grantee AND pg_has_role(invoker, r.oid, 'USAGE'))))
$$;
COMMENT ON FUNCTION isrf._cat_granted(oid, text) IS 'internal: is a model granted to a role (directly, through a role it inherits from, or to public)';

-- The owner of a model a role is about to change (what: "deploy", "drop",
-- ...), with every version's row locked, so that deploys, rollbacks and the
-- end of a training of one model happen one after the other.  A model the
-- role cannot see does not exist (42704); one it may only use, through a
-- grant, is 42501.
CREATE FUNCTION isrf._cat_model_owner(invoker oid, model text, what text) RETURNS name
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    m_owner name;
BEGIN
    PERFORM isrf._check_name('model', model);
    PERFORM 1 FROM isrf.models m WHERE m.name = _cat_model_owner.model FOR UPDATE;
    SELECT m.owner INTO m_owner FROM isrf.models m WHERE m.name = _cat_model_owner.model LIMIT 1;
    IF m_owner IS NOT NULL AND isrf._cat_may(invoker, m_owner) THEN
        RETURN m_owner;
    END IF;
    IF m_owner IS NOT NULL AND isrf._cat_granted(invoker, model) THEN
        RAISE EXCEPTION 'permission denied to % model "%"', what, model
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('Model "%s" belongs to role %s, which granted it to you for use only.', model, m_owner),
                  HINT = 'Only the owner of a model (or a superuser) deploys, rolls back, trains, grants and drops it.';
    END IF;
    RAISE EXCEPTION 'model "%" does not exist', model
        USING ERRCODE = 'undefined_object', HINT = 'isrf.models lists your models.';
END
$$;
COMMENT ON FUNCTION isrf._cat_model_owner(oid, text, text)
    IS 'internal: the owner of a model a role may change, its rows locked; 42704 if the role cannot see it, 42501 if it may only use it';

-- Forget what belongs to a model as a whole (its versions are deleted by
-- the caller; their deploy history goes with them).
CREATE FUNCTION isrf._cat_model_forget(model text) RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp AS $$
    DELETE FROM isrf.model_grants g WHERE g.model = _cat_model_forget.model;
    DELETE FROM isrf.model_settings s WHERE s.model = _cat_model_forget.model;
$$;
COMMENT ON FUNCTION isrf._cat_model_forget(text) IS 'internal: drop the grants and settings of a model being dropped';

CREATE FUNCTION isrf._cat_dataset_put(invoker oid, name text, reviews regclass, items regclass,
    item_descriptions regclass, user_descriptions regclass, order_column name, text_columns text[],
    bound_names jsonb, replace boolean) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    existing name;
    rel regclass;
BEGIN
    PERFORM isrf._check_name('dataset', name);
    IF reviews IS NULL OR order_column IS NULL OR bound_names IS NULL THEN
        RAISE EXCEPTION 'a dataset needs a reviews table and an order column' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    FOREACH rel IN ARRAY ARRAY[reviews, items, item_descriptions, user_descriptions] LOOP
        IF rel IS NOT NULL AND NOT has_table_privilege(invoker, rel, 'SELECT') THEN
            RAISE EXCEPTION 'permission denied for table %', rel USING ERRCODE = 'insufficient_privilege';
        END IF;
    END LOOP;
    SELECT d.owner INTO existing FROM isrf.datasets d WHERE d.name = _cat_dataset_put.name FOR UPDATE;
    IF FOUND THEN
        IF NOT isrf._cat_may(invoker, existing) THEN
            RAISE EXCEPTION 'dataset "%" already exists and belongs to another role', name
                USING ERRCODE = 'duplicate_object';
        END IF;
        IF NOT coalesce(replace, false) THEN
            RAISE EXCEPTION 'dataset "%" already exists', name
                USING ERRCODE = 'duplicate_object', HINT = 'Pass replace => true to rebind it.';
        END IF;
        UPDATE isrf.datasets d
           SET reviews = _cat_dataset_put.reviews, items = _cat_dataset_put.items,
               item_descriptions = _cat_dataset_put.item_descriptions,
               user_descriptions = _cat_dataset_put.user_descriptions,
               order_column = _cat_dataset_put.order_column, text_columns = _cat_dataset_put.text_columns,
               bound_names = _cat_dataset_put.bound_names, created_at = now()
         WHERE d.name = _cat_dataset_put.name;
    ELSE
        BEGIN
            INSERT INTO isrf.datasets (name, owner, reviews, items, item_descriptions, user_descriptions,
                                       order_column, text_columns, bound_names)
            VALUES (name, (SELECT r.rolname FROM pg_roles r WHERE r.oid = invoker), reviews, items,
                    item_descriptions, user_descriptions, order_column, text_columns, bound_names);
        EXCEPTION WHEN unique_violation THEN
            RAISE EXCEPTION 'dataset "%" already exists', name USING ERRCODE = 'duplicate_object';
        END;
    END IF;
END
$$;
COMMENT ON FUNCTION isrf._cat_dataset_put(oid, text, regclass, regclass, regclass, regclass, name, text[], jsonb, boolean)
    IS 'internal: write a dataset row for a role (new, or its own replaced)';

CREATE FUNCTION isrf._cat_dataset_drop(invoker oid, name text, cascade boolean) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    existing name;
    n_models integer;
BEGIN
    SELECT d.owner INTO existing FROM isrf.datasets d WHERE d.name = _cat_dataset_drop.name FOR UPDATE;
    IF FOUND AND NOT isrf._cat_may(invoker, existing)
       AND EXISTS (SELECT 1 FROM isrf.models m WHERE m.dataset = _cat_dataset_drop.name AND isrf._cat_granted(invoker, m.name)) THEN
        RAISE EXCEPTION 'permission denied to drop dataset "%"', name
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Only the owner of a dataset (or a superuser) drops it.';
    END IF;
    IF NOT FOUND OR NOT isrf._cat_may(invoker, existing) THEN
        RAISE EXCEPTION 'dataset "%" does not exist', name USING ERRCODE = 'undefined_object';
    END IF;
    SELECT count(DISTINCT m.name) INTO n_models FROM isrf.models m WHERE m.dataset = _cat_dataset_drop.name;
    IF n_models > 0 AND NOT coalesce(cascade, false) THEN
        RAISE EXCEPTION 'cannot drop dataset "%" because % model(s) depend on it', name, n_models
            USING ERRCODE = 'dependent_objects_still_exist',
                  HINT = 'Use cascade => true to drop the models too.';
    END IF;
    PERFORM isrf._cat_model_forget(x.name)
       FROM (SELECT DISTINCT m.name FROM isrf.models m WHERE m.dataset = _cat_dataset_drop.name) x;
    DELETE FROM isrf.models m WHERE m.dataset = _cat_dataset_drop.name;
    DELETE FROM isrf.datasets d WHERE d.name = _cat_dataset_drop.name;
END
$$;
COMMENT ON FUNCTION isrf._cat_dataset_drop(oid, text, boolean) IS 'internal: drop a role''s dataset (and with cascade its models)';

CREATE FUNCTION isrf._cat_model_drop(invoker oid, name text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM isrf._cat_model_owner(invoker, name, 'drop');
    PERFORM isrf._cat_model_forget(name);
    DELETE FROM isrf.models m WHERE m.name = _cat_model_drop.name;
END
$$;
COMMENT ON FUNCTION isrf._cat_model_drop(oid, text) IS 'internal: drop every version of a role''s model';

CREATE FUNCTION isrf._cat_synthetic_register(invoker oid, dataset text, tables regclass[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    rel regclass;
BEGIN
    -- forget tables that are gone
    DELETE FROM isrf.synthetic_tables st WHERE NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = st.relid);
    FOREACH rel IN ARRAY tables LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = rel AND c.relowner = invoker) THEN
            RAISE EXCEPTION 'table % does not belong to the role registering it', rel
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        INSERT INTO isrf.synthetic_tables (relid, dataset, owner, relname)
        VALUES (rel, dataset, (SELECT r.rolname FROM pg_roles r WHERE r.oid = invoker), rel::text)
        ON CONFLICT (relid) DO UPDATE SET dataset = EXCLUDED.dataset, owner = EXCLUDED.owner,
                                          relname = EXCLUDED.relname, created_at = EXCLUDED.created_at;
    END LOOP;
END
$$;
COMMENT ON FUNCTION isrf._cat_synthetic_register(oid, text, regclass[])
    IS 'internal: record tables isrf.create_synthetic_dataset() made (the role''s own)';

-- The writers of a training run, called from C only (src/pg/train.c).

CREATE FUNCTION isrf._cat_train_check(invoker oid, model text, dataset text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    d_owner name;
    m record;
BEGIN
    PERFORM isrf._check_name('model', model);
    SELECT d.owner INTO d_owner FROM isrf.datasets d WHERE d.name = _cat_train_check.dataset;
    IF FOUND AND NOT isrf._cat_may(invoker, d_owner)
       AND EXISTS (SELECT 1 FROM isrf.models x WHERE x.dataset = _cat_train_check.dataset
                      AND isrf._cat_granted(invoker, x.name)) THEN
        RAISE EXCEPTION 'permission denied to train on dataset "%"', dataset
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('Dataset "%s" belongs to role %s; a model of it is granted to you for use only.', dataset, d_owner),
                  HINT = 'Only the owner of a dataset (or a superuser) trains its models.';
    END IF;
    IF NOT FOUND OR NOT isrf._cat_may(invoker, d_owner) THEN
        RAISE EXCEPTION 'dataset "%" does not exist', dataset USING ERRCODE = 'undefined_object';
    END IF;
    SELECT x.dataset, x.owner INTO m FROM isrf.models x WHERE x.name = _cat_train_check.model LIMIT 1;
    IF FOUND AND NOT isrf._cat_may(invoker, m.owner) THEN
        RAISE EXCEPTION 'model "%" already exists and belongs to another role', model
            USING ERRCODE = 'duplicate_object',
                  HINT = 'Name another model with config => ''{"model": "..."}''.';
    END IF;
    IF FOUND AND m.dataset <> dataset THEN
        RAISE EXCEPTION 'model "%" belongs to dataset "%", not "%"', model, m.dataset, dataset
            USING ERRCODE = 'duplicate_object',
                  HINT = 'Name another model with config => ''{"model": "..."}''.';
    END IF;
END
$$;
COMMENT ON FUNCTION isrf._cat_train_check(oid, text, text)
    IS 'internal: error unless a role may train a model on a dataset (a model belongs to one dataset and its owner)';

-- The caller holds the model's training lock (src/pg/catalogue.c).
CREATE FUNCTION isrf._cat_train_begin(invoker oid, model text, dataset text, config jsonb) RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    d_owner name;
    v integer;
BEGIN
    PERFORM isrf._cat_train_check(invoker, model, dataset);
    SELECT d.owner INTO d_owner FROM isrf.datasets d WHERE d.name = _cat_train_begin.dataset FOR SHARE;
    -- rows a crashed or killed run left behind
    UPDATE isrf.models m SET status = 'failed', updated_at = clock_timestamp(),
           message = 'interrupted during stage ' || coalesce(m.stage, '?') || ' (session ended)'
     WHERE m.name = _cat_train_begin.model AND m.status = 'training';
    SELECT coalesce(max(m.version), 0) + 1 INTO v FROM isrf.models m WHERE m.name = _cat_train_begin.model;
    -- a model is its dataset owner's, whoever trains it
    INSERT INTO isrf.models (name, version, dataset, owner, status, stage, config, pid)
    VALUES (model, v, dataset, d_owner, 'training', 'load',
            jsonb_build_object('model', model) || coalesce(config, '{}'), pg_backend_pid());
    RETURN v;
END
$$;
COMMENT ON FUNCTION isrf._cat_train_begin(oid, text, text, jsonb)
    IS 'internal: start a training run: mark runs left behind failed, insert the new version''s row';

-- Error unless the version is being trained and the role may write it.
CREATE FUNCTION isrf._cat_training(invoker oid, model text, version integer) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM isrf.models m
                    WHERE m.name = _cat_training.model AND m.version = _cat_training.version
                      AND m.status = 'training' AND isrf._cat_may(invoker, m.owner)) THEN
        RAISE EXCEPTION 'model "%" version % is not being trained', model, version
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'It was dropped meanwhile, or its run has ended.';
    END IF;
END
$$;
COMMENT ON FUNCTION isrf._cat_training(oid, text, integer) IS 'internal: error unless a role''s model version is being trained';

CREATE FUNCTION isrf._cat_train_stage(invoker oid, model text, version integer, stage text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM isrf._cat_training(invoker, model, version);
    UPDATE isrf.models m SET stage = _cat_train_stage.stage, updated_at = clock_timestamp()
     WHERE m.name = _cat_train_stage.model AND m.version = _cat_train_stage.version;
END
$$;
COMMENT ON FUNCTION isrf._cat_train_stage(oid, text, integer, text) IS 'internal: record the stage a training run is in';

CREATE FUNCTION isrf._cat_train_progress(invoker oid, model text, version integer, progress jsonb) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM isrf._cat_training(invoker, model, version);
    UPDATE isrf.models m SET progress = _cat_train_progress.progress, updated_at = clock_timestamp()
     WHERE m.name = _cat_train_progress.model AND m.version = _cat_train_progress.version;
END
$$;
COMMENT ON FUNCTION isrf._cat_train_progress(oid, text, integer, jsonb) IS 'internal: record the last epoch''s figures of a training run';

CREATE FUNCTION isrf._cat_train_chunk(invoker oid, model text, version integer, seq integer, data bytea) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM isrf._cat_training(invoker, model, version);
    INSERT INTO isrf.model_chunks (name, version, seq, data) VALUES (model, version, seq, data);
END
$$;
COMMENT ON FUNCTION isrf._cat_train_chunk(oid, text, integer, integer, bytea) IS 'internal: store a chunk of a model being trained';

CREATE FUNCTION isrf._cat_train_interactions(invoker oid, model text, version integer,
    users bigint[], items bigint[], positions integer[], splits text[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM isrf._cat_training(invoker, model, version);
    INSERT INTO isrf.model_interactions (model, version, user_id, item_id, "position", split)
    SELECT _cat_train_interactions.model, _cat_train_interactions.version, u, i, p, s
      FROM unnest(users, items, positions, splits) AS t(u, i, p, s);
END
$$;
COMMENT ON FUNCTION isrf._cat_train_interactions(oid, text, integer, bigint[], bigint[], integer[], text[])
    IS 'internal: store the interactions and split of a model being trained';

CREATE FUNCTION isrf._cat_train_edges(invoker oid, model text, version integer,
    users bigint[], neighbours bigint[], similarities real[], ranks integer[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM isrf._cat_training(invoker, model, version);
    INSERT INTO isrf.group_edges (model, version, user_id, neighbour_id, similarity, rank)
    SELECT _cat_train_edges.model, _cat_train_edges.version, u, v, s, r
      FROM unnest(users, neighbours, similarities, ranks) AS t(u, v, s, r);
END
$$;
COMMENT ON FUNCTION isrf._cat_train_edges(oid, text, integer, bigint[], bigint[], real[], integer[])
    IS 'internal: store the group graph of a model being trained';

-- Make a version the deployed one and record it in the deploy history; the
-- caller has checked the role and locked the model's rows
-- (isrf._cat_model_owner).  Returns the version deployed before (NULL:
-- none).
CREATE FUNCTION isrf._cat_deploy_version(invoker oid, model text, version integer, action text,
    undoes integer, reason text) RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    prev integer;
BEGIN
    SELECT m.version INTO prev FROM isrf.models m WHERE m.name = _cat_deploy_version.model AND m.deployed;
    UPDATE isrf.models m SET deployed = false WHERE m.name = _cat_deploy_version.model AND m.deployed;
    -- a version training left undeployed no longer says so
    UPDATE isrf.models m SET deployed = true, deployed_at = clock_timestamp(), updated_at = clock_timestamp(),
           stage = CASE WHEN m.stage = 'not deployed' THEN 'deployed' ELSE m.stage END,
           message = CASE WHEN m.stage = 'not deployed' THEN NULL ELSE m.message END
     WHERE m.name = _cat_deploy_version.model AND m.version = _cat_deploy_version.version;
    INSERT INTO isrf.deployments (model, seq, version, previous, action, undoes, owner, by_role, reason)
    SELECT model, coalesce((SELECT max(d.seq) FROM isrf.deployments d WHERE d.model = _cat_deploy_version.model), 0) + 1,
           version, prev, action, undoes,
           (SELECT m.owner FROM isrf.models m WHERE m.name = _cat_deploy_version.model AND m.version = _cat_deploy_version.version),
           (SELECT r.rolname FROM pg_roles r WHERE r.oid = invoker), reason;
    RETURN prev;
END
$$;
COMMENT ON FUNCTION isrf._cat_deploy_version(oid, text, integer, text, integer, text)
    IS 'internal: deploy a version of a model (rows locked, role checked) and record it in isrf.deployments';

-- The end of a training run: the version is ready, and deployed unless the
-- model's deploy policy is if_better and its validation NDCG@10 is below
-- the deployed version's (then its row says why, and a NOTICE too).
-- Returns whether it was deployed.
CREATE FUNCTION isrf._cat_train_deploy(invoker oid, model text, version integer, metrics text,
    model_bytes bigint, seconds double precision) RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    policy text;
    m_new jsonb;
    cur record;
    why text;
BEGIN
    PERFORM isrf._cat_training(invoker, model, version);
    PERFORM isrf._cat_model_owner(invoker, model, 'deploy');
    m_new := metrics::jsonb || jsonb_build_object('model_bytes', model_bytes, 'seconds_total', seconds);
    SELECT s.deploy_policy INTO policy FROM isrf.model_settings s WHERE s.model = _cat_train_deploy.model;
    SELECT m.version, (m.metrics ->> 'val_ndcg10')::float8 AS ndcg INTO cur
      FROM isrf.models m WHERE m.name = _cat_train_deploy.model AND m.deployed;
    IF policy = 'if_better' AND cur.version IS NOT NULL AND cur.ndcg IS NOT NULL
       AND coalesce((m_new ->> 'val_ndcg10')::float8 < cur.ndcg, true) THEN
        why := format('not deployed (deploy policy if_better): validation NDCG@10 %s is below %s of deployed version %s',
                      coalesce(m_new ->> 'val_ndcg10', 'unknown'), cur.ndcg, cur.version);
        UPDATE isrf.models m
           SET status = 'ready', stage = 'not deployed', message = why, updated_at = clock_timestamp(), metrics = m_new
         WHERE m.name = _cat_train_deploy.model AND m.version = _cat_train_deploy.version;
        RAISE NOTICE 'isrf_train: model "%" version % %', model, version, why
            USING HINT = format('Deploy it anyway with SELECT isrf.deploy(%L, %s).', model, version);
        RETURN false;
    END IF;
    UPDATE isrf.models m
       SET status = 'ready', stage = 'deployed', updated_at = clock_timestamp(), metrics = m_new
     WHERE m.name = _cat_train_deploy.model AND m.version = _cat_train_deploy.version;
    PERFORM isrf._cat_deploy_version(invoker, model, version, 'train', NULL, NULL);
    RETURN true;
END
$$;
COMMENT ON FUNCTION isrf._cat_train_deploy(oid, text, integer, text, bigint, double precision)
    IS 'internal: end a training run: the version is ready, deployed unless the deploy policy keeps the better deployed one (the previous one stays deployed until now)';

-- isrf.deploy(): a ready version of a role's model becomes the deployed one.
CREATE FUNCTION isrf._cat_deploy(invoker oid, model text, version integer, reason text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v record;
BEGIN
    PERFORM isrf._cat_model_owner(invoker, model, 'deploy');
    IF version IS NULL THEN
        RAISE EXCEPTION 'version must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT m.status, m.deployed, m.message INTO v FROM isrf.models m
     WHERE m.name = _cat_deploy.model AND m.version = _cat_deploy.version;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'model "%" has no version %', model, version
            USING ERRCODE = 'undefined_object', HINT = 'isrf.models lists its versions.';
    END IF;
    IF v.status <> 'ready' THEN
        RAISE EXCEPTION 'version % of model "%" is %, only a ready version can be deployed', version, model, v.status
            USING ERRCODE = 'object_not_in_prerequisite_state', DETAIL = v.message;
    END IF;
    IF v.deployed THEN
        RAISE NOTICE 'version % of model "%" is already deployed', version, model;
        RETURN;
    END IF;
    PERFORM isrf._cat_deploy_version(invoker, model, version, 'deploy', NULL, reason);
END
$$;
COMMENT ON FUNCTION isrf._cat_deploy(oid, text, integer, text) IS 'internal: deploy a ready version of a role''s model';

-- isrf.rollback(): undo the latest deployment not undone yet, back to the
-- version deployed before it; again and again, back through the history.
CREATE FUNCTION isrf._cat_rollback(invoker oid, model text, reason text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    top isrf.deployments;
BEGIN
    PERFORM isrf._cat_model_owner(invoker, model, 'roll back');
    SELECT d.* INTO top FROM isrf.deployments d
     WHERE d.model = _cat_rollback.model AND d.action <> 'rollback'
       AND NOT EXISTS (SELECT 1 FROM isrf.deployments u WHERE u.model = d.model AND u.undoes = d.seq)
     ORDER BY d.seq DESC LIMIT 1;
    IF top.seq IS NULL OR top.previous IS NULL THEN
        RAISE EXCEPTION 'model "%" has no earlier deployment to roll back to', model
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'isrf.deployments shows its deploy history; isrf.deploy() deploys any ready version.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM isrf.models m WHERE m.name = _cat_rollback.model AND m.version = top.previous
                      AND m.status = 'ready') THEN
        RAISE EXCEPTION 'version % of model "%", deployed before, is not ready', top.previous, model
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    PERFORM isrf._cat_deploy_version(invoker, model, top.previous, 'rollback', top.seq, reason);
END
$$;
COMMENT ON FUNCTION isrf._cat_rollback(oid, text, text) IS 'internal: deploy again the version deployed before the latest deployment not undone yet';

CREATE FUNCTION isrf._cat_set_policy(invoker oid, model text, policy text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    m_owner name;
BEGIN
    m_owner := isrf._cat_model_owner(invoker, model, 'set the deploy policy of');
    IF policy IS NULL THEN
        RAISE EXCEPTION 'deploy policy must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF policy NOT IN ('always', 'if_better') THEN
        RAISE EXCEPTION 'invalid deploy policy "%"', policy
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'always: every training deploys its version; if_better: only when its validation NDCG@10 is at least the deployed version''s.';
    END IF;
    INSERT INTO isrf.model_settings (model, owner, deploy_policy) VALUES (model, m_owner, policy)
    ON CONFLICT ON CONSTRAINT model_settings_pkey
    DO UPDATE SET deploy_policy = EXCLUDED.deploy_policy, updated_at = now();
END
$$;
COMMENT ON FUNCTION isrf._cat_set_policy(oid, text, text) IS 'internal: set the deploy policy of a role''s model';

CREATE FUNCTION isrf._cat_grant(invoker oid, model text, role name) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    m_owner name;
    grantee name := CASE WHEN lower(role) = 'public' THEN 'public' ELSE role END;
BEGIN
    m_owner := isrf._cat_model_owner(invoker, model, 'grant');
    IF role IS NULL THEN
        RAISE EXCEPTION 'role must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF grantee <> 'public' AND NOT EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = grantee) THEN
        RAISE EXCEPTION 'role "%" does not exist', role USING ERRCODE = 'undefined_object';
    END IF;
    IF grantee = m_owner THEN
        RAISE NOTICE 'role % owns model "%"; nothing granted', grantee, model;
        RETURN;
    END IF;
    INSERT INTO isrf.model_grants (model, grantee, owner, granted_by)
    VALUES (model, grantee, m_owner, (SELECT r.rolname FROM pg_roles r WHERE r.oid = invoker))
    ON CONFLICT ON CONSTRAINT model_grants_pkey DO NOTHING;
    IF NOT FOUND THEN
        RAISE NOTICE 'model "%" is already granted to %', model, grantee;
    END IF;
END
$$;
COMMENT ON FUNCTION isrf._cat_grant(oid, text, name) IS 'internal: let a role (or public) use a role''s model';

CREATE FUNCTION isrf._cat_revoke(invoker oid, model text, role name) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM isrf._cat_model_owner(invoker, model, 'revoke');
    IF role IS NULL THEN
        RAISE EXCEPTION 'role must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    DELETE FROM isrf.model_grants g
     WHERE g.model = _cat_revoke.model
       AND g.grantee = CASE WHEN lower(role) = 'public' THEN 'public' ELSE role END;
    IF NOT FOUND THEN
        RAISE NOTICE 'model "%" was not granted to %', model, role;
    END IF;
END
$$;
COMMENT ON FUNCTION isrf._cat_revoke(oid, text, name) IS 'internal: take a grant of a role''s model back';

-- Nothing to do when the row is gone (dropped while training).
CREATE FUNCTION isrf._cat_train_end(invoker oid, model text, version integer, status text, message text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF status NOT IN ('failed', 'cancelled') THEN
        RAISE EXCEPTION 'a training run ends failed or cancelled, not %', status USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE isrf.models m SET status = _cat_train_end.status, message = _cat_train_end.message,
           updated_at = clock_timestamp()
     WHERE m.name = _cat_train_end.model AND m.version = _cat_train_end.version
       AND m.status = 'training' AND isrf._cat_may(invoker, m.owner);
END
$$;
COMMENT ON FUNCTION isrf._cat_train_end(oid, text, integer, text, text) IS 'internal: record why a training run failed or was cancelled';

REVOKE ALL ON FUNCTION
    isrf._cat_may(oid, name),
    isrf._cat_dataset_put(oid, text, regclass, regclass, regclass, regclass, name, text[], jsonb, boolean),
    isrf._cat_dataset_drop(oid, text, boolean),
    isrf._cat_model_drop(oid, text),
    isrf._cat_synthetic_register(oid, text, regclass[]),
    isrf._cat_train_check(oid, text, text),
    isrf._cat_train_begin(oid, text, text, jsonb),
    isrf._cat_training(oid, text, integer),
    isrf._cat_train_stage(oid, text, integer, text),
    isrf._cat_train_progress(oid, text, integer, jsonb),
    isrf._cat_train_chunk(oid, text, integer, integer, bytea),
    isrf._cat_train_interactions(oid, text, integer, bigint[], bigint[], integer[], text[]),
    isrf._cat_train_edges(oid, text, integer, bigint[], bigint[], real[], integer[]),
    isrf._cat_train_deploy(oid, text, integer, text, bigint, double precision),
    isrf._cat_train_end(oid, text, integer, text, text),
    isrf._cat_granted(oid, text),
    isrf._cat_model_owner(oid, text, text),
    isrf._cat_model_forget(text),
    isrf._cat_deploy_version(oid, text, integer, text, integer, text),
    isrf._cat_deploy(oid, text, integer, text),
    isrf._cat_rollback(oid, text, text),
    isrf._cat_set_policy(oid, text, text),
    isrf._cat_grant(oid, text, name),
    isrf._cat_revoke(oid, text, name)
FROM PUBLIC;

----------------------------------------------------------------------------
-- Datasets: create, drop, stats
----------------------------------------------------------------------------

CREATE FUNCTION isrf.create_dataset(
    name text,
    reviews regclass,
    items regclass DEFAULT NULL,
    item_descriptions regclass DEFAULT NULL,
    user_descriptions regclass DEFAULT NULL,
    order_column name DEFAULT NULL,
    text_columns text[] DEFAULT NULL,
    replace boolean DEFAULT false
) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    ord name := order_column;
    ord_type regtype;
    col text;
    found_col boolean;
    bound jsonb;
BEGIN
    PERFORM isrf._check_name('dataset', name);
    IF reviews IS NULL THEN
        RAISE EXCEPTION 'the reviews table of dataset "%" must not be NULL', name
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF replace IS NULL THEN
        RAISE EXCEPTION 'argument "replace" must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;

    PERFORM isrf._check_table('reviews', reviews, 'user_id');
    PERFORM isrf._check_table('reviews', reviews, 'item_id');
    IF items IS NOT NULL THEN
        PERFORM isrf._check_table('items', items, 'item_id');
    END IF;
    IF item_descriptions IS NOT NULL THEN
        PERFORM isrf._check_table('item_descriptions', item_descriptions, 'item_id');
    END IF;
    IF user_descriptions IS NOT NULL THEN
        PERFORM isrf._check_table('user_descriptions', user_descriptions, 'user_id');
    END IF;

    -- the order column: named, or the first present of the usual names
    IF ord IS NULL THEN
        SELECT c INTO ord FROM unnest(ARRAY['reviewed_at', 'position', 'ts', 'timestamp']::name[])
                                WITH ORDINALITY AS u(c, n)
         WHERE isrf._column_type(reviews, c) IS NOT NULL ORDER BY n LIMIT 1;
        IF ord IS NULL THEN
            RAISE EXCEPTION 'table % has no order column', reviews
                USING ERRCODE = 'undefined_column',
                      HINT = 'Name one with order_column => ..., or add a column reviewed_at, position, ts or timestamp.';
        END IF;
    END IF;
    ord_type := isrf._column_type(reviews, ord);
    IF ord_type IS NULL THEN
        RAISE EXCEPTION 'table % has no column "%"', reviews, ord
            USING ERRCODE = 'undefined_column',
                  HINT = 'order_column must name a column of the reviews table.';
    END IF;
    IF NOT (isrf._is_integer_type(ord_type) OR ord_type IN ('numeric'::regtype, 'real'::regtype,
            'double precision'::regtype, 'timestamp'::regtype, 'timestamptz'::regtype, 'date'::regtype)) THEN
        RAISE EXCEPTION 'order column "%" of table % is of type %, but an integer, numeric, date, timestamp or timestamptz type was expected',
            ord, reviews, ord_type
            USING ERRCODE = 'datatype_mismatch';
    END IF;

    -- named text columns must exist as text columns somewhere
    IF text_columns IS NOT NULL THEN
        FOREACH col IN ARRAY text_columns LOOP
            found_col := col = ANY (isrf._text_columns(items, NULL))
                      OR col = ANY (isrf._text_columns(item_descriptions, NULL))
                      OR col = ANY (isrf._text_columns(user_descriptions, NULL));
            IF col IS NULL OR NOT coalesce(found_col, false) THEN
                RAISE EXCEPTION 'text column "%" is not a text column of the items or description tables', col
                    USING ERRCODE = 'undefined_column';
            END IF;
        END LOOP;
    END IF;

    bound := jsonb_strip_nulls(jsonb_build_object(
        'reviews', reviews::text, 'items', items::text,
        'item_descriptions', item_descriptions::text,
        'user_descriptions', user_descriptions::text));

    PERFORM isrf._catalogue('_cat_dataset_put', name, reviews, items, item_descriptions, user_descriptions,
                            ord, text_columns, bound, replace);
END
$$;
COMMENT ON FUNCTION isrf.create_dataset(text, regclass, regclass, regclass, regclass, name, text[], boolean)
    IS 'Bind a dataset name to tables of reviews (required), items, item descriptions and user descriptions';

CREATE FUNCTION isrf.drop_dataset(name text, cascade boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM isrf._check_name('dataset', name);
    PERFORM isrf._catalogue('_cat_dataset_drop', name, coalesce(cascade, false));
END
$$;
COMMENT ON FUNCTION isrf.drop_dataset(text, boolean) IS 'Forget a dataset (its tables are untouched); cascade => true drops its models too';

CREATE FUNCTION isrf.dataset_stats(name text)
RETURNS TABLE (users bigint, items bigint, interactions bigint, catalogue_items bigint,
               items_with_text bigint, users_with_descriptions bigint, skipped jsonb)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    d isrf.datasets := isrf._dataset(name);
    raw record;
    clean record;
    txt text;
    item_ids text;
    skipped_desc bigint := 0;
    unknown_items bigint := 0;
BEGIN
    -- raw rows and why they are skipped
    EXECUTE format(
        'SELECT count(*) AS total,'
        '       count(*) FILTER (WHERE user_id IS NULL) AS null_user,'
        '       count(*) FILTER (WHERE user_id IS NOT NULL AND item_id IS NULL) AS null_item,'
        '       count(*) FILTER (WHERE user_id IS NOT NULL AND item_id IS NOT NULL AND %1$I IS NULL) AS null_order'
        '  FROM %2$s', d.order_column, d.reviews) INTO raw;
    IF d.items IS NOT NULL THEN
        EXECUTE format(
            'SELECT count(*) FROM %1$s r WHERE r.user_id IS NOT NULL AND r.item_id IS NOT NULL AND r.%2$I IS NOT NULL'
            '   AND NOT EXISTS (SELECT 1 FROM %3$s i WHERE i.item_id = r.item_id)',
            d.reviews, d.order_column, d.items) INTO unknown_items;
    END IF;
    EXECUTE format('SELECT count(DISTINCT user_id) AS users, count(DISTINCT item_id) AS items, count(*) AS n FROM (%s) c',
                   isrf._interactions_sql(d)) INTO clean;

    users := clean.users;
    items := clean.items;
    interactions := clean.n;
    catalogue_items := NULL;
    IF d.items IS NOT NULL THEN
        EXECUTE format('SELECT count(DISTINCT item_id) FROM %s', d.items) INTO catalogue_items;
    END IF;

    -- items with any non-blank text, in the items table or the LLM descriptions
    txt := concat_ws(' UNION ALL ', isrf._text_sql(d, 'items'), isrf._text_sql(d, 'item_descriptions'));
    items_with_text := 0;
    IF txt <> '' THEN
        EXECUTE format('SELECT count(DISTINCT id) FROM (%s) t', txt) INTO items_with_text;
        IF d.items IS NOT NULL AND d.item_descriptions IS NOT NULL THEN
            EXECUTE format('SELECT count(DISTINCT x.item_id) FROM %s x WHERE x.item_id IS NOT NULL'
                           ' AND NOT EXISTS (SELECT 1 FROM %s i WHERE i.item_id = x.item_id)',
                           d.item_descriptions, d.items) INTO skipped_desc;
        END IF;
    END IF;

    users_with_descriptions := 0;
    txt := isrf._text_sql(d, 'user_descriptions');
    IF txt IS NOT NULL THEN
        EXECUTE format('SELECT count(DISTINCT t.id) FROM (%s) t WHERE t.id IN (SELECT user_id FROM (%s) c)',
                       txt, isrf._interactions_sql(d)) INTO users_with_descriptions;
    END IF;

    skipped := jsonb_build_object(
        'null_user_id', raw.null_user,
        'null_item_id', raw.null_item,
        'null_order', raw.null_order,
        'unknown_item', unknown_items,
        'duplicate', raw.total - raw.null_user - raw.null_item - raw.null_order - unknown_items - clean.n,
        'descriptions_of_unknown_items', skipped_desc);
    RETURN NEXT;
END
$$;
COMMENT ON FUNCTION isrf.dataset_stats(text) IS 'Counts of a dataset: users, items, interactions, catalogue, text coverage, and rows skipped with why';

----------------------------------------------------------------------------
-- Compute backend
----------------------------------------------------------------------------

CREATE FUNCTION isrf.backend_info(OUT requested text, OUT backend text, OUT description text)
RETURNS record
AS 'MODULE_PATHNAME', 'isrf_backend_info'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION isrf.backend_info() IS 'Where work runs in this session: the isrf.device setting, the backend it resolves to, and its description';

----------------------------------------------------------------------------
-- Synthetic data with planted user groups
----------------------------------------------------------------------------

CREATE FUNCTION isrf.synthetic_reviews(users integer, items integer, groups integer, per_user integer, seed bigint)
RETURNS TABLE (user_id bigint, item_id bigint, "position" integer)
AS 'MODULE_PATHNAME', 'isrf_synthetic_reviews'
LANGUAGE C IMMUTABLE PARALLEL SAFE ROWS 10000;
COMMENT ON FUNCTION isrf.synthetic_reviews(integer, integer, integer, integer, bigint)
    IS 'Synthetic interactions: users follow their planted group''s items in the group''s order, with noise';

CREATE FUNCTION isrf.synthetic_items(users integer, items integer, groups integer, per_user integer, seed bigint)
RETURNS TABLE (item_id bigint, title text, category text, group_id integer)
AS 'MODULE_PATHNAME', 'isrf_synthetic_items'
LANGUAGE C IMMUTABLE PARALLEL SAFE ROWS 1000;
COMMENT ON FUNCTION isrf.synthetic_items(integer, integer, integer, integer, bigint)
    IS 'Synthetic catalogue: titles and categories drawn from each item''s group vocabulary (group_id is the planted truth)';

CREATE FUNCTION isrf.synthetic_item_descriptions(users integer, items integer, groups integer, per_user integer, seed bigint)
RETURNS TABLE (item_id bigint, positive text, negative text, feature text)
AS 'MODULE_PATHNAME', 'isrf_synthetic_item_descriptions'
LANGUAGE C IMMUTABLE PARALLEL SAFE ROWS 1000;
COMMENT ON FUNCTION isrf.synthetic_item_descriptions(integer, integer, integer, integer, bigint)
    IS 'Synthetic LLM-style item descriptions: who would like it, who would not, key features';

CREATE FUNCTION isrf.synthetic_users(users integer, items integer, groups integer, per_user integer, seed bigint)
RETURNS TABLE (user_id bigint, group_id integer, preference text)
AS 'MODULE_PATHNAME', 'isrf_synthetic_users'
LANGUAGE C IMMUTABLE PARALLEL SAFE ROWS 1000;
COMMENT ON FUNCTION isrf.synthetic_users(integer, integer, integer, integer, bigint)
    IS 'Synthetic LLM-style user preference descriptions (group_id is the planted truth)';

CREATE FUNCTION isrf.create_synthetic_dataset(
    name text,
    users integer DEFAULT 500,
    items integer DEFAULT 300,
    groups integer DEFAULT 5,
    per_user integer DEFAULT 12,
    seed bigint DEFAULT 1,
    replace boolean DEFAULT false
) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    s name;
    t text;
    rel regclass;
    ours regclass[] := '{}';
BEGIN
    PERFORM isrf._check_name('dataset', name);
    s := name;
    IF NOT coalesce(replace, false)
       AND EXISTS (SELECT 1 FROM isrf.datasets d WHERE d.name = create_synthetic_dataset.name) THEN
        RAISE EXCEPTION 'dataset "%" already exists', name
            USING ERRCODE = 'duplicate_object', HINT = 'Pass replace => true to generate it again.';
    END IF;
    -- A table in the way is replaced only if this generator made it, for
    -- this dataset, as the caller; any other is an error naming it, and
    -- nothing is dropped before all four are checked.
    FOREACH t IN ARRAY ARRAY['reviews', 'items', 'item_descriptions', 'user_descriptions'] LOOP
        rel := to_regclass(format('%I.%I', s, t));
        CONTINUE WHEN rel IS NULL;
        IF NOT coalesce(replace, false) THEN
            RAISE EXCEPTION 'table % already exists', rel
                USING ERRCODE = 'duplicate_table', HINT = 'Pass replace => true to replace the synthetic tables.';
        END IF;
        IF NOT EXISTS (SELECT 1 FROM isrf.synthetic_tables st JOIN pg_class c ON c.oid = st.relid
                        WHERE st.relid = rel AND st.dataset = create_synthetic_dataset.name
                          AND st.relname = rel::text
                          AND c.relowner = (SELECT r.oid FROM pg_roles r WHERE r.rolname = current_user)) THEN
            RAISE EXCEPTION 'table % is in the way: isrf.create_synthetic_dataset() did not make it for dataset "%"',
                rel, name
                USING ERRCODE = 'duplicate_table',
                      HINT = 'It is never dropped for you: drop or rename it yourself, or generate the dataset under another name.';
        END IF;
        ours := ours || rel;
    END LOOP;
    -- tables go into a schema named after the dataset, owned by the caller
    IF NOT EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspname = s) THEN
        EXECUTE format('CREATE SCHEMA %I', s);
    END IF;
    FOREACH rel IN ARRAY ours LOOP
        EXECUTE format('DROP TABLE %s', rel);
    END LOOP;
    EXECUTE format('CREATE TABLE %I.reviews AS SELECT * FROM isrf.synthetic_reviews($1, $2, $3, $4, $5)', s)
        USING users, items, groups, per_user, seed;
    EXECUTE format('CREATE TABLE %I.items AS SELECT * FROM isrf.synthetic_items($1, $2, $3, $4, $5)', s)
        USING users, items, groups, per_user, seed;
    EXECUTE format('CREATE TABLE %I.item_descriptions AS SELECT * FROM isrf.synthetic_item_descriptions($1, $2, $3, $4, $5)', s)
        USING users, items, groups, per_user, seed;
    EXECUTE format('CREATE TABLE %I.user_descriptions AS SELECT * FROM isrf.synthetic_users($1, $2, $3, $4, $5)', s)
        USING users, items, groups, per_user, seed;
    EXECUTE format('ALTER TABLE %1$I.items ADD PRIMARY KEY (item_id)', s);
    EXECUTE format('CREATE INDEX ON %1$I.reviews (user_id, "position")', s);
    EXECUTE format('ALTER TABLE %1$I.user_descriptions ADD PRIMARY KEY (user_id)', s);
    PERFORM isrf._catalogue('_cat_synthetic_register', name,
        ARRAY[format('%I.reviews', s), format('%I.items', s), format('%I.item_descriptions', s),
              format('%I.user_descriptions', s)]::regclass[]);
    PERFORM isrf.create_dataset(name,
        reviews => format('%I.reviews', s)::regclass,
        items => format('%I.items', s)::regclass,
        item_descriptions => format('%I.item_descriptions', s)::regclass,
        user_descriptions => format('%I.user_descriptions', s)::regclass,
        replace => coalesce(replace, false));
END
$$;
COMMENT ON FUNCTION isrf.create_synthetic_dataset(text, integer, integer, integer, integer, bigint, boolean)
    IS 'Generate a synthetic dataset with planted user groups into schema <name> and bind it (replace => true replaces only tables it made itself)';

----------------------------------------------------------------------------
-- Models: training, resolution, integrity
----------------------------------------------------------------------------

CREATE PROCEDURE isrf_train(dataset text, config jsonb DEFAULT '{}')
AS 'MODULE_PATHNAME', 'isrf_train_proc'
LANGUAGE C;
COMMENT ON PROCEDURE isrf_train(text, jsonb)
    IS 'Train a new version of the model of a dataset (config keys in README), store it, and deploy it; progress in isrf.models';

-- The model a function means: the name given, else isrf.default_model, else
-- the only deployed model; errors list the candidates.
CREATE FUNCTION isrf._resolve_model(model text, OUT name text, OUT version integer)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    m text := model;
    n integer;
    candidates text;
BEGIN
    IF m IS NULL THEN
        m := nullif(current_setting('isrf.default_model', true), '');
    END IF;
    IF m IS NULL THEN
        SELECT count(*), string_agg(d.name, ', ' ORDER BY d.name), min(d.name)
          INTO n, candidates, m FROM isrf.models d WHERE d.deployed;
        IF n = 0 THEN
            RAISE EXCEPTION 'no model is deployed'
                USING ERRCODE = 'undefined_object', HINT = 'Train one with CALL isrf_train(''dataset'').';
        ELSIF n > 1 THEN
            RAISE EXCEPTION 'more than one model is deployed: %', candidates
                USING ERRCODE = 'ambiguous_parameter',
                      HINT = 'Name the model, or SET isrf.default_model.';
        END IF;
    END IF;
    SELECT d.name, d.version INTO name, version FROM isrf.models d WHERE d.name = m AND d.deployed;
    IF NOT FOUND THEN
        IF EXISTS (SELECT 1 FROM isrf.models d WHERE d.name = m) THEN
            RAISE EXCEPTION 'model "%" has no deployed version', m
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'isrf.models shows its versions and why they failed.';
        END IF;
        SELECT string_agg(DISTINCT d.name, ', ') INTO candidates FROM isrf.models d WHERE d.deployed;
        RAISE EXCEPTION 'model "%" does not exist', m
            USING ERRCODE = 'undefined_object',
                  HINT = coalesce('Deployed models: ' || candidates || '.', 'No model is deployed.');
    END IF;
END
$$;
COMMENT ON FUNCTION isrf._resolve_model(text) IS 'internal: resolve a model argument (NULL: isrf.default_model, else the only deployed model)';

-- The query giving one user's current history in a dataset's reviews table,
-- cleaned as training cleans its interactions (isrf._interactions_sql): rows
-- with NULL item or order skipped, items missing from a bound items table
-- skipped, a repeated item kept once at its first occurrence; oldest first,
-- ties by item_id.  $1 is the user id.  An index on the reviews table's
-- (user_id, order column) serves it.
CREATE FUNCTION isrf._history_sql(d isrf.datasets) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp AS $$
    SELECT format(
        'SELECT item_id FROM (SELECT r.item_id::bigint AS item_id, r.%1$I AS o,'
        '         row_number() OVER (PARTITION BY r.item_id ORDER BY r.%1$I) AS dup'
        '       FROM %2$s r'
        '      WHERE r.user_id = $1 AND r.item_id IS NOT NULL AND r.%1$I IS NOT NULL%3$s) s'
        ' WHERE dup = 1 ORDER BY o, item_id',
        d.order_column, d.reviews,
        CASE WHEN d.items IS NULL THEN ''
             ELSE format(' AND EXISTS (SELECT 1 FROM %s i WHERE i.item_id = r.item_id)', d.items) END)
$$;
COMMENT ON FUNCTION isrf._history_sql(isrf.datasets) IS 'internal: SQL of one user''s current, cleaned history in a dataset''s reviews table';

-- Whether one user's rows of a reviews table are found through an index:
-- an index of the table leads with user_id; for a partitioned table, one of
-- the table (which each partition then has) or one of every partition; a
-- foreign table is taken to be indexed where it lives (postgres_fdw sends
-- the user_id condition there).  PL/pgSQL, so that its plans are kept: it
-- runs at every serving call.
CREATE FUNCTION isrf._user_indexed(rel regclass) RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    kind "char";
BEGIN
    SELECT c.relkind INTO kind FROM pg_catalog.pg_class c WHERE c.oid = rel;
    IF kind = 'f' OR EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                               JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                              WHERE i.indrelid = rel AND a.attname = 'user_id') THEN
        RETURN true;
    END IF;
    RETURN kind = 'p' AND NOT EXISTS (
        SELECT 1 FROM pg_catalog.pg_partition_tree(rel) t JOIN pg_catalog.pg_class l ON l.oid = t.relid
         WHERE t.isleaf AND l.relkind <> 'f'
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                             JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                            WHERE i.indrelid = t.relid AND a.attname = 'user_id'));
END
$$;
COMMENT ON FUNCTION isrf._user_indexed(regclass) IS 'internal: is an index there to find one user''s rows of a reviews table (plain, partitioned or foreign)';

-- What serving a model version needs of its dataset: the history query, the
-- reviews table, and whether an index on it leads with user_id (all NULL
-- when the version is not there).  PL/pgSQL, so that its plans are kept:
-- it runs at every serving call.
CREATE FUNCTION isrf._serving_source(model text, version integer,
    OUT history_sql text, OUT reviews regclass, OUT has_index boolean)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    ds text;
    d isrf.datasets;
BEGIN
    SELECT m.dataset INTO ds FROM isrf.models m
     WHERE m.name = _serving_source.model AND m.version = _serving_source.version;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    d := isrf._dataset(ds);
    history_sql := isrf._history_sql(d);
    reviews := d.reviews;
    has_index := isrf._user_indexed(d.reviews);
END
$$;
COMMENT ON FUNCTION isrf._serving_source(text, integer) IS 'internal: a model version''s history query, reviews table and whether an index serves it';

CREATE FUNCTION isrf.drop_model(name text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF name IS NULL THEN
        RAISE EXCEPTION 'model name must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM isrf._catalogue('_cat_model_drop', name);
END
$$;
COMMENT ON FUNCTION isrf.drop_model(text) IS 'Drop every version of a model, its stored bytes and its group graph';

----------------------------------------------------------------------------
-- Deploying, rolling back, the deploy policy and grants of a model (its
-- owner or a superuser; on a hot standby these are 25006 like any write)
----------------------------------------------------------------------------

-- Each is a call of the gate: the writer checks its arguments and the role.
CREATE FUNCTION isrf.deploy(model text, version integer, reason text DEFAULT NULL) RETURNS integer
LANGUAGE sql
SET search_path = pg_catalog, pg_temp AS $$
    SELECT isrf._catalogue('_cat_deploy', model, version, reason);
    SELECT version;
$$;
COMMENT ON FUNCTION isrf.deploy(text, integer, text)
    IS 'Deploy a ready version of a model (its owner or a superuser): every isrf call after the commit serves it; recorded in isrf.deployments; returns the version';

CREATE FUNCTION isrf.rollback(model text, reason text DEFAULT NULL) RETURNS integer
LANGUAGE sql
SET search_path = pg_catalog, pg_temp AS $$
    SELECT isrf._catalogue('_cat_rollback', model, reason);
    SELECT m.version FROM isrf.models m WHERE m.name = rollback.model AND m.deployed;
$$;
COMMENT ON FUNCTION isrf.rollback(text, text)
    IS 'Undo the latest deployment of a model not undone yet (its owner or a superuser): the version deployed before it is deployed again; called again, goes further back; returns the version now deployed';

CREATE FUNCTION isrf.set_deploy_policy(model text, policy text) RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp AS $$
    SELECT isrf._catalogue('_cat_set_policy', model, policy);
$$;
COMMENT ON FUNCTION isrf.set_deploy_policy(text, text)
    IS 'Set how trainings of a model deploy (its owner or a superuser): always (the default), or if_better: only when the new version''s validation NDCG@10 is at least the deployed version''s';

CREATE FUNCTION isrf.grant_model(model text, role name) RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp AS $$
    SELECT isrf._catalogue('_cat_grant', model, role);
$$;
COMMENT ON FUNCTION isrf.grant_model(text, name)
    IS 'Let a role (and the roles that inherit its privileges, or public) use a model: see its rows, serve and evaluate it (its owner or a superuser); serving still reads the dataset''s reviews table with the caller''s rights';

CREATE FUNCTION isrf.revoke_model(model text, role name) RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp AS $$
    SELECT isrf._catalogue('_cat_revoke', model, role);
$$;
COMMENT ON FUNCTION isrf.revoke_model(text, name)
    IS 'Take back a grant of a model (its owner or a superuser); the role''s next call no longer finds the model';

CREATE FUNCTION isrf.model_check(model text DEFAULT NULL,
    OUT model_name text, OUT version integer, OUT bytes bigint, OUT users integer,
    OUT items integer, OUT dim integer, OUT group_edges bigint)
RETURNS record
AS 'MODULE_PATHNAME', 'isrf_model_check'
LANGUAGE C STABLE;
COMMENT ON FUNCTION isrf.model_check(text)
    IS 'Read the deployed version of a model back and verify its format and checksums; returns its sizes';

----------------------------------------------------------------------------
-- Group interests, for analysts
----------------------------------------------------------------------------


CREATE FUNCTION isrf_group_neighbours(user_id bigint, k integer, model text DEFAULT NULL)
RETURNS TABLE (neighbour_id bigint, similarity real)
AS 'MODULE_PATHNAME', 'isrf_group_neighbours'
LANGUAGE C VOLATILE PARALLEL RESTRICTED ROWS 10;
COMMENT ON FUNCTION isrf_group_neighbours(bigint, integer, text)
    IS 'The user''s group: the model''s users most similar by semantic features to the user as their history is now (their description''s feature where they have one), most similar first, never the user';

CREATE FUNCTION isrf_group_interests(user_id bigint, k integer, model text DEFAULT NULL)
RETURNS TABLE (item_id bigint, support integer, score real)
AS 'MODULE_PATHNAME', 'isrf_group_interests'
LANGUAGE C VOLATILE PARALLEL RESTRICTED ROWS 10;
COMMENT ON FUNCTION isrf_group_interests(bigint, integer, text)
    IS 'Items the user''s group interacted with that the user has not (as the user''s history is now): support = neighbours who did, score = their share of the group''s similarity';

----------------------------------------------------------------------------
-- Serving and evaluation
----------------------------------------------------------------------------

CREATE FUNCTION isrf_recommend(user_id bigint, k integer, model text DEFAULT NULL)
RETURNS TABLE (rank integer, item_id bigint, score real, cold_start boolean)
AS 'MODULE_PATHNAME', 'isrf_recommend'
LANGUAGE C VOLATILE PARALLEL RESTRICTED ROWS 10;
COMMENT ON FUNCTION isrf_recommend(bigint, integer, text)
    IS 'Top-k next items for a user by the ranking score (dense head and the terms chosen on validation, plus the generative head''s beam bonus where validation kept it), its best 100 reordered by the rerank network where one was kept; history excluded, scores never rise down the list; unknown users get a cold-start answer';

CREATE FUNCTION isrf_recommend_items(items bigint[], k integer, model text DEFAULT NULL)
RETURNS TABLE (rank integer, item_id bigint, score real)
AS 'MODULE_PATHNAME', 'isrf_recommend_items'
LANGUAGE C VOLATILE PARALLEL RESTRICTED ROWS 10;
COMMENT ON FUNCTION isrf_recommend_items(bigint[], integer, text)
    IS 'Top-k next items after an ordered list of items (an anonymous session, a basket), ranked as isrf_recommend ranks a history, the listed items excluded; unknown items skipped and counted in a NOTICE';

CREATE FUNCTION isrf_rank(user_id bigint, candidates bigint[], model text DEFAULT NULL)
RETURNS TABLE (rank integer, item_id bigint, score real)
AS 'MODULE_PATHNAME', 'isrf_rank'
LANGUAGE C VOLATILE PARALLEL RESTRICTED ROWS 100;
COMMENT ON FUNCTION isrf_rank(bigint, bigint[], text)
    IS 'Score every candidate item for a user (direct recommendation), best first; unknown items last with a NULL score';

CREATE FUNCTION isrf_evaluate(model text DEFAULT NULL)
RETURNS TABLE (task text, method text, hr_5 real, ndcg_5 real, hr_10 real, ndcg_10 real, users integer)
AS 'MODULE_PATHNAME', 'isrf_evaluate'
LANGUAGE C VOLATILE PARALLEL RESTRICTED ROWS 8;
COMMENT ON FUNCTION isrf_evaluate(text)
    IS 'HR@5, NDCG@5, HR@10, NDCG@10 of the model and the popularity, Markov + item-kNN and LightGCN baselines, sequential (full ranking) and direct (99 negatives) tasks, on the model''s leak-free split';

CREATE FUNCTION isrf._server_status()
RETURNS TABLE (database text, pid integer, device text, models text, requests bigint, batches bigint,
               errors bigint, mean_latency_ms real, max_latency_ms real, max_batch integer)
AS 'MODULE_PATHNAME', 'isrf_status'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION isrf._server_status()
    IS 'internal: the model servers of this node: database, process, device, loaded models, requests answered, batches, errors and latency';

-- Which node this is, and on a standby how far its copy of the catalogue
-- (of everything) lags: 0 when it has replayed all the WAL it received,
-- else the time since the last transaction it replayed committed on the
-- primary.
CREATE FUNCTION isrf._node(OUT node text, OUT replay_lag interval)
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN pg_is_in_recovery() THEN 'standby' ELSE 'primary' END,
           CASE WHEN NOT pg_is_in_recovery() THEN NULL
                WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN interval '0'
                ELSE greatest(clock_timestamp() - pg_last_xact_replay_timestamp(), interval '0') END
$$;
COMMENT ON FUNCTION isrf._node() IS 'internal: primary or standby, and a standby''s replay lag (0 when it replayed all it received)';

CREATE FUNCTION isrf_status()
RETURNS TABLE (database text, pid integer, device text, models text, requests bigint, batches bigint,
               errors bigint, mean_latency_ms real, max_latency_ms real, max_batch integer,
               node text, replay_lag interval)
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp AS $$
    SELECT s.*, n.node, n.replay_lag FROM isrf._server_status() s, isrf._node() n
$$;
COMMENT ON FUNCTION isrf_status()
    IS 'The model servers of this node: database, process, device, loaded models, requests answered, batches, errors, latency; the node (primary or standby) and on a standby its replay lag';

CREATE FUNCTION isrf.server_slots()
RETURNS TABLE (state text, slots integer)
AS 'MODULE_PATHNAME', 'isrf_server_slots'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION isrf.server_slots()
    IS 'The model servers'' request slots (shared by every database) by state: free, filling, posted, taken, done, abandoned, lost';

----------------------------------------------------------------------------
-- LLM reasoning: description jobs run by a background worker through an
-- OpenAI-compatible endpoint, and embedding features for training
-- (src/pg/llm_*.c; settings isrf.llm_*)
----------------------------------------------------------------------------

-- The prompts of the reasoning steps, in one place.  Placeholders: {item}
-- the item's attributes ("column: value" lines of the items table), {items}
-- the user's train items (most recent last) with their descriptions,
-- {positive} and {negative} the answers of the steps before.  Each job
-- stores the prompts it used; options => '{"prompts": {...}}' overrides them.
CREATE VIEW isrf.llm_prompts AS
    SELECT * FROM (VALUES
        ('system', 'both', 0, NULL::text,
         $p$You are an analyst for a recommender system. Answer concisely, in plain text, without lists or headings.$p$,
         'The system message of every request'),
        ('item_positive', 'items', 1, 'positive',
         $p$Here is an item from a catalogue:
{item}

What kind of user would like this item, and why? Answer in two or three sentences that name the user's interests and the characteristics of the item that appeal to them.$p$,
         'Forward reasoning over the item''s attributes: who would like it, and why'),
        ('item_negative', 'items', 2, 'negative',
         $p$Here is an item from a catalogue:
{item}

The users who would like it: {positive}

Now reason the other way: what kind of user would dislike this item, and why? Answer in two or three sentences.$p$,
         'Backward reasoning, conditioned on the forward answer: who would dislike it'),
        ('item_feature', 'items', 3, 'feature',
         $p$Here is an item from a catalogue:
{item}

Who likes it: {positive}
Who dislikes it: {negative}

List the key features of this item as one line of comma-separated keywords.$p$,
         'The item''s key features, given both answers'),
        ('user_positive', 'users', 1, 'positive',
         $p$A user chose these items, most recent last, each with what is known about it:
{items}

What does this user like, and why? Answer in two or three sentences about their interests.$p$,
         'The user''s interests, reasoned from the descriptions of their train items'),
        ('user_negative', 'users', 2, 'negative',
         $p$A user chose these items, most recent last:
{items}

What they like: {positive}

What would this user dislike, and why? Answer in two or three sentences.$p$,
         'What the user would dislike, conditioned on their interests'),
        ('user_preference', 'users', 3, 'preference',
         $p$A user likes: {positive}
The user dislikes: {negative}

Summarise this user's preferences as one line of comma-separated keywords.$p$,
         'The user''s preference profile, given both answers')
    ) AS p(name, kind, step, writes, template, description);
COMMENT ON VIEW isrf.llm_prompts IS 'The prompts of the LLM reasoning steps (isrf.describe_items, isrf.describe_users): name, kind, step, column written, template, purpose';
GRANT SELECT ON isrf.llm_prompts TO PUBLIC;

-- Jobs of isrf.describe_items / isrf.describe_users; isrf.llm_jobs shows them.
CREATE TABLE isrf.llm_job_state (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner            name NOT NULL DEFAULT current_user,
    dataset          text NOT NULL,
    kind             text NOT NULL CHECK (kind IN ('items', 'users')),
    target           regclass,
    target_name      text NOT NULL,
    options          jsonb NOT NULL,
    endpoint         text,
    state            text NOT NULL DEFAULT 'queued'
                     CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    cancel_requested boolean NOT NULL DEFAULT false,
    pid              integer,
    total            bigint NOT NULL DEFAULT 0,
    skipped          bigint NOT NULL DEFAULT 0,
    done             bigint NOT NULL DEFAULT 0,
    failed           bigint NOT NULL DEFAULT 0,
    requests         bigint NOT NULL DEFAULT 0,
    failed_attempts  bigint NOT NULL DEFAULT 0,
    tokens           bigint NOT NULL DEFAULT 0,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    updated_at       timestamptz,
    finished_at      timestamptz
);
COMMENT ON TABLE isrf.llm_job_state IS 'LLM description jobs: target table, effective settings and prompts (never the API key), state and counters; see the view isrf.llm_jobs';
ALTER TABLE isrf.llm_job_state ENABLE ROW LEVEL SECURITY;
CREATE POLICY llm_job_state_owner ON isrf.llm_job_state
    USING (owner = current_user) WITH CHECK (owner = current_user);
GRANT SELECT ON isrf.llm_job_state TO PUBLIC;
-- One job describes a dataset's items (or users) at a time.  Rows enter
-- this set only through isrf._cat_llm_job_put(), for a dataset the role
-- owns, so no role can hold another's place; a second start waits for the
-- first's transaction and then fails, and a job whose worker is gone is
-- marked failed by the next start (see isrf._cat_llm_job_put).
CREATE UNIQUE INDEX llm_job_state_active ON isrf.llm_job_state (dataset, kind)
    WHERE state IN ('queued', 'running');
COMMENT ON INDEX isrf.llm_job_state_active IS 'At most one queued or running LLM job per dataset and kind';

-- Rows a job gave up on, with why (after its retries).
CREATE TABLE isrf.llm_job_errors (
    job      bigint NOT NULL REFERENCES isrf.llm_job_state (id) ON DELETE CASCADE,
    row_id   bigint NOT NULL,
    step     text NOT NULL,
    attempts integer NOT NULL,
    error    text NOT NULL,
    at       timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX llm_job_errors_job ON isrf.llm_job_errors (job);
COMMENT ON TABLE isrf.llm_job_errors IS 'Items or users an LLM job could not describe: the step (prompt name, or write), attempts made and the last error';
ALTER TABLE isrf.llm_job_errors ENABLE ROW LEVEL SECURITY;
CREATE POLICY llm_job_errors_owner ON isrf.llm_job_errors
    USING (EXISTS (SELECT 1 FROM isrf.llm_job_state j WHERE j.id = llm_job_errors.job));
GRANT SELECT ON isrf.llm_job_errors TO PUBLIC;

-- Progress of every job, from any session (each role sees its own).
CREATE VIEW isrf.llm_jobs WITH (security_invoker = true) AS
    SELECT j.id, j.owner, j.dataset, j.kind, j.target_name AS "table",
           CASE WHEN j.state IN ('queued', 'running') AND NOT EXISTS (
                    SELECT 1 FROM pg_catalog.pg_stat_activity a
                     WHERE a.pid = j.pid AND a.backend_type = 'isrf llm job')
                THEN 'interrupted' ELSE j.state END AS state,
           j.done, j.failed, j.total, j.skipped, j.requests, j.failed_attempts, j.tokens,
           r.rate,
           CASE WHEN j.state = 'running' AND r.rate > 0
                THEN make_interval(secs => (j.total - j.done - j.failed) / r.rate) END AS eta,
           j.last_error, j.options ->> 'model' AS model, j.endpoint,
           j.created_at, j.started_at, j.finished_at
      FROM isrf.llm_job_state j,
           LATERAL (SELECT ((j.done + j.failed) / greatest(extract(epoch FROM
                        coalesce(j.finished_at, clock_timestamp()) - j.started_at), 0.001))::real AS rate) r;
COMMENT ON VIEW isrf.llm_jobs IS 'LLM description jobs: state (interrupted: its worker is gone), rows done / failed / total, requests, failed attempts, tokens, rows per second, ETA, last error';
GRANT SELECT ON isrf.llm_jobs TO PUBLIC;

-- Embeddings fetched from the endpoint for training (item_features =
-- 'embeddings'), by embedding model and SHA-256 of the input text.
CREATE TABLE isrf.llm_embeddings (
    owner      name NOT NULL DEFAULT current_user,
    model      text NOT NULL,
    hash       bytea NOT NULL,
    embedding  real[] NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (owner, model, hash)
);
COMMENT ON TABLE isrf.llm_embeddings IS 'Cache of embeddings from the LLM endpoint: (role, embedding model, SHA-256 of the UTF-8 text) -> vector, so retraining does not call the endpoint again';
ALTER TABLE isrf.llm_embeddings ENABLE ROW LEVEL SECURITY;
CREATE POLICY llm_embeddings_owner ON isrf.llm_embeddings
    USING (owner = current_user) WITH CHECK (owner = current_user);
GRANT SELECT ON isrf.llm_embeddings TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('isrf.llm_embeddings', '');

-- The catalogue writers of the LLM step (see "Catalogue writers" above):
-- run as the extension's owner through the gate of src/pg/catalogue.c on
-- behalf of the acting role, which they check.  Those SQL may reach through
-- isrf._catalogue() bind a job's table, cancel a job and empty the
-- embedding cache; the others are called by the C code alone: starting a
-- job (src/pg/llm_job.c, isrf._llm_launch), its worker's progress (the
-- worker runs as the job's owner, so the acting role is that owner), and
-- the embedding cache of a training run (src/pg/llm_embed.c).

-- Bind rel as the item (kind 'items') or user ('users') descriptions of a
-- role's dataset: a table of the shape a job writes, that the role can read.
CREATE FUNCTION isrf._cat_llm_bind(invoker oid, dataset text, kind text, rel regclass) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    col name := CASE kind WHEN 'items' THEN 'item_descriptions' WHEN 'users' THEN 'user_descriptions' END;
    d_owner name;
    cols name[];
    problem text;
BEGIN
    IF col IS NULL THEN
        RAISE EXCEPTION 'kind must be items or users, not %', coalesce(kind, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT d.owner INTO d_owner FROM isrf.datasets d WHERE d.name = _cat_llm_bind.dataset FOR NO KEY UPDATE;
    IF NOT FOUND OR NOT isrf._cat_may(invoker, d_owner) THEN
        RAISE EXCEPTION 'dataset "%" does not exist', dataset USING ERRCODE = 'undefined_object';
    END IF;
    IF rel IS NULL OR NOT has_table_privilege(invoker, rel, 'SELECT') THEN
        RAISE EXCEPTION 'permission denied for table %', coalesce(rel::text, 'NULL')
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    SELECT array_agg(p.writes ORDER BY p.step) INTO cols FROM isrf.llm_prompts p
     WHERE p.kind = _cat_llm_bind.kind AND p.step > 0;
    problem := isrf._llm_target_problem(rel, CASE kind WHEN 'items' THEN 'item_id' ELSE 'user_id' END, cols);
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION 'table % cannot take the descriptions: %', rel, problem USING ERRCODE = 'wrong_object_type';
    END IF;
    EXECUTE format('UPDATE isrf.datasets d SET %I = $1, bound_names = d.bound_names || jsonb_build_object(%L, $1::text)'
                   ' WHERE d.name = $2', col, col)
        USING rel, dataset;
END
$$;
COMMENT ON FUNCTION isrf._cat_llm_bind(oid, text, text, regclass)
    IS 'internal: bind an LLM job''s table as the item or user descriptions of a role''s dataset';

-- A job's row, for a dataset the role owns (a superuser: any) and a table it
-- can read and insert into; returns its id.  Jobs whose worker is gone are
-- marked failed first; a role runs at most 8 jobs at once; a second job on
-- the same dataset and kind is refused (the index llm_job_state_active).
CREATE FUNCTION isrf._cat_llm_job_put(invoker oid, dataset text, kind text, target regclass,
                                      options jsonb, endpoint text) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    me name := (SELECT r.rolname FROM pg_roles r WHERE r.oid = invoker);
    d_owner name;
    running bigint;
    job bigint;
BEGIN
    IF kind IS NULL OR kind NOT IN ('items', 'users') THEN
        RAISE EXCEPTION 'kind must be items or users, not %', coalesce(kind, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- starts on one dataset take turns (as its binding will: no deadlock)
    SELECT d.owner INTO d_owner FROM isrf.datasets d WHERE d.name = _cat_llm_job_put.dataset FOR NO KEY UPDATE;
    IF NOT FOUND OR NOT isrf._cat_may(invoker, d_owner) THEN
        RAISE EXCEPTION 'dataset "%" does not exist', dataset USING ERRCODE = 'undefined_object';
    END IF;
    IF target IS NULL OR NOT (has_table_privilege(invoker, target, 'SELECT')
                              AND has_table_privilege(invoker, target, 'INSERT')) THEN
        RAISE EXCEPTION 'permission denied for table %', coalesce(target::text, 'NULL')
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'The job reads and inserts into the table with the rights of the role that starts it.';
    END IF;
    IF jsonb_typeof(options) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'options must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
    END IF;

    UPDATE isrf.llm_job_state j
       SET state = 'failed', finished_at = clock_timestamp(),
           last_error = coalesce(j.last_error || '; ', '') || 'interrupted: its worker ended'
     WHERE j.dataset = _cat_llm_job_put.dataset AND j.kind = _cat_llm_job_put.kind AND j.state IN ('queued', 'running')
       AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = j.pid AND a.backend_type = 'isrf llm job');

    -- background workers are a resource of the whole cluster
    SELECT count(*) INTO running FROM isrf.llm_job_state j
     WHERE j.owner = me AND j.state IN ('queued', 'running')
       AND (j.pid IS NULL OR EXISTS (SELECT 1 FROM pg_stat_activity a
                                      WHERE a.pid = j.pid AND a.backend_type = 'isrf llm job'));
    IF running >= 8 THEN
        RAISE EXCEPTION 'role "%" already runs 8 LLM jobs', me USING ERRCODE = 'configuration_limit_exceeded',
            HINT = 'Wait for one to end, or cancel one with isrf.cancel_llm_job().';
    END IF;

    BEGIN
        INSERT INTO isrf.llm_job_state (owner, dataset, kind, target, target_name, options, endpoint)
        VALUES (me, dataset, kind, target, target::text, options, endpoint)
        RETURNING id INTO job;
    EXCEPTION WHEN unique_violation THEN
        SELECT j.id INTO job FROM isrf.llm_job_state j
         WHERE j.dataset = _cat_llm_job_put.dataset AND j.kind = _cat_llm_job_put.kind
           AND j.state IN ('queued', 'running');
        RAISE EXCEPTION 'job % is already describing the % of dataset "%"', job, kind, dataset
            USING ERRCODE = 'object_in_use',
                  HINT = format('Watch it in isrf.llm_jobs, or stop it with isrf.cancel_llm_job(%s).', job);
    END;
    RETURN job;
END
$$;
COMMENT ON FUNCTION isrf._cat_llm_job_put(oid, text, text, regclass, jsonb, text)
    IS 'internal: record a role''s new LLM job on its own dataset, one per dataset and kind at a time';

-- The writers of a job's worker act only on a job of the acting role's own
-- (the worker runs as the job's owner); this one finds it, locked.
CREATE FUNCTION isrf._cat_llm_job_own(invoker oid, job bigint) RETURNS isrf.llm_job_state
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    j isrf.llm_job_state;
BEGIN
    SELECT * INTO j FROM isrf.llm_job_state s
     WHERE s.id = _cat_llm_job_own.job
       AND s.owner = (SELECT r.rolname FROM pg_roles r WHERE r.oid = invoker)
       FOR UPDATE;
    RETURN j;    -- all NULL when there is none
END
$$;
COMMENT ON FUNCTION isrf._cat_llm_job_own(oid, bigint) IS 'internal: a job of the acting role''s own, locked (NULLs if none)';

-- The worker's pid, recorded by the transaction that starts the job.
CREATE FUNCTION isrf._cat_llm_job_started(invoker oid, job bigint, pid integer) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF (isrf._cat_llm_job_own(invoker, job)).state IS DISTINCT FROM 'queued' THEN
        RAISE EXCEPTION 'LLM job % is not waiting for a worker', job USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    UPDATE isrf.llm_job_state s SET pid = _cat_llm_job_started.pid WHERE s.id = job;
END
$$;
COMMENT ON FUNCTION isrf._cat_llm_job_started(oid, bigint, integer) IS 'internal: record the worker of a role''s new LLM job';

-- The worker claims its job (queued -> running); false when it is not its
-- to run (over, or another worker's).
CREATE FUNCTION isrf._cat_llm_job_claim(invoker oid, job bigint, pid integer, endpoint text) RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    j isrf.llm_job_state := isrf._cat_llm_job_own(invoker, job);
BEGIN
    IF j.state IS DISTINCT FROM 'queued' OR coalesce(j.pid, _cat_llm_job_claim.pid) <> _cat_llm_job_claim.pid THEN
        RETURN false;
    END IF;
    UPDATE isrf.llm_job_state s
       SET state = 'running', pid = _cat_llm_job_claim.pid, endpoint = _cat_llm_job_claim.endpoint,
           started_at = clock_timestamp(), updated_at = clock_timestamp()
     WHERE s.id = job;
    RETURN true;
END
$$;
COMMENT ON FUNCTION isrf._cat_llm_job_claim(oid, bigint, integer, text) IS 'internal: a worker starts running a role''s LLM job';

-- The worker's progress: counters, the rows given up on (arrays of equal
-- length), and the final state when it ends.  Returns whether to stop: a
-- cancel was asked for, or the job's row is gone.
CREATE FUNCTION isrf._cat_llm_job_flush(invoker oid, job bigint, done bigint, failed bigint, total bigint,
                                        skipped bigint, requests bigint, failed_attempts bigint, tokens bigint,
                                        last_error text, final_state text, error_rows bigint[],
                                        error_steps text[], error_attempts integer[], errors text[]) RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    j isrf.llm_job_state := isrf._cat_llm_job_own(invoker, job);
BEGIN
    IF j.id IS NULL THEN
        RETURN true;
    END IF;
    INSERT INTO isrf.llm_job_errors (job, row_id, step, attempts, error)
    SELECT _cat_llm_job_flush.job, e.r, e.s, e.a, e.m
      FROM unnest(error_rows, error_steps, error_attempts, errors) AS e(r, s, a, m);
    UPDATE isrf.llm_job_state s
       SET done = _cat_llm_job_flush.done, failed = _cat_llm_job_flush.failed, total = _cat_llm_job_flush.total,
           skipped = _cat_llm_job_flush.skipped, requests = _cat_llm_job_flush.requests,
           failed_attempts = _cat_llm_job_flush.failed_attempts, tokens = _cat_llm_job_flush.tokens,
           last_error = _cat_llm_job_flush.last_error, state = coalesce(final_state, s.state),
           updated_at = clock_timestamp(),
           finished_at = CASE WHEN final_state IS NULL THEN NULL ELSE clock_timestamp() END
     WHERE s.id = job;
    RETURN j.cancel_requested;
END
$$;
COMMENT ON FUNCTION isrf._cat_llm_job_flush(oid, bigint, bigint, bigint, bigint, bigint, bigint, bigint, bigint,
                                            text, text, bigint[], text[], integer[], text[])
    IS 'internal: record the progress (and the end) of a role''s LLM job and the rows it gave up on';

-- Why a job ended early (state failed or cancelled), if it has not ended.
CREATE FUNCTION isrf._cat_llm_job_end(invoker oid, job bigint, state text, message text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF state NOT IN ('failed', 'cancelled') THEN
        RAISE EXCEPTION 'an LLM job ends failed or cancelled, not %', state USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF (isrf._cat_llm_job_own(invoker, job)).state IN ('queued', 'running') THEN
        UPDATE isrf.llm_job_state s
           SET state = _cat_llm_job_end.state, last_error = message,
               finished_at = clock_timestamp(), updated_at = clock_timestamp()
         WHERE s.id = job;
    END IF;
END
$$;
COMMENT ON FUNCTION isrf._cat_llm_job_end(oid, bigint, text, text) IS 'internal: record why a role''s LLM job ended early';

-- Stop a job of the role's (a superuser: any): its worker stops within a
-- moment of the commit; a job without a worker is cancelled at once.
CREATE FUNCTION isrf._cat_llm_job_cancel(invoker oid, job bigint) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    j isrf.llm_job_state;
BEGIN
    SELECT * INTO j FROM isrf.llm_job_state s WHERE s.id = _cat_llm_job_cancel.job FOR UPDATE;
    IF NOT FOUND OR NOT isrf._cat_may(invoker, j.owner) THEN
        RAISE EXCEPTION 'LLM job % does not exist', job USING ERRCODE = 'undefined_object',
            HINT = 'isrf.llm_jobs lists your jobs.';
    END IF;
    IF j.state NOT IN ('queued', 'running') THEN
        RETURN;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = j.pid AND a.backend_type = 'isrf llm job') THEN
        UPDATE isrf.llm_job_state s SET cancel_requested = true WHERE s.id = job;
    ELSE
        UPDATE isrf.llm_job_state s SET cancel_requested = true, state = 'cancelled',
               finished_at = clock_timestamp() WHERE s.id = job;
    END IF;
END
$$;
COMMENT ON FUNCTION isrf._cat_llm_job_cancel(oid, bigint) IS 'internal: ask a role''s LLM job to stop';

-- Cache the embeddings of texts (row i of vectors, dim floats each, is the
-- embedding of texts[i]) for the acting role; texts cached already stay.
CREATE FUNCTION isrf._cat_llm_embeddings_put(invoker oid, model text, texts text[], dim integer,
                                             vectors real[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF model IS NULL OR dim IS NULL OR dim < 1 OR texts IS NULL OR vectors IS NULL
       OR array_ndims(vectors) IS DISTINCT FROM 1 OR array_position(vectors, NULL) IS NOT NULL
       OR cardinality(vectors) <> cardinality(texts) * dim THEN
        RAISE EXCEPTION 'embeddings of % texts must be % x % numbers', cardinality(texts), cardinality(texts), dim
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO isrf.llm_embeddings (owner, model, hash, embedding)
    SELECT r.rolname, model, sha256(convert_to(t.txt, 'UTF8')),
           vectors[(t.i - 1) * dim + 1 : t.i * dim]
      FROM pg_roles r, unnest(texts) WITH ORDINALITY AS t(txt, i)
     WHERE r.oid = invoker AND t.txt IS NOT NULL
    ON CONFLICT DO NOTHING;
END
$$;
COMMENT ON FUNCTION isrf._cat_llm_embeddings_put(oid, text, text[], integer, real[])
    IS 'internal: cache embeddings from the LLM endpoint for the acting role';

-- Forget the cached embeddings of a role (the acting one when NULL; another
-- role's only for a superuser), of one embedding model or (NULL) all.
CREATE FUNCTION isrf._cat_llm_embeddings_drop(invoker oid, owner name, model text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    whose name := coalesce(owner, (SELECT r.rolname FROM pg_roles r WHERE r.oid = invoker));
BEGIN
    IF NOT isrf._cat_may(invoker, whose) THEN
        RAISE EXCEPTION 'permission denied for the cached embeddings of role "%"', whose
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    DELETE FROM isrf.llm_embeddings e
     WHERE e.owner = whose AND (_cat_llm_embeddings_drop.model IS NULL OR e.model = _cat_llm_embeddings_drop.model);
END
$$;
COMMENT ON FUNCTION isrf._cat_llm_embeddings_drop(oid, name, text)
    IS 'internal: forget a role''s cached embeddings (of one embedding model, or all)';

REVOKE ALL ON FUNCTION
    isrf._cat_llm_bind(oid, text, text, regclass),
    isrf._cat_llm_job_put(oid, text, text, regclass, jsonb, text),
    isrf._cat_llm_job_own(oid, bigint),
    isrf._cat_llm_job_started(oid, bigint, integer),
    isrf._cat_llm_job_claim(oid, bigint, integer, text),
    isrf._cat_llm_job_flush(oid, bigint, bigint, bigint, bigint, bigint, bigint, bigint, bigint,
                            text, text, bigint[], text[], integer[], text[]),
    isrf._cat_llm_job_end(oid, bigint, text, text),
    isrf._cat_llm_job_cancel(oid, bigint),
    isrf._cat_llm_embeddings_put(oid, text, text[], integer, real[]),
    isrf._cat_llm_embeddings_drop(oid, name, text)
FROM PUBLIC;

-- The session's isrf.llm_* settings a job takes (never the endpoint's key).
CREATE FUNCTION isrf._llm_session_settings() RETURNS jsonb
AS 'MODULE_PATHNAME', 'isrf_llm_session_settings'
LANGUAGE C STABLE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION isrf._llm_session_settings() IS 'internal: the isrf.llm_* settings of this session that a job uses, as JSON';

-- Record a job (isrf._cat_llm_job_put, through the catalogue gate) and
-- start its background worker, which waits for this transaction to commit
-- and runs as the calling role; returns the job's id.
CREATE FUNCTION isrf._llm_launch(dataset text, kind text, target regclass, options jsonb) RETURNS bigint
AS 'MODULE_PATHNAME', 'isrf_llm_launch'
LANGUAGE C VOLATILE STRICT
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION isrf._llm_launch(text, text, regclass, jsonb)
    IS 'internal: record an LLM job of the calling role and start its background worker; returns the job id';

-- One text per row of rel: "column: value" for each non-blank text column
-- (in column order) joined by sep; (id bigint, txt text).
CREATE FUNCTION isrf._llm_text_rows_sql(rel regclass, id_col name, cols name[], sep text) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp AS $$
    SELECT format('SELECT DISTINCT ON (%1$I) %1$I::bigint AS id, %2$s AS txt FROM %3$s WHERE %1$I IS NOT NULL',
                  id_col,
                  CASE WHEN cardinality(cols) = 0 THEN 'NULL::text'
                       ELSE format('nullif(concat_ws(%L, %s), %L)', sep,
                                   (SELECT string_agg(format('CASE WHEN btrim(%1$I::text) <> %2$L THEN %3$L || %1$I END',
                                                             c, '', c || ': '), ', ' ORDER BY n)
                                      FROM unnest(cols) WITH ORDINALITY AS u(c, n)), '') END,
                  rel)
$$;
COMMENT ON FUNCTION isrf._llm_text_rows_sql(regclass, name, name[], text) IS 'internal: SQL giving one "column: value" text per row of a table';

-- The SQL of an LLM job over a dataset: ids (id bigint) of every row to
-- describe, and inputs (id bigint, input text) of the rows whose ids are in
-- the bigint[] parameter $1: an item's attributes, or a user's most recent
-- max_items train items (all but the last two, DESIGN.md section 7) with
-- their attributes and descriptions.
CREATE FUNCTION isrf._llm_job_sql(d isrf.datasets, kind text, max_items integer,
                                  OUT ids_sql text, OUT input_sql text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    attrs text;
    descs text;
BEGIN
    attrs := CASE WHEN d.items IS NULL THEN NULL
                  ELSE isrf._llm_text_rows_sql(d.items, 'item_id', isrf._text_columns(d.items, d.text_columns), E'\n') END;
    IF kind = 'items' THEN
        ids_sql := format('SELECT DISTINCT item_id::bigint AS id FROM %s WHERE item_id IS NOT NULL', d.items);
        input_sql := format('SELECT a.id, coalesce(a.txt, %L || a.id) AS input FROM (%s) a WHERE a.id = ANY ($1)',
                            'item_id: ', attrs);
        RETURN;
    END IF;
    descs := CASE WHEN d.item_descriptions IS NULL THEN NULL
                  ELSE isrf._llm_text_rows_sql(d.item_descriptions, 'item_id',
                                               isrf._text_columns(d.item_descriptions, d.text_columns), E'\n') END;
    ids_sql := format('SELECT DISTINCT user_id AS id FROM (%s) c', isrf._interactions_sql(d));
    input_sql := format(
        'WITH c AS (SELECT * FROM (%1$s) c WHERE c.user_id = ANY ($1)),'
        ' n AS (SELECT user_id, count(*) AS len FROM c GROUP BY user_id),'
        ' t AS (SELECT c.user_id, c.item_id, c.ord, row_number() OVER (PARTITION BY c.user_id ORDER BY c.ord DESC) AS rk'
        '        FROM c JOIN n USING (user_id) WHERE c.ord <= CASE WHEN n.len >= 3 THEN n.len - 2 ELSE n.len END),'
        ' it AS (%2$s),'
        ' ds AS (%3$s)'
        ' SELECT t.user_id AS id,'
        '        string_agg(%4$L || coalesce(replace(it.txt, E''\n'', %5$L), %6$L || t.item_id)'
        '                   || coalesce(E''\n  '' || replace(ds.txt, E''\n'', E''\n  ''), %7$L), E''\n'' ORDER BY t.ord) AS input'
        '   FROM t LEFT JOIN it ON it.id = t.item_id LEFT JOIN ds ON ds.id = t.item_id'
        '  WHERE t.rk <= %8$s GROUP BY t.user_id',
        isrf._interactions_sql(d),
        coalesce(format('SELECT * FROM (%s) x WHERE x.id IN (SELECT item_id FROM t)', attrs),
                 'SELECT NULL::bigint AS id, NULL::text AS txt WHERE false'),
        coalesce(format('SELECT * FROM (%s) x WHERE x.id IN (SELECT item_id FROM t)', descs),
                 'SELECT NULL::bigint AS id, NULL::text AS txt WHERE false'),
        '- ', '; ', 'item_id: ', '', max_items);
END
$$;
COMMENT ON FUNCTION isrf._llm_job_sql(isrf.datasets, text, integer) IS 'internal: SQL of the rows an LLM job describes and of their prompt inputs';

-- Whether rel can take a job's output: an integer id column with a unique
-- index of its own and the three text columns; NULL if so, else why not.
CREATE FUNCTION isrf._llm_target_problem(rel regclass, id_col name, cols name[]) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    c name;
    t regtype;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_class k WHERE k.oid = rel AND k.relkind IN ('r', 'p')) THEN
        RETURN format('%s is not a table', rel);
    END IF;
    t := isrf._column_type(rel, id_col);
    IF t IS NULL OR NOT isrf._is_integer_type(t) THEN
        RETURN format('table %s has no integer column "%s"', rel, id_col);
    END IF;
    FOREACH c IN ARRAY cols LOOP
        t := isrf._column_type(rel, c);
        IF t IS NULL OR t NOT IN ('text'::regtype, 'varchar'::regtype) THEN
            RETURN format('table %s has no text column "%s"', rel, c);
        END IF;
    END LOOP;
    IF NOT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                    WHERE i.indrelid = rel AND i.indisunique AND i.indnkeyatts = 1 AND i.indpred IS NULL
                      AND i.indexprs IS NULL AND a.attname = id_col) THEN
        RETURN format('table %s has no unique index on "%s" alone', rel, id_col);
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION isrf._llm_target_problem(regclass, name, name[]) IS 'internal: why a table cannot take an LLM job''s descriptions (NULL: it can)';

-- Common body of isrf.describe_items and isrf.describe_users.
CREATE FUNCTION isrf._llm_start(dataset text, kind text, options jsonb) RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    d isrf.datasets;
    opts jsonb := coalesce(options, '{}');
    known text[] := ARRAY['table', 'model', 'concurrency', 'rate_limit', 'timeout_ms', 'connect_timeout_ms',
                          'max_retries', 'backoff_ms', 'max_tokens', 'temperature', 'prompts', 'limit',
                          'max_items', 'max_failures'];
    limits jsonb := '{"concurrency": [1, 256], "rate_limit": [0, 1000000], "timeout_ms": [100, 3600000],
                      "connect_timeout_ms": [100, 600000], "max_retries": [0, 100], "backoff_ms": [0, 600000],
                      "max_tokens": [1, 1000000], "temperature": [0, 2], "limit": [1, 1000000000000],
                      "max_items": [1, 1000], "max_failures": [1, 1000000000000]}';
    integral text[] := ARRAY['concurrency', 'timeout_ms', 'connect_timeout_ms', 'max_retries', 'backoff_ms',
                             'max_tokens', 'limit', 'max_items', 'max_failures'];
    id_col name := CASE kind WHEN 'items' THEN 'item_id' ELSE 'user_id' END;
    role text := CASE kind WHEN 'items' THEN 'item_descriptions' ELSE 'user_descriptions' END;
    cols name[];
    k text;
    v jsonb;
    prompts jsonb;
    bound regclass;
    tgt regclass;
    tgt_schema name;
    tgt_name name;
    parts text[];
    problem text;
    eff jsonb;
    job bigint;
BEGIN
    IF dataset IS NULL THEN
        RAISE EXCEPTION 'dataset name must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF jsonb_typeof(opts) <> 'object' THEN
        RAISE EXCEPTION 'options must be a JSON object' USING ERRCODE = 'invalid_parameter_value',
            HINT = 'For example: ''{"concurrency": 8, "table": "shop.item_llm"}''.';
    END IF;
    FOR k, v IN SELECT * FROM jsonb_each(opts) LOOP
        IF NOT k = ANY (known) THEN
            RAISE EXCEPTION 'unknown option "%"', k USING ERRCODE = 'invalid_parameter_value',
                HINT = 'Options: ' || array_to_string(known, ', ') || '.';
        END IF;
        IF limits ? k THEN
            IF jsonb_typeof(v) <> 'number' OR (k = ANY (integral) AND v::text::numeric <> trunc(v::text::numeric))
               OR v::text::numeric < (limits -> k ->> 0)::numeric OR v::text::numeric > (limits -> k ->> 1)::numeric THEN
                RAISE EXCEPTION 'option "%" must be % between % and %, not %', k,
                    CASE WHEN k = ANY (integral) THEN 'an integer' ELSE 'a number' END,
                    limits -> k ->> 0, limits -> k ->> 1, v
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
        ELSIF k IN ('table', 'model') AND (jsonb_typeof(v) <> 'string' OR v #>> '{}' = '') THEN
            RAISE EXCEPTION 'option "%" must be a non-empty string', k USING ERRCODE = 'invalid_parameter_value';
        ELSIF k = 'prompts' AND jsonb_typeof(v) <> 'object' THEN
            RAISE EXCEPTION 'option "prompts" must be an object of prompt name -> template'
                USING ERRCODE = 'invalid_parameter_value', HINT = 'isrf.llm_prompts lists the prompts.';
        END IF;
    END LOOP;
    IF kind = 'items' AND opts ? 'max_items' THEN
        RAISE EXCEPTION 'option "max_items" applies to isrf.describe_users only' USING ERRCODE = 'invalid_parameter_value';
    END IF;

    d := isrf._dataset(dataset);
    IF kind = 'items' AND d.items IS NULL THEN
        RAISE EXCEPTION 'dataset "%" has no items table to describe', dataset
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Bind one with isrf.create_dataset(..., items => ..., replace => true).';
    END IF;
    IF kind = 'users' AND d.items IS NULL AND d.item_descriptions IS NULL THEN
        RAISE EXCEPTION 'dataset "%" has neither items nor item descriptions to reason about its users from', dataset
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Bind an items table, or describe the items first with isrf.describe_items().';
    END IF;

    -- the prompts: ours, with the overrides
    SELECT jsonb_object_agg(p.name, p.template), array_agg(p.writes ORDER BY p.step) FILTER (WHERE p.step > 0)
      INTO prompts, cols
      FROM isrf.llm_prompts p WHERE p.kind IN (_llm_start.kind, 'both');
    FOR k, v IN SELECT * FROM jsonb_each(coalesce(opts -> 'prompts', '{}')) LOOP
        IF NOT prompts ? k THEN
            RAISE EXCEPTION 'unknown prompt "%" for isrf.describe_%', k, kind USING ERRCODE = 'invalid_parameter_value',
                HINT = 'Prompts of this job: ' || (SELECT string_agg(x, ', ' ORDER BY x) FROM jsonb_object_keys(prompts) x) || '.';
        END IF;
        IF jsonb_typeof(v) <> 'string' OR length(v #>> '{}') > 65536 OR (k <> 'system' AND btrim(v #>> '{}') = '') THEN
            RAISE EXCEPTION 'prompt "%" must be a non-empty string of at most 65536 characters', k
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END LOOP;
    prompts := prompts || coalesce(opts -> 'prompts', '{}');

    -- the table written: named, else the bound one if it fits, else <dataset>_<kind>_llm
    -- next to the reviews table
    bound := CASE kind WHEN 'items' THEN d.item_descriptions ELSE d.user_descriptions END;
    IF opts ? 'table' THEN
        BEGIN
            parts := parse_ident(opts ->> 'table');
        EXCEPTION WHEN OTHERS THEN
            RAISE EXCEPTION 'option "table" is not a valid table name: %', opts ->> 'table'
                USING ERRCODE = 'invalid_name';
        END;
        IF cardinality(parts) > 2 THEN
            RAISE EXCEPTION 'option "table" must be schema.table or table, not %', opts ->> 'table'
                USING ERRCODE = 'invalid_name';
        END IF;
        tgt_name := parts[cardinality(parts)];
        tgt_schema := CASE WHEN cardinality(parts) = 2 THEN parts[1] END;
    ELSIF bound IS NOT NULL AND isrf._llm_target_problem(bound, id_col, cols) IS NULL THEN
        SELECT n.nspname, c.relname INTO tgt_schema, tgt_name
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = bound;
    ELSE
        tgt_name := left(dataset, 50) || CASE kind WHEN 'items' THEN '_item_llm' ELSE '_user_llm' END;
    END IF;
    IF tgt_schema IS NULL THEN
        SELECT n.nspname INTO tgt_schema FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.oid = d.reviews;
    END IF;
    tgt := to_regclass(format('%I.%I', tgt_schema, tgt_name));
    IF tgt IS NULL THEN
        IF NOT has_schema_privilege(tgt_schema, 'CREATE') THEN
            RAISE EXCEPTION 'permission denied to create table %.% for the descriptions', quote_ident(tgt_schema), quote_ident(tgt_name)
                USING ERRCODE = 'insufficient_privilege',
                      HINT = 'Name a table in a schema you can create in: options => ''{"table": "schema.name"}''.';
        END IF;
        EXECUTE format('CREATE TABLE %I.%I (%I bigint PRIMARY KEY, %I text, %I text, %I text)',
                       tgt_schema, tgt_name, id_col, cols[1], cols[2], cols[3]);
        tgt := format('%I.%I', tgt_schema, tgt_name)::regclass;
        EXECUTE format('COMMENT ON TABLE %s IS %L', tgt,
                       format('LLM-written %s descriptions of dataset %s (isrf.describe_%s)',
                              rtrim(kind, 's'), dataset, kind));
    ELSE
        problem := isrf._llm_target_problem(tgt, id_col, cols);
        IF problem IS NOT NULL THEN
            RAISE EXCEPTION 'table % cannot take the descriptions: %', tgt, problem
                USING ERRCODE = 'wrong_object_type',
                      HINT = format('It needs an integer column %s with a unique index of its own and text columns %s; or name a new table with options => ''{"table": "..."}''.',
                                    id_col, array_to_string(cols, ', '));
        END IF;
        IF NOT (has_table_privilege(tgt, 'SELECT') AND has_table_privilege(tgt, 'INSERT')) THEN
            RAISE EXCEPTION 'permission denied for table %', tgt USING ERRCODE = 'insufficient_privilege',
                HINT = 'The job reads and inserts into the table with the rights of the role that starts it.';
        END IF;
    END IF;

    eff := isrf._llm_session_settings() || (opts - 'table' - 'prompts') || jsonb_build_object('prompts', prompts);
    IF coalesce(eff ->> 'model', '') = '' THEN
        RAISE EXCEPTION 'no chat model is set' USING ERRCODE = 'invalid_parameter_value',
            HINT = 'SET isrf.llm_model, or pass options => ''{"model": "..."}''.';
    END IF;
    eff := eff || jsonb_build_object('max_items', coalesce((opts ->> 'max_items')::integer, 20),
                                     'max_failures', coalesce((opts ->> 'max_failures')::bigint, 20),
                                     'backoff_ms', coalesce((opts ->> 'backoff_ms')::integer, 500),
                                     'max_tokens', coalesce((opts ->> 'max_tokens')::integer, 512),
                                     'temperature', coalesce((opts ->> 'temperature')::float8, 0));

    -- the job's row (one job per dataset and kind at a time) and its worker,
    -- which starts once this transaction commits
    job := isrf._llm_launch(dataset, kind, tgt, eff);

    -- the dataset uses the table from now on
    IF bound IS DISTINCT FROM tgt THEN
        IF bound IS NOT NULL THEN
            RAISE NOTICE 'dataset "%" now uses % as its % (was %)', dataset, tgt, role, bound;
        END IF;
        PERFORM isrf._catalogue('_cat_llm_bind', dataset, kind, tgt);
    END IF;
    RETURN job;
END
$$;
COMMENT ON FUNCTION isrf._llm_start(text, text, jsonb) IS 'internal: validate the options of an LLM job, prepare and bind its table, and start it';

CREATE FUNCTION isrf.describe_items(dataset text, options jsonb DEFAULT '{}') RETURNS bigint
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT isrf._llm_start(dataset, 'items', options) $$;
COMMENT ON FUNCTION isrf.describe_items(text, jsonb)
    IS 'Start a background job that writes positive, negative and feature descriptions of every item of a dataset through the LLM endpoint (three reasoning steps per item) into a table bound to the dataset; returns the job id (isrf.llm_jobs)';

CREATE FUNCTION isrf.describe_users(dataset text, options jsonb DEFAULT '{}') RETURNS bigint
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT isrf._llm_start(dataset, 'users', options) $$;
COMMENT ON FUNCTION isrf.describe_users(text, jsonb)
    IS 'Start a background job that writes positive, negative and preference descriptions of every user of a dataset, reasoned from the descriptions of their train items, into a table bound to the dataset; returns the job id (isrf.llm_jobs)';

CREATE FUNCTION isrf.cancel_llm_job(id bigint) RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    st text;
BEGIN
    IF id IS NULL THEN
        RAISE EXCEPTION 'job id must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    -- row-level security: only the owner (or a superuser) finds the row
    SELECT s.state INTO st FROM isrf.llm_job_state s WHERE s.id = cancel_llm_job.id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'LLM job % does not exist', id USING ERRCODE = 'undefined_object',
            HINT = 'isrf.llm_jobs lists your jobs.';
    END IF;
    IF st IN ('queued', 'running') THEN
        -- its worker stops within a moment of this transaction's commit
        PERFORM isrf._catalogue('_cat_llm_job_cancel', id);
        -- (the job may have ended meanwhile)
        SELECT s.state INTO st FROM isrf.llm_job_state s WHERE s.id = cancel_llm_job.id AND NOT s.cancel_requested;
        IF NOT FOUND THEN
            RETURN true;
        END IF;
    END IF;
    RAISE NOTICE 'LLM job % has already ended (%)', id, st;
    RETURN false;
END
$$;
COMMENT ON FUNCTION isrf.cancel_llm_job(bigint)
    IS 'Stop an LLM job (its owner or a superuser); rows already written stay, and the same call of describe_items/describe_users resumes after them';

CREATE FUNCTION isrf.drop_llm_embeddings(model text DEFAULT NULL, owner name DEFAULT NULL) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM isrf._catalogue('_cat_llm_embeddings_drop', owner, model);
END
$$;
COMMENT ON FUNCTION isrf.drop_llm_embeddings(text, name)
    IS 'Forget the embeddings cached for use_llm_embeddings: of one embedding model (NULL: all), of the calling role (another role''s: a superuser only)';
