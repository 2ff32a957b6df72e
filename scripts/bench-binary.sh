# Sourced by the scripts/bench-*.sh benchmarks (from the repository root): sets BIN to the extentdb
# binary they measure. EXTENTDB=path names one; otherwise the release build, made first unless SKIP_BUILD=1.
if [[ -n "${EXTENTDB:-}" ]]; then
    BIN=$EXTENTDB
else
    [[ "${SKIP_BUILD:-0}" == 1 ]] || nice -n 5 swift build -c release --product extentdb >&2
    BIN=$(swift build -c release --show-bin-path)/extentdb
fi
[[ -x "$BIN" ]] || { echo "$(basename "$0" .sh): no extentdb binary at $BIN" >&2; exit 1; }
