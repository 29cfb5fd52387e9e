# test/tap/serving.sh: what the model-server TAP tests share (sourced, not
# run by prove): TAP output (tap.sh), psql helpers, a database with a small trained
# model, and questions about the model server (its pid, its busy slots).
# The caller sets DB and calls tap_start.  Runs with the throwaway cluster's PGHOST, PGPORT,
# ISRF_USER, ISRF_CLUSTER, ISRF_PG_BIN (test/run_tests.sh).

. "$(dirname "${BASH_SOURCE[0]}")/tap.sh"
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export PGOPTIONS="-c client_min_messages=warning"
# tap_start PLAN DB...: print the plan; a scratch directory $work; on exit the
# databases dropped (after tap_cleanup_more, if the test defines it) and
# $work removed
tap_start() {
    echo "1..$1"
    shift
    tap_dbs="$*"
    work=$(mktemp -d /tmp/isrf-tap.XXXXXX)
    chmod 755 "$work"
    trap tap_cleanup EXIT
}
tap_cleanup() {
    local d
    declare -F tap_cleanup_more >/dev/null && tap_cleanup_more
    for d in $tap_dbs; do drop_db "$d"; done
    rm -rf "$work"
}
# q SQL / qd DB SQL: one statement, unaligned, errors on stdout too
q() { psql -X -At -v ON_ERROR_STOP=1 -d "$DB" -c "$1" 2>&1; }
qd() { psql -X -At -v ON_ERROR_STOP=1 -d "$1" -c "$2" 2>&1; }

# make_db NAME: a fresh database with isrf, a small synthetic data set and
# its trained model "srv" (ids 1..users, 1..items), and bench/load.sql
make_db() {
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1" >/dev/null 2>&1
    qd "$1" "CREATE EXTENSION isrf" >/dev/null
    qd "$1" "SELECT isrf.create_synthetic_dataset('srv', users => 150, items => 60, groups => 3, per_user => 8)" >/dev/null
    qd "$1" "CALL isrf_train('srv', '{\"group_k\": 5, \"dm\": 8, \"epochs\": 2}')" >/dev/null
    psql -X -q -v ON_ERROR_STOP=1 -d "$1" -f "$root/bench/load.sql" >/dev/null
}
drop_db() { psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" >/dev/null 2>&1; }

# served [DB]: a request for user 1 gets 5 items (waiting at most 10 s)
served() {
    [ "$(psql -X -At -q -d "${1:-$DB}" -c "SET statement_timeout = '10s'" \
          -c "SELECT count(*) FROM isrf_recommend(1, 5)" 2>&1)" = 5 ]
}
# server_pid [DB]: the pid of the database's running model server, or nothing
server_pid() {
    qd "${1:-$DB}" "SELECT pid FROM isrf_status() WHERE database = current_database() AND pid IS NOT NULL"
}
# until_true SECONDS COMMAND...: poll (every 0.1 s) until the command succeeds
until_true() {
    local limit=$1 i; shift
    for i in $(seq 1 $((limit * 10))); do "$@" && return 0; sleep 0.1; done
    "$@"
}
# until_sql SECONDS SQL EXPECTED: poll until the query's answer is EXPECTED
until_sql() {
    local limit=$1 i
    for i in $(seq 1 $((limit * 10))); do [ "$(q "$2")" = "$3" ] && return 0; sleep 0.1; done
    [ "$(q "$2")" = "$3" ]
}
# busy_slots: request slots not free (they are shared by every database)
busy_slots() { q "SELECT coalesce(sum(slots), 0) FROM isrf.server_slots() WHERE state <> 'free'"; }
slots_free() { [ "$(busy_slots)" = 0 ]; }
no_server() { [ -z "$(server_pid "${1:-$DB}")" ]; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }   # since T0: seconds
