#!/usr/bin/env bash
# Create QCOW2 / raw test fixtures for extentdb using only qemu-img / qemu-io.
#
# Usage: scripts/make-fixtures.sh OUTDIR
#
# For every fixture whose top image is meant to be checked this writes
#   OUTDIR/NAME.map.json  = exact output of `qemu-img map --output=json TOP`
#                           (run inside OUTDIR so backing names stay relative)
# and appends `NAME<TAB>TOPFILE` to OUTDIR/manifest.tsv.
# Re-runnable: OUTDIR is wiped of previous fixture files first.
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi

command -v qemu-img >/dev/null || { echo "qemu-img not found" >&2; exit 1; }
command -v qemu-io >/dev/null || { echo "qemu-io not found" >&2; exit 1; }

OUTDIR=$1
mkdir -p "$OUTDIR"
cd "$OUTDIR"
rm -f -- ./*.qcow2 ./*.raw ./*.data ./*.map.json manifest.tsv
: > manifest.tsv

COUNT=0

K=1024
M=$((1024 * 1024))
G=$((1024 * M))
T=$((1024 * G))

# create FILE SIZE [qemu-img create options...]   (qcow2)
create() {
    local file=$1 size=$2
    shift 2
    qemu-img create -q -f qcow2 "$@" "$file" "$size"
}

# qio FMT FILE CMD...   -- run all CMDs in ONE qemu-io process, quietly.
qio() {
    local fmt=$1 file=$2
    shift 2
    local args=()
    local c
    for c in "$@"; do
        args+=(-c "$c")
    done
    local out
    if ! out=$(qemu-io -f "$fmt" "${args[@]}" "$file" 2>&1); then
        echo "qemu-io failed on $file:" >&2
        echo "$out" >&2
        exit 1
    fi
    # qemu-io reports most command failures on stdout but still exits 0.
    if grep -qiE 'error|failed|not supported|invalid' <<<"$out"; then
        echo "qemu-io reported an error on $file:" >&2
        echo "$out" >&2
        exit 1
    fi
}

# record NAME FILE [FMT]  -- write NAME.map.json and the manifest line.
record() {
    local name=$1 file=$2 fmt=${3:-qcow2}
    qemu-img map -f "$fmt" --output=json "$file" > "$name.map.json"
    printf '%s\t%s\n' "$name" "$file" >> manifest.tsv
    COUNT=$((COUNT + 1))
}

# ---------------------------------------------------------------------------
# Cluster sizes 512, 4K, 64K, 2M (qcow2 v3).
# Partial-cluster writes, runs spanning cluster boundaries, adjacent writes.
# ---------------------------------------------------------------------------
for cs in 512 4096 65536 2097152; do
    case $cs in
        512) tag=512 ;;
        4096) tag=4k ;;
        65536) tag=64k ;;
        2097152) tag=2m ;;
    esac
    name=cluster-$tag
    create "$name.qcow2" 64M -o "cluster_size=$cs"
    # 0/4k: adjacent 4k writes (partial cluster for cs > 8k);
    # cs+512: sub-cluster write in the 2nd cluster;
    # 12M-2k: 8k run straddling a cluster boundary;
    # 20M+12k / 20M+312k: adjacent runs, the first spanning many small clusters;
    # 30M+cs/2: unaligned run covering parts of 4 clusters;
    # 40M-512: 1k straddling a boundary; 64M-4k: last 4k of the disk.
    qio qcow2 "$name.qcow2" \
        "write -q -P 1 0 4k" \
        "write -q -P 2 4k 4k" \
        "write -q -P 3 $((cs + 512)) 1k" \
        "write -q -P 4 $((12 * M - 2 * K)) 8k" \
        "write -q -P 5 $((20 * M + 12 * K)) 300k" \
        "write -q -P 6 $((20 * M + 312 * K)) 4k" \
        "write -q -P 9 $((30 * M + cs / 2)) $((3 * cs))" \
        "write -q -P 7 $((40 * M - 512)) 1k" \
        "write -q -P 8 $((64 * M - 4 * K)) 4k"
    record "$name" "$name.qcow2"
done

# ---------------------------------------------------------------------------
# v2 image (compat=0.10): data plus write -z (v2 has no zero flag).
# ---------------------------------------------------------------------------
create v2.qcow2 8M -o compat=0.10
qio qcow2 v2.qcow2 \
    "write -q -P 0x11 0 192k" \
    "write -q -P 0x12 1M 64k" \
    "write -q -z 64k 64k" \
    "write -q -z 2M 128k" \
    "write -q -z -u 1M 64k"
record v2 v2.qcow2

# v2 overlay over a v2 backing file: write -z over backing data cannot be a
# zero flag nor a deallocation, so qemu has to store real zero data.
create v2-base.qcow2 8M -o compat=0.10
qio qcow2 v2-base.qcow2 "write -q -P 0x13 0 1M"
create v2-top.qcow2 8M -o compat=0.10 -b v2-base.qcow2 -F qcow2
qio qcow2 v2-top.qcow2 \
    "write -q -z 0 128k" \
    "write -q -z -u 256k 64k" \
    "write -q -z 2M 64k" \
    "write -q -P 0x14 512k 64k"
record v2-top v2-top.qcow2

# ---------------------------------------------------------------------------
# Zero clusters.
#   - write -z on unallocated range       -> zero flag, no offset
#   - write -z over written data          -> zero flag, offset kept (preallocated zero)
#   - write -z -u over written data       -> zero flag, cluster unmapped
#   - discard of written data             -> zero/unallocated
#   - partial-cluster write -z            -> data cluster written with zeros
# ---------------------------------------------------------------------------
create zero.qcow2 8M
qio qcow2 zero.qcow2 \
    "write -q -z 0 128k" \
    "write -q -P 0x21 256k 256k" \
    "write -q -z 256k 64k" \
    "write -q -z -u 384k 64k" \
    "write -q -P 0x22 1M 256k" \
    "discard -q 1M 128k" \
    "write -q -P 0x23 2M 64k" \
    "write -q -z 2M 4k" \
    "write -q -z 3M 4k" \
    "write -q -P 0x24 4M 128k" \
    "discard -q 4M 4k"
record zero zero.qcow2

# ---------------------------------------------------------------------------
# Compressed clusters: zlib (default) and zstd.
# ---------------------------------------------------------------------------
create compressed-zlib.qcow2 8M
qio qcow2 compressed-zlib.qcow2 \
    "write -q -c -P 0x31 0 64k" \
    "write -q -c -P 0x32 64k 64k" \
    "write -q -P 0x33 128k 64k" \
    "write -q -c -P 0x34 1M 64k" \
    "write -q -c -P 0 2M 64k"
record compressed-zlib compressed-zlib.qcow2

create compressed-zstd.qcow2 8M -o compression_type=zstd
qio qcow2 compressed-zstd.qcow2 \
    "write -q -c -P 0x41 0 64k" \
    "write -q -c -P 0x42 64k 64k" \
    "write -q -P 0x43 128k 64k" \
    "write -q -c -P 0x44 3M 64k"
record compressed-zstd compressed-zstd.qcow2

# ---------------------------------------------------------------------------
# Extended L2 (subclusters): 128k clusters (4k subclusters) and 64k clusters
# (2k subclusters).
# ---------------------------------------------------------------------------
for cs in 128k 64k; do
    name=extl2-$cs
    create "$name.qcow2" 8M -o "extended_l2=on,cluster_size=$cs"
    qio qcow2 "$name.qcow2" \
        "write -q -P 0x51 0 4k" \
        "write -q -P 0x52 8k 4k" \
        "write -q -P 0x53 60k 8k" \
        "write -q -P 0x54 124k 8k" \
        "write -q -P 0x55 512k 128k" \
        "write -q -z 520k 4k" \
        "write -q -z -u 560k 8k" \
        "discard -q 600k 8k" \
        "write -q -z 1M 4k" \
        "write -q -P 0x56 2M 2k" \
        "write -q -P 0x57 3M 128k" \
        "discard -q 3M 128k"
    record "$name" "$name.qcow2"
done

# ---------------------------------------------------------------------------
# Internal snapshots.
# ---------------------------------------------------------------------------
create snapshots.qcow2 8M
qio qcow2 snapshots.qcow2 \
    "write -q -P 0x61 0 256k" \
    "write -q -P 0x62 1M 64k"
qemu-img snapshot -c snap1 snapshots.qcow2
qio qcow2 snapshots.qcow2 \
    "write -q -P 0x63 64k 64k" \
    "write -q -P 0x64 2M 128k"
qemu-img snapshot -c snap2 snapshots.qcow2
qio qcow2 snapshots.qcow2 \
    "write -q -P 0x65 0 4k" \
    "write -q -P 0x66 4M 64k" \
    "discard -q 1M 64k"
record snapshots snapshots.qcow2

# ---------------------------------------------------------------------------
# 3-level chain over a raw base: base.raw <- mid.qcow2 <- top.qcow2
# ---------------------------------------------------------------------------
qemu-img create -q -f raw chain-base.raw 16M
qio raw chain-base.raw \
    "write -q -P 0x71 0 1M" \
    "write -q -P 0x72 4M 512k" \
    "write -q -P 0x73 10M 64k"
create chain-mid.qcow2 16M -b chain-base.raw -F raw
qio qcow2 chain-mid.qcow2 \
    "write -q -P 0x74 512k 1M" \
    "write -q -P 0x75 6M 256k" \
    "write -q -z 10M 32k"
create chain-top.qcow2 16M -b chain-mid.qcow2 -F qcow2
qio qcow2 chain-top.qcow2 \
    "write -q -P 0x76 1M 128k" \
    "write -q -P 0x77 6M 64k" \
    "write -q -z 4M 128k" \
    "write -q -P 0x78 12M 64k"
record chain-top chain-top.qcow2
record chain-mid chain-mid.qcow2
record chain-base chain-base.raw raw

# ---------------------------------------------------------------------------
# Backing file shorter than the overlay.
# ---------------------------------------------------------------------------
create short-base.qcow2 4M
qio qcow2 short-base.qcow2 \
    "write -q -P 0x81 0 1M" \
    "write -q -P 0x82 3M 1M"
create short-top.qcow2 16M -b short-base.qcow2 -F qcow2
qio qcow2 short-top.qcow2 \
    "write -q -P 0x83 512k 64k" \
    "write -q -P 0x84 8M 64k"
record short-top short-top.qcow2

# ---------------------------------------------------------------------------
# External data file (with and without data_file_raw).
# ---------------------------------------------------------------------------
create datafile.qcow2 8M -o data_file=datafile.data
qio qcow2 datafile.qcow2 \
    "write -q -P 0x91 0 128k" \
    "write -q -P 0x92 1M 4k" \
    "write -q -z 2M 64k" \
    "write -q -P 0x93 3M 64k" \
    "write -q -z 3M 64k"
record datafile datafile.qcow2

create datafile-raw.qcow2 8M -o data_file=datafile-raw.data,data_file_raw=on
qio qcow2 datafile-raw.qcow2 \
    "write -q -P 0xa1 0 128k" \
    "write -q -P 0xa2 1M 4k" \
    "write -q -z 2M 64k" \
    "write -q -P 0xa3 3M 64k" \
    "write -q -z 3M 64k"
record datafile-raw datafile-raw.qcow2

# ---------------------------------------------------------------------------
# > 4 TiB image.
# ---------------------------------------------------------------------------
create big.qcow2 5T
qio qcow2 big.qcow2 \
    "write -q -P 0xb1 0 64k" \
    "write -q -P 0xb2 $((1 << 32)) 64k" \
    "write -q -P 0xb3 $(((1 << 32) + 64 * K)) 4k" \
    "write -q -P 0xb4 $(((1 << 41) + 128 * K)) 128k" \
    "write -q -P 0xb5 $((4 * T + 4096)) 64k" \
    "write -q -P 0xb6 $((5 * T - 64 * K)) 64k"
record big big.qcow2

# ---------------------------------------------------------------------------
# Empty 1 GiB image.
# ---------------------------------------------------------------------------
create empty.qcow2 1G
record empty empty.qcow2

# ---------------------------------------------------------------------------
# Resized image: L1 table grows and is relocated after the data.
# ---------------------------------------------------------------------------
create resized.qcow2 64M -o cluster_size=64k
qio qcow2 resized.qcow2 \
    "write -q -P 0xc1 0 256k" \
    "write -q -P 0xc2 $((60 * M)) 64k"
qemu-img resize -q -f qcow2 resized.qcow2 200G
qio qcow2 resized.qcow2 \
    "write -q -P 0xc3 $((64 * M)) 64k" \
    "write -q -P 0xc4 $((100 * G)) 128k" \
    "write -q -P 0xc5 $((200 * G - 64 * K)) 64k" \
    "write -q -P 0xc6 128k 64k"
record resized resized.qcow2

# ---------------------------------------------------------------------------
# Zeros written as data (write -P 0): allocated data, not zero clusters.
# ---------------------------------------------------------------------------
create pattern-zero.qcow2 8M
qio qcow2 pattern-zero.qcow2 \
    "write -q -P 0 0 128k" \
    "write -q -P 0xd1 128k 64k" \
    "write -q -P 0 1M 4k"
record pattern-zero pattern-zero.qcow2

# ---------------------------------------------------------------------------
# Plain raw images (sparse host file with holes).
# ---------------------------------------------------------------------------
qemu-img create -q -f raw sparse.raw 8M
qio raw sparse.raw \
    "write -q -P 0xe1 0 64k" \
    "write -q -P 0xe2 1M 4k" \
    "write -q -P 0 2M 64k" \
    "write -q -P 0xe3 $((8 * M - 4 * K)) 4k"
record sparse sparse.raw raw

qemu-img create -q -f raw empty.raw 4M
record empty-raw empty.raw raw

# ---------------------------------------------------------------------------
# Edge sizes: a zero-length disk (qemu prints one empty entry), a size that is not a multiple of the
# cluster size (1,000,000 bytes, rounded up to 512 by qemu-img create), a partial last 2 MiB cluster.
# ---------------------------------------------------------------------------
create zero-length.qcow2 0
record zero-length zero-length.qcow2
create odd-size.qcow2 1000000
qio qcow2 odd-size.qcow2 "write -q -P 0x71 999424 512"
record odd-size odd-size.qcow2
create partial-cluster.qcow2 3M -o cluster_size=2M
qio qcow2 partial-cluster.qcow2 "write -q -P 0x72 2M 4k"
record partial-cluster partial-cluster.qcow2

# ---------------------------------------------------------------------------
# LUKS-encrypted qcow2: mapped without host offsets (qemu reports none either).
# qemu needs the key to open it, so the expected map comes through --image-opts.
# ---------------------------------------------------------------------------
SECRET=(--object secret,id=sec0,data=extentdb-test)
ENC_OPTS="driver=qcow2,file.filename=encrypted.qcow2,encrypt.key-secret=sec0"
# qemu times PBKDF2 with the thread's CPU time, which the kernel counts in scheduler ticks: a first
# round that gets no tick reads as 0 ms and fails ("Unable to get accurate CPU usage"), as often as 7 times
# in 10 on a busy 2-core machine. Each attempt takes milliseconds, so retry many times.
for attempt in $(seq 40); do
    rm -f encrypted.qcow2
    if qemu-img create -q -f qcow2 "${SECRET[@]}" \
        -o encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10 encrypted.qcow2 16M 2>/dev/null; then
        break
    fi
    [[ $attempt -lt 40 ]] || { echo "qemu-img could not create the LUKS fixture (40 attempts)" >&2; exit 1; }
done
qemu-io "${SECRET[@]}" --image-opts "$ENC_OPTS" \
    -c "write -q -P 0xf1 0 64k" -c "write -q -z 1M 64k" -c "write -q -P 0xf2 4M 4k" >/dev/null
qemu-img map --output=json "${SECRET[@]}" --image-opts "$ENC_OPTS" > encrypted.map.json
printf '%s\t%s\n' encrypted encrypted.qcow2 >> manifest.tsv
COUNT=$((COUNT + 1))

echo "make-fixtures: $COUNT fixtures in $OUTDIR"
