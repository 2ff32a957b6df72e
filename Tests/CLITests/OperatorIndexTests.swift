import Foundation
import Testing

@testable import TestSupport

/// The index as an operator runs it for years: lifecycle commands, retention, checks, shared read access.
@Suite(.serialized) struct OperatorIndexTests {
    @Test("list shows fresh, stale, missing and failed images; prune and forget remove them from list and report")
    func listForgetPrune() throws {
        let workspace = try makeTenantWorkspace()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let db = directory.appendingPathComponent("index.sqlite").path
        let result = try script(
            """
            set -e
            cd vm
            for name in a b c d; do qemu-img create -q -f qcow2 $name.qcow2 4M; done
            $X scan . >/dev/null
            qemu-io -f qcow2 -c 'write 0 64k' b.qcow2 >/dev/null
            rm c.qcow2
            printf 'QFI\\373\\000\\000\\000\\007' | dd of=d.qcow2 conv=notrunc status=none
            $X scan d.qcow2 >/dev/null 2>&1 || true
            $X list --output json > ../list.json
            $X list | tail -3
            $X prune
            $X forget a.qcow2 nothere.qcow2 || echo "forget exit $?"
            $X report --output json | grep -c '"path"' || true
            $X list --output json > ../after.json
            """, database: db, in: directory)
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        let list = try JSONSerialization.jsonObject(with: Data(contentsOf: directory.appendingPathComponent("list.json"))) as? [String: Any]
        let states = Dictionary(
            uniqueKeysWithValues: (list?["images"] as? [[String: Any]] ?? []).compactMap { entry -> (String, String)? in
                guard let path = entry["path"] as? String, let state = entry["state"] as? String else { return nil }
                return (String(path.split(separator: "/").last ?? ""), state)
            })
        #expect(states == ["a.qcow2": "fresh", "b.qcow2": "stale", "c.qcow2": "missing", "d.qcow2": "failed"], "\(states)")
        #expect(result.stdout.contains("failed d.qcow2") || result.stdout.contains("/vm/d.qcow2: "), "\(result.stdout)")
        #expect(result.stdout.contains("forgot ") && result.stdout.contains("c.qcow2"))
        #expect(result.stdout.contains("forget exit 1"))
        #expect(result.stderr.contains("nothere.qcow2: not in the index"))
        let after = try String(contentsOf: directory.appendingPathComponent("after.json"), encoding: .utf8)
        #expect(!after.contains("a.qcow2") && !after.contains("c.qcow2") && after.contains("b.qcow2") && after.contains("d.qcow2"))
    }

    @Test("30 forced rescans of an unchanged image keep 5 scans and one copy of the extents; gc and vacuum shrink the file")
    func retentionAndSharing() throws {
        let workspace = try makeTenantWorkspace()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let db = directory.appendingPathComponent("index.sqlite").path
        let result = try script(
            """
            set -e
            qemu-img create -q -f qcow2 vm/disk.qcow2 64M
            qemu-io -f qcow2 -c 'write 0 1M' -c 'write 8M 64k' -c 'write 20M 4k' vm/disk.qcow2 >/dev/null
            for i in $(seq 1 30); do $X scan --force --keep 5 vm/disk.qcow2 >/dev/null; done
            $X list --output json | grep '"scans_kept"'
            python3 -c 'import sqlite3, sys
            c = sqlite3.connect(sys.argv[1])
            print("owners", c.execute("SELECT count(DISTINCT scan_id) FROM extent_chunks").fetchone()[0])
            print("scans", c.execute("SELECT count(*) FROM scans").fetchone()[0])' "$EXTENTDB_DB"
            $X map vm/disk.qcow2 --output json > before.json
            $X gc --keep 1 --vacuum
            $X map vm/disk.qcow2 --output json > after.json
            cmp before.json after.json && echo same-map
            $X check
            """, database: db, in: directory)
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        #expect(result.stdout.contains("\"scans_kept\" : 5"), "\(result.stdout)")
        #expect(result.stdout.contains("owners 1\n"))
        #expect(result.stdout.contains("scans 5\n"))
        #expect(result.stdout.contains("4 scans deleted"))
        #expect(result.stdout.contains("same-map"))
        #expect(result.stdout.contains("integrity: ok"))
        #expect(result.stdout.contains("orphan rows: none"))
    }

