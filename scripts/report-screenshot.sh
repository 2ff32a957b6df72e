#!/usr/bin/env bash
# Renders `extentdb report --output html` in a real headless browser and saves a screenshot, to look at
# the page as a person would. Installs Debian's chromium if it is missing.
#
# usage: scripts/report-screenshot.sh [IMAGE-OR-DIRECTORY...]   (default: the demo chain from setup.sh)
# output: report.html and report.png in ${OUT_DIR:-/tmp/extentdb-report}
set -euo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${OUT_DIR:-/tmp/extentdb-report}
mkdir -p "$OUT_DIR"
if ! command -v chromium >/dev/null; then
    SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null
fi
[[ $# -gt 0 ]] || { [[ -d demo ]] || bash scripts/setup.sh; set -- demo; }
export EXTENTDB_DB=$OUT_DIR/index.sqlite
swift build --product extentdb >&2
BIN=$(swift build --show-bin-path)/extentdb
"$BIN" scan -q --include-raw "$@" >/dev/null || true  # failures are part of the report
"$BIN" report --output html --history --to "$OUT_DIR/report.html" "$@"
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1100,1400 \
    --screenshot="$OUT_DIR/report.png" "file://$OUT_DIR/report.html" 2>/dev/null
grep -c "<svg" "$OUT_DIR/report.html" | sed 's/^/svg pictures: /'
echo "report-screenshot: $OUT_DIR/report.html and $OUT_DIR/report.png"
