import Foundation
import Testing

@testable import TestSupport

/// One vocabulary (#18 item 4): `list`, `info`, `report` and the HTTP API give the same facts the same keys
/// and, for the same image, the same values; a failed image shows, with its error, in every one of them.
@Suite(.serialized) struct VocabularyTests {
    /// The keys every output carries for a scanned image.
    static let sharedKeys = [
        "id", "path", "format", "virtual_size", "state", "scanned_at", "scan_id", "allocated_bytes", "zero_bytes",
        "chain_allocated_bytes", "chain_length", "disk_usage", "extent_count",
    ]

    @Test("list, info, report and the HTTP image list and image agree, key for key and value for value")
    func sameKeysSameValues() throws {
        let workspace = try makeServeWorkspace()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let database = directory.appendingPathComponent("index.sqlite").path
        // A qcow2 whose L1 table lies far past its end: its scan fails, and the index remembers why.
        try shell(
            """
            set -e
            rm root/escape.raw
            qemu-img create -q -f qcow2 root/broken.qcow2 1M
            printf '\\x7f\\xff\\xff\\xff' | dd of=root/broken.qcow2 bs=1 seek=40 conv=notrunc status=none
            """, in: directory)
        let scan = try extentdb(["scan", "-q", "root/top.qcow2", "root/broken.qcow2"], database: database, directory: directory)
        #expect(scan.status == 1, "a failed image fails the scan: \(scan.stderr)")
        for (arguments, file) in [
            (["list", "--output", "json"], "list.json"), (["info", "--output", "json", "root/top.qcow2"], "info.json"),
            (["report", "--output", "json"], "report.json"), (["report", "--output", "csv"], "report.csv"),
        ] {
            let result = try extentdb(arguments, database: database, directory: directory)
            #expect(result.status == 0, "\(arguments): \(result.stderr)")
            try result.stdout.write(to: directory.appendingPathComponent(file), atomically: true, encoding: .utf8)
        }
        let served = try serveScript(
            startServer + """

                id=$($C -H "$T" localhost:$P/v1/images | python3 -c 'import json,sys; print([i["id"] for i in json.load(sys.stdin)["images"] if i["path"].endswith("top.qcow2")][0])')
                $C -H "$T" localhost:$P/v1/images > http-list.json
                $C -H "$T" localhost:$P/v1/images/$id > http-image.json
                echo ok
                """, database: database, in: directory)
        #expect(served.status == 0, "\(served.stdout)\n\(served.stderr)")

        func object(_ file: String) throws -> [String: Any] {
            let data = try Data(contentsOf: directory.appendingPathComponent(file))
            return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any], "\(file)")
        }
        func image(_ list: Any?, _ suffix: String) throws -> [String: Any] {
            let images = try #require(list as? [[String: Any]])
            return try #require(images.first { ($0["path"] as? String)?.hasSuffix(suffix) == true }, "\(suffix) in \(images)")
        }
        let views: [(String, [String: Any])] = [
            ("list", try image(try object("list.json")["images"], "/top.qcow2")),
            ("info", try object("info.json")),
            ("report", try image(try object("report.json")["images"], "/top.qcow2")),
            ("GET /v1/images", try image(try object("http-list.json")["images"], "/top.qcow2")),
            ("GET /v1/images/{id}", try object("http-image.json")),
        ]
        let reference = views[0].1
        #expect(reference["state"] as? String == "fresh")
        #expect(reference["chain_length"] as? Int == 2)
        #expect((reference["scanned_at"] as? String)?.hasSuffix("Z") == true, "RFC 3339 in UTC")
        for (name, view) in views {
            for key in Self.sharedKeys {
                let value = try #require(view[key], "\(name) lacks \(key)")
                #expect("\(value)" == "\(reference[key] ?? "nil")", "\(name): \(key) is \(value), list says \(reference[key] ?? "nil")")
            }
        }

        // The failed image: in list, report (JSON and CSV) and the API, with its error.
        let failedViews: [(String, [String: Any])] = [
            ("list", try image(try object("list.json")["images"], "/broken.qcow2")),
            ("report", try image(try object("report.json")["failures"], "/broken.qcow2")),
            ("GET /v1/images", try image(try object("http-list.json")["images"], "/broken.qcow2")),
        ]
        for (name, view) in failedViews {
            #expect(view["state"] as? String == "failed", "\(name): \(view)")
            #expect(
                (view["error"] as? String)?.contains("l1") == true || (view["error"] as? String)?.contains("L1") == true, "\(name): \(view)"
            )
        }
        let csv = try String(contentsOf: directory.appendingPathComponent("report.csv"), encoding: .utf8)
        let header = try #require(csv.split(separator: "\r\n").first).split(separator: ",").map(String.init)
        let row = try #require(csv.split(separator: "\r\n").first { $0.contains("broken.qcow2") })
        let cells = row.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        let state = try #require(header.firstIndex(of: "state"))
        let error = try #require(header.firstIndex(of: "error"))
        #expect(cells[state] == "failed", "\(row)")
        #expect(!cells[error].isEmpty, "\(row)")
    }
}