    @Test("check and every command give one clear line for a corrupt index or a file that is not SQLite")
    func corruptAndForeignDatabases() throws {
        let workspace = try makeTenantWorkspace()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let db = directory.appendingPathComponent("index.sqlite").path
        let result = try script(
            """
            truncate -s 4M vm/disk.raw
            for i in 1 2 3; do qemu-img create -q -f qcow2 vm/q$i.qcow2 4M; done
            $X scan vm -f raw >/dev/null; $X scan vm >/dev/null
            # Damage the pages after the first: integrity_check must notice.
            python3 -c 'import sys
            f = open(sys.argv[1], "r+b"); f.seek(8192); f.write(b"\\xff" * 16384); f.close()' "$EXTENTDB_DB"
            $X check; echo "check $?"
            echo "not a database at all" > notdb.sqlite
            $X list --db notdb.sqlite; echo "notdb $?"
            python3 -c 'import sqlite3; c = sqlite3.connect("app.db"); c.execute("CREATE TABLE accounts (id, balance)"); c.commit()'
            sum=$(md5sum app.db)
            $X scan vm/disk.raw --db app.db; echo "foreign $?"
            test "$sum" = "$(md5sum app.db)" && echo unchanged
            """, database: db, in: directory)
        #expect(result.stdout.contains("check 1"), "\(result.stdout)\n\(result.stderr)")
        #expect(result.stdout.contains("notdb 1"))
        #expect(result.stdout.contains("foreign 1"))
        #expect(result.stdout.contains("unchanged"))
        #expect(result.stderr.contains("notdb.sqlite cannot be read as an index: file is not a database"), "\(result.stderr)")
        #expect(result.stderr.contains("app.db is not an extentdb index"))
        for line in result.stderr.split(separator: "\n") {
            #expect(!line.contains("SELECT") && !line.contains("PRAGMA"), "SQL text reached the user: \(line)")
        }
    }

    @Test("another user without write access reads report, list, map and export; stale images are not rescanned")
    func readOnlySecondUser() throws {
        let workspace = try makeTenantWorkspace()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let db = directory.appendingPathComponent("index.sqlite").path
        let result = try script(
            """
            set -e
            chmod 755 . vm
            cp "$X" ./extentdb && chmod 755 extentdb
            qemu-img create -q -f qcow2 vm/disk.qcow2 4M
            qemu-io -f qcow2 -c 'write -P 7 0 64k' vm/disk.qcow2 >/dev/null
            chmod 644 vm/disk.qcow2
            $X scan vm >/dev/null
            chmod 644 "$EXTENTDB_DB"
            sum=$(md5sum "$EXTENTDB_DB")
            as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups ./extentdb "$@"; }
            as_nobody report | tail -1
            as_nobody list | head -2 | tail -1
            as_nobody map vm/disk.qcow2 --output json | head -1
            as_nobody export vm/disk.qcow2 --format raw > out.raw
            cmp -n 65536 out.raw <(head -c 65536 /dev/zero | tr '\\0' '\\7') && echo exported
            touch vm/disk.qcow2
            as_nobody map vm/disk.qcow2 > /dev/null
            if as_nobody scan vm/disk.qcow2; then echo "scan should fail"; fi
            test "$sum" = "$(md5sum "$EXTENTDB_DB")" && echo index-unchanged
            """, database: db, in: directory)
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        #expect(result.stdout.contains("total (1 image)") || result.stdout.contains("total"), "\(result.stdout)")
        #expect(result.stdout.contains("fresh  qcow2"))
        #expect(result.stdout.contains("\"data\": true"))
        #expect(result.stdout.contains("exported"))
        #expect(result.stderr.contains("stale (read-only index, not rescanned)"), "\(result.stderr)")
        #expect(result.stderr.contains("is read-only for this user"))
        #expect(result.stdout.contains("index-unchanged"))
        #expect(!result.stderr.contains("attempt to write"))
    }

