#!/usr/bin/env bash
# API fuzzing (bounded): schemathesis (PyPI) generates requests from openapi.yaml against a real
# `extentdb serve` on 127.0.0.1 and checks that no response is a 5xx, and that statuses, content types
# and bodies conform to the document.
#
# Environment:
#   EXTENTDB=path      the binary (default .build/debug/extentdb, built if missing)
#   MAX_EXAMPLES=n     examples per operation (default 50); MAX_TIME=s wall-clock bound (default 120)
#   VENV=dir           where schemathesis is installed (default /tmp/extentdb-schemathesis)
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/.." && pwd)
MAX_EXAMPLES=${MAX_EXAMPLES:-50}
MAX_TIME=${MAX_TIME:-120}
VENV=${VENV:-/tmp/extentdb-schemathesis}
EXTENTDB=${EXTENTDB:-$REPO_DIR/.build/debug/extentdb}
[[ -x $EXTENTDB ]] || (cd "$REPO_DIR" && nice -n 5 swift build --product extentdb >&2)
if [[ ! -x $VENV/bin/schemathesis ]]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q 'schemathesis==4.32.5'
fi

WORK=$(mktemp -d /tmp/extentdb-fuzz.XXXXXX)
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
mkdir "$WORK/root"
truncate -s 16M "$WORK/root/base.raw"
qemu-io -f raw -c 'write -P 1 0 1M' "$WORK/root/base.raw" > /dev/null
qemu-img create -q -f qcow2 -b base.raw -F raw "$WORK/root/top.qcow2"
qemu-io -f qcow2 -c 'write -P 2 2M 64k' "$WORK/root/top.qcow2" > /dev/null
echo "fuzz-token-0123456789abcdef" > "$WORK/token"
"$EXTENTDB" serve --listen 127.0.0.1:0 --root "$WORK/root" --token-file "$WORK/token" --db "$WORK/index.sqlite" \
    --watch-interval 1 2> "$WORK/serve.log" &
SERVER=$!
for _ in $(seq 200); do grep -q 'Server started and listening on' "$WORK/serve.log" && break; sleep 0.05; done
PORT=$(grep -o 'Server started and listening on 127.0.0.1:[0-9]*' "$WORK/serve.log" | cut -d: -f2)
sleep 2 # the watcher indexes the two images (ids 1 and 2)

status=0
# From the scratch directory: schemathesis leaves its .hypothesis/ and .schemathesis/ caches there.
cd "$WORK"
timeout "$MAX_TIME" "$VENV/bin/schemathesis" run "$REPO_DIR/openapi.yaml" --url "http://127.0.0.1:$PORT" \
    -H "Authorization: Bearer fuzz-token-0123456789abcdef" --max-examples "$MAX_EXAMPLES" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --exclude-method DELETE --no-color 2>&1 | tee "$WORK/fuzz.txt" || status=$?
if grep -q 'panicked\|Fatal error' "$WORK/serve.log"; then echo "api-fuzz: the server crashed" >&2; status=1; fi
kill -0 $SERVER || { echo "api-fuzz: the server died" >&2; status=1; }
exit $status
