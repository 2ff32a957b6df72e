#!/usr/bin/env bash
# Installs the Debian packages extentdb builds and tests with: the SQLite, zlib and zstd libraries and
# headers (the index; compressed qcow2 clusters), and qemu-utils (qemu-img/qemu-io make the test
# fixtures and are the peer the tests compare with), python3-libvhdi (a second VHD reader the tests
# compare with), libnbd-bin (nbdinfo, nbdcopy: the NBD clients the nbd server is tested with), python3-libnbd
# (nbdsh: a client that holds a connection open while a test changes the image), curl and
# wrk (the service tests and scripts/load.sh), python3-venv (scripts/api-fuzz.sh, and the venv below),
# systemd (systemd-analyze: DeployScriptsTests verifies contrib/extentdb.service and rates its exposure),
# postgresql (the pool catalog's tests start a private cluster of their own with scripts/pg-test-cluster.sh;
# Debian's default cluster is not created, and no system service is started).
#
# Then openapi-spec-validator from PyPI, in a venv at .build/openapi-venv (OPENAPI_VENV=dir to put it
# elsewhere): the test suite validates openapi.yaml with it. Debian 12 does not package it.
set -euo pipefail
REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
packages=(libsqlite3-dev zlib1g-dev libzstd-dev qemu-utils python3-libvhdi libnbd-bin python3-libnbd curl openssl wrk python3-venv systemd postgresql)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]} > 0)); then
    SUDO=""
    if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    if [[ " ${missing[*]} " == *" postgresql "* ]]; then
        # Debian would create and start a cluster "main" on port 5432: tests use a private one instead.
        $SUDO apt-get install -y -qq postgresql-common >/dev/null
        $SUDO sed -i 's/^#\? *create_main_cluster *=.*/create_main_cluster = false/' /etc/postgresql-common/createcluster.conf
    fi
    $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

VENV=${OPENAPI_VENV:-$REPO_DIR/.build/openapi-venv}
if [[ ! -x $VENV/bin/openapi-spec-validator ]]; then
    /usr/bin/python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q 'openapi-spec-validator==0.9.0'
fi
