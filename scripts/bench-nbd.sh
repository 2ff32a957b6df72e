#!/usr/bin/env bash
# Benchmark (not a test): `extentdb nbd` vs `qemu-nbd -r` serving the same image, measured in the same run.
#
# 1. Copy: `nbdcopy` from each server to a file, on a qcow2 of COPY_SIZE (default 4 GiB, 64 KiB clusters)
#    50% allocated in 64 MiB runs (the image of bench-export.sh). Target: ratio qemu/extentdb >= 1.
# 2. Map: `nbdinfo --map` (base:allocation, the whole disk) from each server, on a qcow2 of MAP_SIZE
#    (default 1 TiB, 64 KiB clusters) with MAP_WRITES (default 200000) 4 KiB writes at pseudo-random
#    offsets (the image of bench-scan.sh; ~395k extents). Target: ratio qemu/extentdb >= 10.
# The index is built before the timed runs (`extentdb scan`, timed apart): the server answers from it.
# Runs alternate ours and the peer's; the best of RUNS is kept.
# Environment: SKIP_BUILD=1, EXTENTDB=path, BENCH_DIR (default /tmp/extentdb-bench-nbd), RUNS (default 3),
# COPY_SIZE, MAP_SIZE, MAP_WRITES, SEED (default 42); MAP_IMAGE=path maps an existing image instead (e.g.
# bench-scan.sh's); SKIP_COPY=1 or SKIP_MAP=1 leaves a part out.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_DIR=${BENCH_DIR:-/tmp/extentdb-bench-nbd}
RUNS=${RUNS:-3}
COPY_SIZE=${COPY_SIZE:-4G}
MAP_SIZE=${MAP_SIZE:-1T}
MAP_WRITES=${MAP_WRITES:-200000}
SEED=${SEED:-42}
mkdir -p "$BENCH_DIR"
for tool in nbdcopy nbdinfo qemu-nbd qemu-img qemu-io; do
    command -v "$tool" > /dev/null || { echo "bench-nbd: $tool is missing (bash scripts/install-deps.sh)" >&2; exit 1; }
done

source scripts/bench-binary.sh
export EXTENTDB_DB=$BENCH_DIR/index.sqlite

now_ns() { date +%s%N; }
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2> /dev/null || true; done; }
trap cleanup EXIT

# wait_socket PATH PID: until a client can get the export's size (at most 120 s).
wait_socket() {
    for _ in $(seq 1200); do
        if [[ -S "$1" ]] && nbdinfo --size "nbd+unix:///?socket=$1" > /dev/null 2>&1; then return 0; fi
        kill -0 "$2" 2> /dev/null || { echo "bench-nbd: server $2 died" >&2; exit 1; }
        sleep 0.1
    done
    echo "bench-nbd: $1 never answered" >&2
    exit 1
}

# serve IMAGE: starts both servers; sets OURS and QEMU (socket paths).
serve() {
    OURS=$BENCH_DIR/extentdb.sock
    QEMU=$BENCH_DIR/qemu.sock
    rm -f "$OURS" "$QEMU"
    "$BIN" nbd "$1" --socket "$OURS" 2> "$BENCH_DIR/extentdb-nbd.log" &
    PIDS+=($!)
    wait_socket "$OURS" $!
    qemu-nbd -r -t -f qcow2 -k "$QEMU" "$1" &
    PIDS+=($!)
    wait_socket "$QEMU" $!
}

stop_servers() { cleanup; wait 2> /dev/null || true; PIDS=(); }

once_ms() {
    rm -f "$BENCH_DIR"/out.raw
    sync
    local start end
    start=$(now_ns)
    "$@" > /dev/null
    end=$(now_ns)
    echo $(((end - start) / 1000000))
}

# best_pair_ms "CMD A" "CMD B": alternately, $RUNS times each; prints "bestA bestB".
best_pair_ms() {
    local best_a="" best_b="" t
    for _ in $(seq "$RUNS"); do
        t=$(once_ms bash -c "$1"); if [[ -z "$best_a" || $t -lt $best_a ]]; then best_a=$t; fi
        t=$(once_ms bash -c "$2"); if [[ -z "$best_b" || $t -lt $best_b ]]; then best_b=$t; fi
    done
    echo "$best_a $best_b"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }

