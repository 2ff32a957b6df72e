import Foundation
import Testing

@testable import TestSupport

/// One discovery (#18): `scan DIR` and the service's watcher find the same images in the same directory,
/// by content and not by name, with the same raw-file rule.
@Suite(.serialized) struct DiscoveryTests {
    /// A directory of every kind of file discovery meets: images named oddly, a raw disk, a foreign
    /// container named like a VHD, a text file.
    static func workspace() throws -> TemporaryDirectory {
        try TemporaryDirectory(
            prefix: "extentdb-discovery",
            setup: """
                set -e
                mkdir -p root/sub
                qemu-img create -q -f qcow2 root/a.qcow2 8M
                qemu-img create -q -f qcow2 root/sub/no-suffix 8M
                qemu-img create -q -f vpc root/c.vhd 8M
                qemu-img create -q -f vhdx root/looks-like.vhd 8M
                truncate -s 8M root/b.raw
                echo "notes, not a disk" > root/notes.txt
                """)
    }

    /// The image paths (relative to root/) that `scan root` and the watcher of `serve --root root` index.
    static func found(extraFlags: String) throws -> (scan: [String], watcher: [String], scanOutput: String) {
        let workspace = try Self.workspace()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let result = try serveScript(
            startServer.replacingOccurrences(of: "--watch-interval 1 ", with: "--watch-interval 1 \(extraFlags) ") + """

                $X scan root \(extraFlags) --db cli.sqlite > scan.txt 2>&1 || true
                $X list --output json --db cli.sqlite > cli.json
                # The watcher's first sweep finds the same files; wait until its scans have settled.
                for _ in $(seq 150); do
                    $C -H "$T" localhost:$P/v1/images > served.json
                    test "$(grep -o '"state":"fresh"' served.json | wc -l)" -ge "$(grep -o '"state" : "fresh"' cli.json | wc -l)" && break
                    sleep 0.1
                done
                sleep 1.5
                $C -H "$T" localhost:$P/v1/images > served.json
                echo ok
                """, database: directory.appendingPathComponent("index.sqlite").path, in: directory)
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        func paths(_ file: String) throws -> [String] {
            let data = try Data(contentsOf: directory.appendingPathComponent(file))
            let images = (try JSONSerialization.jsonObject(with: data) as? [String: Any])?["images"] as? [[String: Any]] ?? []
            return images.compactMap { ($0["path"] as? String)?.components(separatedBy: "/root/").last }.sorted()
        }
        let scanOutput = (try? String(contentsOf: directory.appendingPathComponent("scan.txt"), encoding: .utf8)) ?? ""
        return (try paths("cli.json"), try paths("served.json"), scanOutput)
    }

    @Test("scan DIR and the watcher index the same files: by content (a qcow2 with no suffix), no raw files, no VHDX named .vhd")
    func sameImagesByContent() throws {
        let (scan, watcher, output) = try Self.found(extraFlags: "")
        #expect(scan == ["a.qcow2", "c.vhd", "sub/no-suffix"], "\(output)")
        #expect(watcher == scan)
        #expect(output.contains("VHDX is not supported"), "\(output)")
    }

    @Test("an image named twice (a symbolic link beside it, a file given again, a directory holding it) is scanned and counted once")
    func imagesNamedTwice() throws {
        let workspace = try TemporaryDirectory(
            prefix: "extentdb-discovery",
            setup: """
                set -e
                mkdir root
                qemu-img create -q -f qcow2 root/a.qcow2 8M
                qemu-img create -q -f qcow2 root/b.qcow2 8M
                ln -s a.qcow2 root/link-to-a.qcow2
                """)
        defer { workspace.cleanup() }
        let result = try script(
            """
            set -e
            $X scan root > first.txt
            $X scan --output json root/link-to-a.qcow2 root root/a.qcow2 > second.json
            cat first.txt second.json
            """, database: workspace.path("index.sqlite"), in: workspace.url)
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("2 images: 2 scanned, 0 unchanged, 0 failed"), "\(result.stdout)")
        let second = try JSONSerialization.jsonObject(with: Data(contentsOf: workspace.url.appendingPathComponent("second.json")))
        let images = try #require((second as? [String: Any])?["images"] as? [[String: Any]])
        // Reported under the canonical path, once each, whichever naming came first.
        let canonical = workspace.url.appendingPathComponent("root").resolvingSymlinksInPath().path
        #expect(images.compactMap { $0["path"] as? String }.sorted() == [canonical + "/a.qcow2", canonical + "/b.qcow2"], "\(images)")
        #expect(images.allSatisfy { $0["action"] as? String == "unchanged" }, "\(images)")
    }

    @Test("with --include-raw both also index the raw files, and still skip the foreign container")
    func sameRawRule() throws {
        let (scan, watcher, output) = try Self.found(extraFlags: "--include-raw")
        #expect(scan == ["a.qcow2", "b.raw", "c.vhd", "notes.txt", "sub/no-suffix"], "\(output)")
        #expect(watcher == scan)
    }
}
