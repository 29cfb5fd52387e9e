-- Training seen from several sessions (dblink): a second training of a
-- model is refused while one runs; a cancelled training leaves the
-- previous version deployed; a killed training does not block the next
-- one; and no role can block a model's training by taking a lock of its
-- own (issue 11, finding 5).  The training session is held at a known
-- point by locking its reviews table.
\set VERBOSITY terse
SET client_min_messages = warning;
CREATE EXTENSION dblink;

-- a connection string to this very cluster and database
CREATE FUNCTION pg_temp.conninfo() RETURNS text LANGUAGE sql AS $$
    SELECT format('dbname=%s host=%s port=%s user=%s', current_database(),
                  coalesce(nullif(split_part(current_setting('unix_socket_directories'), ',', 1), ''), 'localhost'),
                  current_setting('port'), current_user)
$$;
-- wait (at most 30 s) until a session waits for a lock on a table
CREATE FUNCTION pg_temp.wait_blocked(p integer, rel regclass) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. 600 LOOP
        IF EXISTS (SELECT FROM pg_locks WHERE pid = p AND relation = rel AND NOT granted) THEN
            RETURN true;
        END IF;
        PERFORM pg_sleep(0.05);
    END LOOP;
    RETURN false;
END $$;

SELECT isrf.create_synthetic_dataset('lk', users => 60, items => 30, groups => 3, per_user => 6);
CALL isrf_train('lk', '{"epochs": 1, "dm": 4, "group_k": 3}');
SELECT dblink_connect('trainer', pg_temp.conninfo());
SELECT dblink_exec('trainer', 'SET client_min_messages = warning');
SELECT pid AS trainer_pid FROM dblink('trainer', 'SELECT pg_backend_pid()') AS t(pid integer) \gset

-- a training held in its load stage
BEGIN;
LOCK TABLE lk.reviews IN ACCESS EXCLUSIVE MODE;
SELECT dblink_send_query('trainer', $$CALL isrf_train('lk', '{"epochs": 1, "dm": 4, "group_k": 3}')$$);
SELECT pg_temp.wait_blocked(:trainer_pid, 'lk.reviews');
SELECT version, status, stage, deployed, pid = :trainer_pid AS trainer FROM isrf.models WHERE name = 'lk' ORDER BY version;
SELECT model, version, stage FROM isrf.training_progress;
-- it holds the model's training lock, a lock no SQL function takes (their
-- advisory locks have objsubid 1 or 2)
SELECT locktype, mode, objsubid NOT IN (1, 2) AS not_an_sql_advisory_lock
  FROM pg_locks WHERE pid = :trainer_pid AND locktype = 'advisory';
-- a second training of the model is refused at once
SELECT err($$CALL isrf_train('lk', '{"epochs": 1}')$$);
-- cancel it: the run says so, the previous version stays deployed
SELECT dblink_cancel_query('trainer');
COMMIT;
SELECT * FROM dblink_get_result('trainer', false) AS t(x text);
SELECT split_part(dblink_error_message('trainer'), E'\n', 1) AS trainer_said;
SELECT * FROM dblink_get_result('trainer', false) AS t(x text);
SELECT version, status, stage, deployed, message FROM isrf.models WHERE name = 'lk' ORDER BY version;
SELECT count(*) FROM isrf_recommend(1, 3, 'lk');

-- kill it: its row stays "training", and does not stop the next training
BEGIN;
LOCK TABLE lk.reviews IN ACCESS EXCLUSIVE MODE;
SELECT dblink_send_query('trainer', $$CALL isrf_train('lk', '{"epochs": 1, "dm": 4, "group_k": 3}')$$);
SELECT pg_temp.wait_blocked(:trainer_pid, 'lk.reviews');
SELECT pg_terminate_backend(:trainer_pid, 10000);
COMMIT;
SELECT dblink_disconnect('trainer');
SELECT version, status, stage, pid = :trainer_pid AS killed_trainer FROM isrf.models WHERE name = 'lk' ORDER BY version;
-- ... but isrf.training_progress no longer shows it: its session is gone
SELECT count(*) AS runs_in_progress FROM isrf.training_progress WHERE model = 'lk';
CALL isrf_train('lk', '{"epochs": 1, "dm": 4, "group_k": 3}');
SELECT version, status, stage, deployed, message FROM isrf.models WHERE name = 'lk' ORDER BY version;

-- the advisory lock of old, taken by another role, no longer blocks training
CREATE ROLE regress_isrf_squatter;
SELECT dblink_connect('squatter', pg_temp.conninfo());
SELECT dblink_exec('squatter', 'SET ROLE regress_isrf_squatter');
SELECT * FROM dblink('squatter', $$SELECT pg_try_advisory_lock(hashtextextended('isrf.model:lk', 0))$$) AS t(locked boolean);
SELECT * FROM dblink('squatter', $$SELECT pg_try_advisory_lock(hashtextextended('isrf.model:lk2', 0))$$) AS t(locked boolean);
CALL isrf_train('lk', '{"epochs": 1, "dm": 4, "group_k": 3}');
CALL isrf_train('lk', '{"epochs": 1, "dm": 4, "group_k": 3, "model": "lk2"}');
SELECT name, version, status, deployed FROM isrf.models WHERE deployed ORDER BY name;
SELECT dblink_disconnect('squatter');
DROP ROLE regress_isrf_squatter;

SELECT isrf.drop_dataset('lk', cascade => true);
DROP SCHEMA lk CASCADE;
DROP EXTENSION dblink;
