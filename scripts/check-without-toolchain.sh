#!/usr/bin/env bash
# Runs an installed extentdb as a host without Swift would: in a private mount namespace with a tmpfs over
# /opt/swift (the toolchain) and an empty environment. It prints the version, scans a qcow2 image made
# with qemu-img and exports it as raw, and checks the export against `qemu-img convert`. Needs root
# (unshare -m) and qemu-utils.
#
#   scripts/check-without-toolchain.sh BINARY        e.g. /usr/local/bin/extentdb, or one from `dpkg -x`
set -euo pipefail
binary=$(readlink -f "${1:?usage: check-without-toolchain.sh BINARY}")
toolchain=${SWIFT_TOOLCHAIN_DIR:-/opt/swift}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
qemu-img create -q -f qcow2 "$work/disk.qcow2" 64M
qemu-io -f qcow2 -c 'write -P 7 0 1M' -c 'write -P 9 40M 64k' "$work/disk.qcow2" > /dev/null
qemu-img convert -O raw "$work/disk.qcow2" "$work/expected.raw"
export binary work toolchain
unshare -m bash -euo pipefail -c '
    if [[ -d $toolchain ]]; then mount -t tmpfs -o ro,size=1M none "$toolchain"; fi
    echo "hidden: $toolchain holds $(ls -A "$toolchain" 2> /dev/null | wc -l) entries"
    run() { env -i PATH=/usr/bin:/bin HOME="$work" "$binary" "$@"; }
    run --version
    run scan --db "$work/index.sqlite" "$work/disk.qcow2"
    run export --db "$work/index.sqlite" --format raw "$work/disk.qcow2" --to "$work/exported.raw"
'
cmp "$work/expected.raw" "$work/exported.raw"
echo "check-without-toolchain.sh: --version, scan and raw export ran without $toolchain; the export matches qemu-img convert"
