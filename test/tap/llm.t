#!/usr/bin/env bash
# TAP: the LLM reasoning step against a mock of an OpenAI-compatible server
# (test/llm_mock.py) started on loopback: description jobs write every row
# once whatever the server does (500s, 429 with Retry-After, stalls past the
# timeout, malformed JSON, truncated bodies, being killed and restarted),
# resume after a cancel, run as the role that started them, never reveal
# the key; descriptions written through the mock carry the planted groups
# of the synthetic data set as well as the bundled ones; embeddings from the
# endpoint feed training and are cached.  Run by test/run_tests.sh (prove)
# with the throwaway cluster's PGHOST, PGPORT, ISRF_USER, ISRF_CLUSTER.
set -u
. "$(dirname "$0")/tap.sh"
db=isrf_llm
export PGOPTIONS="-c client_min_messages=warning"
q() { psql -X -At -v ON_ERROR_STOP=1 -d $db -c "$1" 2>&1; }
qn() { PGOPTIONS="-c client_min_messages=notice" q "$1"; }   # with the NOTICEs
qa() { psql -X -At -v ON_ERROR_STOP=1 -d $db -U regress_llm_alice -c "$1" 2>&1; }
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/isrf-llm-tap.XXXXXX)
mock_pid=
port=

# start_mock [ARGS...]: the mock on $port (a free one the first time)
start_mock() {
    rm -f "$work/port"
    python3 "$root/test/llm_mock.py" --port "${port:-0}" --port-file "$work/port" "$@" \
        >>"$work/mock.log" 2>&1 &
    mock_pid=$!
    for _ in $(seq 1 100); do [ -s "$work/port" ] && break; sleep 0.05; done
    port=$(cat "$work/port")
}
stop_mock() {
    if [ -n "$mock_pid" ]; then kill "$mock_pid" 2>/dev/null; wait "$mock_pid" 2>/dev/null; fi
    mock_pid=
}
cleanup() {
    stop_mock
    psql -X -q -d postgres -c "ALTER SYSTEM RESET isrf.llm_endpoint" -c "ALTER SYSTEM RESET isrf.llm_api_key" \
        -c "SELECT pg_reload_conf()" >/dev/null 2>&1
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
    psql -X -q -d postgres -c "DROP ROLE IF EXISTS regress_llm_alice" -c "DROP ROLE IF EXISTS regress_llm_bob" >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT
# the endpoint (and key) of the server configuration, which job workers read
configure() {   # configure [KEY]
    psql -X -q -d postgres -c "ALTER SYSTEM SET isrf.llm_endpoint = 'http://127.0.0.1:$port/v1'" \
        -c "ALTER SYSTEM SET isrf.llm_api_key = '${1:-}'" -c "SELECT pg_reload_conf()" >/dev/null
    sleep 0.3
}
mock_stat() { python3 -c "import json,sys,urllib.request; print(json.load(urllib.request.urlopen('http://127.0.0.1:$port/stats')).get(sys.argv[1], 0))" "$1"; }
state() { q "SELECT state FROM isrf.llm_jobs WHERE id = $1"; }
wait_job() {   # wait_job ID [SECONDS]: until the job is over
    local i
    for i in $(seq 1 $((${2:-60} * 5))); do
        case "$(state "$1")" in queued|running) sleep 0.2 ;; *) return 0 ;; esac
    done
    return 1
}
wait_done_at_least() {   # wait_done_at_least ID N
    local i
    for i in $(seq 1 300); do
        [ "$(q "SELECT done >= $2 FROM isrf.llm_jobs WHERE id = $1")" = t ] && return 0
        sleep 0.05
    done
    return 1
}
# every row of the dataset's items (or users) is in TABLE exactly once
all_once() {   # all_once TABLE ID_COLUMN EXPECTED
    q "SELECT count(*) = $3 AND count(DISTINCT $2) = $3 FROM $1"
}
opts='"timeout_ms": 1000, "backoff_ms": 50, "max_retries": 10'

