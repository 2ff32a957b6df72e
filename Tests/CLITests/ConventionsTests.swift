import Foundation
import Testing

@testable import TestSupport

/// What users expect of a command-line tool, each checked against the real binary: usage errors exit 2
/// and say what to type, qemu-img's spellings work, `--help` reads as written, a busy port is named, and a
/// damaged index is called what it is.
@Suite(.serialized) struct ConventionsTests {
    /// The subcommands `extentdb --help` lists.
    static func subcommands() throws -> [String] {
        let help = try extentdb(["--help"], database: "/nonexistent/index.sqlite")
        let section = try #require(help.stdout.components(separatedBy: "SUBCOMMANDS:").last)
        return section.split(separator: "\n").compactMap { line in
            guard line.hasPrefix("  "), !line.hasPrefix("   "), let word = line.split(separator: " ").first,
                word.allSatisfy({ $0.isLowercase || $0 == "-" })
            else { return nil }
            return String(word)
        }
    }

    @Test("no arguments: the help on standard error, nothing on standard output, exit 2")
    func noArguments() throws {
        let database = "/nonexistent/index.sqlite"
        let bare = try extentdb([], database: database)
        let help = try extentdb(["--help"], database: database)
        #expect(bare.status == 2)
        #expect(bare.stdout.isEmpty, "\(bare.stdout)")
        #expect(help.status == 0)
        #expect(bare.stderr.trimmingCharacters(in: .newlines) == help.stdout.trimmingCharacters(in: .newlines), "\(bare.stderr)")
    }

