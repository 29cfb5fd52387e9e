# test/tap/nodes.sh: several PostgreSQL nodes on loopback for the TAP tests
# and the benchmarks (sourced, not run by prove): a primary with isrf and
# pg_cron preloaded, hot standbys made from it with pg_basebackup -R,
# promotion, psql against a node.  The caller sets NODES_DIR (a scratch
# directory) and has ISRF_USER (the OS user that runs the servers) and
# ISRF_PG_BIN (the PostgreSQL binaries isrf is installed with), as
# test/run_tests.sh exports them.

NODES_PORTS=""

# Run a command as the servers' OS user.
nodes_as_user() {
    if [ "$(id -un)" = "$ISRF_USER" ]; then "$@"; else runuser -u "$ISRF_USER" -- "$@"; fi
}

# A TCP port nobody listens on and no node of ours was given.
nodes_free_port() {
    local p
    for p in $(seq 55000 55999); do
        case " $NODES_PORTS " in *" $p "*) continue ;; esac
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            NODES_PORTS="$NODES_PORTS $p"
            echo "$p"
            return 0
        fi
    done
    return 1
}

nodes_setup() {
    mkdir -p "$NODES_DIR"
    chown "$ISRF_USER" "$NODES_DIR" 2>/dev/null || true
}

node_port() { cat "$NODES_DIR/$1.port"; }

# nq NODE DB SQL: one statement on a node, unaligned, errors on stdout too.
nq() {
    psql -X -At -q -v ON_ERROR_STOP=1 -h "$NODES_DIR" -p "$(node_port "$1")" -U postgres -d "$2" -c "$3" 2>&1
}

node_start() {
    nodes_as_user "$ISRF_PG_BIN/pg_ctl" -D "$NODES_DIR/$1" -l "$NODES_DIR/$1.log" -w -t 120 start >/dev/null
}

# node_stop NODE [MODE]: fast by default.
node_stop() {
    [ -f "$NODES_DIR/$1/postmaster.pid" ] || return 0
    nodes_as_user "$ISRF_PG_BIN/pg_ctl" -D "$NODES_DIR/$1" -m "${2:-fast}" -w -t 120 stop >/dev/null
}

nodes_stop_all() {
    local d
    for d in "$NODES_DIR"/*/; do
        [ -f "$d/postmaster.pid" ] && node_stop "$(basename "$d")" immediate
    done
    return 0
}

# node_conf NODE LINE...: append settings to a node's postgresql.conf.
node_conf() {
    local node=$1 line
    shift
    for line in "$@"; do
        printf '%s\n' "$line" >>"$NODES_DIR/$node/postgresql.conf"
    done
}

# node_primary NODE [SETTING...]: a new primary with isrf and pg_cron
# preloaded (cron.database_name is a SETTING when pg_cron is to run jobs).
node_primary() {
    local node=$1 port
    shift
    port=$(nodes_free_port) || return 1
    echo "$port" >"$NODES_DIR/$node.port"
    nodes_as_user "$ISRF_PG_BIN/initdb" -D "$NODES_DIR/$node" -U postgres --auth=trust -E UTF8 --locale=C \
        >"$NODES_DIR/$node.initdb.log" 2>&1 || { cat "$NODES_DIR/$node.initdb.log"; return 1; }
    node_conf "$node" "port = $port" "listen_addresses = 'localhost'" "unix_socket_directories = '$NODES_DIR'" \
        "shared_preload_libraries = 'isrf,pg_cron'" "fsync = off" "max_connections = 60" \
        "max_worker_processes = 20" "wal_level = replica" "max_wal_senders = 10" "hot_standby = on" \
        "log_min_messages = warning" "$@"
    node_start "$node" || { cat "$NODES_DIR/$node.log"; return 1; }
}

# node_standby NODE FROM [SETTING...]: a hot standby of FROM (pg_basebackup
# -R: it streams from FROM), started.
node_standby() {
    local node=$1 from=$2 port
    shift 2
    port=$(nodes_free_port) || return 1
    echo "$port" >"$NODES_DIR/$node.port"
    nodes_as_user "$ISRF_PG_BIN/pg_basebackup" -h "$NODES_DIR" -p "$(node_port "$from")" -U postgres \
        -D "$NODES_DIR/$node" -R -X stream -c fast >"$NODES_DIR/$node.basebackup.log" 2>&1 || {
        cat "$NODES_DIR/$node.basebackup.log"; return 1; }
    node_conf "$node" "port = $port" "$@"
    node_start "$node" || { cat "$NODES_DIR/$node.log"; return 1; }
}

# node_follow NODE FROM: a standby streams from another node from now on.
node_follow() {
    nq "$1" postgres "ALTER SYSTEM SET primary_conninfo = 'host=$NODES_DIR port=$(node_port "$2") user=postgres'" \
        >/dev/null && nq "$1" postgres "SELECT pg_reload_conf()" >/dev/null
}

node_promote() {
    nodes_as_user "$ISRF_PG_BIN/pg_ctl" -D "$NODES_DIR/$1" -w -t 120 promote >/dev/null
}

# node_caught_up NODE LSN [SECONDS]: wait until a standby has replayed the
# WAL up to LSN (default: at most 60 s); false when it did not.
node_caught_up() {
    local i
    for i in $(seq 1 $((${3:-60} * 10))); do
        [ "$(nq "$1" postgres "SELECT pg_last_wal_replay_lsn() >= '$2'::pg_lsn")" = t ] && return 0
        sleep 0.1
    done
    return 1
}