echo "1..47"
log_start=$(stat -c %s "$ISRF_CLUSTER/server.log")
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null 2>&1
q "CREATE EXTENSION isrf" >/dev/null
q "SELECT isrf.create_synthetic_dataset('syn', users => 200, items => 40, groups => 4)" >/dev/null
q "SELECT isrf.create_synthetic_dataset('bundled', users => 200, items => 40, groups => 4)" >/dev/null
q "ALTER DATABASE $db SET isrf.llm_model = 'mock'" >/dev/null
start_mock
configure

# --- a job writes every row; it runs in a worker, after its caller left ------
job=$(q "SELECT isrf.describe_items('syn', '{\"table\": \"syn.item_llm\"}')")
wait_job "$job"
is "$(q "SELECT state || ' ' || done || '/' || total || ' failed ' || failed FROM isrf.llm_jobs WHERE id = $job")" \
   "done 40/40 failed 0" "describe_items ends done with every item written (its caller disconnected at once)"
is "$(all_once syn.item_llm item_id 40)" t "each item is written exactly once"
is "$(q "SELECT count(*) FROM syn.item_llm d JOIN syn.items i USING (item_id)
          WHERE d.positive LIKE '%' || i.category || '%' AND d.negative LIKE '%dislike%' AND d.feature <> ''")" 40 \
   "the three answers of each item are its own (forward, backward, features)"
is "$(q "SELECT item_descriptions::text FROM isrf.datasets WHERE name = 'syn'")" syn.item_llm \
   "the dataset now uses the job's table"
is "$(q "SELECT requests = 120 AND tokens > 0 AND rate > 0 FROM isrf.llm_jobs WHERE id = $job")" t \
   "three requests per item; tokens and rate are reported"

job=$(q "SELECT isrf.describe_users('syn', '{\"concurrency\": 8}')")
wait_job "$job"
is "$(q "SELECT state || ' ' || done || '/' || total FROM isrf.llm_jobs WHERE id = $job")" "done 200/200" \
   "describe_users ends done with every user written"
is "$(all_once syn.syn_user_llm user_id 200)" t "each user is written exactly once, into the default table"
# users reason from their train items' descriptions: their group's topic shows
is "$(q "SELECT count(*) >= 180 FROM syn.syn_user_llm d
           JOIN isrf.synthetic_users(200, 40, 4, 12, 1) s USING (user_id)
           JOIN (SELECT group_id, min(category) AS category FROM syn.items GROUP BY group_id) g USING (group_id)
          WHERE d.preference LIKE '%' || g.category || '%'")" t \
   "user preferences name their planted group's topic (90% or more)"
job2=$(q "SELECT isrf.describe_users('syn')")
wait_job "$job2"
is "$(q "SELECT state || ' ' || skipped || ' ' || total || ' ' || requests FROM isrf.llm_jobs WHERE id = $job2")" \
   "done 200 0 0" "run again, the job skips every described user and sends nothing"

# --- a model trained on the job's output finds the planted groups -------------
# group-neighbour purity: the share of each user's 10 nearest group neighbours
# with the user's planted group, against the same data with its bundled
# descriptions
train_cfg='{"epochs": 0, "group_k": 10, "dm": 16}'
q "SET client_min_messages = warning; CALL isrf_train('syn', '$train_cfg'); CALL isrf_train('bundled', '$train_cfg')" >/dev/null
purity() {
    q "SELECT round(avg((su.group_id = sn.group_id)::int), 4) FROM isrf.group_graph g
         JOIN isrf.synthetic_users(200, 40, 4, 12, 1) su ON su.user_id = g.user_id
         JOIN isrf.synthetic_users(200, 40, 4, 12, 1) sn ON sn.user_id = g.neighbour_id
        WHERE g.model = '$1' AND g.rank <= 10"
}
p_llm=$(purity syn); p_bundled=$(purity bundled)
echo "# group-neighbour purity@10: LLM-described $p_llm, bundled descriptions $p_bundled"
[ -n "$p_llm" ] && [ -n "$p_bundled" ] && awk -v a="$p_llm" -v b="$p_bundled" 'BEGIN { exit !(a >= b && a > 0.5) }'
ok $? "trained on the job's descriptions, the group graph recovers the planted groups at least as well ($p_llm >= $p_bundled)"

