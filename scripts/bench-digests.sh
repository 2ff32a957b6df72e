#!/usr/bin/env bash
# Benchmark (not a test): content truth (#20), against peers measured in the same run.
#
# A. Digest throughput: `extentdb scan --digests` of a 2 GiB qcow2 holding 2 GiB of data (a fresh index
#    each run, so nothing is kept from an earlier digest scan), against `openssl dgst -sha256` over the same
#    bytes as a raw file; both from the page cache. Target: ours >= 0.8x openssl's throughput.
# B. Digest rescan: a 1 GiB chain (384 MiB of data in the base), 64 KiB written to the top layer, then
#    `scan --digests` again. Target: it reads under 16 MiB.
# C. Preallocated images: falloc (1 GiB, 2 MiB of data), full (512 MiB, 2 MiB of data, after a digest scan)
#    and data_file_raw (1 GiB, 10 MiB): the size and time of `extentdb export --format qcow2` against
#    `qemu-img convert -O qcow2`. Target: no bigger than x1.1, no slower.
#
# Environment: SKIP_BUILD=1, EXTENTDB=path, BENCH_DIR (default /tmp/extentdb-bench/digests), RUNS (default 3).
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_DIR=${BENCH_DIR:-/tmp/extentdb-bench/digests}
RUNS=${RUNS:-3}
mkdir -p "$BENCH_DIR"
source scripts/bench-binary.sh
cd "$BENCH_DIR"
now_ns() { date +%s%N; }
ms() { local start end; start=$(now_ns); "$@" > /dev/null; end=$(now_ns); echo $(((end - start) / 1000000)); }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
field() { python3 -c 'import json, sys; print(json.load(sys.stdin)["images"][0]["digests"][sys.argv[1]])' "$1"; }

# --- A. digest throughput ------------------------------------------------------------------------------
if [[ ! -f full.ok ]]; then
    echo "bench-digests: making a 2 GiB image of data (once)..." >&2
    rm -f data.qcow2 data.raw
    head -c $((2 << 30)) /dev/urandom > data.raw
    qemu-img convert -O qcow2 data.raw data.qcow2
    touch full.ok
fi
cat data.raw data.qcow2 > /dev/null  # into the page cache, for both
ours=()
peer=()
for _ in $(seq "$RUNS"); do
    rm -f index.sqlite*
    ours+=("$(ms "$BIN" scan -q --digests data.qcow2 --db index.sqlite)")
    peer+=("$(ms openssl dgst -sha256 data.raw)")
done
O=$(printf '%s\n' "${ours[@]}" | median)
P=$(printf '%s\n' "${peer[@]}" | median)
echo "digests of 2 GiB: extentdb scan --digests ${O} ms ($((2048 * 1000 / O)) MiB/s), openssl dgst -sha256 ${P} ms ($((2048 * 1000 / P)) MiB/s): ratio $(awk -v o="$O" -v p="$P" 'BEGIN { printf "%.2f", p / o }')"

# --- B. digest rescan after a small change ---------------------------------------------------------------
rm -f base.qcow2 top.qcow2 chain.sqlite*
qemu-img create -q -f qcow2 base.qcow2 1G
qemu-io -f qcow2 -c 'write -P 1 0 256M' -c 'write -P 2 512M 128M' base.qcow2 > /dev/null
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 top.qcow2
"$BIN" scan -q --digests top.qcow2 --db chain.sqlite > /dev/null
qemu-io -f qcow2 -c 'write -P 9 300M 64k' top.qcow2 > /dev/null
READ=$("$BIN" scan --digests --output json top.qcow2 --db chain.sqlite | field bytes_read)
echo "digest rescan after 64 KiB written to the top of a 1 GiB chain: read $((READ / 1024)) KiB (target < 16 MiB)"

# --- C. preallocated images --------------------------------------------------------------------------------
rm -f falloc.qcow2 full.qcow2 dfr.qcow2 dfr.raw pre.sqlite*
qemu-img create -q -f qcow2 -o preallocation=falloc falloc.qcow2 1G
qemu-io -f qcow2 -c 'write -P 7 100M 2M' falloc.qcow2 > /dev/null
qemu-img create -q -f qcow2 -o preallocation=full full.qcow2 512M
qemu-io -f qcow2 -c 'write -P 7 10M 2M' full.qcow2 > /dev/null
qemu-img create -q -f qcow2 -o data_file=dfr.raw,data_file_raw=on dfr.qcow2 1G
qemu-io -f qcow2 -c 'write -P 7 0 10M' dfr.qcow2 > /dev/null
"$BIN" scan -q falloc.qcow2 dfr.qcow2 --db pre.sqlite > /dev/null
"$BIN" scan -q --digests full.qcow2 --db pre.sqlite > /dev/null
for image in falloc full dfr; do
    ours=()
    peer=()
    for _ in $(seq "$RUNS"); do
        rm -f ours.qcow2 peer.qcow2
        ours+=("$(ms "$BIN" export $image.qcow2 --format qcow2 -q --to ours.qcow2 --db pre.sqlite)")
        peer+=("$(ms qemu-img convert -O qcow2 $image.qcow2 peer.qcow2)")
    done
    qemu-img compare -q ours.qcow2 $image.qcow2 || { echo "bench-digests: $image export differs" >&2; exit 1; }
    O=$(printf '%s\n' "${ours[@]}" | median)
    P=$(printf '%s\n' "${peer[@]}" | median)
    echo "$image: export --format qcow2 $(stat -c %s ours.qcow2) bytes in ${O} ms; qemu-img convert $(stat -c %s peer.qcow2) bytes in ${P} ms"
done

# --- D. a progress display does not slow an export ----------------------------------------------------------
# The same raw export of a 4 GiB half-allocated qcow2 with -q and with its progress line drawn on a
# pseudo-terminal (`script`), alternately. Target: the same time.
if [[ ! -f half.ok ]]; then
    rm -f half.qcow2
    qemu-img create -q -f qcow2 half.qcow2 4G
    for i in $(seq 0 31); do echo "write -q -P 1 $((i * 128))M 64M"; done | qemu-io -f qcow2 half.qcow2 > /dev/null
    touch half.ok
fi
"$BIN" scan -q half.qcow2 --db half.sqlite > /dev/null
quiet=()
shown=()
for _ in $(seq "$RUNS"); do
    rm -f half.raw; sync
    quiet+=("$(ms "$BIN" export half.qcow2 --format raw -q --to half.raw --db half.sqlite)")
    rm -f half.raw; sync
    shown+=("$(ms script -qc "'$BIN' export half.qcow2 --format raw --to half.raw --db half.sqlite" /dev/null)")
done
rm -f half.raw
Q=$(printf '%s\n' "${quiet[@]}" | median)
S=$(printf '%s\n' "${shown[@]}" | median)
echo "raw export of 4 GiB (half allocated): -q ${Q} ms, progress on a terminal ${S} ms (ratio $(awk -v q="$Q" -v s="$S" 'BEGIN { printf "%.2f", s / q }'))"
