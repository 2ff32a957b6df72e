import Foundation
import Testing

@testable import TestSupport

/// `serve --shutdown-timeout` (#22): SIGTERM drains exports for at most that long, then cuts them, so a
/// client that reads slowly cannot hold the service (and systemd's stop) for minutes.
@Suite(.serialized) struct ShutdownTimeoutTests {
    @Test(
        "a slow export is cut after --shutdown-timeout: the service exits 0 within it, the log names it, the client sees a short transfer")
    func boundedDrain() throws {
        try expectServeScript(
            """
            job=$(scan "$PWD/root/top.qcow2")
            id=$(echo "$job" | sed 's/.*"image_id":\\([0-9]*\\).*/\\1/')
            # 64 MiB at 256 KiB/s would take four minutes.
            curl -s --max-time 60 --limit-rate 256k -H "$T" "localhost:$P/v1/images/$id/export?format=raw" -o slow.raw & client=$!
            for _ in $(seq 100); do test -s slow.raw && break; sleep 0.05; done
            start=$(date +%s)
            kill -TERM $PID
            status=0; wait $PID || status=$?
            elapsed=$(( $(date +%s) - start ))
            test "$status" = 0 || { echo "serve exited $status"; cat serve.log; exit 1; }
            test "$elapsed" -le 12 || { echo "serve took $elapsed s to stop"; exit 1; }
            curl_status=0; wait $client || curl_status=$?
            test "$curl_status" != 0 || { echo "the slow export was not cut"; exit 1; }
            test "$(stat -c %s slow.raw)" -lt 67108864
            # The log names what the timeout cut.
            grep 'warning' serve.log | grep 'result=cut' | grep -q 'image=[^ ]*top.qcow2'
            echo ok
            """,
            prologue: startServer.replacingOccurrences(of: "--debounce 0.3", with: "--debounce 0.3 --shutdown-timeout 2"))
    }
}
