#!/usr/bin/env bash
# Load test (not a test of correctness): requests/s and p50/p99 latency of
# GET /v1/images/{id}/extents for a 1 MiB window, against a real `extentdb serve` on loopback.
#
# Target: >= 5,000 requests/s with p99 < 20 ms on the 2-core machine, and no error in a burst from
# 8 clients.
#
# Environment:
#   EXTENTDB=path   the binary (default: builds `swift build -c release --product extentdb`)
#   IMAGE=path      the image to serve (default: the 1 TiB / 200k-write qcow2 of scripts/bench-scan.sh,
#                   about 395k extents, built in $BENCH_DIR if missing: ~1 min, ~13 GB)
#   BENCH_DIR=dir   image cache (default /tmp/extentdb-bench)
#   DURATION=s      seconds per wrk run (default 10); CONNECTIONS (default 8); THREADS (default 2)
# Traffic goes to 127.0.0.1 only, and every run is bounded by DURATION.
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/tmp/extentdb-bench}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-8}
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
for _ in $(seq 200); do grep -q 'Server started and listening on' "$WORK/serve.log" && break; sleep 0.05; done
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

# A 1 MiB window in the middle of the disk (2^39 = 512 GiB).
PATH_WINDOW="/v1/images/$id/extents?offset=549755813888&length=1048576"
curl -s -H "$AUTH" "$URL$PATH_WINDOW" | head -c 300; echo
wrk -t "$THREADS" -c "$CONNECTIONS" -d "${DURATION}s" --latency -H "$AUTH" "$URL$PATH_WINDOW" | tee "$WORK/wrk.txt"
rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.txt")
p50=$(awk '$1 == "50%" {print $2}' "$WORK/wrk.txt")
p99=$(awk '$1 == "99%" {print $2}' "$WORK/wrk.txt")
errors=$(grep -E 'Non-2xx|Socket errors' "$WORK/wrk.txt" || true)
echo "extents (1 MiB window): $rps requests/s, p50 $p50, p99 $p99, ${errors:-no errors}"

# The same with a different 1 MiB window each request (random, MiB-aligned over the 1 TiB disk): no
# answer comes from the service's answer cache, every one is read from the index.
cat > "$WORK/random.lua" <<LUA
math.randomseed(42)
request = function()
    return wrk.format("GET", "/v1/images/$id/extents?offset=" .. (math.random(0, 1048575) * 1048576) .. "&length=1048576")
end
LUA
wrk -t "$THREADS" -c "$CONNECTIONS" -d "${DURATION}s" --latency -H "$AUTH" -s "$WORK/random.lua" "$URL" | tee "$WORK/wrk-random.txt"
rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk-random.txt")
p50=$(awk '$1 == "50%" {print $2}' "$WORK/wrk-random.txt")
p99=$(awk '$1 == "99%" {print $2}' "$WORK/wrk-random.txt")
errors=$(grep -E 'Non-2xx|Socket errors' "$WORK/wrk-random.txt" || true)
echo "extents (random 1 MiB windows, uncached): $rps requests/s, p50 $p50, p99 $p99, ${errors:-no errors}"

# A burst from 8 clients at once, each request checked.
clients=()
for client in $(seq 8); do
    (for _ in $(seq 200); do curl -s --max-time 10 -o /dev/null -w '%{http_code}\n' -H "$AUTH" "$URL$PATH_WINDOW"; done > "$WORK/burst.$client") &
    clients+=($!)
done
wait "${clients[@]}"
bad=$(cat "$WORK"/burst.* | grep -vc '^200$' || true)
echo "burst: 8 clients x 200 requests, $bad errors"
