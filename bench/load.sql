-- bench/load.sql: the calls bench/load.sh and the model-server TAP tests
-- run through pgbench.  Each wraps one serving call so that a pgbench
-- client survives what the run does to it: a statement_timeout cancel is
-- recorded with its time (table isrf_bench.cancels), any other error with
-- its time and SQLSTATE (table isrf_bench.failures), and the client goes
-- on, where pgbench itself would abort it.  The tables are logged, so that
-- they survive the crash restart a SIGKILL of the model server causes.
-- Test scaffolding, not part of the extension.
CREATE SCHEMA IF NOT EXISTS isrf_bench;
CREATE TABLE IF NOT EXISTS isrf_bench.failures (
    at       timestamptz NOT NULL,
    call     text NOT NULL,
    sqlstate text NOT NULL,
    message  text
);
CREATE TABLE IF NOT EXISTS isrf_bench.cancels (
    at       timestamptz NOT NULL,
    call     text NOT NULL
);
COMMENT ON SCHEMA isrf_bench IS 'bench/load.sql: pgbench wrappers of the serving calls, and what went wrong';

-- isrf_recommend for a user; its row count, -1 when cancelled, -2 on an error
CREATE OR REPLACE FUNCTION isrf_bench.recommend(u bigint, k integer, model text DEFAULT NULL)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    n integer;
BEGIN
    SELECT count(*) INTO n FROM isrf_recommend(u, k, model);
    RETURN n;
EXCEPTION
    WHEN query_canceled THEN
        INSERT INTO isrf_bench.cancels VALUES (clock_timestamp(), 'recommend');
        RETURN -1;
    WHEN OTHERS THEN
        INSERT INTO isrf_bench.failures VALUES (clock_timestamp(), 'recommend', SQLSTATE, SQLERRM);
        RETURN -2;
END $$;
COMMENT ON FUNCTION isrf_bench.recommend(bigint, integer, text) IS 'isrf_recommend, its errors counted';

-- isrf_rank of n random candidate ids in 1 .. max_id (unknown ids included)
CREATE OR REPLACE FUNCTION isrf_bench.rank(u bigint, n integer, max_id bigint, model text DEFAULT NULL)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    got integer;
BEGIN
    SELECT count(*) INTO got
      FROM isrf_rank(u, ARRAY(SELECT DISTINCT 1 + floor(random() * max_id)::bigint
                                FROM generate_series(1, n)), model);
    RETURN got;
EXCEPTION
    WHEN query_canceled THEN
        INSERT INTO isrf_bench.cancels VALUES (clock_timestamp(), 'rank');
        RETURN -1;
    WHEN OTHERS THEN
        INSERT INTO isrf_bench.failures VALUES (clock_timestamp(), 'rank', SQLSTATE, SQLERRM);
        RETURN -2;
END $$;
COMMENT ON FUNCTION isrf_bench.rank(bigint, integer, bigint, text) IS 'isrf_rank of random candidates, its errors counted';
