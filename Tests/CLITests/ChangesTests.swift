import Foundation
import Testing

@testable import TestSupport

/// `extentdb changes` (#19 item 2): what differs from a related base, in the formats backup tools read,
/// checked against the bytes themselves, and the HTTP route against the CLI.
@Suite(.serialized) struct ChangesTests {
    /// The sibling snapshots of ``SiblingDeltaTests/xenHistory()``, under `root/`, plus their raw contents.
    static func workspace() throws -> TemporaryDirectory {
        let history = try SiblingDeltaTests.xenHistory()
        defer { history.cleanup() }
        let directory = try TemporaryDirectory(prefix: "extentdb-changes")
        try FileManager.default.moveItem(at: history.url, to: directory.url.appendingPathComponent("root"))
        try shell("qemu-img convert -O raw root/s1.qcow2 s1.raw && qemu-img convert -O raw root/s2.qcow2 s2.raw", in: directory.url)
        return directory
    }

    @Test("every format covers each byte where snapshot 2 differs from its sibling snapshot 1; zero ranges read as zeros")
    func formatsCoverEveryDifferingByte() throws {
        let workspace = try Self.workspace()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let database = directory.appendingPathComponent("index.sqlite").path
        var outputs: [String: String] = [:]
        for format in ["json", "imageio", "xapi-cbt", "vmware", "table"] {
            let result = try extentdb(
                ["changes", "root/s2.qcow2", "--base", "root/s1.qcow2", "--output", format], database: database, directory: directory)
            #expect(result.status == 0, "\(format): \(result.stderr)")
            outputs[format] = result.stdout
            try result.stdout.write(to: directory.appendingPathComponent("changes.\(format)"), atomically: true, encoding: .utf8)
        }
        #expect(outputs["table"]?.contains("differ from") == true)
        // The check is done by a separate program over the raw contents: every differing byte must be in
        // every format's changed set, and a range json calls zero must read as zeros in snapshot 2.
        let check = try run(
            "/usr/bin/python3",
            [
                "-c",
                """
                import base64, json
                a = open("s1.raw", "rb").read(); b = open("s2.raw", "rb").read()
                differing = [i for i in range(0, len(a), 512) if a[i:i + 512] != b[i:i + 512]]
                assert differing, "the snapshots should differ"
                def covers(ranges, offset): return any(r[0] <= offset < r[0] + r[1] for r in ranges)
                listed = json.load(open("changes.json"))
                plain = [(r["start"], r["length"]) for r in listed]
                dirty = [(r["start"], r["length"]) for r in json.load(open("changes.imageio")) if r["dirty"]]
                vmware = json.load(open("changes.vmware"))
                areas = [(r["start"], r["length"]) for r in vmware["changedArea"]]
                bitmap = base64.b64decode(open("changes.xapi-cbt").read().strip())
                assert vmware["length"] == len(b) and len(bitmap) == -(-len(b) // 65536 // 8)
                for offset in differing:
                    block = offset // 65536
                    assert covers(plain, offset) and covers(dirty, offset) and covers(areas, offset), offset
                    assert bitmap[block // 8] & (0x80 >> (block % 8)), offset
                for r in listed:
                    if r["zero"]: assert b[r["start"]:r["start"] + r["length"]] == bytes(r["length"]), r
                imageio = json.load(open("changes.imageio"))
                assert imageio[0]["start"] == 0 and sum(r["length"] for r in imageio) == len(b)
                print(len(differing), len(plain))
                """,
            ], in: directory)
        #expect(!check.isEmpty)
    }

    @Test("GET /v1/images/{id}/changes answers what the CLI prints, in every format")
    func httpMatchesCLI() throws {
        let workspace = try Self.workspace()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let database = directory.appendingPathComponent("index.sqlite").path
        let result = try serveScript(
            startServer + """

                for image in s1 s2; do scan "$PWD/root/$image.qcow2" > /dev/null; done
                id() { $C -H "$T" localhost:$P/v1/images | python3 -c "import json,sys; print([i['id'] for i in json.load(sys.stdin)['images'] if i['path'].endswith('/$1')][0])"; }
                s1=$(id s1.qcow2); s2=$(id s2.qcow2)
                for format in json imageio xapi-cbt vmware; do
                    $C -H "$T" "localhost:$P/v1/images/$s2/changes?base=$s1&format=$format" > http.$format
                    $X changes root/s2.qcow2 --base root/s1.qcow2 --output $format --db index.sqlite > cli.$format
                    cmp http.$format cli.$format || { echo "$format differs"; cat http.$format cli.$format; exit 1; }
                done
                code=$($C -o /dev/null -w '%{http_code}' -H "$T" "localhost:$P/v1/images/$s2/changes")
                test "$code" = 400 || { echo "no base: $code"; exit 1; }
                echo ok
                """, database: database, in: directory)
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        #expect(result.stdout.hasSuffix("ok\n"))
    }
}
