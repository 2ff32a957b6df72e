import AllocationIndex
import ArgumentParser
import Foundation
import ImageFormats
import ImageIO
import Scanner

struct InfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "Show an image's header metadata, chain, sizes, snapshots and index state.",
        discussion: """
            Answers from the index, scanning first when the image is not indexed or stale (--no-rescan shows the
            index as it is). When the chain cannot be scanned, the image's own header is still shown, with the
            reason.
            """)

    @OptionGroup var index: IndexOptions

    @Argument(help: ArgumentHelp("The image.", valueName: "image"))
    var image: String

    @Option(help: "human or json.")
    var output: OutputFormat = .human

    @Flag(help: "Do not scan; report the index as it is.")
    var noRescan = false

    func run() throws {
        let store = try index.openStore()
        let canonical = try ImageIndexer.canonicalPath(image)
        var report: [String: Any] = ["path": canonical]
        var scanError: String?
        var indexed = try store.latestScan(path: canonical)
        let freshness = indexed.map(ImageIndexer.freshness(of:))
        report["index"] = indexState(indexed, freshness: freshness)
        if !noRescan, freshness != .fresh {
            do {
                indexed = try ImageIndexer(store: store).scanAndRecord(path: canonical)
                report["rescanned"] = true
            } catch {
                scanError = "\(error)"
            }
        }
        if let indexed, noRescan || scanError == nil {
            report["scan"] = scanSummary(indexed)
            report["chain"] = indexed.layers.map { layer in
                ["depth": layer.depth, "path": layer.path, "format": layer.format, "file_size": layer.fileSize] as [String: Any]
            }
            report["metadata"] = jsonObject(indexed.image.metadataJson)
        } else {
            let layer = try ChainScanner.inspect(path: canonical)
            report["metadata"] = jsonObject(try encodeMetadata(layer.metadata))
        }
        if let scanError { report["error"] = scanError }
        if let identity = try? FileIdentity(path: canonical) { report["allocated_on_disk"] = identity.allocatedBytes }
        switch output {
        case .json:
            let data = try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys, .prettyPrinted])
            Console.print(String(decoding: data, as: UTF8.self))
        case .human:
            printHuman(report)
        }
        Console.flushStandardOutput()
        if scanError != nil { throw ExitCode(ExitStatus.failure) }
    }

    private func indexState(_ indexed: IndexedScan?, freshness: Freshness?) -> [String: Any] {
        guard let indexed else { return ["indexed": false] }
        var state: [String: Any] = ["indexed": true, "scan_id": indexed.scan.id ?? 0]
        switch freshness {
        case .stale(let reason): state["fresh"] = false; state["stale_reason"] = reason
        default: state["fresh"] = true
        }
        return state
    }

    private func scanSummary(_ indexed: IndexedScan) -> [String: Any] {
        let scan = indexed.scan
        return [
            "scan_id": scan.id ?? 0, "scanned_at": ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(scan.scannedAtNs) / 1e9)),
            "duration_ms": Double(scan.durationNs) / 1e6, "tool_version": scan.toolVersion,
            "virtual_size": scan.virtualSize, "extent_count": scan.extentCount, "data_bytes": scan.dataBytes,
            "own_data_bytes": scan.ownDataBytes, "zero_bytes": scan.zeroBytes, "compressed_bytes": scan.compressedBytes,
            "chain_depth": scan.chainDepth, "warnings": jsonObject(scan.warningsJson) ?? [],
        ]
    }

    private func encodeMetadata(_ metadata: ImageMetadata) throws -> String {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(metadata), as: UTF8.self)
    }

    private func jsonObject(_ text: String) -> Any? {
        try? JSONSerialization.jsonObject(with: Data(text.utf8))
    }

    private func printHuman(_ report: [String: Any]) {
        func line(_ label: String, _ value: Any?) {
            guard let value else { return }
            Console.print(label.padding(toLength: 22, withPad: " ", startingAt: 0) + "\(value)")
        }
        let metadata = report["metadata"] as? [String: Any] ?? [:]
        line("image:", report["path"])
        line("format:", metadata["format"])
        if let size = metadata["virtual_size"] as? UInt64 ?? (metadata["virtual_size"] as? Int).map(UInt64.init) {
            line("virtual size:", "\(Units.bytes(size)) (\(size) bytes)")
        }
        if let size = metadata["file_size"] as? Int { line("file size:", "\(Units.bytes(UInt64(size))) (\(size) bytes)") }
        if let size = report["allocated_on_disk"] as? UInt64 { line("disk usage:", Units.bytes(size)) }
        line("cluster size:", metadata["cluster_size"])
        if let backing = metadata["backing"] as? [String: Any] {
            line("backing file:", backing["name"])
            line("  resolved:", backing["resolved_path"])
            line("  format:", backing["declared_format"])
            if backing["escapes_image_directory"] as? Bool == true { line("  note:", "outside the image's directory") }
        }
        if let qcow2 = metadata["qcow2"] as? [String: Any] {
            line("qcow2 version:", qcow2["version"])
            line("compression type:", qcow2["compression_type"])
            line("extended l2:", qcow2["extended_l2"])
            line("refcount bits:", qcow2["refcount_bits"])
            line("encrypted:", qcow2["encryption"] ?? "no")
            line("dirty:", qcow2["dirty"])
            line("lazy refcounts:", qcow2["lazy_refcounts"])
            line("data file:", qcow2["external_data_file"])
            if let snapshots = qcow2["snapshots"] as? [[String: Any]], !snapshots.isEmpty {
                Console.print("snapshots:")
                for snapshot in snapshots {
                    Console.print("  id \(snapshot["id"] ?? "") \"\(snapshot["name"] ?? "")\" vm state \(snapshot["vm_state_size"] ?? 0) bytes")
                }
            }
        }
        if let chain = report["chain"] as? [[String: Any]] {
            Console.print("chain:")
            for layer in chain { Console.print("  [\(layer["depth"] ?? "")] \(layer["format"] ?? "") \(layer["path"] ?? "")") }
        }
        if let scan = report["scan"] as? [String: Any] {
            line("scan:", "#\(scan["scan_id"] ?? "") at \(scan["scanned_at"] ?? "") in \(scan["duration_ms"] ?? "") ms")
            if let data = scan["data_bytes"] as? Int64 ?? (scan["data_bytes"] as? Int).map(Int64.init) {
                line("data (whole chain):", Units.bytes(UInt64(data)))
            }
            if let own = scan["own_data_bytes"] as? Int64 ?? (scan["own_data_bytes"] as? Int).map(Int64.init) {
                line("data (this image):", Units.bytes(UInt64(own)))
            }
            line("extents:", scan["extent_count"])
            if let warnings = scan["warnings"] as? [String] { for warning in warnings { line("warning:", warning) } }
        }
        if let state = report["index"] as? [String: Any] {
            if state["indexed"] as? Bool != true {
                line("index:", "was not indexed")
            } else if state["fresh"] as? Bool == false {
                line("index:", "was stale: \(state["stale_reason"] ?? "")" + (report["rescanned"] != nil ? " (rescanned)" : ""))
            } else {
                line("index:", "fresh")
            }
        }
        if let warnings = metadata["warnings"] as? [String] { for warning in warnings { line("warning:", warning) } }
        if let error = report["error"] { line("error:", error) }
    }
}
