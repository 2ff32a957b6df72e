#!/usr/bin/env bash
# Crash safety of the index: SIGKILL `extentdb scan --force` at random points, N times (default 100).
#
# Usage: scripts/kill-loop.sh [N] [EXTENTDB_BINARY]
#
# Four images (a scattered 64 GiB qcow2, a qcow2 over a qcow2 backing file, a dynamic VHD, a sparse raw file)
# are scanned into one index. Each iteration first changes one image (a new 4 KiB write), records the scan
# a serial `extentdb scan` makes of the new state in a separate reference index, then starts
# `extentdb scan --force` on all four and kills it with SIGKILL after a random delay within one scan's
# duration. Afterwards the index must open, pass `PRAGMA integrity_check` and `PRAGMA foreign_key_check`,
# and every image's latest scan must be exactly its old scan or its new one (counts, totals and the packed
# extents compared), whose chunk rows add up to its totals: never a mix. Exits 1 on the first violation.
set -euo pipefail

ITERATIONS=${1:-100}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
X=${2:-$ROOT/.build/debug/extentdb}
[[ -x $X ]] || { echo "kill-loop: $X is not built (swift build)" >&2; exit 2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/extentdb-kill-loop-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

qemu-img create -q -f qcow2 -o cluster_size=4k big.qcow2 64G
awk 'BEGIN { x = 7; for (i = 0; i < 6000; i++) { x = (x * 48271) % 2147483647; printf "write -q -P 1 %.0f 4k\n", (x % 16000000) * 4096 } }' \
    | qemu-io -f qcow2 big.qcow2 >/dev/null
qemu-img create -q -f qcow2 base.qcow2 1G
qemu-io -f qcow2 -c 'write -q -P 2 0 1M' -c 'write -q -P 3 512M 64k' base.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 top.qcow2 1G
qemu-img create -q -f vpc disk.vhd 256M
qemu-io -f vpc -c 'write -q -P 4 0 4M' -c 'write -q -P 5 100M 1M' disk.vhd >/dev/null
truncate -s 64M sparse.raw
printf 'data' | dd of=sparse.raw bs=1 seek=$((5 << 20)) conv=notrunc status=none
IMAGES=(big.qcow2 top.qcow2 disk.vhd sparse.raw)

# figures DB IMAGE: the latest scan of IMAGE as one line, or "none"; "MIXED ..." if its chunks disagree.
figures() {
    python3 - "$1" "$(realpath "$2")" <<'PY'
import hashlib, sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
# An unchanged rescan stores no chunks of its own: its extents are those of scan extents_scan_id.
row = db.execute("""SELECT coalesce(s.extents_scan_id, s.id), s.extent_count, s.data_bytes, s.own_data_bytes, s.zero_bytes,
                           s.virtual_size, s.chain_depth FROM images i JOIN scans s ON s.id = i.latest_scan_id WHERE i.path = ?""",
                 (sys.argv[2],)).fetchone()
if row is None:
    print("none"); sys.exit()
chunks = db.execute("""SELECT coalesce(sum(extent_count), 0), coalesce(sum(data_bytes), 0), coalesce(sum(length), 0)
                       FROM extent_chunks WHERE scan_id = ?""", (row[0],)).fetchone()
digest = hashlib.sha1()
for (runs,) in db.execute("SELECT runs FROM extent_chunks WHERE scan_id = ? ORDER BY start", (row[0],)):
    digest.update(runs)
if (chunks[0], chunks[1], chunks[2]) != (row[1], row[2], row[5]):
    print("MIXED", row, chunks); sys.exit()
print(*row[1:], digest.hexdigest())
PY
}

check_index() {
    python3 - "$1" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
integrity = db.execute("PRAGMA integrity_check").fetchall()
keys = db.execute("PRAGMA foreign_key_check").fetchall()
if integrity != [("ok",)] or keys:
    print("integrity:", integrity[:5], "foreign keys:", keys[:5]); sys.exit(1)
PY
}

DB=$WORK/index.sqlite
REF=$WORK/reference.sqlite
"$X" scan -q --db "$DB" "${IMAGES[@]}" >/dev/null
# CURRENT: what the index shows for each image; STATE: the scan of the image's present content (from the
# reference index). After a kill each image must show one of the two.
declare -A CURRENT STATE
for image in "${IMAGES[@]}"; do
    CURRENT[$image]=$(figures "$DB" "$image")
    STATE[$image]=${CURRENT[$image]}
done

START_NS=$(date +%s%N)
"$X" scan -q --force --db "$REF" "${IMAGES[@]}" >/dev/null
SCAN_MS=$(( ($(date +%s%N) - START_NS) / 1000000 ))
echo "kill-loop: one scan of the four images takes ${SCAN_MS} ms; killing within $((SCAN_MS * 12 / 10)) ms"

RANDOM=${KILL_LOOP_SEED:-11}
killed_mid_scan=0
old_seen=0
new_seen=0
for ((i = 1; i <= ITERATIONS; i++)); do
    image=${IMAGES[$((i % 4))]}
    offset=$(( (RANDOM * 32768 + RANDOM) % 60000 * 4096 ))
    case $image in
    sparse.raw) printf 'iter%06d' "$i" | dd of=sparse.raw bs=1 seek=$((offset % (60 << 20))) conv=notrunc status=none ;;
    disk.vhd) qemu-io -f vpc -c "write -q -P $((i % 250 + 1)) $((offset % (250 << 20))) 4k" disk.vhd >/dev/null ;;
    top.qcow2) qemu-io -f qcow2 -c "write -q -P $((i % 250 + 1)) $((offset % (1 << 30))) 4k" top.qcow2 >/dev/null ;;
    *) qemu-io -f qcow2 -c "write -q -P $((i % 250 + 1)) $offset 4k" big.qcow2 >/dev/null ;;
    esac
    "$X" scan -q --force --db "$REF" "$image" >/dev/null
    STATE[$image]=$(figures "$REF" "$image")

    delay_ms=$(( RANDOM % (SCAN_MS * 12 / 10 + 1) ))
    "$X" scan -q --force --db "$DB" "${IMAGES[@]}" >/dev/null 2>&1 &
    pid=$!
    sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
    if kill -KILL "$pid" 2>/dev/null; then killed_mid_scan=$((killed_mid_scan + 1)); fi
    wait "$pid" 2>/dev/null || true

    if ! check_index "$DB"; then echo "kill-loop: iteration $i: the index fails its integrity check" >&2; exit 1; fi
    for other in "${IMAGES[@]}"; do
        found=$(figures "$DB" "$other")
        if [[ $found == "${STATE[$other]}" ]]; then
            [[ $other == "$image" ]] && new_seen=$((new_seen + 1))
        elif [[ $found == "${CURRENT[$other]}" ]]; then
            [[ $other == "$image" ]] && old_seen=$((old_seen + 1))
        else
            echo "kill-loop: iteration $i: $other shows neither its old nor its new scan" >&2
            echo "  found: $found" >&2
            echo "  old:   ${CURRENT[$other]}" >&2
            echo "  new:   ${STATE[$other]}" >&2
            exit 1
        fi
        CURRENT[$other]=$found
    done
done
echo "kill-loop: $ITERATIONS iterations, $killed_mid_scan killed mid-scan (the rest had finished); the changed image showed its old scan $old_seen times and its new scan $new_seen times; index intact, no mixed scan"
