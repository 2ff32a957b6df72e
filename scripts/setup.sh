#!/usr/bin/env bash
# One-time setup on a fresh Debian machine: system packages, a build, and a small demo chain in demo/
# (a raw base, a qcow2 middle layer and a qcow2 top, with data in every layer) to try extentdb on.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
swift build --product extentdb
rm -rf demo && mkdir demo
truncate -s 64M demo/base.raw
qemu-io -f raw -c 'write -P 1 0 4M' -c 'write -P 2 32M 1M' demo/base.raw >/dev/null
qemu-img create -q -f qcow2 -b base.raw -F raw demo/middle.qcow2
qemu-io -f qcow2 -c 'write -P 3 1M 2M' -c 'write -z 32M 512k' demo/middle.qcow2 >/dev/null
qemu-img create -q -f qcow2 -o cluster_size=65536 -b middle.qcow2 -F qcow2 demo/top.qcow2
qemu-io -f qcow2 -c 'write -P 4 0 64k' -c 'write -c -P 5 8M 128k' -c 'write -P 6 60M 4k' demo/top.qcow2 >/dev/null
echo "setup: built extentdb; demo chain in demo/ (top.qcow2 -> middle.qcow2 -> base.raw)"
