#!/usr/bin/env bash
# Coverage-guided fuzzing of extentdb's parsers with libFuzzer (Fuzz/ is its own package; CI does not build it).
#
# Usage: scripts/fuzz.sh --list                  the targets, one per line
#        scripts/fuzz.sh TARGET SECONDS [ARGS]   build TARGET with -sanitize=fuzzer,address and fuzz it for
#                                                SECONDS (ARGS go to libFuzzer, e.g. -jobs=2)
#        scripts/fuzz.sh --build TARGET          build only
#
# Seeds come from scripts/make-fuzz-seeds.py (qemu-made qcow2 files, VHDs, extent runs and NBD conversations
# built field by field); the corpus grows in Fuzz/corpus/TARGET and crashing inputs land in
# Fuzz/artifacts/TARGET/ (both ignored by git). A crash is fixed in Sources and its input becomes a test in
# Tests/ScannerTests/FuzzRegressionTests.swift (Tests/NBDTests for nbd).
# Fuzzing runs under `nice -n 19`: the machine is shared.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
FUZZ=$ROOT/Fuzz

# target name -> static library product of Fuzz/Package.swift
declare -A PRODUCTS=([qcow2]=FuzzQCOW2 [vhd]=FuzzVHD [extent-runs]=FuzzExtentRuns [nbd]=FuzzNBD)
TARGETS=(qcow2 vhd extent-runs nbd)

usage() { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

build() {
    local target=$1 product=${PRODUCTS[$1]}
    # lld: gold fails on the instrumented objects' debug info. The flags also reach the package's build-tool
    # plugin executable, which links and runs fine with them.
    local flags=(-sanitize=fuzzer,address -g -use-ld=lld)
    local swiftc_flags=()
    for flag in "${flags[@]}"; do swiftc_flags+=(-Xswiftc "$flag"); done
    # SwiftPM may reuse a stale build plan when files are added to the path dependency: drop it.
    rm -f "$FUZZ/.build/release.yaml" "$FUZZ/.build/release/description.json"
    (cd "$FUZZ" && nice -n 19 swift build -c release --product "$product" "${swiftc_flags[@]}" >&2)
    mkdir -p "$FUZZ/.build/fuzzers"
    # --whole-archive: keep every object (protocol conformances are found at run time, not by reference).
    nice -n 19 swiftc "${flags[@]}" -o "$FUZZ/.build/fuzzers/$target" \
        -Xlinker --whole-archive "$FUZZ/.build/release/lib$product.a" -Xlinker --no-whole-archive \
        -lsqlite3 -lz -lzstd
    echo "$FUZZ/.build/fuzzers/$target"
}

[[ $# -ge 1 ]] || usage
case $1 in
--list)
    printf '%s\n' "${TARGETS[@]}"
    exit 0
    ;;
--build)
    [[ $# -eq 2 && -n ${PRODUCTS[$2]:-} ]] || usage
    build "$2"
    exit 0
    ;;
esac

[[ $# -ge 2 && -n ${PRODUCTS[$1]:-} && $2 =~ ^[0-9]+$ ]] || usage
TARGET=$1
SECONDS_TO_RUN=$2
shift 2

BINARY=$(build "$TARGET")
SEEDS=$FUZZ/.build/seeds
if [[ ! -d $SEEDS/$TARGET ]]; then
    python3 "$ROOT/scripts/make-fuzz-seeds.py" "$SEEDS"
fi
CORPUS=$FUZZ/corpus/$TARGET
ARTIFACTS=$FUZZ/artifacts/$TARGET
mkdir -p "$CORPUS" "$ARTIFACTS"
SCRATCH=$(mktemp -d /dev/shm/extentdb-fuzz-XXXXXX)
trap 'rm -rf "$SCRATCH"' EXIT

# Leak checking is off: the Swift runtime keeps metadata caches for the life of the process.
EXTENTDB_FUZZ_SCRATCH=$SCRATCH ASAN_OPTIONS=detect_leaks=0:abort_on_error=0 SWIFT_BACKTRACE=enable=no \
    nice -n 19 "$BINARY" "$CORPUS" "$SEEDS/$TARGET" \
    -max_total_time="$SECONDS_TO_RUN" -timeout=20 -rss_limit_mb=2048 -max_len=200000 \
    -artifact_prefix="$ARTIFACTS/" -print_final_stats=1 "$@"