# --- embeddings from the endpoint as the semantic features, cached ------------
emb_cfg='{"epochs": 0, "group_k": 10, "dm": 16, "use_llm_embeddings": true}'
out=$(qn "SET isrf.llm_embedding_model = 'mock-embed'; CALL isrf_train('bundled', '$emb_cfg')" 2>&1)
echo "$out" | grep -q "40 item and 200 user embeddings of dimension 32 (0 from the cache, 240 fetched in 9 requests"
ok $? "use_llm_embeddings fetches the item and user embeddings in batches"
is "$(q "SELECT (metrics->>'users_with_description') || ' ' || (metrics->>'items_with_text') FROM isrf.models
          WHERE name = 'bundled' AND deployed")" "200 40" "... and trains on them, users in the items' space"
before=$(mock_stat embeddings)
out=$(qn "SET isrf.llm_embedding_model = 'mock-embed'; CALL isrf_train('bundled', '$emb_cfg')" 2>&1)
echo "$out" | grep -q "(240 from the cache, 0 fetched in 0 requests" && [ "$(mock_stat embeddings)" = "$before" ]
ok $? "retraining takes every embedding from the cache and sends nothing"

# --- a misbehaving server: every row still written once, failures counted ----
stop_mock
start_mock --fail 0.3 --rate429 0.05 --retry-after 1 --stall 0.03 --stall-seconds 3 --malformed 0.05 --truncate 0.05
configure
job=$(q "SELECT isrf.describe_items('syn', '{\"table\": \"syn.faulty\", \"concurrency\": 8, $opts}')")
wait_job "$job" 120
is "$(q "SELECT state || ' ' || done || '/' || total || ' failed ' || failed FROM isrf.llm_jobs WHERE id = $job")" \
   "done 40/40 failed 0" "with 30% 500s, 429s, stalls, malformed and truncated answers the job writes every item"
is "$(all_once syn.faulty item_id 40)" t "... each exactly once"
injected=$(( $(mock_stat fail500) + $(mock_stat r429) + $(mock_stat stall) + $(mock_stat malformed) + $(mock_stat truncated) ))
is "$(q "SELECT failed_attempts FROM isrf.llm_jobs WHERE id = $job")" "$injected" \
   "every failure the server injected is counted ($injected failed attempts)"
for kind in fail500 r429 stall malformed truncated; do
    [ "$(mock_stat $kind)" -gt 0 ] || echo "# the mock never injected $kind"
done
[ "$(mock_stat fail500)" -gt 0 ] && [ "$(mock_stat r429)" -gt 0 ] && [ "$(mock_stat stall)" -gt 0 ] &&
    [ "$(mock_stat malformed)" -gt 0 ] && [ "$(mock_stat truncated)" -gt 0 ]
