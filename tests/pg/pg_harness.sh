#!/usr/bin/env bash
# pg_harness.sh — a private PostgreSQL 15 server for one test run.
#
# Usage:
#   pg_harness.sh COMMAND [ARGS...]   starts a server, runs COMMAND with AJ_TEST_PG_URL (and the
#                                     variables below) exported, stops the server, removes its
#                                     directory and exits with COMMAND's status
#   pg_harness.sh restart|stop|start  controls the server of the enclosing run (for tests: a
#                                     `restart` is `pg_ctl restart -m immediate`, a crash)
#
# The server is initdb'd into a fresh temporary directory, listens on 127.0.0.1 at a free port
# and on a unix socket inside that directory, and trusts local connections (nothing but this
# machine's loopback can reach it). initdb refuses to run as root, so under root the server runs
# as the `postgres` user, which owns the directory. Exit 77 (ctest's SKIP_RETURN_CODE) when the
# PostgreSQL binaries are absent: scripts/setup.sh installs them, so CI always runs these tests.
#
# Exported to COMMAND:
#   AJ_TEST_PG_URL      postgresql://postgres@127.0.0.1:PORT/postgres
#   AJ_TEST_PG_PORT, AJ_TEST_PG_DIR (the temporary directory), AJ_TEST_PG_HARNESS (this script)
set -uo pipefail

PG_BIN=${AJ_PG_BIN:-}
if [ -z "$PG_BIN" ]; then
    for d in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
        if [ -x "$d/initdb" ]; then
            PG_BIN=$d
            break
        fi
    done
fi
if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/initdb" ] || [ ! -x "$PG_BIN/pg_ctl" ]; then
    echo "pg_harness: PostgreSQL binaries not found (install the postgresql package): skipped" >&2
    exit 77
fi

# as_pg CMD...: runs a command as the server's user (postgres when we are root).
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

pg_ctl_do() { # ACTION [ARGS...]
    as_pg "$PG_BIN/pg_ctl" -D "$AJ_TEST_PG_DIR/data" -l "$AJ_TEST_PG_DIR/server.log" -w -t 60 "$@"
}

case "${1:-}" in
restart | stop | start)
    : "${AJ_TEST_PG_DIR:?not inside a pg_harness.sh run}"
    action=$1
    if [ "$action" = restart ]; then
        # A crash: no checkpoint, in-flight transactions lost unless committed.
        pg_ctl_do restart -m immediate >/dev/null
    elif [ "$action" = stop ]; then
        pg_ctl_do stop -m immediate >/dev/null
    else
        pg_ctl_do start >/dev/null
    fi
    exit $?
    ;;
"")
    echo "usage: pg_harness.sh COMMAND [ARGS...] | restart | stop | start" >&2
    exit 2
    ;;
esac

dir=$(mktemp -d "${TMPDIR:-/tmp}/aj-pg.XXXXXX") || exit 1
chmod 755 "$dir"
[ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
export AJ_TEST_PG_DIR=$dir
started=0

cleanup() {
    if [ "$started" = 1 ]; then
        pg_ctl_do stop -m immediate >/dev/null 2>&1
    fi
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A free port: bind port 0 and read what the kernel chose. Another process could take it before
# the server binds, so a failed start is retried with a new port.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

if ! as_pg "$PG_BIN/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-locale \
    >"$dir/initdb.log" 2>&1; then
    echo "pg_harness: initdb failed:" >&2
    cat "$dir/initdb.log" >&2
    exit 1
fi
for attempt in 1 2 3; do
    port=$(free_port)
    cat >>"$dir/data/postgresql.conf" <<EOF
# pg_harness.sh (attempt $attempt)
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 200
log_min_messages = warning
log_checkpoints = off
EOF
    if pg_ctl_do start >/dev/null 2>&1; then
        started=1
        break
    fi
done
if [ "$started" != 1 ]; then
    echo "pg_harness: the server did not start:" >&2
    tail -20 "$dir/server.log" >&2
    exit 1
fi

export AJ_TEST_PG_PORT=$port
export AJ_TEST_PG_URL="postgresql://postgres@127.0.0.1:$port/postgres"
export AJ_TEST_PG_HARNESS
AJ_TEST_PG_HARNESS=$(readlink -f "$0")
"$@"
rc=$?
if [ $rc -ne 0 ] && [ -s "$dir/server.log" ]; then
    echo "pg_harness: the last lines of the server log:" >&2
    tail -15 "$dir/server.log" >&2
fi
exit $rc