# --- 1. copy -----------------------------------------------------------------------------------------
if [[ "${SKIP_COPY:-0}" != 1 ]]; then
COPY_IMG=$BENCH_DIR/copy-$COPY_SIZE-half.qcow2
if [[ ! -f "$COPY_IMG.ok" ]]; then
    rm -f "$COPY_IMG"
    qemu-img create -q -f qcow2 -o cluster_size=64k "$COPY_IMG" "$COPY_SIZE"
    bytes=$(qemu-img info --output=json "$COPY_IMG" | awk -F': ' '/"virtual-size"/ { gsub(/,/, "", $2); print $2 }')
    cmds=()
    for ((i = 0; i < bytes / (128 << 20); i++)); do cmds+=(-c "write -q -P $(((i % 254) + 1)) $((i * 128))M 64M"); done
    qemu-io -f qcow2 "${cmds[@]}" "$COPY_IMG" > /dev/null
    touch "$COPY_IMG.ok"
fi
t0=$(now_ns)
"$BIN" scan "$COPY_IMG" > /dev/null
echo "copy image: $COPY_IMG ($COPY_SIZE, half allocated); index built in $((($(now_ns) - t0) / 1000000)) ms"
serve "$COPY_IMG"
read -r ours theirs < <(best_pair_ms "nbdcopy 'nbd+unix:///?socket=$OURS' $BENCH_DIR/out.raw" \
    "nbdcopy 'nbd+unix:///?socket=$QEMU' $BENCH_DIR/out.raw")
echo "nbdcopy to a file:        extentdb nbd ${ours} ms, qemu-nbd -r ${theirs} ms, ratio qemu/extentdb $(ratio "$theirs" "$ours") (target >= 1)"
read -r ours4 theirs4 < <(best_pair_ms "nbdcopy --connections=4 'nbd+unix:///?socket=$OURS' $BENCH_DIR/out.raw" \
    "nbdcopy --connections=4 'nbd+unix:///?socket=$QEMU' $BENCH_DIR/out.raw")
echo "nbdcopy --connections=4:  extentdb nbd ${ours4} ms, qemu-nbd -r ${theirs4} ms, ratio $(ratio "$theirs4" "$ours4")"
rm -f "$BENCH_DIR"/out.raw
stop_servers
fi

# --- 2. map ------------------------------------------------------------------------------------------
[[ "${SKIP_MAP:-0}" == 1 ]] && exit 0
MAP_IMG=${MAP_IMAGE:-$BENCH_DIR/map-$MAP_SIZE-${MAP_WRITES}w-seed$SEED.qcow2}
if [[ -z "${MAP_IMAGE:-}" && ! -f "$MAP_IMG.ok" ]]; then
    rm -f "$MAP_IMG"
    qemu-img create -q -f qcow2 -o cluster_size=64k "$MAP_IMG" "$MAP_SIZE"
    bytes=$(qemu-img info --output=json "$MAP_IMG" | awk -F': ' '/"virtual-size"/ { gsub(/,/, "", $2); print $2 }')
    awk -v n="$MAP_WRITES" -v seed="$SEED" -v slots=$((bytes / 4096)) 'BEGIN {
        x = seed
        for (i = 0; i < n; i++) {
            x = (x * 48271) % 2147483647
            printf "write -q -P %d %.0f 4k\n", (i % 254) + 1, (x % slots) * 4096
        }
    }' | qemu-io -f qcow2 "$MAP_IMG" > /dev/null
    touch "$MAP_IMG.ok"
fi
t0=$(now_ns)
"$BIN" scan "$MAP_IMG" > /dev/null
echo "map image: $MAP_IMG; index built in $((($(now_ns) - t0) / 1000000)) ms"
serve "$MAP_IMG"
lines=$(nbdinfo --map "nbd+unix:///?socket=$OURS" | wc -l)
read -r ours theirs < <(best_pair_ms "nbdinfo --map 'nbd+unix:///?socket=$OURS'" "nbdinfo --map 'nbd+unix:///?socket=$QEMU'")
echo "nbdinfo --map ($lines rows): extentdb nbd ${ours} ms, qemu-nbd -r ${theirs} ms, ratio qemu/extentdb $(ratio "$theirs" "$ours") (target >= 10)"
stop_servers
