/* isrf--0.1.sql: the isrf extension, version 0.1 */

\echo Use "CREATE EXTENSION isrf" to load this file. \quit

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
GRANT SELECT, INSERT, UPDATE, DELETE ON isrf.datasets TO PUBLIC;
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
COMMENT ON TABLE isrf.models IS 'Model versions: status, configuration, metrics and which version is deployed';

ALTER TABLE isrf.models ENABLE ROW LEVEL SECURITY;
CREATE POLICY models_owner ON isrf.models
    USING (owner = current_user) WITH CHECK (owner = current_user);
GRANT SELECT, INSERT, UPDATE, DELETE ON isrf.models TO PUBLIC;
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
GRANT SELECT, INSERT, DELETE ON isrf.model_chunks, isrf.group_edges, isrf.model_interactions TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('isrf.model_chunks', '');
SELECT pg_catalog.pg_extension_config_dump('isrf.group_edges', '');
SELECT pg_catalog.pg_extension_config_dump('isrf.model_interactions', '');

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
           (progress ->> 'epoch')::integer AS epoch, (progress ->> 'epochs')::integer AS epochs,
           (progress ->> 'loss')::real AS loss, (progress ->> 'val_hr10')::real AS val_hr10,
           (progress ->> 'val_ndcg10')::real AS val_ndcg10,
           make_interval(secs => (progress ->> 'eta_seconds')::float8) AS eta,
           (progress ->> 'nonfinite_steps')::bigint AS nonfinite_steps
      FROM isrf.models WHERE status = 'training';
COMMENT ON VIEW isrf.training_progress IS 'Training runs in progress: model, version, current stage, elapsed time, and after each epoch of the generative model its number, loss, validation HR@10 / NDCG@10, the time left at most, and steps skipped for a non-finite gradient';
GRANT SELECT ON isrf.training_progress TO PUBLIC;

----------------------------------------------------------------------------
-- Internal helpers (schema isrf, names starting with "_")
----------------------------------------------------------------------------

-- Whether a type is one of the integer types an id column may have.
CREATE FUNCTION isrf._is_integer_type(t regtype) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT t IN ('smallint'::regtype, 'integer'::regtype, 'bigint'::regtype)
$$;
COMMENT ON FUNCTION isrf._is_integer_type(regtype) IS 'internal: true for smallint, integer and bigint';

-- The type of a column of a relation, or NULL when it has none.
CREATE FUNCTION isrf._column_type(rel regclass, col name) RETURNS regtype
LANGUAGE sql STABLE STRICT AS $$
    SELECT a.atttypid::regtype FROM pg_catalog.pg_attribute a
     WHERE a.attrelid = rel AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped
$$;
COMMENT ON FUNCTION isrf._column_type(regclass, name) IS 'internal: type of a column, NULL if absent';

-- The text-typed feature columns of a relation, in column order, optionally
-- restricted to the names in wanted.
CREATE FUNCTION isrf._text_columns(rel regclass, wanted text[]) RETURNS name[]
LANGUAGE sql STABLE AS $$
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
LANGUAGE plpgsql STABLE AS $$
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
LANGUAGE plpgsql STABLE AS $$
DECLARE
    d isrf.datasets;
    role text;
BEGIN
    IF ds_name IS NULL THEN
        RAISE EXCEPTION 'dataset name must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
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
LANGUAGE sql STABLE AS $$
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
LANGUAGE plpgsql STABLE AS $$
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
LANGUAGE sql STABLE AS $$
    SELECT format('SELECT item_id::bigint, %1$I::real[] FROM %2$s WHERE item_id IS NOT NULL AND %1$I IS NOT NULL',
                  a.attname, d.items)
      FROM pg_catalog.pg_attribute a
     WHERE d.items IS NOT NULL AND a.attrelid = d.items AND a.attnum > 0 AND NOT a.attisdropped
       AND a.atttypid IN ('real[]'::regtype, 'double precision[]'::regtype)
     ORDER BY a.attnum LIMIT 1
