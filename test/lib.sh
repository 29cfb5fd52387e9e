# test/lib.sh: shared steps of test/run_tests.sh and test/demo.sh — install
# what is missing (apt-get), build and install isrf, and run a throwaway
# PostgreSQL cluster as an unprivileged user on a free port.
# Sourced, not executed.

ISRF_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ISRF_PG_VERSION=${ISRF_PG_VERSION:-15}
ISRF_PG_BIN=/usr/lib/postgresql/$ISRF_PG_VERSION/bin
ISRF_PACKAGES="build-essential postgresql-$ISRF_PG_VERSION postgresql-server-dev-$ISRF_PG_VERSION \
postgresql-$ISRF_PG_VERSION-pgtap libtap-parser-sourcehandler-pgtap-perl libopenblas-dev libstemmer-dev \
libcurl4-openssl-dev python3 passwd procps postgresql-$ISRF_PG_VERSION-cron clang libclang-rt-dev"

isrf_log() { printf '== %s\n' "$*"; }

# Run a command as root: directly when we are root, else through sudo.
isrf_as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# Install the Debian packages the build and the tests need, if any is missing.
isrf_install_deps() {
    local missing=() p
    for p in $ISRF_PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        isrf_log "installing: ${missing[*]}"
        isrf_as_root apt-get update -qq
        isrf_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    export PATH="$ISRF_PG_BIN:$PATH"
    if [ -n "${CUDA_HOME:-}" ] && [ ! -x "$CUDA_HOME/bin/nvcc" ]; then
        unset CUDA_HOME       # set, but no toolkit there: build without CUDA
    fi
    if [ -z "${CUDA_HOME:-}" ] && [ -x /usr/local/cuda/bin/nvcc ]; then
        export CUDA_HOME=/usr/local/cuda
    fi
}

# Build everything (the CUDA library too when nvcc is there) and install it:
# into the system's PostgreSQL, or, with ISRF_PREFIX set, into a private copy
# of it under that directory (PostgreSQL finds its libraries and share files
# relative to its binaries), so that several checkouts can be tested at once
# without replacing each other's isrf.so.
isrf_build_install() {
    local jobs sys_bin=/usr/lib/postgresql/$ISRF_PG_VERSION/bin
    jobs=$(nproc 2>/dev/null || echo 2)
    isrf_log "building (CUDA_HOME=${CUDA_HOME:-none})"
    make -C "$ISRF_ROOT" -j"$jobs" PG_CONFIG="$sys_bin/pg_config" >/dev/null 2>"$ISRF_WORK/build.err" || {
        cat "$ISRF_WORK/build.err"; return 1; }
    make -C "$ISRF_ROOT" -j"$jobs" tools >/dev/null 2>>"$ISRF_WORK/build.err" || {
        cat "$ISRF_WORK/build.err"; return 1; }
    if [ -n "${ISRF_PREFIX:-}" ]; then
        isrf_private_postgres || return 1
        make -C "$ISRF_ROOT" install PG_CONFIG="$sys_bin/pg_config" DESTDIR="$ISRF_PREFIX" >/dev/null
    else
        isrf_as_root make -C "$ISRF_ROOT" install PG_CONFIG="$sys_bin/pg_config" >/dev/null
    fi
}

# A private copy of the system's PostgreSQL under $ISRF_PREFIX (made once,
# and given the files of packages installed since, such as pg_cron);
# ISRF_PG_BIN and PATH then point at its binaries.
isrf_private_postgres() {
    local lib=/usr/lib/postgresql/$ISRF_PG_VERSION share=/usr/share/postgresql/$ISRF_PG_VERSION
    mkdir -p "$ISRF_PREFIX"
    ISRF_PREFIX=$(cd "$ISRF_PREFIX" && pwd)
    if [ ! -x "$ISRF_PREFIX$lib/bin/postgres" ]; then
        mkdir -p "$ISRF_PREFIX$lib" "$ISRF_PREFIX$share"
        cp -a "$lib/." "$ISRF_PREFIX$lib/" && cp -a "$share/." "$ISRF_PREFIX$share/" || return 1
        chmod -R a+rX "$ISRF_PREFIX"
    else
        # files missing from the copy only: never one of isrf's installed there
        cp -an "$lib/." "$ISRF_PREFIX$lib/" && cp -an "$share/." "$ISRF_PREFIX$share/" || return 1
    fi
    ISRF_PG_BIN=$ISRF_PREFIX$lib/bin
    export ISRF_PREFIX ISRF_PG_BIN PATH="$ISRF_PREFIX$lib/bin:$PATH"
}

