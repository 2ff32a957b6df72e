import Foundation
import Testing

@testable import TestSupport

/// Stops the server the prologue started and starts it again with `EXTRA`'s flags.
let restartWithExtra = """
    kill $PID; wait $PID 2>/dev/null || true
    # Emptied first: the wait below must see the new server's start line, not the old one's.
    : > serve.log
    \(startTenantServer.replacingOccurrences(of: "set -euo pipefail\n", with: ""))
    """

/// A service anyone can reach must not be starved by one client: each limit of the second security review,
/// against the real binary with real sockets. `EXTRA` sets the limits small so the tests run in seconds.
@Suite(.serialized) struct ServiceLimitsTests {
    @Test("half-sent requests are closed after the idle timeout and capped per client; other clients still get answers")
    func slowHeaders() throws {
        try expectServeScript(
            """
            EXTRA="--idle-timeout 8 --max-connections 16 --max-connections-per-client 4"
            \(restartWithExtra)
            # Six half-sent requests from 127.0.0.2: four are held (until the idle timeout), two are closed at once.
            python3 - "$P" <<'PY'
            import socket, sys, time
            port = int(sys.argv[1])
            held = []
            for _ in range(6):
                s = socket.socket(); s.bind(("127.0.0.2", 0)); s.connect(("127.0.0.1", port))
                s.sendall(b"GET /healthz HTTP/1.1\\r\\nHost: x\\r\\n")
                held.append(s)
            started = time.time()
            def closed(s, wait):
                s.settimeout(wait)
                try:
                    return s.recv(1) == b""
                except socket.timeout:
                    return False
                except ConnectionResetError:
                    return True
            # The two past the per-client cap are closed at once (polled: the machine may be busy).
            open_ones = list(held)
            while time.time() - started < 5 and len(open_ones) > 4:
                open_ones = [s for s in open_ones if not closed(s, 0.05)]
            assert len(open_ones) == 4, f"{6 - len(open_ones)} of 6 closed at once, expected the 2 past the per-client cap"
            # Someone else is answered meanwhile.
            c = socket.create_connection(("127.0.0.1", port)); c.sendall(b"GET /healthz HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
            assert b"200" in c.recv(100)
            # The idle timeout (8 s) closes the half-sent ones: Hummingbird counts a connection active only once
            # its request head is whole.
            assert all(closed(s, 30) for s in open_ones), "half-sent requests still open after the idle timeout"
            assert time.time() - started >= 7, "closed before the idle timeout"
            PY
            $C localhost:$P/metrics > limits-metrics.txt; grep -q 'extentdb_limit_hits_total{limit="http_connections_per_client"} [1-9]' limits-metrics.txt
            echo ok
            """, prologue: startTenantServer, in: makeTenantsWorkspace)
    }