$$;
COMMENT ON FUNCTION isrf._embedding_sql(isrf.datasets) IS 'internal: SQL of a dataset''s precomputed item embeddings, if any';

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
LANGUAGE plpgsql AS $$
DECLARE
    ord name := order_column;
    ord_type regtype;
    col text;
    found_col boolean;
    bound jsonb;
BEGIN
    IF name IS NULL THEN
        RAISE EXCEPTION 'dataset name must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF name !~ '^[A-Za-z_][A-Za-z0-9_]{0,62}$' THEN
        RAISE EXCEPTION 'invalid dataset name "%"', name
            USING ERRCODE = 'invalid_name',
                  HINT = 'Use 1 to 63 letters, digits and underscores, not starting with a digit.';
    END IF;
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

    IF EXISTS (SELECT 1 FROM isrf.datasets d WHERE d.name = create_dataset.name) THEN
        IF NOT replace THEN
            RAISE EXCEPTION 'dataset "%" already exists', name
                USING ERRCODE = 'duplicate_object',
                      HINT = 'Pass replace => true to rebind it.';
        END IF;
        UPDATE isrf.datasets d
           SET reviews = create_dataset.reviews, items = create_dataset.items,
               item_descriptions = create_dataset.item_descriptions,
               user_descriptions = create_dataset.user_descriptions,
               order_column = ord, text_columns = create_dataset.text_columns,
               bound_names = bound, created_at = now()
         WHERE d.name = create_dataset.name;
    ELSE
        BEGIN
            INSERT INTO isrf.datasets (name, reviews, items, item_descriptions, user_descriptions,
                                       order_column, text_columns, bound_names)
            VALUES (name, reviews, items, item_descriptions, user_descriptions,
                    ord, text_columns, bound);
        EXCEPTION WHEN unique_violation THEN
            RAISE EXCEPTION 'dataset "%" already exists and belongs to another role', name
                USING ERRCODE = 'duplicate_object';
        END;
    END IF;
END
$$;
COMMENT ON FUNCTION isrf.create_dataset(text, regclass, regclass, regclass, regclass, name, text[], boolean)
    IS 'Bind a dataset name to tables of reviews (required), items, item descriptions and user descriptions';

