#!/usr/bin/env bash
# Benchmark (not a test): a pool of hosts on one PostgreSQL catalog (#21), in a private cluster
# (scripts/pg-test-cluster.sh: Unix socket, trust, no TCP).
#
# A. Pool simulation: a directory of IMAGES (default 1,000) qcow2 images. SET=small (the default): 1 GiB
#    images with two data runs each (5 extents), so a scan costs little more than looking an image up.
#    SET=fragmented: copies of one 16 GiB image with 2,000 scattered allocated clusters (3,983 extents, as a
#    used VM disk has thousands), whose data clusters are holes (`fallocate --dig-holes`: 2 MiB on disk each,
#    they read as zeros; the scan reads metadata and asks FIEMAP, never the data). One host scans it into a fresh catalog (wall time T1); then HOSTS (default 4) processes, each
#    with its own EXTENTDB_HOST, scan it into another fresh catalog at once (wall time TN). Checked: every
#    image scanned exactly once, and the pool's catalog answers as the single host's (report JSON without
#    times, hosts and ids). Reported: T1, TN, T1/TN (ideal: HOSTS on as many cores; this machine has
#    $(nproc)), the CPU time each run used (every process, from /proc/stat) and so how many cores it kept
#    busy, and how the scans were shared among the hosts.
# B. The same directory into a SQLite index with one host, for scale.
# C. Hosts with CPUs of their own. On one machine the "hosts" of A share its cores, so A cannot show what
#    a pool gains: real hosts each bring their own. Here every host process (the lone host, and each of the
#    HOSTS) runs in its own CPU cgroup limited to HOST_CPU cores (default 0.15, so HOSTS of them fit beside
#    the server), while PostgreSQL, the catalog server, stays unlimited: the lone host's wall time T1 and
#    the pool's TN are then each host's own work at the same speed. Needs root and a writable cgroup CPU
#    controller (v1 `cpu` or v2 `cpu.max`); skipped otherwise. A lone host's time varies by a fifth from run
#    to run on this shared machine, so C runs ROUNDS times (default 3), each into fresh catalogs, and
#    reports every round and the median ratio.
#
# Environment: SKIP_BUILD=1, EXTENTDB=path, BENCH_DIR (default /tmp/extentdb-bench/pool), IMAGES, HOSTS,
# HOST_CPU (cores per host in C; 0 skips C), ROUNDS (rounds of C).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
BENCH_DIR=${BENCH_DIR:-/tmp/extentdb-bench/pool}
IMAGES=${IMAGES:-1000}
HOSTS=${HOSTS:-4}
HOST_CPU=${HOST_CPU:-0.15}
ROUNDS=${ROUNDS:-3}
mkdir -p "$BENCH_DIR"
source scripts/bench-binary.sh
cd "$BENCH_DIR"
now_ns() { date +%s%N; }
# busy_cs: CPU time (all cores, every process: extentdb and the PostgreSQL backends) in centiseconds.
busy_cs() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }

SET=${SET:-small}
images=images-$SET
if [[ ! -f $images-$IMAGES.ok ]]; then
    rm -rf "$images" && mkdir "$images"
    echo "bench-pool: making $IMAGES $SET images" >&2
    case $SET in
        small)
            for i in $(seq 1 "$IMAGES"); do
                qemu-img create -q -f qcow2 "$images/disk$i.qcow2" 1G
                qemu-io -f qcow2 -c "write -q -P 1 $((i % 512))M 64k" -c "write -q -P 2 $((i % 700 + 100))M 192k" \
                    "$images/disk$i.qcow2"
            done
            ;;
        fragmented)
            qemu-img create -q -f qcow2 template.qcow2 16G
            python3 -c '
import random
r = random.Random(3)
for cluster in r.sample(range(16 << 14), 2000):
    print("write -q -P 0 %d 64k" % (cluster << 16))
' | qemu-io -f qcow2 template.qcow2 > /dev/null
            fallocate --dig-holes template.qcow2
            for i in $(seq 1 "$IMAGES"); do cp --sparse=always template.qcow2 "$images/disk$i.qcow2"; done
            rm template.qcow2
            ;;
        *) echo "bench-pool: SET is small or fragmented" >&2; exit 2 ;;
    esac
    touch "$images-$IMAGES.ok"
fi

