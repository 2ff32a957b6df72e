#!/usr/bin/env bash
# Crash safety of the index's lifecycle commands: SIGKILL `extentdb gc --keep K`, `extentdb gc --keep K
# --vacuum` and `extentdb forget IMAGE` at random points, N times each (default 100).
#
# Usage: scripts/kill-loop-lifecycle.sh [N] [EXTENTDB_BINARY]
#
# Four images (a scattered 64 GiB qcow2 with 24,000 clusters, a qcow2 over a qcow2 backing file, a dynamic VHD, a sparse raw
# file) are scanned ROUNDS times into one index (`scan --force --keep 1000`): every round changes the big
# qcow2 and one other image, so the history holds scans with their own chunks and unchanged rescans that
# share an earlier scan's chunks (which gc must hand over before deleting their owner). That index is the
# template. Each iteration copies it, runs the command and kills it after a random delay within its
# duration (measured unkilled on a copy, which also gives the expected result). Afterwards the index must
# pass `PRAGMA integrity_check` and `PRAGMA foreign_key_check`; every scan row must have its extents (own
# chunks, or the chunks of a scan that holds them) tiling the disk and adding up to the scan's totals; no
# chunk may belong to a missing scan or to a scan that borrows; every image with scans must name its
# newest as latest; and the whole index must equal either the template or the command's finished result:
# gc removed its scans wholly or not at all, a forgotten image is wholly present or wholly gone.
# Exits 1 on the first violation.
set -euo pipefail

ITERATIONS=${1:-100}
ROUNDS=${KILL_LOOP_ROUNDS:-40}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
X=${2:-$ROOT/.build/debug/extentdb}
[[ -x $X ]] || { echo "kill-loop-lifecycle: $X is not built (swift build)" >&2; exit 2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/extentdb-kill-lifecycle-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

# 24,000 scattered 4 KiB clusters (about 48,000 extents, 12 index chunks a scan), written into a sparse raw
# file and converted: much faster than as many qemu-io writes.
python3 - <<'PY'
x = 7
with open("big.raw", "wb") as f:
    f.truncate(64 << 30)
    for i in range(24000):
        x = x * 48271 % 2147483647
        f.seek(x % 16000000 * 4096)
        f.write(bytes([i % 250 + 1]) * 4096)
PY
qemu-img convert -O qcow2 -o cluster_size=4k big.raw big.qcow2
rm big.raw
qemu-img create -q -f qcow2 base.qcow2 1G
qemu-io -f qcow2 -c 'write -q -P 2 0 1M' -c 'write -q -P 3 512M 64k' base.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 top.qcow2 1G
qemu-img create -q -f vpc disk.vhd 256M
qemu-io -f vpc -c 'write -q -P 4 0 4M' -c 'write -q -P 5 100M 1M' disk.vhd >/dev/null
truncate -s 64M sparse.raw
printf 'data' | dd of=sparse.raw bs=1 seek=$((5 << 20)) conv=notrunc status=none
IMAGES=(big.qcow2 top.qcow2 disk.vhd sparse.raw)

# The history: ROUNDS scans of each image, the big one changed every round, one other in turn.
TEMPLATE=$WORK/template.sqlite
RANDOM=${KILL_LOOP_SEED:-11}
for ((round = 1; round <= ROUNDS; round++)); do
    offset=$(( (RANDOM * 32768 + RANDOM) % 60000 * 4096 ))
    qemu-io -f qcow2 -c "write -q -P $((round % 250 + 1)) $offset 4k" big.qcow2 >/dev/null
    case $((round % 3)) in
    0) printf 'round%05d' "$round" | dd of=sparse.raw bs=1 seek=$((offset % (60 << 20))) conv=notrunc status=none ;;
    1) qemu-io -f vpc -c "write -q -P $((round % 250 + 1)) $((offset % (250 << 20))) 4k" disk.vhd >/dev/null ;;
    2) qemu-io -f qcow2 -c "write -q -P $((round % 250 + 1)) $((offset % (1 << 30))) 4k" top.qcow2 >/dev/null ;;
    esac
    "$X" scan -q --force --keep 1000 --db "$TEMPLATE" "${IMAGES[@]}" >/dev/null
done
# One file, no WAL: a copy is the whole index.
python3 -c 'import sqlite3, sys; sqlite3.connect(sys.argv[1]).execute("PRAGMA wal_checkpoint(TRUNCATE)")' "$TEMPLATE"

