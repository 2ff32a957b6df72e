#!/usr/bin/env bash
# Runs the test suite under AddressSanitizer and under ThreadSanitizer.
#
# Usage: scripts/sanitize.sh [address|thread]...      (default: both, one after the other)
#        Extra `swift test` arguments can be given in SANITIZE_TEST_ARGS (e.g. "--filter ScannerTests").
#
# Each sanitizer builds into its own scratch directory (.build-asan, .build-tsan), so the normal .build is
# left alone. The CLI tests run the extentdb binary of the same build, so it is sanitized too. Runs under
# `nice -n 19`; expect several minutes per sanitizer on two cores. Exits non-zero if either run fails.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
SANITIZERS=("$@")
[[ ${#SANITIZERS[@]} -gt 0 ]] || SANITIZERS=(address thread)

# Leaks: the Swift runtime's metadata caches live as long as the process. Halt on the first report so a
# finding fails the run (ASan's default; TSan's exit code is set explicitly).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:exitcode=66}

status=0
for sanitizer in "${SANITIZERS[@]}"; do
    case $sanitizer in
    address) scratch=.build-asan ;;
    thread) scratch=.build-tsan ;;
    *) echo "sanitize: unknown sanitizer '$sanitizer' (address or thread)" >&2; exit 2 ;;
    esac
    echo "== swift test --sanitize=$sanitizer (scratch path $scratch)"
    # Tests that run the binary under `ulimit -v` drop the limit: sanitizers reserve terabytes of shadow.
    export EXTENTDB_SANITIZER=$sanitizer
    # shellcheck disable=SC2086
    if nice -n 19 swift test --sanitize="$sanitizer" --scratch-path "$scratch" ${SANITIZE_TEST_ARGS:-}; then
        echo "== $sanitizer: clean"
    else
        echo "== $sanitizer: FAILED" >&2
        status=1
    fi
done
exit $status