CREATE FUNCTION isrf.drop_dataset(name text, cascade boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    n_models integer;
BEGIN
    IF name IS NULL THEN
        RAISE EXCEPTION 'dataset name must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM isrf.datasets d WHERE d.name = drop_dataset.name) THEN
        RAISE EXCEPTION 'dataset "%" does not exist', name USING ERRCODE = 'undefined_object';
    END IF;
    SELECT count(DISTINCT m.name) INTO n_models FROM isrf.models m WHERE m.dataset = drop_dataset.name;
    IF n_models > 0 AND NOT coalesce(cascade, false) THEN
        RAISE EXCEPTION 'cannot drop dataset "%" because % model(s) depend on it', name, n_models
            USING ERRCODE = 'dependent_objects_still_exist',
                  HINT = 'Use cascade => true to drop the models too.';
    END IF;
    DELETE FROM isrf.models m WHERE m.dataset = drop_dataset.name;
    DELETE FROM isrf.datasets d WHERE d.name = drop_dataset.name;
END
$$;
COMMENT ON FUNCTION isrf.drop_dataset(text, boolean) IS 'Forget a dataset (its tables are untouched); cascade => true drops its models too';

CREATE FUNCTION isrf.dataset_stats(name text)
RETURNS TABLE (users bigint, items bigint, interactions bigint, catalogue_items bigint,
               items_with_text bigint, users_with_descriptions bigint, skipped jsonb)
LANGUAGE plpgsql STABLE AS $$
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
        EXECUTE format('SELECT count(*) FROM %s', d.items) INTO catalogue_items;
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
LANGUAGE plpgsql AS $$
DECLARE
    s name := name;
BEGIN
    IF name IS NULL THEN
        RAISE EXCEPTION 'dataset name must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF name !~ '^[A-Za-z_][A-Za-z0-9_]{0,62}$' THEN
        RAISE EXCEPTION 'invalid dataset name "%"', name
            USING ERRCODE = 'invalid_name',
                  HINT = 'Use 1 to 63 letters, digits and underscores, not starting with a digit.';
    END IF;
    IF NOT coalesce(replace, false) THEN
        IF EXISTS (SELECT 1 FROM isrf.datasets d WHERE d.name = create_synthetic_dataset.name) THEN
            RAISE EXCEPTION 'dataset "%" already exists', name
                USING ERRCODE = 'duplicate_object', HINT = 'Pass replace => true to generate it again.';
        END IF;
        IF to_regclass(format('%I.reviews', s)) IS NOT NULL THEN
            RAISE EXCEPTION 'table %.reviews already exists', quote_ident(s)
                USING ERRCODE = 'duplicate_table', HINT = 'Pass replace => true to replace the synthetic tables.';
        END IF;
    END IF;
    -- tables go into a schema named after the dataset, owned by the caller
    EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I', s);
    IF coalesce(replace, false) THEN
        EXECUTE format('DROP TABLE IF EXISTS %1$I.reviews, %1$I.items, %1$I.item_descriptions, %1$I.user_descriptions', s);
    END IF;
    EXECUTE format('CREATE TABLE %I.reviews AS SELECT * FROM isrf.synthetic_reviews($1, $2, $3, $4, $5)', s)
        USING users, items, groups, per_user, seed;
    EXECUTE format('CREATE TABLE %I.items AS SELECT * FROM isrf.synthetic_items($1, $2, $3, $4, $5)', s)
        USING users, items, groups, per_user, seed;
    EXECUTE format('CREATE TABLE %I.item_descriptions AS SELECT * FROM isrf.synthetic_item_descriptions($1, $2, $3, $4, $5)', s)
        USING users, items, groups, per_user, seed;
    EXECUTE format('CREATE TABLE %I.user_descriptions AS SELECT * FROM isrf.synthetic_users($1, $2, $3, $4, $5)', s)
        USING users, items, groups, per_user, seed;
    EXECUTE format('ALTER TABLE %1$I.items ADD PRIMARY KEY (item_id)', s);
    EXECUTE format('ALTER TABLE %1$I.user_descriptions ADD PRIMARY KEY (user_id)', s);
    PERFORM isrf.create_dataset(name,
        reviews => format('%I.reviews', s)::regclass,
        items => format('%I.items', s)::regclass,
        item_descriptions => format('%I.item_descriptions', s)::regclass,
        user_descriptions => format('%I.user_descriptions', s)::regclass,
        replace => coalesce(replace, false));
END
$$;
COMMENT ON FUNCTION isrf.create_synthetic_dataset(text, integer, integer, integer, integer, bigint, boolean)
    IS 'Generate a synthetic dataset with planted user groups into schema <name> and bind it';

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
LANGUAGE plpgsql STABLE AS $$
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

CREATE FUNCTION isrf.drop_model(name text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF name IS NULL THEN
        RAISE EXCEPTION 'model name must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    DELETE FROM isrf.models m WHERE m.name = drop_model.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'model "%" does not exist', name USING ERRCODE = 'undefined_object';
    END IF;
END
$$;
COMMENT ON FUNCTION isrf.drop_model(text) IS 'Drop every version of a model, its stored bytes and its group graph';

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

-- Common argument checks of the analyst functions.
CREATE FUNCTION isrf._check_user_k(user_id bigint, k integer) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF user_id IS NULL THEN
        RAISE EXCEPTION 'user_id must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF k IS NULL THEN
        RAISE EXCEPTION 'k must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF k <= 0 THEN
        RAISE EXCEPTION 'k must be positive, not %', k USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;
COMMENT ON FUNCTION isrf._check_user_k(bigint, integer) IS 'internal: validate user_id and k arguments';

-- A user the model version knows, or a clear error.
CREATE FUNCTION isrf._check_model_user(model text, version integer, user_id bigint) RETURNS void
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM isrf.model_interactions i
                    WHERE i.model = _check_model_user.model AND i.version = _check_model_user.version
                      AND i.user_id = _check_model_user.user_id) THEN
        RAISE EXCEPTION 'user % is not in model "%"', user_id, model
            USING ERRCODE = 'no_data_found',
                  HINT = 'Only users with interactions in the training data have a group.';
    END IF;
END
$$;
COMMENT ON FUNCTION isrf._check_model_user(text, integer, bigint) IS 'internal: error unless the model knows the user';

CREATE FUNCTION isrf_group_neighbours(user_id bigint, k integer, model text DEFAULT NULL)
RETURNS TABLE (neighbour_id bigint, similarity real)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    m record;
BEGIN
    PERFORM isrf._check_user_k(user_id, k);
    SELECT * INTO m FROM isrf._resolve_model(model);
    PERFORM isrf._check_model_user(m.name, m.version, user_id);
    RETURN QUERY
        SELECT e.neighbour_id, e.similarity FROM isrf.group_edges e
         WHERE e.model = m.name AND e.version = m.version AND e.user_id = isrf_group_neighbours.user_id
         ORDER BY e.rank LIMIT k;
END
$$;
COMMENT ON FUNCTION isrf_group_neighbours(bigint, integer, text)
    IS 'The user''s group: its k most similar users by semantic features, most similar first (never the user)';

CREATE FUNCTION isrf_group_interests(user_id bigint, k integer, model text DEFAULT NULL)
RETURNS TABLE (item_id bigint, support integer, score real)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    m record;
BEGIN
    PERFORM isrf._check_user_k(user_id, k);
    SELECT * INTO m FROM isrf._resolve_model(model);
    PERFORM isrf._check_model_user(m.name, m.version, user_id);
    -- score: the share of the group's similarity mass that interacted with the item
    RETURN QUERY
        WITH nb AS (
            SELECT e.neighbour_id, greatest(e.similarity, 0) AS w FROM isrf.group_edges e
             WHERE e.model = m.name AND e.version = m.version AND e.user_id = isrf_group_interests.user_id),
        seen AS (
            SELECT i.item_id FROM isrf.model_interactions i
             WHERE i.model = m.name AND i.version = m.version AND i.user_id = isrf_group_interests.user_id)
        SELECT i.item_id, count(DISTINCT nb.neighbour_id)::integer,
               (sum(nb.w) / nullif((SELECT sum(w) FROM nb), 0))::real
          FROM nb JOIN isrf.model_interactions i
            ON i.model = m.name AND i.version = m.version AND i.user_id = nb.neighbour_id
         WHERE i.item_id NOT IN (SELECT s.item_id FROM seen s)
         GROUP BY i.item_id
         ORDER BY 3 DESC NULLS LAST, 2 DESC, 1
         LIMIT k;
END
$$;
COMMENT ON FUNCTION isrf_group_interests(bigint, integer, text)
    IS 'Items the user''s group interacted with that the user has not: support = neighbours who did, score = their share of the group''s similarity';

----------------------------------------------------------------------------
-- Serving and evaluation
----------------------------------------------------------------------------

CREATE FUNCTION isrf_recommend(user_id bigint, k integer, model text DEFAULT NULL)
RETURNS TABLE (rank integer, item_id bigint, score real, cold_start boolean)
AS 'MODULE_PATHNAME', 'isrf_recommend'
LANGUAGE C VOLATILE PARALLEL RESTRICTED ROWS 10;
COMMENT ON FUNCTION isrf_recommend(bigint, integer, text)
    IS 'Top-k next items for a user by constrained beam search over semantic IDs, rescored by the dense head; history excluded; unknown users get a cold-start answer';

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

CREATE FUNCTION isrf_status()
RETURNS TABLE (database text, pid integer, device text, models text, requests bigint, batches bigint,
               errors bigint, mean_latency_ms real, max_latency_ms real, max_batch integer)
AS 'MODULE_PATHNAME', 'isrf_status'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION isrf_status()
    IS 'The model servers: database, process, device, loaded models, requests answered, batches, errors and latency';

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
GRANT SELECT, INSERT, UPDATE, DELETE ON isrf.llm_job_state TO PUBLIC;

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
GRANT SELECT, INSERT, DELETE ON isrf.llm_job_errors TO PUBLIC;

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
GRANT SELECT, INSERT, DELETE ON isrf.llm_embeddings TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('isrf.llm_embeddings', '');

-- The session's isrf.llm_* settings a job takes (never the endpoint's key).
CREATE FUNCTION isrf._llm_session_settings() RETURNS jsonb
AS 'MODULE_PATHNAME', 'isrf_llm_session_settings'
LANGUAGE C STABLE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION isrf._llm_session_settings() IS 'internal: the isrf.llm_* settings of this session that a job uses, as JSON';