# The unprivileged OS user that owns the throwaway cluster.
isrf_cluster_user() {
    if [ "$(id -u)" != 0 ]; then id -un; return; fi
    if ! id isrf_test >/dev/null 2>&1; then
        useradd --system --no-create-home --shell /bin/sh isrf_test
    fi
    echo isrf_test
}

isrf_run_as() {
    local user=$1; shift
    if [ "$(id -un)" = "$user" ]; then "$@"; else runuser -u "$user" -- "$@"; fi
}

# Pick a TCP port nobody listens on.
isrf_free_port() {
    local p
    for p in $(seq 54400 54999); do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"; return 0
        fi
    done
    return 1
}

# Start a fresh cluster with isrf preloaded; sets PGHOST/PGPORT/PGUSER.
isrf_cluster_start() {
    ISRF_USER=$(isrf_cluster_user)
    ISRF_CLUSTER="$ISRF_WORK/cluster"
    mkdir -p "$ISRF_CLUSTER"
    chown "$ISRF_USER" "$ISRF_CLUSTER" "$ISRF_WORK" 2>/dev/null || true
    chmod 755 "$ISRF_WORK"
    PGPORT=$(isrf_free_port)
    isrf_log "starting a throwaway cluster as $ISRF_USER on port $PGPORT"
    isrf_run_as "$ISRF_USER" "$ISRF_PG_BIN/initdb" -D "$ISRF_CLUSTER/data" -U postgres \
        --auth=trust -E UTF8 --locale=C >"$ISRF_WORK/initdb.log" 2>&1 || {
        cat "$ISRF_WORK/initdb.log"; return 1; }
    cat >>"$ISRF_CLUSTER/data/postgresql.conf" <<CONF
port = $PGPORT
listen_addresses = 'localhost'
unix_socket_directories = '$ISRF_CLUSTER'
shared_preload_libraries = 'isrf'
fsync = off
max_connections = 100
log_min_messages = warning
CONF
    isrf_run_as "$ISRF_USER" "$ISRF_PG_BIN/pg_ctl" -D "$ISRF_CLUSTER/data" -l "$ISRF_CLUSTER/server.log" \
        -w -t 60 start >/dev/null || { cat "$ISRF_CLUSTER/server.log"; return 1; }
    export PGHOST="$ISRF_CLUSTER" PGPORT PGUSER=postgres
    trap isrf_cluster_stop EXIT
}

isrf_cluster_stop() {
    if [ -n "${ISRF_CLUSTER:-}" ] && [ -f "$ISRF_CLUSTER/data/postmaster.pid" ]; then
        isrf_log "stopping the cluster"
        isrf_run_as "$ISRF_USER" "$ISRF_PG_BIN/pg_ctl" -D "$ISRF_CLUSTER/data" -m fast -w stop >/dev/null || true
    fi
    if [ -n "${ISRF_WORK:-}" ] && [ -z "${ISRF_KEEP:-}" ]; then
        rm -rf "$ISRF_WORK"
    fi
}

# A private scratch directory for this run.
isrf_workdir() {
    ISRF_WORK=$(mktemp -d /tmp/isrf-run.XXXXXX)
    export ISRF_WORK
}

# For bench/: a scratch directory, the packages, this checkout built and
# installed, a throwaway cluster and a database "bench" as PGDATABASE.
isrf_bench_cluster() {
    isrf_workdir
    isrf_install_deps
    isrf_build_install
    isrf_cluster_start
    createdb bench
    export PGDATABASE=bench
}
