#!/usr/bin/env bash
# Benchmark (not a test): `extentdb report` over a directory of 1,000 indexed images.
# Target: well under a second for table, JSON and CSV. Peer, measured in the same run: what answering the
# same question costs without the index — `qemu-img info --output=json` on every image.
#
# Environment: SKIP_BUILD=1, EXTENTDB=path, BENCH_DIR (default /tmp/extentdb-bench), RUNS (default 3), IMAGES (1000).
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_DIR=${BENCH_DIR:-/tmp/extentdb-bench}
RUNS=${RUNS:-3}
IMAGES=${IMAGES:-1000}
if [[ -n "${EXTENTDB:-}" ]]; then
    BIN=$EXTENTDB
else
    [[ "${SKIP_BUILD:-0}" == 1 ]] || swift build -c release --product extentdb >&2
    BIN=$(swift build -c release --show-bin-path)/extentdb
fi
DIR=$BENCH_DIR/report-$IMAGES
if [[ ! -f "$DIR/.ok" ]]; then
    rm -rf "$DIR" && mkdir -p "$DIR"
    echo "creating $IMAGES images in $DIR ..." >&2
    for i in $(seq 1 "$IMAGES"); do
        img=$DIR/vm-$(printf %04d "$i").qcow2
        qemu-img create -q -f qcow2 "$img" $((1 + i % 64))G
        qemu-io -f qcow2 -c "write -q -P $((i % 250 + 1)) $(((i * 7919) % 1024))M $((64 * (1 + i % 8)))k" \
            -c "write -q -z $(((i * 104729) % 512))M 1M" "$img" >/dev/null
    done
    touch "$DIR/.ok"
fi
DB=$BENCH_DIR/report.sqlite
rm -f "$DB" "$DB-wal" "$DB-shm"
scan_start=$(date +%s%N)
"$BIN" scan -q --db "$DB" "$DIR" >/dev/null
echo "indexed $IMAGES images in $((($(date +%s%N) - scan_start) / 1000000)) ms"

best_ms() {
    local best="" start elapsed
    for _ in $(seq "$RUNS"); do
        start=$(date +%s%N)
        "$@" >/dev/null
        elapsed=$((($(date +%s%N) - start) / 1000000))
        if [[ -z "$best" || $elapsed -lt $best ]]; then best=$elapsed; fi
    done
    echo "$best"
}
peer() { for img in "$DIR"/*.qcow2; do qemu-img info --output=json "$img"; done; }
FAILED=0
peer_ms=$(best_ms peer)
for format in table json csv html; do
    ms=$(best_ms "$BIN" report --db "$DB" --output "$format" "$DIR")
    awk -v f="$format" -v m="$ms" -v p="$peer_ms" 'BEGIN {
        printf "report --output %-5s %6d ms   (qemu-img info on each image: %d ms, %.0fx)", f, m, p, p / (m > 0 ? m : 1) }'
    if [[ $format == html ]]; then echo "   (draws every map: not in the target)"; continue; fi
    if ((ms < 1000)); then echo "   target < 1000 ms: PASS"; else echo "   target < 1000 ms: FAIL"; FAILED=1; fi
done
((FAILED)) && { echo "bench-report: some targets missed"; exit 1; }
echo "bench-report: all targets met"
