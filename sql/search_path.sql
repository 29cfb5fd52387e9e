-- search_path: no function of the extension runs an object that another
-- role planted on the caller's search_path (issue 11, finding 4).
--
-- An unprivileged role with CREATE on the database plants, in a schema
-- named after the superuser (the "$user" of the default path) and in
-- public, a shadow of every pg_catalog function, aggregate and operator
-- whose name the extension calls unqualified anywhere: in its script and in
-- the SQL strings of src/pg (names found below, from the sources).  The
-- shadows are same-signature copies (they win when the caller's path puts
-- pg_catalog last) and, for functions taking "any", copies with concrete
-- argument types (those win even on the default path, as
-- format(text, name, regclass) did in the issue).  Each shadow records that
-- it ran, warns, and tries to make its owner superuser, then does the real
-- work.  The superuser then calls every function of the extension, with the
-- default path and with pg_catalog last: no shadow may run.
\set VERBOSITY terse
SET client_min_messages = warning;

CREATE ROLE regress_isrf_mallory;
SELECT set_config('isrf_test.victim', current_user, false) IS NOT NULL AS victim_known;
DO $$ BEGIN
    EXECUTE format('GRANT CREATE ON DATABASE %I TO regress_isrf_mallory', current_database());
END $$;
GRANT CREATE ON SCHEMA public TO regress_isrf_mallory;

SET ROLE regress_isrf_mallory;
SET search_path = pg_catalog, pg_temp;

-- what a shadow does when it runs
CREATE SCHEMA mallory_log;
GRANT USAGE ON SCHEMA mallory_log TO PUBLIC;
CREATE TABLE mallory_log.ran (what text);
GRANT INSERT ON mallory_log.ran TO PUBLIC;
CREATE FUNCTION mallory_log.hit(what text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT FROM mallory_log.ran r WHERE r.what OPERATOR(pg_catalog.=) hit.what) THEN
        RETURN;    -- said so already
    END IF;
    BEGIN
        INSERT INTO mallory_log.ran VALUES (what);
        IF (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER) THEN
            ALTER ROLE regress_isrf_mallory SUPERUSER;
        END IF;
    EXCEPTION WHEN OTHERS THEN NULL;
    END;
    RAISE WARNING 'planted % ran as %', what, CURRENT_USER;
END $$;
GRANT EXECUTE ON FUNCTION mallory_log.hit(text) TO PUBLIC;

-- the names the extension calls unqualified: identifiers followed by "(",
-- and operator symbols, in the extension script and in the C string
-- literals of src/pg, that pg_catalog has
\set script `cat "${PG_ABS_SRCDIR:-.}"/sql/isrf--0.1.sql`
\set glue `cat "${PG_ABS_SRCDIR:-.}"/src/pg/*.c`
CREATE TABLE mallory_log.sources AS
    SELECT :'script' AS t
    UNION ALL
    SELECT string_agg(m[1], ' ') FROM regexp_matches(:'glue', '"((?:[^"\\]|\\.)*)"', 'g') m;
CREATE TABLE mallory_log.called_functions AS
    SELECT DISTINCT lower(m[1]) AS name
      FROM mallory_log.sources s, regexp_matches(s.t, '(?<![A-Za-z0-9_.$"])([A-Za-z_][A-Za-z0-9_]*)\s*\(', 'g') m
     WHERE lower(m[1]) IN (SELECT proname FROM pg_proc WHERE pronamespace = 'pg_catalog'::regnamespace);
CREATE TABLE mallory_log.called_operators AS
    SELECT DISTINCT m[1] AS name
      FROM mallory_log.sources s, regexp_matches(s.t, '([-+*/<>=~!@#%^&|`?]+)', 'g') m
     WHERE m[1] IN (SELECT oprname FROM pg_operator WHERE oprnamespace = 'pg_catalog'::regnamespace);
-- the calls of the issue are among them
SELECT count(*) FILTER (WHERE name IN ('format', 'hashtextextended', 'pg_try_advisory_lock', 'count')) AS known_calls,
       count(*) > 20 AS many_functions
  FROM mallory_log.called_functions;
SELECT count(*) FILTER (WHERE name IN ('=', '<>', '||')) AS known_operators FROM mallory_log.called_operators;

-- Plant the shadows.  Types a shadow may take: polymorphic pseudo-types are
-- fine, other pseudo-types ("any", internal, cstring, ...) are not; "any" is
-- replaced by concrete types instead.
CREATE FUNCTION mallory_log.plantable(t oid, is_result boolean) RETURNS boolean LANGUAGE sql AS $$
    SELECT typtype <> 'p' OR typname IN ('anyelement', 'anyarray', 'anynonarray', 'anyenum', 'anyrange',
               'anymultirange', 'anycompatible', 'anycompatiblearray', 'anycompatiblenonarray',
               'anycompatiblerange', 'anycompatiblemultirange')
           OR (is_result AND typname IN ('record', 'void'))
      FROM pg_type WHERE oid = t
