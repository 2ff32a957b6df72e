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
        discussion: Help.reflow(
            """
            Answers from the index, scanning first when the image is not indexed or stale (--no-rescan shows the
            index as it is). When the chain cannot be scanned, the image's own header is still shown, with the
            reason, and the exit code is 1.
            """))

    @OptionGroup var index: IndexOptions
    @OptionGroup var chain: ChainOptions

    @Argument(help: ArgumentHelp("The image.", valueName: "image"))
    var image: String

    @Option(help: "human or json.")
    var output: OutputFormat = .human

    @Flag(help: "Do not scan; report the index as it is.")
    var noRescan = false

    func run() throws {
        let store = try index.openStore()
        let canonical = try ImageIndexer.canonicalPath(image)
        var report = InfoReport(path: canonical)
        var indexed = try store.latestScan(path: canonical)
        let freshness = indexed.map(ImageIndexer.freshness(of:))
        report.index = .init(
            indexed: indexed != nil, scanId: indexed?.scan.id, fresh: freshness.map(\.isFresh),
            staleReason: {
                if case .stale(let reason) = freshness { return reason }
                return nil
            }())
        if store.isReadOnly, freshness != .fresh {
            report.index.staleReason = "read-only index, not rescanned" + (report.index.staleReason.map { ": \($0)" } ?? "")
        } else if !noRescan, freshness != .fresh {
            do {
                let indexer = ImageIndexer(store: store, options: chain.scanOptions)
                let previous = indexed
                indexed = try indexer.recordingFailure(of: canonical) { try indexer.scanAndRecord(path: canonical, previous: previous) }
                report.index.rescanned = true
                // The index now answers with the new scan; the stale one is named as replaced.
                report.index.replacedScanId = report.index.scanId
                report.index.scanId = indexed?.scan.id
            } catch {
                report.error = "\(error)"
                indexed = nil
            }
        }
        if let indexed {
            report.scan = .init(indexed.scan)
            report.chain = indexed.layers.map { .init(depth: $0.depth, path: $0.path, format: $0.format, fileSize: $0.fileSize) }
            report.metadata = try? JSONDecoder.snakeCase.decode(ImageMetadata.self, from: Data(indexed.image.metadataJson.utf8))
        }
        if report.metadata == nil {
            report.metadata = try ChainScanner.inspect(
                path: canonical, format: chain.imageFormat ?? indexed.flatMap { ImageFormat(rawValue: $0.image.format) }
            ).metadata
        }
        report.allocatedOnDisk = (try? FileIdentity(path: canonical))?.allocatedBytes
        switch output {
        case .json:
            let encoder = JSONEncoder()
            encoder.keyEncodingStrategy = .convertToSnakeCase
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
            Console.print(String(decoding: try encoder.encode(report), as: UTF8.self))
        case .human:
            report.printHuman()
        }
        try Console.flushStandardOutput()
        if report.error != nil { throw ExitCode(ExitStatus.failure) }
    }
}

extension JSONDecoder {
    static var snakeCase: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return decoder
    }
}

/// What `info` reports, as one Codable value (printed as JSON or as aligned lines).
struct InfoReport: Encodable {
    struct IndexState: Encodable {
        var indexed: Bool
        var scanId: Int64?
        var fresh: Bool?
        var staleReason: String?
        var rescanned = false
        /// The scan an automatic rescan replaced (`scanId` is then the new one).
        var replacedScanId: Int64?
    }

    struct Scan: Encodable {
        var scanId: Int64
        var scannedAt: String
        var durationMs: Double
        var toolVersion: String
        var virtualSize: Int64
        var extentCount: Int64
        var dataBytes: Int64
        var ownDataBytes: Int64
        var zeroBytes: Int64
        var compressedBytes: Int64
        var chainDepth: Int64
        var warnings: [String]