ok $? "each kind of failure happened at least once"
out=$(qn "SET isrf.llm_embedding_model = 'mock-embed-2'; SET isrf.llm_timeout = 1000; SET isrf.llm_max_retries = 10;
         CALL isrf_train('bundled', '$emb_cfg')" 2>&1)
echo "$out" | grep -q "240 fetched in [0-9]* requests, [1-9][0-9]* failed attempts"
ok $? "embeddings are fetched through the same failures, with retries"

# --- the server killed and restarted mid-job -----------------------------------
stop_mock
start_mock --delay-ms 40
configure
job=$(q "SELECT isrf.describe_items('syn', '{\"table\": \"syn.restarted\", \"concurrency\": 4, $opts}')")
wait_done_at_least "$job" 5
kill -9 "$mock_pid"; wait "$mock_pid" 2>/dev/null; mock_pid=
sleep 1.5
start_mock --delay-ms 40
wait_job "$job" 120
is "$(q "SELECT state || ' ' || done || '/' || total FROM isrf.llm_jobs WHERE id = $job")" "done 40/40" \
   "a job survives its server being killed and restarted"
is "$(all_once syn.restarted item_id 40)" t "... and writes each item exactly once"
is "$(q "SELECT failed_attempts > 0 FROM isrf.llm_jobs WHERE id = $job")" t "... counting the refused attempts"

# --- cancel, then resume -------------------------------------------------------
stop_mock
start_mock --delay-ms 100
configure
job=$(q "SELECT isrf.describe_items('syn', '{\"table\": \"syn.resumed\", \"concurrency\": 2}')")
wait_done_at_least "$job" 4
got=$(q "SELECT isrf.describe_items('syn', '{\"table\": \"syn.resumed\"}')")
echo "$got" | grep -q "is already describing"; ok $? "a second job on the same items is refused while one runs"
is "$(q "SELECT isrf.cancel_llm_job($job)")" t "cancel_llm_job stops a running job"
wait_job "$job" 10
is "$(state "$job")" cancelled "... which ends cancelled"
written=$(q "SELECT count(*) FROM syn.resumed")
is "$(q "SELECT done = $written AND $written < 40 FROM isrf.llm_jobs WHERE id = $job")" t \
   "the rows written before the cancel are committed and counted ($written)"
job2=$(q "SELECT isrf.describe_items('syn', '{\"table\": \"syn.resumed\", \"concurrency\": 8}')")
wait_job "$job2" 60
is "$(q "SELECT state || ' ' || skipped || ' ' || (done + skipped) FROM isrf.llm_jobs WHERE id = $job2")" \
   "done $written 40" "started again, the job resumes after the rows already written"
is "$(all_once syn.resumed item_id 40)" t "... and every item is written exactly once"

# --- its worker terminated: the job shows interrupted, and resumes -----------
job=$(q "SELECT isrf.describe_items('syn', '{\"table\": \"syn.terminated\", \"concurrency\": 2}')")
wait_done_at_least "$job" 3
q "SELECT pg_terminate_backend(pid) FROM isrf.llm_job_state WHERE id = $job" >/dev/null
sleep 0.5
is "$(state "$job")" interrupted "a job whose worker was terminated shows as interrupted"
job2=$(q "SELECT isrf.describe_items('syn', '{\"table\": \"syn.terminated\", \"concurrency\": 8}')")
wait_job "$job2" 60
is "$(q "SELECT j.state || ' ' || (j2.done + j2.skipped) || ' ' || j2.state FROM isrf.llm_jobs j, isrf.llm_jobs j2
          WHERE j.id = $job AND j2.id = $job2")" "failed 40 done" "started again, it resumes; the old row is marked failed"
is "$(all_once syn.terminated item_id 40)" t "... and every item is written exactly once"

# --- a job started by a transaction that rolls back never runs ---------------
before=$(q "SELECT count(*) FROM isrf.llm_job_state")
psql -X -q -d $db -c "BEGIN" -c "SELECT isrf.describe_items('syn', '{\"table\": \"syn.rolled_back\"}')" \
    -c "SELECT pg_sleep(0.5)" -c "ROLLBACK" >/dev/null 2>&1
sleep 0.5
is "$(q "SELECT count(*) - $before, to_regclass('syn.rolled_back') IS NULL,
                  (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'isrf llm job')
             FROM isrf.llm_job_state")" "0|t|0" \
   "a job whose transaction rolls back leaves no row, no table and no worker"

# --- errors that are not worth retrying: recorded, and the job stops --------
job=$(q "SELECT isrf.describe_items('syn', '{\"table\": \"syn.no_model\", \"model\": \"missing-model\", \"concurrency\": 1, \"max_failures\": 3}')")
wait_job "$job" 30
is "$(q "SELECT state || ' ' || failed || ' ' || requests FROM isrf.llm_jobs WHERE id = $job")" "failed 3 3" \
   "a 404 is not retried; after max_failures rows in a row the job stops failed"
is "$(q "SELECT count(*) FROM isrf.llm_job_errors WHERE job = $job AND error LIKE 'HTTP 404: model ''missing-model'' not found%'
           AND step = 'item_positive' AND attempts = 1")" 3 "each failed row is recorded with the server's message"

# --- roles: the job runs as its owner, the key stays hidden ------------------
stop_mock
start_mock --api-key sk-test-secret
configure sk-test-secret
psql -X -q -d postgres -c "CREATE ROLE regress_llm_alice LOGIN" -c "CREATE ROLE regress_llm_bob LOGIN" >/dev/null 2>&1
q "GRANT CREATE ON SCHEMA public TO regress_llm_alice" >/dev/null
qa "CREATE TABLE alice_items AS SELECT * FROM isrf.synthetic_items(60, 40, 4, 12, 1);
    CREATE TABLE alice_reviews AS SELECT * FROM isrf.synthetic_reviews(60, 40, 4, 12, 1);
    SELECT isrf.create_dataset('alice', 'alice_reviews', items => 'alice_items')" >/dev/null
job=$(qa "SELECT isrf.describe_items('alice', '{\"limit\": 10}')")
wait_job "$job"
is "$(qa "SELECT state || ' ' || done FROM isrf.llm_jobs WHERE id = $job")" "done 10" \
   "a non-superuser's job authenticates with the configured key (never shown to it) and runs"
is "$(q "SELECT tableowner FROM pg_tables WHERE schemaname = 'public' AND tablename = 'alice_item_llm'")" regress_llm_alice \
   "the table it creates belongs to the role that started it"
qa "CREATE TABLE alice_own (item_id int PRIMARY KEY, positive text, negative text, feature text,
                            written_by name DEFAULT current_user)" >/dev/null