cluster=$(mktemp -d /tmp/extentdb-bench-pg.XXXXXX)
trap 'bash "$REPO/scripts/pg-test-cluster.sh" stop "$cluster"' EXIT
eval "$(bash "$REPO/scripts/pg-test-cluster.sh" start "$cluster")"
ADMIN=$EXTENTDB_TEST_POSTGRES
db() { echo "${ADMIN%%/postgres\?*}/$1?${ADMIN#*\?}"; }
psql "$ADMIN" -qc "CREATE DATABASE single" -c "CREATE DATABASE pool"
"$BIN" db migrate --db "$(db single)" > /dev/null
"$BIN" db migrate --db "$(db pool)" > /dev/null

# A CPU cgroup limited to HOST_CPU cores (C); prints its directory, or nothing when none can be made.
make_cgroup() {
    local name=extentdb-bench-$1 quota
    quota=$(python3 -c "print(int($HOST_CPU * 100000))")
    if [[ -w /sys/fs/cgroup/cpu && -f /sys/fs/cgroup/cpu/cpu.cfs_quota_us ]]; then
        mkdir -p "/sys/fs/cgroup/cpu/$name" 2> /dev/null || return 0
        echo 100000 > "/sys/fs/cgroup/cpu/$name/cpu.cfs_period_us"
        echo "$quota" > "/sys/fs/cgroup/cpu/$name/cpu.cfs_quota_us"
        echo "/sys/fs/cgroup/cpu/$name"
    elif [[ -w /sys/fs/cgroup/cgroup.subtree_control ]] && grep -qw cpu /sys/fs/cgroup/cgroup.controllers; then
        echo +cpu > /sys/fs/cgroup/cgroup.subtree_control 2> /dev/null || true
        mkdir -p "/sys/fs/cgroup/$name" 2> /dev/null || return 0
        echo "$quota 100000" > "/sys/fs/cgroup/$name/cpu.max" 2> /dev/null || { rmdir "/sys/fs/cgroup/$name"; return 0; }
        echo "/sys/fs/cgroup/$name"
    fi
}
cgroups=()
trap 'for g in "${cgroups[@]}"; do rmdir "$g" 2> /dev/null || true; done; bash "$REPO/scripts/pg-test-cluster.sh" stop "$cluster"' EXIT

# pool_run DB LABEL [CPU]: one host scans into DB, then HOSTS hosts into DB-pool at once, each host alone in a
# cgroup when CPU is given; sets one, one_cpu, many, many_cpu (ms).
pool_run() {
    local single=$1 pool=$2 limit=${3:-} h pids=()
    if [[ -n "$limit" ]]; then
        for h in $(seq 0 "$HOSTS"); do cgroups+=("$(make_cgroup "host$h")"); done
    fi
    run() { # host-name output-file db; the host's own CPU time (user + system, s) goes to host-name.cpu
        if [[ -n "$limit" ]]; then
            EXTENTDB_HOST=$1 bash -c 'echo $$ > "$1/cgroup.procs" && shift && TIMEFORMAT="%3U %3S" && time "$@"' \
                sh "$(make_cgroup "$1")" "$BIN" scan -q --db "$3" "$images" > "$2" 2> "$1.time"
        else
            EXTENTDB_HOST=$1 bash -c 'TIMEFORMAT="%3U %3S" && time "$@"' sh \
                "$BIN" scan -q --db "$3" "$images" > "$2" 2> "$1.time"
        fi
        tail -1 "$1.time" | awk '{ print $1 + $2 }' > "$1.cpu"
    }
    start=$(now_ns)
    cpu=$(busy_cs)
    run host0 host0.txt "$(db "$single")"
    one=$((($(now_ns) - start) / 1000000))
    one_cpu=$(($(busy_cs) - cpu))
    start=$(now_ns)
    cpu=$(busy_cs)
    for h in $(seq 1 "$HOSTS"); do
        run "host$h" "host$h.txt" "$(db "$pool")" &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid"; done
    many=$((($(now_ns) - start) / 1000000))
    many_cpu=$(($(busy_cs) - cpu))
}
pool_run single pool

rm -f single.sqlite*
start=$(now_ns)
"$BIN" scan -q --db single.sqlite "$images"
sqlite=$((($(now_ns) - start) / 1000000))

