import Foundation
import Testing

@testable import TestSupport

/// What a service manager and a backup agent expect of extentdb's servers.
@Suite(.serialized) struct DeployableTests {
    @Test("extentdb nbd stops on SIGTERM and SIGINT with status 0 and removes its socket, as qemu-nbd does")
    func nbdStopsCleanly() throws {
        let workspace = try makeTenantsWorkspace()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let result = try script(
            """
            set -u
            for signal in TERM INT; do
                $X nbd root/vmB/disk.qcow2 --socket "$PWD/run/one.sock" 2> nbd.log &
                pid=$!
                for _ in $(seq 200); do test -S run/one.sock && break; sleep 0.05; done
                kill -$signal $pid
                status=0; wait $pid || status=$?
                echo "$signal $status"
                test -e run/one.sock && echo "socket left"
            done
            true
            """, database: directory.appendingPathComponent("index.sqlite").path, in: directory)
        #expect(result.stdout == "TERM 0\nINT 0\n", "\(result.stdout)\n\(result.stderr)")
    }

    @Test("nbdinfo --list keeps working after an indexed image is deleted: the deleted one is not announced")
    func listAfterDeletion() throws {
        try expectServeScript(
            """
            qemu-img create -q -f qcow2 root/vmA/disk.qcow2 1M
            for image in vmA/disk.qcow2 vmB/disk.qcow2; do scan "$PWD/root/$image" | grep -q succeeded; done
            rm root/vmA/disk.qcow2
            nbdinfo --list "nbd+unix://?socket=$PWD/run/nbd.sock" > list.txt
            grep -q 'export="vmB/disk.qcow2"' list.txt
            ! grep -q 'vmA/disk.qcow2' list.txt
            echo ok
            """, prologue: startTenantServer, in: makeTenantsWorkspace)
    }

    @Test("serve without --token-file refuses to start and names the flag; --insecure-no-auth serves loopback only")
    func authenticationByDefault() throws {
        let workspace = try makeTenantsWorkspace()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let result = try script(
            """
            if timeout 10 $X serve --listen 127.0.0.1:0 --root root --db index.sqlite 2> refused.txt; then echo started; fi
            grep -c -- '--token-file' refused.txt
            $X serve --listen 127.0.0.1:0 --insecure-no-auth --root root --db index.sqlite --watch-interval 0 < /dev/null > /dev/null 2> open.txt &
            pid=$!
            for _ in $(seq 200); do grep -q 'listening on' open.txt && break; sleep 0.05; done
            port=$(grep -o 'listening on 127.0.0.1:[0-9]*' open.txt | cut -d: -f2)
            curl -s -o /dev/null -w '%{http_code}\n' "localhost:$port/v1/images"
            kill -9 $pid
            wait $pid 2>/dev/null
            true
            """, database: directory.appendingPathComponent("index.sqlite").path, in: directory)
        #expect(result.stdout == "1\n200\n", "\(result.stdout)\n\(result.stderr)")
    }

    @Test("the access log records who read which disk: every /v1 request, every export with its bytes, every NBD session")
    func accessLog() throws {
        try expectServeScript(
            """
            id=$(scan "$PWD/root/vmB/disk.qcow2" | sed 's/.*"image_id":\\([0-9]*\\).*/\\1/')
            $C -H "$T" "localhost:$P/v1/images/$id/export?format=raw" -o out.raw
            nbdcopy "nbd+unix:///vmB/disk.qcow2?socket=$PWD/run/nbd.sock" nbd.raw
            $C -o /dev/null -H "$T" "localhost:$P/v1/images/999999"
            sleep 0.5
            grep ' \\[Server\\] export$' serve.log | grep 'bytes=4194304' | grep 'client=127.0.0.1' | grep 'format=raw' | grep -q 'result=complete' \\
                || { grep export serve.log; exit 1; }
            grep ' \\[Server\\] access$' serve.log | grep "uri=/v1/images/$id/export?format=raw" | grep -q 'status=200'
            grep ' \\[Server\\] access$' serve.log | grep 'uri=/v1/images/999999' | grep -q 'status=404'
            grep 'nbd session$' serve.log | grep 'export=vmB/disk.qcow2' | grep -q 'bytes=4194304' || { grep 'nbd session' serve.log; exit 1; }
            # On the Unix socket, the client is the user who connected (SO_PEERCRED).
            grep 'nbd session$' serve.log | grep -q "client=uid:$(id -u) " || { grep 'nbd session' serve.log; exit 1; }
            ! grep -q 'I/O on closed channel' serve.log
            echo ok
            """, prologue: startTenantServer, in: makeTenantsWorkspace)
    }

    @Test("--log-format json writes every log line as one JSON object, the access log's fields as keys")
    func jsonLog() throws {
        try expectServeScript(
            """
            EXTRA="--log-format json"
            \(restartWithExtra)
            id=$(scan "$PWD/root/vmB/disk.qcow2" | sed 's/.*"image_id":\\([0-9]*\\).*/\\1/')
            $C -H "$T" "localhost:$P/v1/images/$id/export?format=raw" -o out.raw
            sleep 0.5
            python3 - serve.log <<'PY'
            import json, sys
            events = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
            assert events and all({"time", "level", "label", "message"} <= set(e) for e in events), events[:3]
            access = [e for e in events if e["message"] == "access" and e.get("status") == "200" and "/export" in e.get("uri", "")]
            exports = [e for e in events if e["message"] == "export" and e.get("result") == "complete"]
            assert access and exports and exports[0]["bytes"] == "4194304", (access, exports)
            PY
            echo ok
            """, prologue: startTenantServer, in: makeTenantsWorkspace)
    }
}