job=$(qa "SELECT isrf.describe_items('alice', '{\"table\": \"public.alice_own\", \"limit\": 5}')")
wait_job "$job"
is "$(q "SELECT string_agg(DISTINCT written_by, ',') || ' ' || count(*) FROM alice_own") $(mock_stat unauthorized)" \
   "regress_llm_alice 5 0" "its worker writes as that role, and every request carried the key"
is "$(psql -X -At -d $db -U regress_llm_bob -c "SELECT count(*) FROM isrf.llm_jobs" 2>&1)" 0 \
   "another role does not see the job"
psql -X -At -d $db -U regress_llm_bob -c "SELECT isrf.cancel_llm_job($job)" 2>&1 | grep -q "does not exist"
ok $? "... nor cancel it"
qb() { psql -X -At -v ON_ERROR_STOP=1 -d $db -U regress_llm_bob -c "$1" 2>&1; }

# --- the LLM tables are the extension's: a role holds no other role's place --
# one job per dataset and kind is kept by the extension alone: the advisory
# lock the jobs once took is nothing to another role
psql -X -q -d $db -U regress_llm_bob -c "SELECT pg_advisory_lock(hashtextextended('isrf.llm:alice:items', 0))" \
    -c "SELECT pg_sleep(60)" >/dev/null 2>&1 &
squatter=$!
for _ in $(seq 1 100); do
    [ "$(q "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
             WHERE l.locktype = 'advisory' AND l.granted AND a.usename = 'regress_llm_bob'")" = 1 ] && break
    sleep 0.05
done
job=$(qa "SELECT isrf.describe_items('alice', '{\"table\": \"public.alice_own\", \"limit\": 8}')")
wait_job "$job"
is "$(qa "SELECT state || ' ' || done || ' ' || skipped FROM isrf.llm_jobs WHERE id = $job")" "done 8 5" \
   "another role holding the advisory lock of the jobs of old does not block a job"