    @Test("exports whose clients stopped reading give their slots back after the write timeout; one client gets its share")
    func stalledReaders() throws {
        try expectServeScript(
            """
            EXTRA="--write-timeout 2"
            \(restartWithExtra)
            truncate -s 256M root/vmB/big.raw
            qemu-io -f raw -c 'write -P 9 0 200M' root/vmB/big.raw >/dev/null
            id=$(scan "$PWD/root/vmB/big.raw" | sed 's/.*"image_id":\\([0-9]*\\).*/\\1/')
            # Four clients (four addresses: each gets at most its share of two) take every slot and never read.
            python3 - "$P" "$id" <<'PY' &
            import socket, sys, time
            port, image = sys.argv[1], sys.argv[2]
            held = []
            for i in range(4):
                s = socket.socket(); s.bind((f"127.0.0.{2 + i}", 0)); s.connect(("127.0.0.1", int(port)))
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                s.sendall(f"GET /v1/images/{image}/export?format=raw HTTP/1.1\\r\\nHost: x\\r\\nAuthorization: Bearer serve-token-0123456789abcdef\\r\\n\\r\\n".encode())
                held.append(s)
            time.sleep(30)
            PY
            HOLDER=$!
            sleep 1
            test "$($C -o /dev/null -w '%{http_code}' -H "$T" "localhost:$P/v1/images/$id/export?format=raw")" = 503
            # Within the write timeout (and its check) the stalled exports are cut and the slots are free again.
            for _ in $(seq 120); do
                code=$($C -o out.raw -w '%{http_code}' -H "$T" "localhost:$P/v1/images/$id/export?format=raw")
                test "$code" = 200 && break
                sleep 0.25
            done
            kill -9 $HOLDER
            test "$code" = 200 || { echo "still $code"; exit 1; }
            cmp out.raw root/vmB/big.raw
            $C localhost:$P/metrics > limits-metrics.txt; grep -q 'extentdb_limit_hits_total{limit="export_stalled"} [1-9]' limits-metrics.txt
            # One client gets two slots, its share, while two remain for others.
            SLOW=()
            for n in 1 2; do curl -s --limit-rate 1M -H "$T" "localhost:$P/v1/images/$id/export?format=raw" -o share.$n.raw & SLOW+=($!); done
            sleep 0.5
            $C -H "$T" "localhost:$P/v1/images/$id/export?format=raw" | grep -q 'its share' || { echo "a third export for one client"; exit 1; }
            test "$($C --interface 127.0.0.9 -o /dev/null -w '%{http_code}' -H "$T" "localhost:$P/v1/images/$id/export?format=raw")" = 200
            kill -9 "${SLOW[@]}"
            echo ok
            """, prologue: startTenantServer, in: makeTenantsWorkspace)
    }

    @Test("NBD sessions are capped per listener with an honest message, and idle sessions are closed")
    func nbdSessions() throws {
        try expectServeScript(
            """
            EXTRA="--nbd-max-sessions 2 --nbd-idle-timeout 2"
            \(restartWithExtra)
            scan "$PWD/root/vmB/disk.qcow2" | grep -q succeeded
            U="?socket=$PWD/run/nbd.sock"
            # Two clients connect and then say nothing.
            python3 - "$PWD/run/nbd.sock" <<'PY' &
            import socket, sys, time
            held = []
            for _ in range(2):
                s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.recv(18); held.append(s)
            open("holding", "w").close()
            time.sleep(20)
            PY
            HOLDER=$!
            for _ in $(seq 200); do test -e holding && break; sleep 0.05; done
            if LIBNBD_DEBUG=1 nbdinfo "nbd+unix:///vmB/disk.qcow2$U" > info.txt 2> err.txt; then echo "a third session was served"; exit 1; fi
            grep -q 'too many connections (2 open, the limit)' err.txt || { grep -i error err.txt; exit 1; }
            # The idle limit frees them.
            for _ in $(seq 100); do nbdinfo "nbd+unix:///vmB/disk.qcow2$U" > info.txt 2>/dev/null && break; sleep 0.2; done
            nbdinfo "nbd+unix:///vmB/disk.qcow2$U" > info.txt
            kill -9 $HOLDER
            $C localhost:$P/metrics > metrics.txt
            grep -q 'extentdb_limit_hits_total{limit="nbd_sessions"} [1-9]' metrics.txt
            grep -q 'extentdb_limit_hits_total{limit="nbd_idle"} [1-9]' metrics.txt
            echo ok
            """, prologue: startTenantServer, in: makeTenantsWorkspace)
    }