-- Start the background worker of a job inserted by this transaction; it
-- waits for the transaction to commit and runs as the calling role.
CREATE FUNCTION isrf._llm_launch(job bigint) RETURNS integer
AS 'MODULE_PATHNAME', 'isrf_llm_launch'
LANGUAGE C VOLATILE STRICT
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION isrf._llm_launch(bigint) IS 'internal: start the background worker of an LLM job; returns its pid';

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
    worker_pid integer;
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

    -- one job per dataset and kind at a time; rows of workers that are gone are marked
    UPDATE isrf.llm_job_state j
       SET state = 'failed', finished_at = clock_timestamp(),
           last_error = coalesce(j.last_error || '; ', '') || 'interrupted: its worker ended'
     WHERE j.dataset = _llm_start.dataset AND j.kind = _llm_start.kind AND j.state IN ('queued', 'running')
       AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = j.pid AND a.backend_type = 'isrf llm job');
    SELECT j.id INTO job FROM isrf.llm_job_state j
     WHERE j.dataset = _llm_start.dataset AND j.kind = _llm_start.kind AND j.state IN ('queued', 'running');
    IF job IS NOT NULL THEN
        RAISE EXCEPTION 'job % is already describing the % of dataset "%"', job, kind, dataset
            USING ERRCODE = 'object_in_use',
                  HINT = format('Watch it in isrf.llm_jobs, or stop it with isrf.cancel_llm_job(%s).', job);
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

    INSERT INTO isrf.llm_job_state (dataset, kind, target, target_name, options, endpoint)
    VALUES (dataset, kind, tgt, tgt::text, eff, current_setting('isrf.llm_endpoint'))
    RETURNING id INTO job;

    -- the dataset uses the table from now on
    IF bound IS DISTINCT FROM tgt THEN
        IF bound IS NOT NULL THEN
            RAISE NOTICE 'dataset "%" now uses % as its % (was %)', dataset, tgt, role, bound;
        END IF;
        EXECUTE format('UPDATE isrf.datasets SET %I = $1, bound_names = bound_names || jsonb_build_object(%L, $2) WHERE name = $3',
                       role, role)
            USING tgt, tgt::text, dataset;
    END IF;

    worker_pid := isrf._llm_launch(job);
    UPDATE isrf.llm_job_state SET pid = worker_pid WHERE id = job;
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
    j isrf.llm_job_state;
BEGIN
    IF id IS NULL THEN
        RAISE EXCEPTION 'job id must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    -- row-level security: only the owner (or a superuser) finds the row
    SELECT * INTO j FROM isrf.llm_job_state s WHERE s.id = cancel_llm_job.id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'LLM job % does not exist', id USING ERRCODE = 'undefined_object',
            HINT = 'isrf.llm_jobs lists your jobs.';
    END IF;
    IF j.state NOT IN ('queued', 'running') THEN
        RAISE NOTICE 'LLM job % has already ended (%)', id, j.state;
        RETURN false;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = j.pid AND a.backend_type = 'isrf llm job') THEN
        -- the worker stops within a moment of this transaction's commit
        UPDATE isrf.llm_job_state s SET cancel_requested = true WHERE s.id = cancel_llm_job.id;
    ELSE
        UPDATE isrf.llm_job_state s SET cancel_requested = true, state = 'cancelled',
               finished_at = clock_timestamp() WHERE s.id = cancel_llm_job.id;
    END IF;
    RETURN true;
END
$$;
COMMENT ON FUNCTION isrf.cancel_llm_job(bigint)
    IS 'Stop an LLM job (its owner or a superuser); rows already written stay, and the same call of describe_items/describe_users resumes after them';