# check DB: the invariants every state of the index must keep; prints the index's logical content as one
# digest line (images, scans with their extents as read through their chunk owner, layers, failures).
check() {
    python3 - "$1" <<'PY'
import hashlib, sqlite3, sys
db = sqlite3.connect(sys.argv[1])  # read-write: recovers a WAL left by the killed process, as extentdb would
problems = []
integrity = db.execute("PRAGMA integrity_check").fetchall()
if integrity != [("ok",)]:
    problems.append(f"integrity_check: {integrity[:5]}")
keys = db.execute("PRAGMA foreign_key_check").fetchall()
if keys:
    problems.append(f"foreign_key_check: {keys[:5]}")
orphans = db.execute("SELECT count(*) FROM extent_chunks WHERE scan_id NOT IN (SELECT id FROM scans)").fetchone()[0]
if orphans:
    problems.append(f"{orphans} chunks without their scan")
borrowers = db.execute("""SELECT count(*) FROM extent_chunks c JOIN scans s ON s.id = c.scan_id
                          WHERE s.extents_scan_id IS NOT NULL""").fetchone()[0]
if borrowers:
    problems.append(f"{borrowers} chunks held by scans that borrow another scan's")
layerless = db.execute("SELECT count(*) FROM scan_layers WHERE scan_id NOT IN (SELECT id FROM scans)").fetchone()[0]
if layerless:
    problems.append(f"{layerless} layer rows without their scan")
digest = hashlib.sha1()
for row in db.execute("""SELECT i.id, i.path, i.format, i.virtual_size, i.backing_path, i.latest_scan_id,
                                (SELECT max(id) FROM scans WHERE image_id = i.id) FROM images i ORDER BY i.id"""):
    if row[6] is not None and row[5] != row[6]:
        problems.append(f"image {row[1]}: latest scan {row[5]}, newest scan {row[6]}")
    digest.update(repr(row).encode())
for scan in db.execute("""SELECT id, image_id, coalesce(extents_scan_id, id), extent_count, data_bytes, own_data_bytes,
                                 zero_bytes, compressed_bytes, virtual_size, chain_depth FROM scans ORDER BY id""").fetchall():
    sid, owner = scan[0], scan[2]
    if owner != sid and db.execute("SELECT extents_scan_id FROM scans WHERE id = ?", (owner,)).fetchone() != (None,):
        problems.append(f"scan {sid} borrows the extents of scan {owner}, which does not hold its own")
    position, count, sums, runs = 0, 0, [0, 0, 0, 0], hashlib.sha1()
    for start, length, n, data, own, zero, compressed, blob in db.execute(
            """SELECT start, length, extent_count, data_bytes, own_data_bytes, zero_bytes, compressed_bytes, runs
               FROM extent_chunks WHERE scan_id = ? ORDER BY start""", (owner,)):
        if start != position:
            problems.append(f"scan {sid}: a chunk starts at {start}, the previous one ends at {position}")
        position, count = start + length, count + n
        sums = [a + b for a, b in zip(sums, (data, own, zero, compressed))]
        runs.update(blob)
    if position != scan[8] or sums != list(scan[4:8]) or count < scan[3]:
        problems.append(f"scan {sid}: chunks of scan {owner} give {position} bytes, totals {sums}, {count} extents; "
                        f"the scan says {scan[8]}, {list(scan[4:8])}, {scan[3]}")
    depths = [d for (d,) in db.execute("SELECT depth FROM scan_layers WHERE scan_id = ? ORDER BY depth", (sid,))]
    if depths != list(range(scan[9])):
        problems.append(f"scan {sid}: layers {depths} for a chain of {scan[9]}")
    digest.update(repr((sid, scan[1], scan[3:], runs.hexdigest())).encode())
for row in db.execute("SELECT scan_id, depth, path, device, inode, file_size, mtime_ns FROM scan_layers ORDER BY 1, 2"):
    digest.update(repr(row).encode())
for row in db.execute("SELECT path, message FROM scan_failures ORDER BY path"):
    digest.update(repr(row).encode())
if problems:
    print("BROKEN", *problems[:10], sep="\n  ")
    sys.exit(1)
scans = db.execute("SELECT count(*) FROM scans").fetchone()[0]
print(f"{digest.hexdigest()} {scans}")
PY
}