    @Test("an unknown subcommand names the nearest one when one is close, and exits 2")
    func unknownSubcommand() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let database = directory.path("index.sqlite")
        let subcommands = try Self.subcommands()
        #expect(subcommands.contains("map") && subcommands.contains("export") && subcommands.count > 10, "\(subcommands)")
        // Every subcommand with its last two letters swapped, or its last letter doubled, is suggested back.
        for name in subcommands where name.count >= 3 {
            var letters = Array(name)
            letters.swapAt(letters.count - 2, letters.count - 1)
            for typo in [String(letters), name + String(name.last ?? "x")] where !subcommands.contains(typo) {
                let result = try extentdb([typo, "x"], database: database)
                #expect(result.status == 2, "\(typo): \(result.stderr)")
                #expect(result.stdout.isEmpty)
                #expect(result.stderr == "extentdb: unknown command '\(typo)'; did you mean '\(name)'?\n", "\(typo)")
            }
        }
        // `--db PATH` may come first, as for a known subcommand.
        let withDB = try extentdb(["--db", database, "mpa", "x"], database: database)
        #expect(withDB.status == 2)
        #expect(withDB.stderr == "extentdb: unknown command 'mpa'; did you mean 'map'?\n", "\(withDB.stderr)")
        // Nothing close: no suggestion, still a usage error; nothing was created.
        let far = try extentdb(["frobnicate"], database: database)
        #expect(far.status == 2)
        #expect(far.stderr.hasPrefix("extentdb: unknown command 'frobnicate'"), "\(far.stderr)")
        #expect(!far.stderr.contains("did you mean"), "\(far.stderr)")
        #expect(!FileManager.default.fileExists(atPath: database))
        // A real subcommand still runs.
        #expect(try extentdb(["help", "map"], database: database).status == 0)
    }

    @Test("export -O FORMAT works as qemu-img convert's spelling of --format")
    func exportCapitalO() throws {
        let workspace = try makeWorkspace()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let result = try script(
            """
            set -euo pipefail
            for format in raw qcow2 vhd; do
                $X export -q -O $format --to short.$format top.qcow2
                $X export -q --format $format --to long.$format top.qcow2
                qemu-img compare -q -f qcow2 top.qcow2 short.$format
            done
            cmp short.raw long.raw
            qemu-img info --output json short.qcow2 | grep -q '"format": "qcow2"'
            qemu-img info --output json short.vhd | grep -q '"format": "vpc"'
            $X export -O xva top.qcow2 > short.xva
            $X export --format xva top.qcow2 > long.xva
            cmp short.xva long.xva
            echo ok
            """, database: directory.appendingPathComponent("index.sqlite").path, in: directory)
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        #expect(result.stdout == "ok\n", "\(result.stderr)")
    }

    @Test("--help of every subcommand: defaults print as values, and usage forms stay on lines of their own")
    func helpReadsAsWritten() throws {
        let database = "/nonexistent/index.sqlite"
        var pages: [String: String] = ["": try extentdb(["--help"], database: database).stdout]
        for name in try Self.subcommands() {
            let result = try extentdb([name, "--help"], database: database)
            #expect(result.status == 0, "\(name): \(result.stderr)")
            pages[name] = result.stdout
        }
        let typeLeak = try Regex(#"\(default:\s+[A-Za-z_][A-Za-z0-9_.]*\("#)
        for (name, page) in pages {
            let flat = page.split(whereSeparator: \.isWhitespace).joined(separator: " ")
            #expect(flat.firstMatch(of: typeLeak) == nil, "extentdb \(name) --help shows a type for a default: \(page)")
            // The discussion (above USAGE): a command shown as a form of use starts its line; one named in
            // running text is quoted ('extentdb prune', `extentdb nbd`).
            let discussion = page.components(separatedBy: "USAGE:").first ?? ""
            for line in discussion.split(separator: "\n") {
                var rest = Substring(line)
                while let found = rest.range(of: "extentdb ") {
                    let before = rest[..<found.lowerBound]
                    let startsLine = before.allSatisfy { $0 == " " } && before.startIndex == rest.startIndex
                    let quoted = before.last == "'" || before.last == "`"
                    #expect(startsLine || quoted, "extentdb \(name) --help joins a usage form into a line: \(line)")
                    rest = rest[found.upperBound...]
                }
            }
        }
        let map = try #require(pages["map"]).split(whereSeparator: \.isWhitespace).joined(separator: " ")
        #expect(map.contains("(default: 0)"), "\(map)")
        let diff = try #require(pages["diff"]).split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        #expect(diff.contains { $0.hasPrefix("extentdb diff A B ") })
        #expect(diff.contains { $0.hasPrefix("extentdb diff IMAGE --scan N compare") })
        #expect(diff.contains("extentdb diff IMAGE --scan N --scan M"))
    }

    @Test("serve and nbd name a busy port, exit 1, and the watcher never starts")
    func busyPort() throws {
        let workspace = try makeWorkspace()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let result = try script(
            """
            set -euo pipefail
            mkdir root && cp top.qcow2 mid.qcow2 base.raw root/
            python3 -c 'import socket, sys, time
            s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
            print(s.getsockname()[1], flush=True); time.sleep(120)' > port.txt &
            HOLDER=$!
            trap 'kill -9 $HOLDER 2>/dev/null || true' EXIT
            for _ in $(seq 200); do test -s port.txt && break; sleep 0.05; done
            P=$(cat port.txt)
            expected="extentdb: cannot listen on 127.0.0.1:$P: address already in use"

            status=0; timeout -s KILL 60 $X serve --listen 127.0.0.1:$P --root "$PWD/root" --insecure-no-auth 2> serve.log || status=$?
            echo "serve http: $status"
            grep -qxF "$expected" serve.log || { cat serve.log; exit 1; }
            if grep -q 'watching roots' serve.log; then echo "the watcher started"; fi

            status=0
            timeout -s KILL 60 $X serve --listen 127.0.0.1:0 --nbd-listen 127.0.0.1:$P --root "$PWD/root" --insecure-no-auth 2> serve-nbd.log || status=$?
            echo "serve nbd: $status"
            grep -qxF "$expected" serve-nbd.log || { cat serve-nbd.log; exit 1; }
            if grep -q 'watching roots' serve-nbd.log; then echo "the watcher started"; fi

            status=0; timeout -s KILL 60 $X nbd top.qcow2 --listen 127.0.0.1:$P 2> nbd.log || status=$?
            echo "nbd: $status"
            grep -qxF "$expected" nbd.log || { cat nbd.log; exit 1; }
            """, database: directory.appendingPathComponent("index.sqlite").path, in: directory)
        #expect(result.stdout == "serve http: 1\nserve nbd: 1\nnbd: 1\n", "\(result.stdout)\n\(result.stderr)")
        #expect(result.status == 0, "\(result.stderr)")
    }

    @Test("a file that is no index, or a damaged index, is called a cache that rescanning rebuilds")
    func damagedIndex() throws {
        let workspace = try makeWorkspace()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let result = try script(
            """
            set -euo pipefail
            echo "not a database at all" > text.sqlite
            $X scan -q --db good.sqlite top.qcow2 > /dev/null
            cp good.sqlite damaged.sqlite
            # Keep SQLite's 100-byte header, overwrite every page after the first.
            python3 -c 'import os, sys
            f = open(sys.argv[1], "r+b"); size = os.path.getsize(sys.argv[1]); f.seek(4096)
            f.write(bytes((i * 37 + 11) % 251 for i in range(size - 4096)))' damaged.sqlite
            for index in text.sqlite damaged.sqlite; do
                for command in list "map top.qcow2" check; do
                    status=0; $X $command --db $index > /dev/null 2> err.txt || status=$?
                    echo "$index $command: $status $(grep -c 'the index is a cache that can be rebuilt by rescanning' err.txt)"
                done
            done
            # As the message says: moved aside, a rescan rebuilds it and map answers as before.
            for file in damaged.sqlite*; do mv "$file" "$file.bad"; done
            $X scan -q --db damaged.sqlite top.qcow2 > /dev/null
            $X map --output json --db damaged.sqlite top.qcow2 > rebuilt.json
            $X map --output json --db good.sqlite top.qcow2 > good.json
            cmp rebuilt.json good.json && echo rebuilt
            """, database: directory.appendingPathComponent("index.sqlite").path, in: directory)
        let expected =
            ["text.sqlite", "damaged.sqlite"].flatMap { index in
                ["list", "map top.qcow2", "check"].map { "\(index) \($0): 1 1" }
            }.joined(separator: "\n") + "\nrebuilt\n"
        #expect(result.stdout == expected, "\(result.stdout)\n\(result.stderr)")
    }

    @Test("asking diff for a scan that gc removed says so; a scan that never existed is named as unknown")
    func removedScan() throws {
        let workspace = try makeWorkspace()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let result = try script(
            """
            set -euo pipefail
            for pattern in 5 6 7; do
                qemu-io -f qcow2 -c "write -P $pattern 20M 64k" top.qcow2 > /dev/null
                $X scan -q top.qcow2 > /dev/null
            done
            $X gc --keep 1 > /dev/null
            status=0; $X diff top.qcow2 --scan 1 2> removed.txt || status=$?
            echo "removed: $status"
            status=0; $X diff top.qcow2 --scan 999 2> unknown.txt || status=$?
            echo "unknown: $status"
            """, database: directory.appendingPathComponent("index.sqlite").path, in: directory)
        #expect(result.stdout == "removed: 1\nunknown: 1\n", "\(result.stdout)\n\(result.stderr)")
        let removed = try String(contentsOf: directory.appendingPathComponent("removed.txt"), encoding: .utf8)
        let unknown = try String(contentsOf: directory.appendingPathComponent("unknown.txt"), encoding: .utf8)
        #expect(removed.contains("scan #1 was removed from the index by gc or history retention"), "\(removed)")
        #expect(unknown.contains("scan #999 is not a scan of") && !unknown.contains("removed"), "\(unknown)")
    }
}