    @Test("--db before the subcommand, JSON errors naming file, field and offset, size suffixes, plural counts")
    func commandLineConveniences() throws {
        let workspace = try makeTenantWorkspace()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let db = directory.appendingPathComponent("index.sqlite").path
        let result = try script(
            """
            qemu-img create -q -f qcow2 vm/disk.qcow2 8M
            qemu-io -f qcow2 -c 'write 1M 64k' vm/disk.qcow2 >/dev/null
            env -u EXTENTDB_DB $X --db other.sqlite scan vm/disk.qcow2
            $X map vm/disk.qcow2 --offset 1M --length 64K --output json
            cp vm/disk.qcow2 vm/bad.qcow2
            printf '\\000\\000\\000\\077' | dd of=vm/bad.qcow2 bs=1 seek=20 conv=notrunc status=none
            $X map vm/bad.qcow2 --output json; echo "exit $?"
            """, database: db, in: directory)
        #expect(result.stdout.contains("1 image: 1 scanned"), "\(result.stdout)\n\(result.stderr)")
        #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent("other.sqlite").path))
        #expect(
            result.stdout.contains(
                "[{ \"start\": 1048576, \"length\": 65536, \"depth\": 0, \"present\": true, \"zero\": false, \"data\": true"))
        #expect(result.stdout.contains("exit 1"))
        let line = try #require(result.stderr.split(separator: "\n").last)
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        #expect((object?["path"] as? String)?.hasSuffix("vm/bad.qcow2") == true, "\(line)")
        #expect(object?["field"] as? String == "cluster_bits")
        #expect(object?["offset"] as? Int == 20)
        #expect((object?["error"] as? String)?.contains("cluster_bits") == true)
    }

    @Test("report: raw holes are unallocated, states and failures are shown, history in tables, one --output vocabulary")
    func reportForOperators() throws {
        let workspace = try makeTenantWorkspace()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let db = directory.appendingPathComponent("index.sqlite").path
        let result = try script(
            """
            set -e
            truncate -s 64M vm/disk.raw
            qemu-io -f raw -c 'write -P 1 8M 4M' vm/disk.raw >/dev/null
            qemu-img create -q -f qcow2 vm/top.qcow2 16M
            qemu-io -f qcow2 -c 'write -z 0 1M' vm/top.qcow2 >/dev/null
            qemu-img create -q -f qcow2 vm/broken.qcow2 16M
            printf '\\000\\000\\000\\077' | dd of=vm/broken.qcow2 bs=1 seek=20 conv=notrunc status=none
            $X scan --include-raw vm >/dev/null 2>&1 || true
            $X scan --force vm/top.qcow2 >/dev/null
            $X report vm --output json > report.json
            $X report vm --output html --to report.html
            $X report vm --history --output human | grep -A3 HISTORY
            $X map vm/disk.raw --output table | head -1
            $X --generate-completion-script bash | head -1
            """, database: db, in: directory)
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        let report =
            try JSONSerialization.jsonObject(with: Data(contentsOf: directory.appendingPathComponent("report.json"))) as? [String: Any]
        let images = report?["images"] as? [[String: Any]] ?? []
        let raw = try #require(images.first { ($0["path"] as? String)?.hasSuffix("disk.raw") == true })
        #expect(raw["zero_bytes"] as? Int == 0)
        #expect(raw["allocated_bytes"] as? Int == 4 << 20)
        #expect(raw["unallocated_bytes"] as? Int == 60 << 20)
        #expect(raw["state"] as? String == "fresh")
        #expect(raw["chain_length"] as? Int == 1)
        #expect(raw["used_fraction"] != nil && raw["sparseness"] == nil)
        let top = try #require(images.first { ($0["path"] as? String)?.hasSuffix("top.qcow2") == true })
        #expect(top["zero_bytes"] as? Int == 1 << 20)
        let html = try String(contentsOf: directory.appendingPathComponent("report.html"), encoding: .utf8)
        #expect(html.contains("Failed scans (1)") && html.contains("broken.qcow2") && html.contains("cluster_bits"))
        #expect(html.contains("<th class=\"text\">state</th>") && html.contains("id=\"filter\""))
        #expect(html.contains("<title>unallocated: "))
        #expect(result.stdout.contains("HISTORY"), "\(result.stdout)")
        #expect(result.stdout.contains("scan #"))
        #expect(result.stdout.contains("Offset") && result.stdout.contains("#!/bin/bash"))
    }

    @Test("a directory scan names files it cannot read, with the reason, in the summary and in JSON")
    func unreadableFilesNamed() throws {
        let workspace = try makeTenantWorkspace()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let result = try script(
            """
            chmod 755 . && mkdir -m 777 shared && chmod 755 vm
            cp "$X" ./extentdb && chmod 755 extentdb
            qemu-img create -q -f qcow2 vm/ok.qcow2 4M && qemu-img create -q -f qcow2 vm/locked.qcow2 4M
            chmod 644 vm/ok.qcow2 && chmod 000 vm/locked.qcow2
            setpriv --reuid=nobody --regid=nogroup --clear-groups ./extentdb scan vm --db shared/index.sqlite --output json > scan.json
            echo "exit $?"
            setpriv --reuid=nobody --regid=nogroup --clear-groups ./extentdb scan vm --db shared/index.sqlite
            """, database: directory.appendingPathComponent("unused.sqlite").path, in: directory)
        #expect(result.stdout.contains("exit 1"), "\(result.stdout)\n\(result.stderr)")
        #expect(result.stderr.contains("locked.qcow2") && result.stderr.contains("Permission denied"), "\(result.stderr)")
        #expect(result.stdout.contains("2 images: 0 scanned, 1 unchanged, 1 failed"))
        let json = try String(contentsOf: directory.appendingPathComponent("scan.json"), encoding: .utf8)
        #expect(json.contains("locked.qcow2") && json.contains("Permission denied"), "\(json)")
    }

    @Test("a directory scan on a terminal shows images done of total and the bytes of metadata read")
    func scanProgressOnTerminal() throws {
        let workspace = try makeTenantWorkspace()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let db = directory.appendingPathComponent("index.sqlite").path
        let result = try script(
            """
            for name in a b c; do qemu-img create -q -f qcow2 vm/$name.qcow2 4M; done
            script -qec "$X scan vm" /dev/null | tr '\\r' '\\n'
            """, database: db, in: directory)
        #expect(result.stdout.contains("[3/3] "), "\(result.stdout)")
        #expect(result.stdout.contains("of metadata read; scanned"))
    }
}
