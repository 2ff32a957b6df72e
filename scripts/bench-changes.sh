#!/usr/bin/env bash
# Benchmark (not a test): what changed, against the peers' ways of finding out, measured in the same run.
#
# A. Sibling delta (#19): a 4 GiB qcow2 base with 1 GiB of data, snapshot S1 (64 MiB of scattered writes made
#    after it, on S1's side), the running disk with a day's scattered writes (128 MiB), then snapshot S2 of
#    it. The peer is xapi's qcow2 delta path, reproduced: `qemu-img map` and `qemu-img info` of both images,
#    then a cluster-by-cluster comparison of their raw contents (here `qemu-img convert` to raw and a
#    Python comparison of the clusters both maps allocate). Ours: `extentdb export S2 --base S1 --format
#    qcow2`, with the index warm (both scanned once before; a cold run, scans included, is reported too).
#    Target: ours takes at most a tenth of the peer's time.
# B. Dirty bitmap over NBD: a 1 TiB qcow2 with a bitmap and 20,000 dirty 64 KiB clusters.
#    `nbdinfo --map=qemu:dirty-bitmap:b0` against `qemu-nbd -r -B b0` and against `extentdb nbd -B b0`.
#    Target: ours is no slower (ratio qemu/extentdb >= 1). Each run times the first map on a fresh server
#    and a second map on it, for both servers.
#
# Environment: SKIP_BUILD=1, EXTENTDB=path, BENCH_DIR (default /tmp/extentdb-bench/changes), RUNS (default 3).
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_DIR=${BENCH_DIR:-/tmp/extentdb-bench/changes}
RUNS=${RUNS:-3}
mkdir -p "$BENCH_DIR"
source scripts/bench-binary.sh
cd "$BENCH_DIR"
now_ns() { date +%s%N; }
ms() { local start end; start=$(now_ns); "$@" > /dev/null; end=$(now_ns); echo $(((end - start) / 1000000)); }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# writes N SEED SPAN PATTERN: qemu-io commands for N scattered 64 KiB writes below SPAN bytes.
writes() {
    awk -v n="$1" -v seed="$2" -v span="$3" -v p="$4" 'BEGIN { x = seed; for (i = 0; i < n; i++) {
        x = (x * 48271) % 2147483647; printf "write -q -P %d %.0f 64k\n", p, (x % (span / 65536)) * 65536 } }'
}

# --- A. sibling delta -----------------------------------------------------------------------------------
if [[ ! -f sibling.ok ]]; then
    echo "bench-changes: making the sibling history (once)..." >&2
    rm -f base.qcow2 s1.qcow2 run.qcow2 s2.qcow2
    qemu-img create -q -f qcow2 base.qcow2 4G
    for i in $(seq 0 15); do echo "write -q -P 1 $((i * 256))M 64M"; done | qemu-io -f qcow2 base.qcow2 > /dev/null
    qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 s1.qcow2
    qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 run.qcow2
    writes 2048 7 $((4 << 30)) 2 | qemu-io -f qcow2 run.qcow2 > /dev/null
    qemu-img create -q -f qcow2 -b run.qcow2 -F qcow2 s2.qcow2
    writes 1024 11 $((4 << 30)) 3 | qemu-io -f qcow2 s1.qcow2 > /dev/null
    touch sibling.ok
fi
cat > xapi-delta.py <<'PY'
import json, subprocess, sys
# xapi's qcow2 delta path, reproduced: map and info of both images, then compare the clusters both allocate.
def run(*args): return subprocess.run(args, check=True, capture_output=True, text=True).stdout
maps = {}
for image in ("s1.qcow2", "s2.qcow2"):
    json.loads(run("qemu-img", "info", "--output=json", image))
    maps[image] = [e for e in json.loads(run("qemu-img", "map", "--output=json", image)) if e["data"]]