kill "$squatter" 2>/dev/null; wait "$squatter" 2>/dev/null
# two jobs started at once on the same items: the second waits for the first
# to commit and is refused, whatever either sees of the other
psql -X -q -d $db -c "BEGIN" -c "SELECT isrf.describe_items('syn', '{\"table\": \"syn.raced\", \"limit\": 5}')" \
    -c "SELECT pg_sleep(2)" -c "COMMIT" >/dev/null 2>&1 &
first=$!
for _ in $(seq 1 100); do
    [ "$(q "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(2)' AND state = 'active'")" = 1 ] && break
    sleep 0.05
done
got=$(q "SELECT isrf.describe_items('syn', '{\"table\": \"syn.raced_too\"}')")
wait "$first"
raced=$(q "SELECT id FROM isrf.llm_job_state WHERE target_name = 'syn.raced'")
echo "$got" | grep -q "job $raced is already describing the items of dataset \"syn\"" &&
    [ "$(q "SELECT to_regclass('syn.raced_too') IS NULL")" = t ]
ok $? "of two jobs started at once on the same items, the second is refused once the first commits"
wait_job "$raced"
is "$(q "SELECT state || ' ' || done FROM isrf.llm_jobs WHERE id = $raced")" "done 5" "... and the first runs"
# the cache of embeddings: written for the role that trains, by no other role
qa "SET isrf.llm_embedding_model = 'mock-embed';
    CALL isrf_train('alice', '{\"epochs\": 0, \"group_k\": 5, \"dm\": 8, \"use_llm_embeddings\": true}')" >/dev/null
alice_cached=$(q "SELECT count(*) FROM isrf.llm_embeddings WHERE owner = 'regress_llm_alice' AND model = 'mock-embed'")
[ "$alice_cached" -gt 0 ] && [ "$(qb "SELECT count(*) FROM isrf.llm_embeddings")" = 0 ]
ok $? "a training run caches its embeddings as its role's ($alice_cached), which no other role reads"
out=$(qb "DELETE FROM isrf.llm_embeddings"; qb "SELECT isrf.drop_llm_embeddings(owner => 'regress_llm_alice')";
      qb "INSERT INTO isrf.llm_embeddings (model, hash, embedding) VALUES ('mock-embed', '\\x00', '{0}')")
[ "$(echo "$out" | grep -c 'permission denied')" = 3 ] &&
    [ "$(q "SELECT count(*) FROM isrf.llm_embeddings WHERE owner = 'regress_llm_alice'")" = "$alice_cached" ]
ok $? "another role can neither delete nor add cache rows, directly or through drop_llm_embeddings"
qa "SELECT isrf.drop_llm_embeddings('mock-embed')" >/dev/null
is "$(q "SELECT count(*) FROM isrf.llm_embeddings WHERE owner = 'regress_llm_alice'")" 0 \
   "the role itself empties its cache with drop_llm_embeddings"

out=$(qa "SET isrf.llm_endpoint = 'http://example.com/v1'" ; qa "SHOW isrf.llm_api_key"; qa "SELECT count(*) FROM pg_settings WHERE name = 'isrf.llm_api_key'")
echo "$out" | grep -q 'permission denied to set parameter "isrf.llm_endpoint"' &&
    echo "$out" | grep -q 'must be superuser or have privileges of pg_read_all_settings' &&
    ! echo "$out" | grep -q sk-test-secret && [ "$(echo "$out" | tail -1)" = 0 ]
ok $? "a non-superuser can neither change the endpoint nor read the key"
is "$(q "SHOW isrf.llm_api_key")" "********" "even a superuser sees only a mask"
! tail -c +$((log_start + 1)) "$ISRF_CLUSTER/server.log" | grep -q sk-test-secret
ok $? "the key never reaches the server log"
qa "SELECT isrf.drop_dataset('alice', cascade => true); DROP TABLE alice_item_llm, alice_own, alice_items, alice_reviews" >/dev/null
q "REVOKE CREATE ON SCHEMA public FROM regress_llm_alice; DELETE FROM isrf.llm_job_state WHERE owner = 'regress_llm_alice'" >/dev/null

exit $((failed > 0))