    @Test("a 416 keeps its Content-Range; a name that only looks like loopback is refused; --help shows the limits")
    func smallerItems() throws {
        try expectServeScript(
            """
            id=$(scan "$PWD/root/vmB/disk.qcow2" | sed 's/.*"image_id":\\([0-9]*\\).*/\\1/')
            $C -D headers.txt -o /dev/null -H "$T" -H 'Range: bytes=99999999-' "localhost:$P/v1/images/$id/export?format=raw"
            grep -qi '^content-range: bytes \\*/4194304' headers.txt || { cat headers.txt; exit 1; }
            if $X serve --listen 127.internal.example:0 --insecure-no-auth --root root --db other.sqlite 2> err.txt; then echo "listened"; exit 1; fi
            grep -q 'only a loopback address may go without a token' err.txt
            $X serve --help > help.txt
            for flag in --idle-timeout --write-timeout --max-connections --max-connections-per-client --nbd-max-sessions \\
                --nbd-idle-timeout --scan-time-limit --max-queued-scans --max-scan-extents --trust-root; do
                grep -q -- "$flag" help.txt || { echo "no $flag"; exit 1; }
            done
            echo ok
            """, prologue: startTenantServer, in: makeTenantsWorkspace)
    }

    @Test("3,000 junk files that fail to scan leave an idle service idle: failures are read once per sweep")
    func junkFilesSweep() throws {
        try expectServeScript(
            """
            kill $PID; wait $PID 2>/dev/null || true
            mkdir root/junk
            for i in $(seq 3000); do printf 'QFI\\xfbjunk' > root/junk/$i.qcow2; done
            \(startTenantServer.replacingOccurrences(of: "set -euo pipefail\n", with: ""))
            # Wait until the watcher has tried every junk file once.
            for _ in $(seq 600); do
                n=$($C localhost:$P/metrics | awk '$1 ~ /^extentdb_scans_total/ { s += $2 } END { print s + 0 }')
                test "$n" -ge 3000 && break
                sleep 0.2
            done
            test "$n" -ge 3000 || { echo "only $n scans"; exit 1; }
            sleep 2
            ticks() { awk '{ print $14 + $15 }' /proc/$PID/stat; }
            before=$(ticks); sleep 5; after=$(ticks)
            used=$(( (after - before) * 100 / $(getconf CLK_TCK) ))
            echo "cpu ${used}% of one core over 5 s of sweeps" >&2
            test "$used" -lt 250 || { echo "busy: $used"; exit 1; }
            echo ok
            """, prologue: startTenantServer, in: makeTenantsWorkspace)
    }

    @Test("with 300 descriptors in all, 600 connections neither crash the service nor lock out a later client")
    func fewDescriptors() throws {
        try expectServeScript(
            """
            kill $PID; wait $PID 2>/dev/null || true
            # A hard limit of 300 for the service alone: its caps are lowered to fit what is left after the
            # 256 kept for the index, images and pipes.
            (ulimit -n 300; exec $X serve --listen 127.0.0.1:0 --root "$PWD/root" --token-file token --db index.sqlite 2> serve.log) &
            PID=$!
            for _ in $(seq 100); do grep -q 'Server started and listening on' serve.log && break; sleep 0.05; done
            P=$(grep -o 'Server started and listening on 127.0.0.1:[0-9]*' serve.log | cut -d: -f2)
            grep -q 'connection caps lowered to fit 44 descriptors' serve.log
            python3 - "$P" <<'PY'
            import socket, sys
            port = int(sys.argv[1])
            held = []
            for i in range(600):
                s = socket.socket(); s.bind((f"127.0.{1 + i // 200}.{2 + i % 200}", 0))
                try:
                    s.connect(("127.0.0.1", port)); s.sendall(b"GET /healthz HTTP/1.1\\r\\n")
                except OSError:
                    pass
                held.append(s)
            for s in held:
                s.close()
            PY
            kill -0 $PID || { echo "the service died"; tail serve.log; exit 1; }
            for _ in $(seq 50); do test "$($C -o /dev/null -w '%{http_code}' localhost:$P/healthz)" = 200 && break; sleep 0.2; done
            test "$($C -o /dev/null -w '%{http_code}' localhost:$P/healthz)" = 200
            $C localhost:$P/metrics > limits-metrics.txt; grep -q 'extentdb_limit_hits_total{limit="http_connections"} [1-9]' limits-metrics.txt
            echo ok
            """, prologue: startTenantServer, in: makeTenantsWorkspace)
    }
}
