import Foundation
import Testing

@testable import TestSupport

/// A serve workspace plus `root/many.qcow2`: 256 MiB of 4 KiB clusters, every other one written, so its
/// 65,536 extents fill 16 index chunks and an export reads them from the index in two batches.
func makeRaceWorkspace() throws -> TemporaryDirectory {
    try TemporaryDirectory(
        prefix: "extentdb-serve",
        setup: serveWorkspaceSetup + """
            python3 -c 'import sys; sys.stdout.buffer.write(b"".join(bytes([i % 250 + 1]) * 4096 + bytes(4096) for i in range(32768)))' > many.raw
            qemu-img convert -O qcow2 -o cluster_size=4k many.raw root/many.qcow2
            rm many.raw
            """)
}

/// `startServer` with the watcher off: only the test's requests scan, so their outcomes can be counted
/// (the watcher would scan the new images itself, and rescan a forgotten one within a second).
let startServerUnwatched = startServer.replacingOccurrences(of: "--watch-interval 1", with: "--watch-interval 0")

/// Requests that race each other in the service, and a CLI writing the same index meanwhile.
@Suite(.serialized) struct ServeRaceTests {
    @Test(
        "parallel scans of one image (6 over HTTP, 2 CLI scan --force at once): all succeed, the index is healthy, the latest scan equals a serial one"
    )
    func parallelScansOfOneImage() throws {
        try expectServeScript(
            """
            image="$PWD/root/many.qcow2"
            ids=()
            for n in $(seq 6); do
                ids+=($($C -H "$T" -X POST -d "{\\"path\\": \\"$image\\", \\"force\\": true}" localhost:$P/v1/scans | sed 's/.*"id":"\\([^"]*\\)".*/\\1/'))
            done
            $X scan -q --force root/many.qcow2 > cli1.out 2>&1 & cli1=$!
            $X scan -q --force root/many.qcow2 > cli2.out 2>&1 & cli2=$!
            wait $cli1 || { echo "CLI scan 1 failed:"; cat cli1.out; exit 1; }
            wait $cli2 || { echo "CLI scan 2 failed:"; cat cli2.out; exit 1; }
            for id in "${ids[@]}"; do
                for _ in $(seq 400); do
                    job=$($C -H "$T" localhost:$P/v1/scans/$id)
                    case "$job" in *'"state":"queued"'*|*'"state":"running"'*) sleep 0.05;; *) break;; esac
                done
                echo "$job" | grep -q '"state":"succeeded"' || { echo "job $id: $job"; exit 1; }
                echo "$job" | grep -q '"action":"scanned"' || { echo "job $id: $job"; exit 1; }
            done
            $X check > check.txt || { cat check.txt; exit 1; }
            python3 -c 'import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); assert db.execute("PRAGMA foreign_key_check").fetchall() == []' index.sqlite
            test "$(python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM scans").fetchone()[0])' index.sqlite)" = 8
            $X map --output json root/many.qcow2 > latest.json
            $X scan -q --db serial.sqlite root/many.qcow2
            $X map --output json --db serial.sqlite root/many.qcow2 > serial.json
            cmp latest.json serial.json
            id=$(echo "$job" | sed 's/.*"image_id":\\([0-9]*\\).*/\\1/')
            $C -H "$T" localhost:$P/v1/images/$id/extents > served.json
            cmp served.json serial.json
            echo ok
            """, prologue: startServerUnwatched, in: makeRaceWorkspace)
    }

    @Test(
        "DELETE of an image during its raw export: the export is whole and correct or visibly cut, never a complete wrong body; the server goes on and the image rescans"
    )
    func forgetDuringExport() throws {
        try expectServeScript(
            """
            image="$PWD/root/many.qcow2"
            size=$((256 << 20))
            whole=0 cut=0
            # Deletes at these delays into an export paced at 80 MB/s (3.4 s whole); the second batch of
            # extents is read from the index at 128 MiB, about 1.7 s in.
            for delay in 0.3 0.9 2.6; do
                job=$(scan "$image")
                echo "$job" | grep -q '"state":"succeeded"' || { echo "scan: $job"; exit 1; }
                id=$(echo "$job" | sed 's/.*"image_id":\\([0-9]*\\).*/\\1/')
                rm -f export.raw
                curl -s --max-time 60 --limit-rate 80M -H "$T" -o export.raw -w '%{http_code}' \\
                    "localhost:$P/v1/images/$id/export?format=raw" > code.txt &
                CURL=$!
                sleep $delay
                test "$($C -o /dev/null -w '%{http_code}' -H "$T" -X DELETE localhost:$P/v1/images/$id)" = 200
                status=0; wait $CURL || status=$?
                code=$(cat code.txt)
                got=$(stat -c %s export.raw 2>/dev/null || echo 0)
                if [ "$status" = 0 ] && [ "$code" = 200 ]; then
                    test "$got" = "$size" || { echo "delay $delay: 200 and curl ok with $got of $size bytes"; exit 1; }
                    qemu-img compare -q -f raw -F qcow2 export.raw "$image" || { echo "delay $delay: a whole body with wrong bytes"; exit 1; }
                    whole=$((whole + 1))
                else
                    # Cut: curl saw the stream end short of Content-Length (18) or the connection drop.
                    case "$status" in 18|52|56) ;; *) echo "delay $delay: curl $status, HTTP $code"; exit 1;; esac
                    test "$got" -lt "$size" || { echo "delay $delay: curl $status with the whole size"; exit 1; }
                    cut=$((cut + 1))
                fi
                test "$($C -o /dev/null -w '%{http_code}' localhost:$P/healthz)" = 200
                test "$($C -o /dev/null -w '%{http_code}' -H "$T" localhost:$P/v1/images/$id)" = 404
            done
            job=$(scan "$image")
            echo "$job" | grep -q '"state":"succeeded"' || { echo "rescan: $job"; exit 1; }
            id=$(echo "$job" | sed 's/.*"image_id":\\([0-9]*\\).*/\\1/')
            $C -H "$T" "localhost:$P/v1/images/$id/export?format=raw" -o final.raw
            qemu-img compare -q -f raw -F qcow2 final.raw "$image"
            $X check > check.txt || { cat check.txt; exit 1; }
            echo "whole $whole, cut $cut"
            echo ok
            """, prologue: startServerUnwatched, in: makeRaceWorkspace)
    }
}
