-- Shared by the regression tests that follow: err(q) runs a statement and
-- shows its SQLSTATE, message and hint instead of failing, so every bad
-- input's error code is part of the expected output.
CREATE FUNCTION err(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE st text; msg text; hint text;
BEGIN
    EXECUTE q;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
    RETURN st || ': ' || msg || coalesce(nullif(E'\n  HINT: ' || hint, E'\n  HINT: '), '');
END $$;
SELECT err('SELECT 1/0'), err('SELECT 1');
