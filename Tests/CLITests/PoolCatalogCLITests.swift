import Foundation
import Testing

@testable import TestSupport

/// The pool catalog end to end: real extentdb processes as the hosts of a pool, on a private PostgreSQL
/// cluster (``TestPostgres``), compared with what a single host's SQLite index answers.
@Suite(.serialized) struct PoolCatalogCLITests {
    /// Runs `body` (bash, `set -euo pipefail`) with `$X` the extentdb binary, `$PG` a fresh catalog database and
    /// `$ADMIN` the server's `postgres` database; expects exit 0 and "ok" last.
    func expectPoolScript(_ body: String, setup: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let workspace = try TemporaryDirectory(prefix: "extentdb-pool", setup: setup)
        defer { workspace.cleanup() }
        let catalog = try TestPostgres.freshDatabase()
        let text = "set -euo pipefail\nPG='\(catalog)'\nADMIN='\(try TestPostgres.server.get())'\n" + body
        try text.write(to: workspace.url.appendingPathComponent("test.sh"), atomically: true, encoding: .utf8)
        let result = try script("timeout 240 bash test.sh", database: workspace.path("unused.sqlite"), in: workspace.url)
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)", sourceLocation: sourceLocation)
        #expect(result.stdout.hasSuffix("ok\n"), "\(result.stdout)", sourceLocation: sourceLocation)
    }

    /// 24 small qcow2 images and a chain over one of them.
    static let poolSetup = """
        set -e
        mkdir pool
        for i in $(seq 1 24); do
            qemu-img create -q -f qcow2 pool/d$i.qcow2 64M
            qemu-io -f qcow2 -c "write -P $i $((i * 128))k 64k" pool/d$i.qcow2 >/dev/null
        done
        qemu-img create -q -f qcow2 -b d1.qcow2 -F qcow2 pool/top.qcow2
        qemu-io -f qcow2 -c 'write -P 9 1M 64k' pool/top.qcow2 >/dev/null
        """

    /// Drops what differs between two equal catalogs: when and how long, which host, and the ids each store
    /// hands out (PostgreSQL's sequences skip the numbers an upsert of a known layer consumed).
    static let stripVolatile = """
        strip() { python3 -c '
        import json, sys
        def clean(v):
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items() if k not in ("scanned_at", "duration_ms", "generated_at", "age_seconds", "host", "hosts", "scanned_by", "index", "id", "scan_id")}
            if isinstance(v, list):
                return [clean(x) for x in v]
            return v
        print(json.dumps(clean(json.load(sys.stdin)), sort_keys=True))'; }
        """

    @Test("four hosts scanning one directory at once scan each image once; maps and reports equal one host's SQLite index")
    func fourHosts() throws {
        try expectPoolScript(
            Self.stripVolatile + "\n" + """
                pids=()
                for h in 1 2 3 4; do EXTENTDB_HOST=host$h $X scan --db "$PG" pool > scan$h.txt 2>&1 & pids+=($!); done
                for pid in "${pids[@]}"; do wait $pid; done
                test "$(psql "$PG" -Atc 'SELECT count(*) FROM scans')" = 25
                test "$(psql "$PG" -Atc 'SELECT count(DISTINCT image_id) FROM scans')" = 25
                # Every host's summary counts all 25, scanned by itself or by another one meanwhile.
                for h in 1 2 3 4; do grep -q '^25 images: ' scan$h.txt; done
                test "$(psql "$PG" -Atc 'SELECT count(DISTINCT host) FROM scans')" -ge 2
                $X scan --db "$PG" pool | grep -q '^25 images: 0 scanned, 25 unchanged, 0 failed'
                $X scan --db single.sqlite pool > /dev/null
                for f in pool/*.qcow2; do
                    $X map --output json --db "$PG" "$f" > pg.json
                    $X map --output json --db single.sqlite "$f" > sqlite.json
                    cmp pg.json sqlite.json
                done
                $X report --output json --db "$PG" pool | strip > pg-report.json
                $X report --output json --db single.sqlite pool | strip > sqlite-report.json
                cmp pg-report.json sqlite-report.json
                # The pool's report totals by host: every image once, under the host that scanned it.
                $X report --output json --db "$PG" pool | python3 -c '
                import json, sys
                hosts = json.load(sys.stdin)["totals"]["hosts"]
                assert sum(h["image_count"] for h in hosts) == 25, hosts
                assert {h["host"] for h in hosts} <= {"host1", "host2", "host3", "host4"} and len(hosts) >= 2, hosts'
                $X report --db "$PG" pool | grep -q '^total scanned by host'
                $X report --output csv --db "$PG" pool | cut -d, -f1-4 > pg.csv
                $X report --output csv --db single.sqlite pool | cut -d, -f1-4 > sqlite.csv
                cmp pg.csv sqlite.csv
                # CSV and HTML group by host too: each image's host in CSV, a total per host in HTML, as in JSON.
                $X report --output json --db "$PG" pool > pool.json
                $X report --output csv --db "$PG" pool > pool.csv
                $X report --output html --db "$PG" pool > pool.html
                python3 -c '
                import collections, csv, json, re
                hosts = {h["host"]: h for h in json.load(open("pool.json"))["totals"]["hosts"]}
                rows = list(csv.DictReader(open("pool.csv", newline="")))
                assert len(rows) == 25 and all(r["directory"].endswith("/pool") for r in rows), rows[:2]
                counted = collections.Counter(r["scanned_by"] for r in rows)
                assert counted == {h: t["image_count"] for h, t in hosts.items()}, (counted, hosts)
                totals = re.findall(r"<td class=.path.>total scanned by ([^<]*)</td><td class=.text.>([0-9]+) image", open("pool.html").read())
                assert {h: int(n) for h, n in totals} == counted, (totals, counted)'
                $X check --db "$PG" | grep -q 'orphan rows: none'
                $X db migrate --db "$PG" | grep -q 'nothing to apply'
                echo ok
                """, setup: Self.poolSetup)
    }

    @Test("a scan killed with SIGKILL leaves the catalog healthy, the last whole scan answering, and the image's lock free")
    func killedScan() throws {
        try expectPoolScript(
            """
            $X scan -q --db "$PG" disk.qcow2
            for delay in 0.05 0.15 0.3 0.5; do
                $X scan -q --force --db "$PG" disk.qcow2 &
                pid=$!
                sleep $delay
                kill -9 $pid 2>/dev/null || true
                wait $pid 2>/dev/null || true
                $X check --db "$PG" > check.txt
                grep -q 'orphan rows: none' check.txt
                # Each scan's figures are its chunks' sums: nothing half-written.
                test "$(psql "$PG" -Atc "SELECT count(*) FROM scans s WHERE extent_count <> (SELECT coalesce(sum(extent_count), 0) FROM extent_chunks WHERE scan_id = coalesce(s.extents_scan_id, s.id))")" = 0
            done
            # The killed scans' locks went with their connections: a new scan goes through at once.
            timeout 60 $X scan -q --force --db "$PG" disk.qcow2
            $X map --output json --db "$PG" disk.qcow2 > pg.json
            qemu-img map --output json disk.qcow2 > qemu.json
            python3 -c 'import json,sys; a=json.load(open("pg.json")); b=json.load(open("qemu.json")); sys.exit(0 if [(e["start"],e["length"],e["data"]) for e in a]==[(e["start"],e["length"],e["data"]) for e in b] else 1)'
            echo ok
            """,
            setup: """
                set -e
                qemu-img create -q -f qcow2 -o cluster_size=4k disk.qcow2 64G
                awk 'BEGIN { x = 7; for (i = 0; i < 6000; i++) { x = (x * 48271) % 2147483647; printf "write -q -P 1 %.0f 4k\\n", (x % 16000000) * 4096 } }' > cmds
                qemu-io -f qcow2 disk.qcow2 < cmds > /dev/null
                """)
    }

    @Test("serve on the catalog answers the image list and extents as serve on SQLite does")
    func serveEqual() throws {
        try expectPoolScript(
            Self.stripVolatile + "\n" + """
                echo "serve-token-0123456789abcdef" > token
                T="Authorization: Bearer serve-token-0123456789abcdef"
                $X scan --db "$PG" pool > /dev/null
                $X scan --db single.sqlite pool > /dev/null
                start() {  # start DB LOG: a server on a free port; prints the port (its output goes to files, or $(...) waits for it)
                    $X serve --listen 127.0.0.1:0 --root "$PWD/pool" --token-file token --db "$1" --watch-interval 0 > "$2.out" 2> "$2" &
                    echo $! >> servers.pid
                    for _ in $(seq 200); do grep -q 'Server started and listening on' "$2" && break; sleep 0.05; done
                    grep -o 'Server started and listening on 127.0.0.1:[0-9]*' "$2" | cut -d: -f2
                }
                trap 'kill -9 $(cat servers.pid) 2>/dev/null || true' EXIT
                P1=$(start "$PG" pg.log); P2=$(start single.sqlite sqlite.log)
                curl -sf -H "$T" localhost:$P1/v1/images | strip > pg-images.json
                curl -sf -H "$T" localhost:$P2/v1/images | strip > sqlite-images.json
                cmp pg-images.json sqlite-images.json
                for id in 1 5 26; do
                    path=$(curl -sf -H "$T" localhost:$P1/v1/images/$id | python3 -c 'import json,sys; print(json.load(sys.stdin)["path"])')
                    id2=$(curl -sf -H "$T" localhost:$P2/v1/images | python3 -c "import json,sys; print([i['id'] for i in json.load(sys.stdin)['images'] if i['path']=='$path'][0])")
                    curl -sf -H "$T" localhost:$P1/v1/images/$id/extents > pg-extents.json
                    curl -sf -H "$T" localhost:$P2/v1/images/$id2/extents > sqlite-extents.json
                    cmp pg-extents.json sqlite-extents.json
                done
                # Pages of 7, walked with next, are the whole list, in order, on both stores.
                for P in $P1 $P2; do
                    curl -sf -H "$T" localhost:$P/v1/images | python3 -c 'import json,sys; print("\\n".join(i["path"] for i in json.load(sys.stdin)["images"]))' > all.txt
                    : > paged.txt
                    after=""
                    while :; do
                        curl -sf -H "$T" -G localhost:$P/v1/images --data-urlencode "limit=7" ${after:+--data-urlencode "after=$after"} > page.json
                        python3 -c 'import json,sys; print("\\n".join(i["path"] for i in json.load(open("page.json"))["images"]))' >> paged.txt
                        after=$(python3 -c 'import json; print(json.load(open("page.json")).get("next", ""))')
                        [ -n "$after" ] || break
                    done
                    cmp all.txt paged.txt
                    test "$(curl -s -o /dev/null -w '%{http_code}' -H "$T" "localhost:$P/v1/images?limit=0")" = 400
                    test "$(curl -s -o /dev/null -w '%{http_code}' -H "$T" "localhost:$P/v1/images?after=/x")" = 400
                done
                echo ok
                """, setup: Self.poolSetup)
    }

    @Test(
        "a rescan on one host's service reaches the other host's service at once (LISTEN/NOTIFY), after a dropped feed too, and so does a forget"
    )
    func changeFeed() throws {
        try expectPoolScript(
            """
            echo "serve-token-0123456789abcdef" > token
            T="Authorization: Bearer serve-token-0123456789abcdef"
            start() {  # start HOST LOG: a server on a free port; prints the port
                EXTENTDB_HOST=$1 $X serve --listen 127.0.0.1:0 --root "$PWD/pool" --token-file token --db "$PG" --watch-interval 0 > "$2.out" 2> "$2" &
                echo $! >> servers.pid
                for _ in $(seq 200); do grep -q 'Server started and listening on' "$2" && break; sleep 0.05; done
                grep -o 'Server started and listening on 127.0.0.1:[0-9]*' "$2" | cut -d: -f2
            }
            trap 'kill -9 $(cat servers.pid) 2>/dev/null || true' EXIT
            PA=$(start hostA a.log); PB=$(start hostB b.log)
            scan() {  # scan PORT PATH: force a scan through that service and wait for it
                id=$(curl -sf -H "$T" -X POST -d "{\\"path\\": \\"$2\\", \\"force\\": true}" localhost:$1/v1/scans | sed 's/.*"id":"\\([^"]*\\)".*/\\1/')
                for _ in $(seq 200); do
                    job=$(curl -sf -H "$T" localhost:$1/v1/scans/$id)
                    case "$job" in *'"state":"queued"'*|*'"state":"running"'*) sleep 0.05;; *) echo "$job"; return;; esac
                done
            }
            scan $PA "$PWD/pool/d3.qcow2" | grep -q '"state":"succeeded"'
            image=$(curl -sf -H "$T" localhost:$PA/v1/images | python3 -c 'import json,sys; print([i["id"] for i in json.load(sys.stdin)["images"] if i["path"].endswith("/d3.qcow2")][0])')
            first=$(curl -sf -H "$T" localhost:$PB/v1/images/$image | python3 -c 'import json,sys; print(json.load(sys.stdin)["scan_id"])')
            scan $PA "$PWD/pool/d3.qcow2" | grep -q '"state":"succeeded"'
            # B hears of it (its log names the path, the host and the new scan) and answers the new scan.
            for _ in $(seq 100); do grep -q 'catalog changed by another host' b.log && break; sleep 0.02; done
            grep 'catalog changed by another host' b.log | tail -1 | grep -q 'host=hostA'
            grep 'catalog changed by another host' b.log | tail -1 | grep -q "path=$PWD/pool/d3.qcow2"
            second=$(curl -sf -H "$T" localhost:$PB/v1/images/$image | python3 -c 'import json,sys; print(json.load(sys.stdin)["scan_id"])')
            test "$second" -gt "$first"
            # A's own changes are not reported as another host's.
            ! grep -q 'catalog changed by another host' a.log
            # The listening connections dropped (backends terminated): each service says so, reconnects, and
            # hears the next change again.
            psql "$PG" -Atc "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = 'LISTEN extentdb_changes'" | grep -q t
            for _ in $(seq 200); do grep -q 'change feed is back' b.log && break; sleep 0.05; done
            grep -q "change feed dropped" b.log
            grep -q 'change feed is back' b.log
            heard=$(grep -c 'catalog changed by another host' b.log)
            scan $PA "$PWD/pool/d3.qcow2" | grep -q '"state":"succeeded"'
            for _ in $(seq 100); do [ "$(grep -c 'catalog changed by another host' b.log)" -gt "$heard" ] && break; sleep 0.02; done
            [ "$(grep -c 'catalog changed by another host' b.log)" -gt "$heard" ]
            # A forget on the command line (host C) reaches both services.
            EXTENTDB_HOST=hostC $X forget --db "$PG" pool/d3.qcow2 > /dev/null
            for _ in $(seq 100); do grep -q 'scan_id=forgotten' a.log && grep -q 'scan_id=forgotten' b.log && break; sleep 0.02; done
            grep -q 'scan_id=forgotten' a.log
            grep -q 'scan_id=forgotten' b.log
            echo ok
            """, setup: Self.poolSetup)
    }

    @Test("hosts that see different versions of one file are flagged, not made to rescan it back and forth")
    func hostsDisagree() throws {
        try expectPoolScript(
            """
            EXTENTDB_HOST=hostA $X scan -q --db "$PG" pool/d2.qcow2
            # hostA saw the file as changed an hour later than this host sees it (its attribute cache ahead,
            # or this host's behind): what a stale NFS attribute cache looks like to the catalog.
            psql "$PG" -qc "UPDATE scan_layers SET mtime_ns = mtime_ns + 3600000000000, ctime_ns = ctime_ns + 3600000000000 WHERE path LIKE '%/d2.qcow2'"
            EXTENTDB_HOST=hostB $X scan --db "$PG" pool/d2.qcow2 > scan.txt 2> scan.err
            grep -q '^unchanged ' scan.txt
            grep -q 'hosts disagree: hostA scanned' scan.err
            test "$(psql "$PG" -Atc 'SELECT count(*) FROM scans')" = 1
            EXTENTDB_HOST=hostB $X list --db "$PG" --output json | grep -q 'hosts disagree: hostA'
            EXTENTDB_HOST=hostB $X info --db "$PG" pool/d2.qcow2 | grep -q 'hosts disagree'
            # The host that made the scan sees its own scan as stale, as always, and rescans.
            EXTENTDB_HOST=hostA $X scan -q --db "$PG" pool/d2.qcow2
            test "$(psql "$PG" -Atc 'SELECT count(*) FROM scans')" = 2
            psql "$PG" -qc "UPDATE scan_layers SET mtime_ns = mtime_ns + 3600000000000, ctime_ns = ctime_ns + 3600000000000 WHERE path LIKE '%/d2.qcow2'"
            # --force rescans here whatever the other host saw; then this host's scan is fresh for it.
            EXTENTDB_HOST=hostB $X scan -q --force --db "$PG" pool/d2.qcow2
            test "$(psql "$PG" -Atc 'SELECT count(*) FROM scans')" = 3
            EXTENTDB_HOST=hostB $X list --db "$PG" | grep 'd2.qcow2' | grep -q '^fresh'
            echo ok
            """, setup: Self.poolSetup)
    }

    @Test("a role that may only read the catalog answers from it and is told, in one line, that it cannot scan")
    func readOnlyRole() throws {
        try expectPoolScript(
            """
            $X scan -q --db "$PG" pool/d1.qcow2
            role="reader_$(date +%s%N)"
            psql "$PG" -qc "CREATE ROLE $role LOGIN" -c "GRANT SELECT ON ALL TABLES IN SCHEMA public TO $role"
            RO=${PG/postgres@/$role@}
            $X list --db "$RO" | grep -q 'd1.qcow2'
            $X map --output json --db "$RO" pool/d1.qcow2 > ro.json
            $X map --output json --db "$PG" pool/d1.qcow2 > rw.json
            cmp ro.json rw.json
            status=0
            $X scan --db "$RO" pool/d2.qcow2 > out.txt 2> err.txt || status=$?
            test $status = 1
            grep -q 'read-only' err.txt
            test "$(wc -l < err.txt)" -le 2
            test "$(psql "$PG" -Atc 'SELECT count(*) FROM scans')" = 1
            # A catalog missing a migration the reader cannot apply: one line saying so, not a server error.
            psql "$PG" -qc "DELETE FROM extentdb_migrations WHERE name = '0002_path_order'"
            status=0
            $X list --db "$RO" > out.txt 2> err.txt || status=$?
            test $status = 1
            grep -q 'written by an older extentdb and is read-only here' err.txt
            echo ok
            """, setup: Self.poolSetup)
    }
}
