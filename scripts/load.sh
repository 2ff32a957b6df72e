#!/usr/bin/env bash
# Load test (not a test of correctness): requests/s and p50/p99 latency of
# GET /v1/images/{id}/extents for 1 MiB windows, against a real `extentdb serve` on loopback.
#
# Target (issue #18): random 1 MiB windows (a new MiB-aligned offset over the image's virtual size for
# every request, so no answer comes from the answer cache) reach >= 10,000 requests/s with p99 < 10 ms
# (wrk, 2 threads, 16 connections) on the 2-core machine, and a burst from 8 clients has no error.
#
# Environment:
#   EXTENTDB=path   the binary (default: builds `swift build -c release --product extentdb`)
#   IMAGE=path      the image to serve (default: the 1 TiB / 200k-write qcow2 of scripts/bench-scan.sh,
#                   about 395k extents, built in $BENCH_DIR if missing: ~1 min, ~13 GB)
#   BENCH_DIR=dir   image cache (default /tmp/extentdb-bench)
#   DURATION=s      seconds per wrk run (default 10); CONNECTIONS (default 16); THREADS (default 2)
#   RUNS=n          random-window runs (default 1); with more, each is printed and then their median
# Traffic goes to 127.0.0.1 only, and every run is bounded by DURATION (wrk's --timeout 2s per request).
# wrk shares the 2 cores with the service: note the load average printed with each run.
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/tmp/extentdb-bench}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-16}
RUNS=${RUNS:-1}
THREADS=${THREADS:-2}
command -v wrk >/dev/null || { echo "load: wrk not found (apt-get install wrk; scripts/install-deps.sh)" >&2; exit 1; }

if [[ -z ${EXTENTDB:-} ]]; then
    (cd "$REPO_DIR" && nice -n 5 swift build -c release --product extentdb >&2)
    EXTENTDB=$REPO_DIR/.build/release/extentdb
fi
if [[ -z ${IMAGE:-} ]]; then
    IMAGE=$BENCH_DIR/qcow2-1T-64k-200000w-seed42.qcow2
    if [[ ! -f $IMAGE.ok ]]; then
        mkdir -p "$BENCH_DIR"
        echo "load: creating $IMAGE (once)..." >&2
        rm -f "$IMAGE"
        qemu-img create -q -f qcow2 -o cluster_size=64k "$IMAGE" 1T
        awk -v n=200000 -v seed=42 -v slots=$((1 << 28)) 'BEGIN {
            x = seed
            for (i = 0; i < n; i++) {
                x = (x * 48271) % 2147483647
                printf "write -q -P %d %.0f 4k\n", (i % 254) + 1, (x % slots) * 4096
            }
        }' | qemu-io -f qcow2 "$IMAGE" > /dev/null
        touch "$IMAGE.ok"
    fi
fi

WORK=$(mktemp -d /tmp/extentdb-load.XXXXXX)
ROOT=$(cd "$(dirname "$IMAGE")" && pwd -P)
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$WORK/token"
TOKEN=$(cat "$WORK/token")
# --watch-interval 0: no sweep of the cache directory during the measurement.
"$EXTENTDB" serve --listen 127.0.0.1:0 --root "$ROOT" --token-file "$WORK/token" --db "$WORK/index.sqlite" \
    --watch-interval 0 2> "$WORK/serve.log" &
SERVER=$!
for _ in $(seq 200); do grep -qs 'Server started and listening on' "$WORK/serve.log" && break; sleep 0.05; done
PORT=$(grep -o 'Server started and listening on 127.0.0.1:[0-9]*' "$WORK/serve.log" | cut -d: -f2)
URL=http://127.0.0.1:$PORT
AUTH="Authorization: Bearer $TOKEN"

start=$(date +%s.%N)
job=$(curl -s -H "$AUTH" -X POST -d "{\"path\": \"$ROOT/$(basename "$IMAGE")\"}" "$URL/v1/scans" | sed 's/.*"id":"\([^"]*\)".*/\1/')
for _ in $(seq 600); do
    state=$(curl -s -H "$AUTH" "$URL/v1/scans/$job")
    case $state in *'"state":"succeeded"'*) break ;; *'"state":"failed"'*) echo "$state" >&2; exit 1 ;; esac
    sleep 0.1
