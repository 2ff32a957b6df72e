#!/usr/bin/env bash
# A private PostgreSQL cluster for tests and benchmarks: initdb in a directory of its own, a Unix socket
# in that directory, trust authentication, no TCP. Never the system's service.
#
#   scripts/pg-test-cluster.sh start DIR [--watch PID]
#       creates DIR/data, starts the server, prints `export EXTENTDB_TEST_POSTGRES=postgres://...`
#       (eval it); with --watch, the cluster stops and DIR is removed when process PID exits.
#   scripts/pg-test-cluster.sh stop DIR
#       stops the server and removes DIR.
#
# As root the server runs as the `postgres` user (PostgreSQL refuses to run as root); the URL then names
# that role, which root may connect as over the socket (trust).
set -euo pipefail
command=${1:-}
dir=${2:-}
if [[ -z $command || -z $dir ]]; then
    echo "usage: $0 start|stop DIR [--watch PID]" >&2
    exit 2
fi
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [[ -z $bin || ! -x $bin/initdb ]]; then
    echo "$0: PostgreSQL's server programs are missing (/usr/lib/postgresql/*/bin/initdb): run scripts/install-deps.sh" >&2
    exit 1
fi
as_owner=()
role=$(id -un)
if [[ $(id -u) -eq 0 ]]; then
    as_owner=(runuser -u postgres --)
    role=postgres
fi

case $command in
start)
    watch=""
    if [[ ${3:-} == --watch ]]; then watch=${4:?--watch needs a PID}; fi
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [[ $(id -u) -eq 0 ]]; then chown postgres "$dir"; fi
    "${as_owner[@]}" "$bin/initdb" -D "$dir/data" -U "$role" --auth=trust --no-sync -E UTF8 >"$dir/initdb.log" 2>&1 || {
        cat "$dir/initdb.log" >&2
        exit 1
    }
    # No TCP at all; the socket lives beside the data; small and quick (fsync off: test data only).
    "${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses='' -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
        start >/dev/null || {
        cat "$dir/server.log" >&2
        exit 1
    }
    if [[ -n $watch ]]; then
        # Stop with the process that wanted it: no cluster outlives its test run.
        setsid bash -c "while kill -0 $watch 2>/dev/null; do sleep 1; done; $0 stop '$dir'" >/dev/null 2>&1 </dev/null &
    fi
    echo "export EXTENTDB_TEST_POSTGRES='postgres://$role@/postgres?host=$dir'"
    ;;
stop)
    if [[ -d $dir/data ]]; then
        "${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    ;;
*)
    echo "usage: $0 start|stop DIR [--watch PID]" >&2
    exit 2
    ;;
esac
