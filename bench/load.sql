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

-- One serving call for user u: kind 'recommend' is isrf_recommend(u, n),
-- kind 'rank' isrf_rank of n random candidate ids in 1 .. max_id (unknown
-- ids included).  Returns the row count, -1 when cancelled, -2 on an error.
CREATE OR REPLACE FUNCTION isrf_bench.call(kind text, u bigint, n integer, max_id bigint DEFAULT 0,
                                           model text DEFAULT NULL)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    got integer;
BEGIN
    IF kind = 'rank' THEN
        SELECT count(*) INTO got
          FROM isrf_rank(u, ARRAY(SELECT DISTINCT 1 + floor(random() * max_id)::bigint
                                    FROM generate_series(1, n)), model);
    ELSE
        SELECT count(*) INTO got FROM isrf_recommend(u, n, model);
    END IF;
    RETURN got;
EXCEPTION
    WHEN query_canceled THEN
        INSERT INTO isrf_bench.cancels VALUES (clock_timestamp(), kind);
        RETURN -1;
    WHEN OTHERS THEN
        INSERT INTO isrf_bench.failures VALUES (clock_timestamp(), kind, SQLSTATE, SQLERRM);
        RETURN -2;
END $$;
COMMENT ON FUNCTION isrf_bench.call(text, bigint, integer, bigint, text)
    IS 'isrf_recommend or isrf_rank of random candidates, its cancels and errors recorded';