        init(_ record: ScanRecord) {
            scanId = record.id ?? 0
            scannedAt = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(record.scannedAtNs) / 1e9))
            durationMs = Double(record.durationNs) / 1e6
            toolVersion = record.toolVersion
            virtualSize = record.virtualSize
            extentCount = record.extentCount
            dataBytes = record.dataBytes
            ownDataBytes = record.ownDataBytes
            zeroBytes = record.zeroBytes
            compressedBytes = record.compressedBytes
            chainDepth = record.chainDepth
            warnings = (try? JSONDecoder().decode([String].self, from: Data(record.warningsJson.utf8))) ?? []
        }
    }

    struct Layer: Encodable {
        var depth: Int64
        var path: String
        var format: String
        var fileSize: Int64
    }

    var path: String
    var index = IndexState(indexed: false)
    var metadata: ImageMetadata?
    var chain: [Layer]?
    var scan: Scan?
    var allocatedOnDisk: UInt64?
    var error: String?

    init(path: String) { self.path = path }

    func printHuman() {
        func line(_ label: String, _ value: String?) {
            guard let value else { return }
            Console.print(label.padding(toLength: 22, withPad: " ", startingAt: 0) + value)
        }
        func sized(_ bytes: UInt64) -> String { "\(Units.bytes(bytes)) (\(bytes) bytes)" }
        line("image:", path)
        if let metadata {
            line("format:", metadata.format.rawValue)
            line("virtual size:", sized(metadata.virtualSize))
            line("file size:", sized(metadata.fileSize))
            line("disk usage:", allocatedOnDisk.map(Units.bytes))
            line("cluster size:", metadata.clusterSize.map { "\($0)" })
            if let backing = metadata.backing {
                line("backing file:", backing.name)
                line("  resolved to:", backing.resolvedPath + (backing.escapesImageDirectory ? " (outside the image's directory)" : ""))
                line("  declared format:", backing.declaredFormat)
            }
            if let qcow2 = metadata.qcow2 {
                line("qcow2 version:", "\(qcow2.version)")
                line("compression type:", qcow2.compressionType)
                line("extended l2:", "\(qcow2.extendedL2)")
                line("refcount bits:", "\(qcow2.refcountBits)")
                line("encrypted:", qcow2.encryption ?? "no")
                line("dirty:", "\(qcow2.dirty)")
                line("lazy refcounts:", "\(qcow2.lazyRefcounts)")
                line("data file:", qcow2.externalDataFile.map { $0 + (qcow2.externalDataFileRaw ? " (raw)" : "") })
                line(
                    "  resolved to:",
                    qcow2.externalDataFileResolved.map {
                        $0 + (qcow2.externalDataFileEscapes == true ? " (outside the image's directory)" : "")
                    })
                line("bitmaps:", qcow2.hasBitmaps ? "yes" : nil)
                if !qcow2.snapshots.isEmpty {
                    Console.print("snapshots:")
                    for snapshot in qcow2.snapshots {
                        let date = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(snapshot.dateSeconds)))
                        Console.print("  id \(snapshot.id) \"\(snapshot.name)\" \(date) vm state \(Units.bytes(snapshot.vmStateSize))")
                    }
                }
            }
            if let vhd = metadata.vhd {
                line("disk type:", vhd.diskType)
                line("creator:", "\(vhd.creatorApplication) \(vhd.creatorVersion) on \(vhd.creatorHostOS)")
                line("unique id:", vhd.uniqueID)
                line("geometry (C/H/S):", vhd.geometry)
                line("original size:", sized(vhd.originalSize))
                line("block size:", vhd.blockSize.map(sized))
                line("BAT:", vhd.batEntries.map { "\($0) entries at offset \(vhd.batOffset ?? 0)" })
                line("saved state:", vhd.savedState ? "yes" : "no")
                line("checksums:", vhd.usedFooterCopy ? "end footer damaged, footer copy at 0 used" : "ok")
                line("parent unique id:", vhd.parentUniqueID)
                line("parent name:", vhd.parentName)
                for locator in vhd.parentLocators ?? [] {
                    line("parent locator:", "\(locator.code) \(locator.path ?? "") -> \(locator.resolvedPath ?? "?")")
                }
            }
            for warning in metadata.warnings { line("warning:", warning) }
        }
        if let chain {
            Console.print("chain:")
            for layer in chain { Console.print("  [\(layer.depth)] \(layer.format) \(layer.path)") }
        }
        if let scan {
            line("scan:", "#\(scan.scanId) at \(scan.scannedAt), \(String(format: "%.1f", scan.durationMs)) ms")
            line("data (whole chain):", sized(UInt64(scan.dataBytes)))
            line("data (this image):", sized(UInt64(scan.ownDataBytes)))
            line("zero ranges:", sized(UInt64(scan.zeroBytes)))
            if scan.compressedBytes > 0 { line("compressed:", sized(UInt64(scan.compressedBytes))) }
            line("extents:", "\(scan.extentCount)")
            for warning in scan.warnings { line("warning:", warning) }
        }
        if !index.indexed {
            line("index:", index.rescanned ? "was not indexed; scanned now" : "not indexed")
        } else if index.fresh == false {
            line("index:", "was stale (\(index.staleReason ?? "")); " + (index.rescanned ? "rescanned" : "not rescanned"))
        } else {
            line("index:", "fresh")
        }
        line("error:", error)
    }
}