scans=$(psql "$(db pool)" -Atc "SELECT count(*) FROM scans")
distinct=$(psql "$(db pool)" -Atc "SELECT count(DISTINCT image_id) FROM scans")
shares=$(psql "$(db pool)" -Atc "SELECT string_agg(host || ':' || n, ' ' ORDER BY host) FROM (SELECT host, count(*) n FROM scans GROUP BY host) s")
strip() { python3 -c '
import json, sys
def clean(v):
    if isinstance(v, dict):
        return {k: clean(x) for k, x in v.items() if k not in ("scanned_at", "duration_ms", "generated_at", "host", "hosts", "scanned_by", "index", "id", "scan_id")}
    if isinstance(v, list):
        return [clean(x) for x in v]
    return v
print(json.dumps(clean(json.load(sys.stdin)), sort_keys=True))'; }
"$BIN" report --output json --db "$(db single)" "$images" | strip > single.json
"$BIN" report --output json --db "$(db pool)" "$images" | strip > pool.json
same=no
cmp -s single.json pool.json && same=yes

echo "A. pool simulation, $IMAGES $SET images, $HOSTS hosts on $(nproc) cores"
# Cores kept busy: CPU time over wall time. One host that already keeps most of the cores busy leaves a
# pool on the same machine little to gain; real hosts bring their own cores.
cores() { python3 -c "print(round($1 * 10 / $2, 2))"; }
echo "   one host:  $one ms, $((one_cpu * 10)) ms of CPU ($(cores "$one_cpu" "$one") of $(nproc) cores busy)"
echo "   $HOSTS hosts: $many ms, $((many_cpu * 10)) ms of CPU ($(cores "$many_cpu" "$many") of $(nproc) cores busy)" \
    "(one host / $HOSTS hosts = $(python3 -c "print(round($one / $many, 2))"))"
echo "   scans: $scans for $distinct images (each image once: $([[ $scans == "$IMAGES" && $distinct == "$IMAGES" ]] && echo yes || echo NO)); shared $shares"
echo "   pool catalog equals the single host's: $same"
echo "B. the same scan into SQLite, one host: $sqlite ms"
ok=$([[ $scans == "$IMAGES" && $distinct == "$IMAGES" && $same == yes ]] && echo yes || echo no)

if [[ $HOST_CPU != 0 && -n "$(make_cgroup probe)" ]]; then
    cgroups+=("$(make_cgroup probe)")
    echo "C. hosts with CPUs of their own: each host process limited to $HOST_CPU cores (cgroup), the server not;" \
        "$ROUNDS rounds, each into fresh catalogs"
    ratios=()
    for round in $(seq "$ROUNDS"); do
        psql "$ADMIN" -qc "CREATE DATABASE single_c$round" -c "CREATE DATABASE pool_c$round"
        "$BIN" db migrate --db "$(db "single_c$round")" > /dev/null
        "$BIN" db migrate --db "$(db "pool_c$round")" > /dev/null
        pool_run "single_c$round" "pool_c$round" limited
        pool_hosts=$(python3 -c "import sys; print(' + '.join(open('host%s.cpu' % h).read().strip() for h in sys.argv[1:]))" $(seq 1 "$HOSTS"))
        busiest=$(python3 -c "print(max(float(open('host%d.cpu' % h).read()) for h in range(1, $HOSTS + 1)))")
        scans=$(psql "$(db "pool_c$round")" -Atc "SELECT count(*) FROM scans")
        distinct=$(psql "$(db "pool_c$round")" -Atc "SELECT count(DISTINCT image_id) FROM scans")
        shares=$(psql "$(db "pool_c$round")" -Atc "SELECT string_agg(host || ':' || n, ' ' ORDER BY host) FROM (SELECT host, count(*) n FROM scans GROUP BY host) s")
        "$BIN" report --output json --db "$(db "pool_c$round")" "$images" | strip > pool_c.json
        same=no
        cmp -s single.json pool_c.json && same=yes
        ratio=$(python3 -c "print(round($many / $one, 3))")
        ratios+=("$ratio")
        echo "   round $round: one host $one ms, $HOSTS hosts $many ms ($HOSTS hosts / one host = $ratio; a quarter would be" \
            "$((one / 4)) ms); CPU of all processes $((one_cpu * 10)) / $((many_cpu * 10)) ms"
        echo "      each host's own CPU time (s): one host $(cat host0.cpu); $HOSTS hosts $pool_hosts" \
            "(the busiest / one host = $(python3 -c "print(round($busiest / float(open('host0.cpu').read()), 2))"))"
        echo "      scans: $scans for $distinct images (each image once: $([[ $scans == "$IMAGES" && $distinct == "$IMAGES" ]] && echo yes || echo NO));" \
            "shared $shares; pool catalog equals the single host's: $same"
        [[ $scans == "$IMAGES" && $distinct == "$IMAGES" && $same == yes ]] || ok=no
    done
    echo "   $HOSTS hosts / one host, median of $ROUNDS rounds: $(python3 -c "import statistics, sys; print(statistics.median(map(float, sys.argv[1:])))" "${ratios[@]}")" \
        "(all: ${ratios[*]})"
else
    echo "C. skipped: no writable CPU cgroup here (needs root), or HOST_CPU=0"
fi
[[ $ok == yes ]]