$$;
CREATE TABLE mallory_log.planted (kind text, signature text);
DO $$
DECLARE
    victim text := current_setting('isrf_test.victim');
    s text;
    p record;
    sig text[];
    tail text[];
    t1 text;
    t2 text;
    t3 text;
    sigs text[];
    ns integer[];
    wide text[] := ARRAY['text', 'name', 'regclass', 'regtype', 'oid', 'bigint', 'integer', 'smallint',
                         'boolean', 'jsonb', 'real', 'double precision', 'numeric', 'text[]', 'name[]'];
    narrow text[] := ARRAY['text', 'name', 'regclass', 'bigint', 'integer'];
    args text;
    n integer;

    k integer;
    fn text;
BEGIN
    EXECUTE format('CREATE SCHEMA %I', victim);
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO PUBLIC', victim);
    FOREACH s IN ARRAY ARRAY[victim, 'public'] LOOP
        -- functions and aggregates: a copy of each plantable signature, and
        -- concrete-type copies of those taking "any"
        FOR p IN SELECT f.oid, f.proname, f.prokind, f.provariadic, f.prorettype,
                        pg_get_function_result(f.oid) AS result,
                        ARRAY(SELECT format_type(a, NULL) FROM unnest(f.proargtypes) a) AS argtypes,
                        ARRAY(SELECT mallory_log.plantable(a, false) FROM unnest(f.proargtypes) a) AS ok_args,
                        ARRAY(SELECT a = '"any"'::regtype FROM unnest(f.proargtypes) a) AS any_args
                   FROM pg_proc f JOIN mallory_log.called_functions c ON c.name = f.proname
                  WHERE f.pronamespace = 'pg_catalog'::regnamespace AND f.prokind IN ('f', 'a')
                    AND (f.prokind = 'f' OR (SELECT aggkind FROM pg_aggregate WHERE aggfnoid = f.oid) = 'n')
                    AND mallory_log.plantable(f.prorettype, true)
                  ORDER BY f.oid LOOP
            sigs := '{}';
            ns := '{}';
            IF true = ALL (p.ok_args) THEN
                sigs := ARRAY[pg_get_function_identity_arguments(p.oid)];
                ns := ARRAY[cardinality(p.argtypes)];
            ELSIF (SELECT bool_and(o OR a) FROM unnest(p.ok_args, p.any_args) x(o, a)) THEN
                IF p.provariadic = '"any"'::regtype THEN
                    -- the fixed arguments, then 0 to 3 variadic ones
                    sig := p.argtypes[1:cardinality(p.argtypes) - 1];
                    sigs := ARRAY[array_to_string(sig, ', ')];
                    ns := ARRAY[cardinality(sig)];
                    FOREACH t1 IN ARRAY wide LOOP
                        sigs := sigs || array_to_string(sig || t1, ', ');
                        ns := ns || cardinality(sig) + 1;
                    END LOOP;
                    FOREACH t1 IN ARRAY narrow LOOP
                        FOREACH t2 IN ARRAY narrow LOOP
                            sigs := sigs || array_to_string(sig || ARRAY[t1, t2], ', ');
                            ns := ns || cardinality(sig) + 2;
                            FOREACH t3 IN ARRAY narrow LOOP
                                sigs := sigs || array_to_string(sig || ARRAY[t1, t2, t3], ', ');
                                ns := ns || cardinality(sig) + 3;
                            END LOOP;
                        END LOOP;
                    END LOOP;
                ELSE
                    FOREACH t1 IN ARRAY wide LOOP
                        sigs := sigs || array_to_string(ARRAY(
                            SELECT CASE WHEN a THEN t1 ELSE t END FROM unnest(p.argtypes, p.any_args) x(t, a)), ', ');
                        ns := ns || cardinality(p.argtypes);
                    END LOOP;
                END IF;
            END IF;
            FOR k IN 1 .. cardinality(sigs) LOOP
                args := sigs[k];
                n := ns[k];
                fn := format('%s(%s)', p.proname, args);
                BEGIN
                    IF p.prokind = 'f' THEN
                        EXECUTE format('CREATE FUNCTION %I.%I(%s) RETURNS %s LANGUAGE sql AS %L',
                            s, p.proname, args, p.result,
                            format('SELECT mallory_log.hit(%L); SELECT * FROM pg_catalog.%I(%s)', fn, p.proname,
                                   (SELECT string_agg(CASE WHEN i = n AND p.provariadic <> 0 AND p.provariadic <> '"any"'::regtype
                                                           THEN 'VARIADIC ' ELSE '' END || '$' || i, ', ')
                                      FROM generate_series(1, n) j(i))));
                    ELSE
                        -- an aggregate: its transition function records the hit
                        EXECUTE format('CREATE FUNCTION mallory_log.%I(bigint%s) RETURNS bigint LANGUAGE sql AS %L',
                            'agg ' || s || ' ' || fn, CASE WHEN n > 0 THEN ', ' || args ELSE '' END,
                            format('SELECT mallory_log.hit(%L); SELECT $1 OPERATOR(pg_catalog.+) 1', fn));
                        EXECUTE format('CREATE AGGREGATE %I.%I(%s) (SFUNC = mallory_log.%I, STYPE = bigint, INITCOND = 0)',
                            s, p.proname, CASE WHEN n > 0 THEN args ELSE '*' END, 'agg ' || s || ' ' || fn);
                    END IF;
                    INSERT INTO mallory_log.planted VALUES (CASE p.prokind WHEN 'f' THEN 'function' ELSE 'aggregate' END, s || '.' || fn);
                EXCEPTION WHEN duplicate_function OR invalid_function_definition OR datatype_mismatch
                               OR feature_not_supported OR wrong_object_type OR invalid_parameter_value
                               OR undefined_function OR ambiguous_function THEN
                    NULL;    -- not plantable as such (or planted already)
                END;
            END LOOP;
        END LOOP;
        -- operators: a copy of each plantable one
        FOR p IN SELECT o.oid, o.oprname, o.oprkind, format_type(o.oprleft, NULL) AS l,
                        format_type(o.oprright, NULL) AS r, format_type(o.oprresult, NULL) AS res
                   FROM pg_operator o JOIN mallory_log.called_operators c ON c.name = o.oprname
                  WHERE o.oprnamespace = 'pg_catalog'::regnamespace AND o.oprkind IN ('b', 'l')
                    AND (o.oprkind = 'l' OR mallory_log.plantable(o.oprleft, false))
                    AND mallory_log.plantable(o.oprright, false) AND mallory_log.plantable(o.oprresult, true)
                  ORDER BY o.oid LOOP
            fn := CASE p.oprkind WHEN 'b' THEN format('%s %s %s', p.l, p.oprname, p.r)
                                 ELSE format('%s %s', p.oprname, p.r) END;
            BEGIN
                EXECUTE format('CREATE FUNCTION mallory_log.%I(%s) RETURNS %s LANGUAGE sql AS %L',
                    'op ' || s || ' ' || fn, CASE p.oprkind WHEN 'b' THEN p.l || ', ' ELSE '' END || p.r, p.res,
                    format('SELECT mallory_log.hit(%L); SELECT %s OPERATOR(pg_catalog.%s) %s', fn,
                           CASE p.oprkind WHEN 'b' THEN '$1' ELSE '' END, p.oprname,
                           CASE p.oprkind WHEN 'b' THEN '$2' ELSE '$1' END));
                EXECUTE format('CREATE OPERATOR %I.%s (%s RIGHTARG = %s, FUNCTION = mallory_log.%I)',
                    s, p.oprname, CASE p.oprkind WHEN 'b' THEN 'LEFTARG = ' || p.l || ',' ELSE '' END, p.r,
                    'op ' || s || ' ' || fn);
                INSERT INTO mallory_log.planted VALUES ('operator', s || '.' || fn);
            EXCEPTION WHEN duplicate_function OR invalid_function_definition OR datatype_mismatch
                           OR feature_not_supported OR wrong_object_type OR invalid_parameter_value
                           OR duplicate_object OR undefined_function OR ambiguous_function THEN
                NULL;
            END;
        END LOOP;
    END LOOP;
