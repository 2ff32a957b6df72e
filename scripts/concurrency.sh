#!/usr/bin/env bash
# Many processes on one index: 8 workers run scan/map/export/report against the same index for a bounded
# time, and every result must equal what a serial run gives, with no "database is locked" (or any other
# error) reaching a user.
#
# Usage: scripts/concurrency.sh [SECONDS] [WORKERS] [EXTENTDB_BINARY]     (defaults: 20 s, 8 workers)
#        CONCURRENCY_SMALL=1 makes the scattered image 128 MiB with 300 writes (for the test suite).
#
# Workers take turns through the operations (worker w starts with operation w mod 4): `scan --force` of all
# images (writers), `map --output json` of one image, `export --format raw` of one image, and
# `report --output json` of the index (scan ids and times removed before comparing). Prints the number of
# operations run and exits 1 on the first mismatch, failure or lock error.
set -euo pipefail

DURATION=${1:-20}
WORKERS=${2:-8}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
X=${3:-$ROOT/.build/debug/extentdb}
[[ -x $X ]] || { echo "concurrency: $X is not built (swift build)" >&2; exit 2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/extentdb-concurrency-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

if [[ ${CONCURRENCY_SMALL:-0} == 1 ]]; then SIZE_MIB=128 WRITES=300; else SIZE_MIB=1024 WRITES=3000; fi
qemu-img create -q -f qcow2 -o cluster_size=4k scattered.qcow2 "${SIZE_MIB}M"
awk -v n="$WRITES" -v slots=$((SIZE_MIB * 256)) 'BEGIN { x = 7; for (i = 0; i < n; i++) { x = (x * 48271) % 2147483647; printf "write -q -P 1 %.0f 4k\n", (x % slots) * 4096 } }' \
    | qemu-io -f qcow2 scattered.qcow2 >/dev/null
qemu-img create -q -f qcow2 base.qcow2 256M
qemu-io -f qcow2 -c 'write -q -P 2 0 1M' -c 'write -q -P 3 128M 64k' base.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 top.qcow2 256M
qemu-io -f qcow2 -c 'write -q -P 4 64k 64k' top.qcow2 >/dev/null
qemu-img create -q -f vpc disk.vhd 64M
qemu-io -f vpc -c 'write -q -P 5 0 2M' disk.vhd >/dev/null
truncate -s 32M sparse.raw
printf 'data' | dd of=sparse.raw bs=1 seek=$((5 << 20)) conv=notrunc status=none
IMAGES=(scattered.qcow2 top.qcow2 disk.vhd sparse.raw)

normalize_report() {
    python3 -c '
import json, sys
report = json.load(sys.stdin)
def strip(value):
    if isinstance(value, dict):
        return {k: strip(v) for k, v in value.items() if k not in ("scan_id", "scanned_at", "generated_at")}
    if isinstance(value, list):
        return [strip(v) for v in value]
    return value
print(json.dumps(strip(report), sort_keys=True))'
}

# Serial reference results.
export EXTENTDB_DB=$WORK/index.sqlite
mkdir -p expected
"$X" scan -q "${IMAGES[@]}" >/dev/null
for image in "${IMAGES[@]}"; do
    "$X" map "$image" --output json > "expected/$image.map"
    "$X" export "$image" --format raw --to "expected/$image.raw"
    sha256sum < "expected/$image.raw" | cut -d' ' -f1 > "expected/$image.sha"
    rm "expected/$image.raw"
done
"$X" report --output json | normalize_report > expected/report
# A serial --force scan changes nothing a user sees.
"$X" scan -q --force "${IMAGES[@]}" >/dev/null
"$X" report --output json | normalize_report | cmp -s - expected/report || { echo "concurrency: a rescan changed the report" >&2; exit 1; }

worker() {
    local w=$1 deadline=$2 n=0 op image out
    mkdir -p "w$w"
    while (( $(date +%s) < deadline )); do
        op=$(( (w + n) % 4 ))
        image=${IMAGES[$(( (w + n / 4) % ${#IMAGES[@]} ))]}
        out=w$w/out
        case $op in
        0) "$X" scan -q --force "${IMAGES[@]}" > "$out" 2> "w$w/err" ;;
        1) "$X" map "$image" --output json > "$out" 2> "w$w/err" && cmp -s "$out" "expected/$image.map" || { echo "map $image differs or failed" >> "w$w/err"; false; } ;;
        2) "$X" export "$image" --format raw --to "w$w/export.raw" 2> "w$w/err" \
               && [[ $(sha256sum < "w$w/export.raw" | cut -d' ' -f1) == "$(cat "expected/$image.sha")" ]] \
               || { echo "export $image differs or failed" >> "w$w/err"; false; }
           rm -f "w$w/export.raw" ;;
        3) "$X" report --output json 2> "w$w/err" | normalize_report > "$out" && cmp -s "$out" expected/report \
               || { echo "report differs or failed" >> "w$w/err"; false; } ;;
        esac || { echo "worker $w, operation $n ($op on $image):"; cat "w$w/err"; return 1; }
        if grep -qi "locked\|busy" "w$w/err"; then echo "worker $w: $(cat "w$w/err")"; return 1; fi
        n=$((n + 1))
    done
    echo "$n" > "w$w/count"
}

deadline=$(( $(date +%s) + DURATION ))
pids=()
for ((w = 0; w < WORKERS; w++)); do
    worker "$w" "$deadline" > "w$w.log" 2>&1 &
    pids+=($!)
done
failed=0
for ((w = 0; w < WORKERS; w++)); do
    if ! wait "${pids[$w]}"; then
        failed=1
        echo "concurrency: worker $w failed:" >&2
        cat "w$w.log" >&2
    fi
done
(( failed == 0 )) || exit 1
total=0
for ((w = 0; w < WORKERS; w++)); do total=$((total + $(cat "w$w/count"))); done
scans=$(python3 -c "import sqlite3; print(sqlite3.connect('$EXTENTDB_DB').execute('select count(*) from scans').fetchone()[0])")
echo "concurrency: $WORKERS processes for ${DURATION}s: $total operations (scan/map/export/report), $scans scans recorded, all results equal to the serial ones, no lock errors"
