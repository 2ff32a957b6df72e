import Foundation
import Testing

@testable import TestSupport

/// Starts `$X serve` on a free loopback port in the background; sets `$P` (port), `$T` (auth header), `$PID`.
/// Every test's script is run under `timeout`, and the server is killed on exit whatever happens.
let startServer = """
    set -euo pipefail
    echo "serve-token-0123456789abcdef" > token
    $X serve --listen 127.0.0.1:0 --root "$PWD/root" --token-file token --db index.sqlite --watch-interval 1 --debounce 0.3 2> serve.log &
    PID=$!
    trap 'kill -9 $PID 2>/dev/null || true' EXIT
    for _ in $(seq 100); do grep -q 'Server started and listening on' serve.log && break; sleep 0.05; done
    P=$(grep -o 'Server started and listening on 127.0.0.1:[0-9]*' serve.log | cut -d: -f2)
    T="Authorization: Bearer serve-token-0123456789abcdef"
    C="curl -s --max-time 20"
    scan() {  # scan PATH [force]: queue a scan and wait until it ends; prints the job
        local id; id=$($C -H "$T" -X POST -d "{\\"path\\": \\"$1\\", \\"force\\": ${2:-false}}" localhost:$P/v1/scans | sed 's/.*"id":"\\([^"]*\\)".*/\\1/')
        for _ in $(seq 200); do
            job=$($C -H "$T" localhost:$P/v1/scans/$id)
            case "$job" in *'"state":"queued"'*|*'"state":"running"'*) sleep 0.05;; *) echo "$job"; return;; esac
        done
    }
    """

/// Runs a service test script under `timeout` (from a file, so that its quoting stays plain bash).
func serveScript(_ text: String, database: String, in directory: URL) throws -> CLIResult {
    try text.write(to: directory.appendingPathComponent("test.sh"), atomically: true, encoding: .utf8)
    return try script("timeout 90 bash test.sh", database: database, in: directory)
}

/// Runs `script` after `prologue` (which starts the server) in a fresh workspace made by `workspace`, under
/// `timeout`, and expects it to exit 0 with "ok" as its last line.
func expectServeScript(
    _ script: String, prologue: String = startServer, in workspace: () throws -> TemporaryDirectory = makeServeWorkspace,
    sourceLocation: SourceLocation = #_sourceLocation
) throws {
    let directory = try workspace()
    defer { directory.cleanup() }
    let result = try serveScript(prologue + "\n" + script, database: directory.path("index.sqlite"), in: directory.url)
    #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)", sourceLocation: sourceLocation)
    #expect(result.stdout.hasSuffix("ok\n"), sourceLocation: sourceLocation)
}

/// A workspace for the service: `root/` with a raw base and a qcow2 over it, `outside/secret` beside it.
func makeServeWorkspace() throws -> TemporaryDirectory {
    try TemporaryDirectory(prefix: "extentdb-serve", setup: serveWorkspaceSetup)
}

/// The setup script of `makeServeWorkspace`, for workspaces that add to it.
let serveWorkspaceSetup = """
    set -e
    mkdir root outside
    truncate -s 64M root/base.raw
    qemu-io -f raw -c 'write -P 1 0 1M' -c 'write -P 5 40M 3M' root/base.raw >/dev/null
    qemu-img create -q -f qcow2 -b base.raw -F raw root/top.qcow2
    qemu-io -f qcow2 -c 'write -P 2 2M 64k' -c 'write -P 3 10M 1M' root/top.qcow2 >/dev/null
    head -c 4096 /dev/zero | tr '\\0' 'S' > outside/secret
    ln -s ../outside/secret root/escape.raw

    """

@Suite(.serialized) struct ServeTests {
    @Test("real server on loopback: auth, confinement with symlink escapes, extents equal to map, export equal to the image, Range")
    func endToEnd() throws {
        try expectServeScript(
            """
            test "$($C -o /dev/null -w '%{http_code}' localhost:$P/healthz)" = 200
            test "$($C -o /dev/null -w '%{http_code}' localhost:$P/v1/images)" = 401
            test "$($C -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer wrong-token-0123456789abcd' localhost:$P/v1/images)" = 401
            $C localhost:$P/v1/images | grep -q '"error":"unauthorized"'
            for path in "$PWD/root/escape.raw" "$PWD/root/../outside/secret" /etc/passwd; do
                code=$($C -o out.json -w '%{http_code}' -H "$T" -X POST -d "{\\"path\\": \\"$path\\"}" localhost:$P/v1/scans)
                test "$code" = 403 || { echo "$path: $code"; exit 1; }
                grep -q '"error":"forbidden"' out.json
            done
            job=$(scan "$PWD/root/top.qcow2")
            echo "$job" | grep -q '"state":"succeeded"'
            id=$(echo "$job" | sed 's/.*"image_id":\\([0-9]*\\).*/\\1/')
            $C -H "$T" localhost:$P/v1/images/$id/extents > served.json
            $X map --output json root/top.qcow2 > cli.json
            cmp served.json cli.json
            $C -H "$T" "localhost:$P/v1/images/$id/extents?offset=1048576&length=2097152" > served-window.json
            $X map --output json --offset 1M --length 2M root/top.qcow2 > cli-window.json
            cmp served-window.json cli-window.json
            $C -H "$T" "localhost:$P/v1/images/$id/extents?format=interval" > served-headers.json
            $X read-headers --format interval root/top.qcow2 > cli-headers.json
            cmp served-headers.json cli-headers.json
            $C -H "$T" "localhost:$P/v1/images/$id/export?format=raw" -o export.raw
            qemu-img compare -q -f raw -F qcow2 export.raw root/top.qcow2
            $C -H "$T" "localhost:$P/v1/images/$id/export?format=qcow2" -o export.qcow2
            qemu-img compare -q -f qcow2 -F qcow2 export.qcow2 root/top.qcow2
            code=$($C -H "$T" -r 2097000-2097299 -o range.bin -w '%{http_code}' "localhost:$P/v1/images/$id/export?format=raw")
            test "$code" = 206
            qemu-img convert -O raw root/top.qcow2 full.raw
            dd if=full.raw bs=1 skip=2097000 count=300 status=none | cmp - range.bin
            echo ok
            """)
    }