done
id=$(echo "$state" | sed 's/.*"image_id":\([0-9]*\).*/\1/')
extents=$(echo "$state" | sed 's/.*"extent_count":\([0-9]*\).*/\1/')
printf 'scan through the service: %.2f s, %s extents\n' "$(echo "$(date +%s.%N) - $start" | bc)" "$extents"

virtual_size=$(curl -s -H "$AUTH" "$URL/v1/images/$id" | sed 's/.*"virtual_size":\([0-9]*\).*/\1/')
MIB=1048576

# Every wrk run ends with one line from the script's done(): requests/s, p50, p99 (ms) and errors
# (connect, read, write, timeouts, non-2xx statuses).
cat > "$WORK/report.lua" <<'LUA'
done = function(summary, latency, requests)
    local e = summary.errors
    local errors = e.connect + e.read + e.write + e.timeout + e.status
    io.write(string.format("RESULT %.0f %.3f %.3f %d (connect %d, read %d, write %d, timeout %d, status %d)\n",
        summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000,
        errors, e.connect, e.read, e.write, e.timeout, e.status))
end
LUA
# run NAME SCRIPT PATH: one bounded wrk run, its summary line printed with the load average.
run() {
    local name=$1 script=$2 path=$3 load
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    wrk -t "$THREADS" -c "$CONNECTIONS" -d "${DURATION}s" --timeout 2s --latency -H "$AUTH" -s "$script" "$URL$path" > "$WORK/wrk.txt"
    read -r _ rps p50 p99 errors detail < <(grep '^RESULT' "$WORK/wrk.txt")
    printf '%s: %s requests/s, p50 %s ms, p99 %s ms, %s errors %s (load average before: %s)\n' \
        "$name" "$rps" "$p50" "$p99" "$errors" "$detail" "$load"
    echo "$rps $p50 $p99 $errors" >> "$WORK/runs.$name"
}

# One 1 MiB window in the middle of the disk (2^39 = 512 GiB): after the first request the answer comes
# from the service's answer cache (the layers are still stat'ed each time).
PATH_WINDOW="/v1/images/$id/extents?offset=549755813888&length=$MIB"
curl -s -H "$AUTH" "$URL$PATH_WINDOW" | head -c 300; echo
run "extents (one 1 MiB window, cached)" "$WORK/report.lua" "$PATH_WINDOW"

# A different 1 MiB window each request: a MiB-aligned offset drawn over the whole virtual size, so no
# answer comes from the answer cache (2^20 windows on the 1 TiB disk), every one is read from the index.
# Each wrk thread has its own seed.
cat "$WORK/report.lua" - > "$WORK/random.lua" <<LUA
local windows = math.floor($virtual_size / $MIB)
local counter = 0
setup = function(thread) counter = counter + 1; thread:set("id", counter) end
init = function(args) math.randomseed(42 + id) end
request = function()
    local offset = math.random(0, windows - 1) * $MIB
    return wrk.format("GET", string.format("/v1/images/$id/extents?offset=%.0f&length=$MIB", offset))
end
LUA
for _ in $(seq "$RUNS"); do
    run "extents (random 1 MiB windows, uncached)" "$WORK/random.lua" ""
done
if (( RUNS > 1 )); then
    sort -n "$WORK/runs.extents (random 1 MiB windows, uncached)" | awk -v n="$RUNS" 'NR == int((n + 1) / 2) {
        printf "median of %d runs (by requests/s): %s requests/s, p50 %s ms, p99 %s ms, %s errors\n", n, $1, $2, $3, $4 }'
fi

# A burst from 8 clients at once, each request checked.
clients=()
for client in $(seq 8); do
    (for _ in $(seq 200); do curl -s --max-time 10 -o /dev/null -w '%{http_code}\n' -H "$AUTH" "$URL$PATH_WINDOW"; done > "$WORK/burst.$client") &
    clients+=($!)
done
wait "${clients[@]}"
bad=$(cat "$WORK"/burst.* | grep -vc '^200$' || true)
echo "burst: 8 clients x 200 requests, $bad errors"