subprocess.run(["qemu-img", "convert", "-O", "raw", "s1.qcow2", "s1.raw"], check=True)
subprocess.run(["qemu-img", "convert", "-O", "raw", "s2.qcow2", "s2.raw"], check=True)
cluster = 65536
def clusters(entries): return {c for e in entries for c in range(e["start"] // cluster, (e["start"] + e["length"] + cluster - 1) // cluster)}
a, b = clusters(maps["s1.qcow2"]), clusters(maps["s2.qcow2"])
changed = (a ^ b)
with open("s1.raw", "rb") as f1, open("s2.raw", "rb") as f2:
    for c in sorted(a & b):
        f1.seek(c * cluster); f2.seek(c * cluster)
        if f1.read(cluster) != f2.read(cluster): changed.add(c)
print(len(changed))
PY
peer=()
ours=()
cold=()
for _ in $(seq "$RUNS"); do
    rm -f s1.raw s2.raw; sync
    peer+=("$(ms python3 xapi-delta.py)")
    rm -f index.sqlite* delta.qcow2; sync
    cold+=("$(ms "$BIN" export s2.qcow2 --base s1.qcow2 --format qcow2 --to delta.qcow2 -q --db index.sqlite)")
    rm -f delta.qcow2; sync
    ours+=("$(ms "$BIN" export s2.qcow2 --base s1.qcow2 --format qcow2 --to delta.qcow2 -q --db index.sqlite)")
done
qemu-img compare -q delta.qcow2 s2.qcow2 || { echo "bench-changes: the delta does not read as S2" >&2; exit 1; }
rm -f s1.raw s2.raw
P=$(printf '%s\n' "${peer[@]}" | median)
O=$(printf '%s\n' "${ours[@]}" | median)
C=$(printf '%s\n' "${cold[@]}" | median)
echo "sibling delta (4 GiB): xapi path ${P} ms; extentdb export --base ${O} ms warm (ratio $(awk -v p="$P" -v o="$O" 'BEGIN { printf "%.1f", p / o }')x), ${C} ms with both scans"

# --- B. dirty bitmap over NBD ----------------------------------------------------------------------------
if [[ ! -f bitmap.ok ]]; then
    echo "bench-changes: making the 1 TiB bitmap image (once)..." >&2
    rm -f big.qcow2
    qemu-img create -q -f qcow2 big.qcow2 1T
    qemu-img bitmap --add big.qcow2 b0
    writes 20000 42 $((1 << 40)) 4 | qemu-io -f qcow2 big.qcow2 > /dev/null
    touch bitmap.ok
fi
"$BIN" scan -q big.qcow2 --db index.sqlite > /dev/null
map_ms() {  # map_ms SOCKET: nbdinfo --map over the dirty-bitmap context
    ms nbdinfo --map=qemu:dirty-bitmap:b0 "nbd+unix:///?socket=$1"
}
wait_socket() { for _ in $(seq 400); do [[ -S $1 ]] && return; sleep 0.05; done; return 1; }
qemu_runs=()
our_runs=()
qemu_first=()
our_first=()
for _ in $(seq "$RUNS"); do
    rm -f q.sock e.sock
    qemu-nbd -r -t -B b0 -k "$PWD/q.sock" -f qcow2 big.qcow2 & q=$!
    "$BIN" nbd big.qcow2 -B b0 --socket "$PWD/e.sock" --db index.sqlite 2> /dev/null & e=$!
    wait_socket q.sock && wait_socket e.sock
    # The first map on a fresh server, then a second one: a server's one-time start-up work (qemu-nbd's
    # is C start-up, ours includes the Swift runtime's first use of each type) shows in the first only.
    qemu_first+=("$(map_ms "$PWD/q.sock")")
    our_first+=("$(map_ms "$PWD/e.sock")")
    qemu_runs+=("$(map_ms "$PWD/q.sock")")
    our_runs+=("$(map_ms "$PWD/e.sock")")
    cmp <(nbdinfo --map=qemu:dirty-bitmap:b0 "nbd+unix:///?socket=$PWD/q.sock") \
        <(nbdinfo --map=qemu:dirty-bitmap:b0 "nbd+unix:///?socket=$PWD/e.sock") || { echo "bench-changes: maps differ" >&2; exit 1; }
    kill -9 $q $e 2> /dev/null || true
    wait $q $e 2> /dev/null || true
done
Q=$(printf '%s\n' "${qemu_runs[@]}" | median)
E=$(printf '%s\n' "${our_runs[@]}" | median)
QF=$(printf '%s\n' "${qemu_first[@]}" | median)
EF=$(printf '%s\n' "${our_first[@]}" | median)
echo "dirty bitmap (1 TiB, 20,000 dirty clusters): nbdinfo --map via qemu-nbd -B ${Q} ms, via extentdb nbd -B ${E} ms (ratio $(awk -v q="$Q" -v e="$E" 'BEGIN { printf "%.2f", q / e }')); first map on a fresh server ${QF} ms vs ${EF} ms (ratio $(awk -v q="$QF" -v e="$EF" 'BEGIN { printf "%.2f", q / e }'))"
