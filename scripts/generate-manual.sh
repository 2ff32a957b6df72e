#!/usr/bin/env bash
# Writes extentdb's manual page (mdoc, section 1, every subcommand in one page) for the given binary:
#
#   scripts/generate-manual.sh BINARY OUT.1
#
# It uses swift-argument-parser's own generator, the `generate-manual` tool behind
# `swift package plugin generate-manual`, built from the package's resolved checkout
# (.build/checkouts/swift-argument-parser: no network) into .build/generate-manual, and run on BINARY
# (it reads `BINARY --experimental-dump-help`). The plugin itself is not used: it builds the whole package
# again in its own configuration, without --static-swift-stdlib, over the static binary install.sh made
# (six minutes here). SOURCE_DATE_EPOCH, else the last commit's date, dates the page.
set -euo pipefail
binary=${1:?usage: generate-manual.sh BINARY OUT.1}
out=${2:?usage: generate-manual.sh BINARY OUT.1}
REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SWIFT=${SWIFT:-swift}
checkout=$REPO_DIR/.build/checkouts/swift-argument-parser
if [[ ! -f $checkout/Tools/generate-manual/GenerateManual.swift ]]; then
    (cd "$REPO_DIR" && "$SWIFT" package resolve)
fi
scratch=$REPO_DIR/.build/generate-manual
"$SWIFT" build --package-path "$checkout" --scratch-path "$scratch" -c release --product generate-manual > "$scratch.log" 2>&1 \
    || { cat "$scratch.log" >&2; echo "generate-manual.sh: building swift-argument-parser's generate-manual failed" >&2; exit 1; }
tool=$("$SWIFT" build --package-path "$checkout" --scratch-path "$scratch" -c release --show-bin-path)/generate-manual

epoch=${SOURCE_DATE_EPOCH:-$(git -C "$REPO_DIR" log -1 --format=%ct 2>/dev/null || date +%s)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Run as `extentdb` whatever BINARY is called: the page is named after the command.
mkdir "$work/bin" "$work/out"
ln -s "$(readlink -f "$binary")" "$work/bin/extentdb"
"$tool" "$work/bin/extentdb" --date "$(date -u -d "@$epoch" +%Y-%m-%d)" --output-directory "$work/out"
[[ -s $work/out/extentdb.1 ]] || { echo "generate-manual.sh: no extentdb.1 written" >&2; exit 1; }
# A blank line in a help text is a paragraph break: mdoc's is .Pp (groff warns of empty input lines).
sed 's/^$/.Pp/' "$work/out/extentdb.1" > "$out"