    @Test("8 parallel clients query while scans run; the watcher rescans a modified image with no request; deleted is missing")
    func concurrencyAndWatcher() throws {
        try expectServeScript(
            """
            job=$(scan "$PWD/root/top.qcow2")
            id=$(echo "$job" | sed 's/.*"image_id":\\([0-9]*\\).*/\\1/')
            for n in $(seq 10); do $C -H "$T" -X POST -d "{\\"path\\": \\"$PWD/root/top.qcow2\\", \\"force\\": true}" localhost:$P/v1/scans > /dev/null; done &
            clients=($!)
            for client in $(seq 8); do
                ( for n in $(seq 40); do $C -o /dev/null -w '%{http_code}\\n' -H "$T" "localhost:$P/v1/images/$id/extents?offset=0&length=1048576"; done > codes.$client ) &
                clients+=($!)
            done
            wait "${clients[@]}"
            test "$(cat codes.* | sort -u)" = 200
            test "$(cat codes.* | wc -l)" = 320
            before=$($C -H "$T" localhost:$P/v1/images/$id | sed 's/.*"extent_count":\\([0-9]*\\).*/\\1/')
            qemu-io -f qcow2 -c 'write -P 9 20M 64k' root/top.qcow2 > /dev/null
            for n in $(seq 100); do
                now=$($C -H "$T" localhost:$P/v1/images/$id | sed 's/.*"extent_count":\\([0-9]*\\).*/\\1/')
                test "$now" != "$before" && break
                sleep 0.1
            done
            test "$now" != "$before" || { echo "not rescanned: $before"; exit 1; }
            $C -H "$T" localhost:$P/v1/images/$id | grep -q '"state":"fresh"'
            $C -H "$T" localhost:$P/v1/images/$id | grep -q '"last_checked"'
            grep -q "image changed; rescanning" serve.log
            rm root/top.qcow2
            for n in $(seq 50); do $C -H "$T" localhost:$P/v1/images | grep -q '"state":"missing"' && break; sleep 0.1; done
            $C -H "$T" localhost:$P/v1/images | grep -q '"state":"missing"'
            echo ok
            """)
    }

    @Test("SIGTERM during a scan and during exports: the server exits 0, every export arrives whole, the index checks healthy")
    func gracefulShutdown() throws {
        try expectServeScript(
            """
            job=$(scan "$PWD/root/top.qcow2")
            id=$(echo "$job" | sed 's/.*"image_id":\\([0-9]*\\).*/\\1/')
            # Connection: close asks the server to close after the response, as shutdown does.
            curl -s --max-time 30 --limit-rate 32M -H "$T" -H 'Connection: close' "localhost:$P/v1/images/$id/export?format=raw" -o close.raw
            test "$(stat -c %s close.raw)" = 67108864
            # Four clients reading slower than the server writes, so that data is still queued in the
            # server when SIGTERM's graceful shutdown closes their connections (before
            # CloseAfterPendingWrites, half of such exports lost their last megabyte or two: curl exit 18).
            CURLS=()
            for n in 1 2 3 4; do
                # From four addresses: one client gets two export slots, its share.
                curl -s --max-time 30 --limit-rate 16M --interface 127.0.0.$((n + 1)) -H "$T" "localhost:$P/v1/images/$id/export?format=raw" -o slow.$n.raw &
                CURLS+=($!)
            done
            sleep 0.5
            $C -H "$T" -X POST -d "{\\"path\\": \\"$PWD/root/top.qcow2\\", \\"force\\": true}" localhost:$P/v1/scans > /dev/null
            kill -TERM $PID
            status=0; wait $PID || status=$?
            test "$status" = 0 || { echo "serve exited $status"; cat serve.log; exit 1; }
            # The export arrives whole: the connection closes only once its last bytes reached the socket.
            for n in 1 2 3 4; do
                wait ${CURLS[$((n - 1))]} || { echo "export $n: curl exit $?, $(stat -c %s slow.$n.raw) bytes"; exit 1; }
                cmp slow.$n.raw close.raw
            done
            qemu-img compare -q -f raw close.raw root/top.qcow2
            grep -q "shutting down" serve.log
            $X check > check.txt
            echo ok
            """)
    }
}
