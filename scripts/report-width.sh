#!/usr/bin/env bash
# Checks that `extentdb report --output html` fits a 1,280 px window in a real browser: renders a report of
# images under long paths in headless Chromium and fails when the page scrolls sideways
# (document.documentElement.scrollWidth > 1280). Not part of `swift test`: it needs Debian's chromium,
# which it installs when missing.
#
# usage: scripts/report-width.sh [IMAGE-OR-DIRECTORY...]   (default: a few images under long paths)
# output: report.html and report-width.png in ${OUT_DIR:-/tmp/extentdb-report-width}
set -euo pipefail
cd "$(dirname "$0")/.."
WIDTH=1280
OUT_DIR=${OUT_DIR:-/tmp/extentdb-report-width}
rm -rf "$OUT_DIR"
mkdir -p "$OUT_DIR"
if ! command -v chromium >/dev/null; then
    SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null
fi
if [[ $# -eq 0 ]]; then
    deep="$OUT_DIR/images/an-unusually-long-directory-name-for-virtual-machine-images/tenant-with-a-long-name"
    for n in 1 2 3; do
        dir="$deep-$n/nested-project-directory-$n/disks-of-the-production-cluster-$n"
        mkdir -p "$dir"
        qemu-img create -q -f raw "$dir/base-image-of-the-operating-system-$n.raw" 1G
        qemu-io -f raw -c "write -P 1 0 64M" "$dir/base-image-of-the-operating-system-$n.raw" >/dev/null
        qemu-img create -q -f qcow2 -b "base-image-of-the-operating-system-$n.raw" -F raw \
            "$dir/database-server-primary-volume-with-a-long-name-$n.qcow2"
        qemu-io -f qcow2 -c "write -P 2 100M 4M" -c "write -P 3 700M 512k" \
            "$dir/database-server-primary-volume-with-a-long-name-$n.qcow2" >/dev/null
    done
    set -- "$OUT_DIR/images"
fi
export EXTENTDB_DB=$OUT_DIR/index.sqlite
swift build --product extentdb >&2
BIN=$(swift build --show-bin-path)/extentdb
"$BIN" scan -q --include-raw "$@" >/dev/null || true  # failures are part of the report
"$BIN" scan -q --force "$@" >/dev/null || true         # a second scan: the history chart
"$BIN" report --output html --history --to "$OUT_DIR/report.html" "$@"
# The page as it is, plus one line that writes the measured width into the DOM Chromium dumps.
sed 's|</body>|<script>document.body.setAttribute("data-scroll-width", document.documentElement.scrollWidth)</script></body>|' \
    "$OUT_DIR/report.html" > "$OUT_DIR/measure.html"
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=$WIDTH,1000 \
    --dump-dom "file://$OUT_DIR/measure.html" 2>/dev/null > "$OUT_DIR/dom.html"
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=$WIDTH,1400 \
    --screenshot="$OUT_DIR/report-width.png" "file://$OUT_DIR/report.html" 2>/dev/null
scroll=$(grep -o 'data-scroll-width="[0-9]*"' "$OUT_DIR/dom.html" | grep -o '[0-9]*')
[[ -n "$scroll" ]] || { echo "report-width: could not measure the page" >&2; exit 1; }
echo "report-width: scrollWidth $scroll px in a $WIDTH px window; $OUT_DIR/report-width.png"
if (( scroll > WIDTH )); then
    echo "report-width: FAIL: the page scrolls sideways" >&2
    exit 1
fi
echo "report-width: ok"