elapsed_ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

BEFORE=$(check "$TEMPLATE") || { echo "kill-loop-lifecycle: the template index is broken: $BEFORE" >&2; exit 1; }
echo "kill-loop-lifecycle: template: $ROUNDS rounds, ${BEFORE#* } scans, $(du -k "$TEMPLATE" | cut -f1) KiB"

# Expected results and durations, finished runs per command (cached by command line). IDLE is the same
# command run again on its own result, with nothing left to do: start-up, opening the index, the queries
# and exit. A kill later than that, while the process still runs, lands mid-operation. Both times are the
# least of three runs: the machine is shared, and a slow run would put most kills after the end.
declare -A AFTER DURATION IDLE
reference() {
    local key="$*"
    [[ -n ${AFTER[$key]:-} ]] && return
    local start took idle run
    for run in 1 2 3; do
        rm -f "$WORK"/reference.sqlite*
        cp "$TEMPLATE" "$WORK/reference.sqlite"
        start=$(date +%s%N)
        "$X" "$@" --db "$WORK/reference.sqlite" >/dev/null
        took=$(elapsed_ms "$start")
        DURATION[$key]=$(( run == 1 || took < DURATION[$key] ? took : DURATION[$key] ))
        start=$(date +%s%N)
        "$X" "$@" --db "$WORK/reference.sqlite" >/dev/null 2>&1 || true
        idle=$(elapsed_ms "$start")
        IDLE[$key]=$(( run == 1 || idle < IDLE[$key] ? idle : IDLE[$key] ))
    done
    AFTER[$key]=$(check "$WORK/reference.sqlite") || { echo "kill-loop-lifecycle: $key broke the index unkilled" >&2; exit 1; }
    rm -f "$WORK"/reference.sqlite*
    echo "kill-loop-lifecycle: '$key' takes ${DURATION[$key]} ms unkilled, ${IDLE[$key]} ms with nothing to do (${BEFORE#* } -> ${AFTER[$key]#* } scans)"
}

summary=()
for mode in gc gc-vacuum forget; do
    killed=0 mid=0 untouched=0 finished=0 killed_finished=0
    for ((i = 1; i <= ITERATIONS; i++)); do
        case $mode in
        gc) command=(gc --keep $((RANDOM % 3 * 2 + 1))) ;;
        gc-vacuum) command=(gc --keep $((RANDOM % 3 * 2 + 1)) --vacuum) ;;
        forget) command=(forget "${IMAGES[$((RANDOM % 4))]}") ;;
        esac
        reference "${command[@]}"
        key="${command[*]}"
        rm -f "$WORK"/index.sqlite*
        cp "$TEMPLATE" "$WORK/index.sqlite"
        delay_ms=$(( RANDOM % (DURATION[$key] * 12 / 10 + 1) ))
        "$X" "${command[@]}" --db "$WORK/index.sqlite" >/dev/null 2>&1 &
        pid=$!
        sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
        was_killed=0
        if kill -KILL "$pid" 2>/dev/null; then
            was_killed=1 killed=$((killed + 1))
            (( delay_ms > IDLE[$key] )) && mid=$((mid + 1))
        fi
        wait "$pid" 2>/dev/null || true

        if ! found=$(check "$WORK/index.sqlite"); then
            echo "kill-loop-lifecycle: $mode iteration $i ('$key' killed after $delay_ms ms): $found" >&2
            exit 1
        fi
        if [[ $found == "$BEFORE" ]]; then
            untouched=$((untouched + 1))
        elif [[ $found == "${AFTER[$key]}" ]]; then
            finished=$((finished + 1)) killed_finished=$((killed_finished + was_killed))
        else
            echo "kill-loop-lifecycle: $mode iteration $i ('$key' killed after $delay_ms ms): the index is neither the template nor the finished result" >&2
            echo "  found:    $found" >&2
            echo "  template: $BEFORE" >&2
            echo "  finished: ${AFTER[$key]}" >&2
            exit 1
        fi
    done
    summary+=("$mode: $ITERATIONS iterations, $killed killed while running ($mid of them after the idle time: mid-operation); the index was untouched $untouched times, finished $finished times ($killed_finished of them killed after the commit)")
done
printf 'kill-loop-lifecycle: %s\n' "${summary[@]}"
echo "kill-loop-lifecycle: index intact every time, no partial gc or forget"