END $$;
-- the shadows are there, the reproducer of the issue among them
SELECT kind, count(*) > 50 AS many FROM mallory_log.planted GROUP BY kind ORDER BY kind;
SELECT count(*) AS issue_reproducer FROM mallory_log.planted
 WHERE signature IN (current_setting('isrf_test.victim') || '.format(text, name, regclass)', 'public.format(text, name, regclass)');
RESET search_path;
RESET ROLE;

-- The victim: the superuser calls every function of the extension.  run()
-- runs one statement and says how it went; it is immune itself.
SET search_path = pg_catalog, pg_temp;
CREATE FUNCTION pg_temp.run(q text, counted boolean DEFAULT true) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    n pg_catalog.int8;
BEGIN
    IF counted THEN
        EXECUTE pg_catalog.concat('SELECT pg_catalog.count(*) FROM (', q, ') q') INTO n;
        RETURN pg_catalog.concat('ok, ', n, ' rows');
    END IF;
    EXECUTE q;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN pg_catalog.concat(SQLSTATE, ': ', SQLERRM);
END $$;

-- first with the default path ("$user", public), then with pg_catalog last
\set calls `echo "${PG_ABS_SRCDIR:-.}/sql/search_path_calls.inc"`
SET search_path = "$user", public;
\i :calls
DROP SCHEMA sp CASCADE;
SET search_path = "$user", public, pg_catalog;
\i :calls

-- no shadow ran, and nothing changed hands
SET search_path = pg_catalog, pg_temp;
SELECT count(*) AS shadows_that_ran FROM mallory_log.ran;
SELECT rolsuper AS mallory_is_superuser FROM pg_roles WHERE rolname = 'regress_isrf_mallory';

-- clean up
RESET search_path;
DROP SCHEMA sp CASCADE;
DROP OWNED BY regress_isrf_mallory;    -- its objects, and its privileges on the database and public
DROP ROLE regress_isrf_mallory;
SELECT count(*) AS left_over FROM pg_namespace WHERE nspname IN ('mallory_log', current_user);
