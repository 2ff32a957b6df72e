import AllocationIndex
import Catalog
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
        let catalog = ImageCatalog(indexer: ImageIndexer(store: store, options: chain.scanOptions))
        let (info, failure) = try catalog.info(path: image, rescan: !noRescan, format: chain.imageFormat)
        switch output {
        case .json:
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
            Console.print(String(decoding: try encoder.encode(info), as: UTF8.self))
        case .human:
            info.printHuman(hint: failure?.remedy.map(ErrorReport.hint))
        }
        try Console.flushStandardOutput()
        if failure != nil { throw ExitCode(ExitStatus.failure) }
    }
}

extension ImageInfo {
    /// Aligned `label: value` lines; `hint` is the CLI's remedy for a failed scan.
    func printHuman(hint: String?) {
        func line(_ label: String, _ value: String?) {
            guard let value else { return }
            Console.print(label.padding(toLength: 22, withPad: " ", startingAt: 0) + value)
        }
        func sized(_ bytes: UInt64) -> String { "\(Units.bytes(bytes)) (\(bytes) bytes)" }
        line("image:", summary.path)
        if let metadata {
            line("format:", metadata.format.rawValue)
            line("virtual size:", sized(metadata.virtualSize))
            line("file size:", sized(metadata.fileSize))
            line("disk usage:", summary.diskUsage.map(Units.bytes))
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
                if let bitmaps = qcow2.bitmaps, !bitmaps.isEmpty {
                    Console.print("bitmaps:")
                    for bitmap in bitmaps {
                        let flags = [bitmap.auto ? "auto" : nil, bitmap.inUse ? "in-use" : nil].compactMap { $0 }.joined(separator: ", ")
                        Console.print(
                            "  \(bitmap.name): granularity \(bitmap.granularity), \(Units.bytes(bitmap.dirtyBytes)) dirty"
                                + (flags.isEmpty ? "" : " (\(flags))"))
                    }
                } else {
                    line("bitmaps:", qcow2.hasBitmaps ? "yes" : nil)
                }
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
        if let scan, let scanID = summary.scanId {
            line("scan:", "#\(scanID) at \(summary.scannedAt ?? "-"), \(String(format: "%.1f", scan.durationMs)) ms")
            line("data (whole chain):", summary.chainAllocatedBytes.map(sized))
            line("data (this image):", summary.allocatedBytes.map(sized))
            line("zero ranges:", sized(scan.chainZeroBytes))
            if scan.compressedBytes > 0 { line("compressed:", sized(scan.compressedBytes)) }
            line("extents:", summary.extentCount.map { "\($0)" })
            for warning in scan.warnings { line("warning:", warning) }
        }
        if let digestScans, !digestScans.isEmpty {
            // The scans `--since-scan N` may name; the last one is the latest scan's when it has digests.
            line("digest scans:", digestScans.map { "#\($0.scanID)" }.joined(separator: ", ") + " (4 MiB chunks; --since-scan N)")
        }
        if index.rescanned {
            line("index:", index.indexed ? "was stale (\(index.staleReason ?? "")); rescanned" : "was not indexed; scanned now")
        } else if !index.indexed {
            line("index:", "not indexed")
        } else if let reason = index.staleReason {
            line("index:", "stale (\(reason)); not rescanned")
        } else {
            line("index:", "fresh")
        }
        line("state:", summary.state)
        line("error:", summary.error.map { $0 + (hint.map { "; " + $0 } ?? "") })
    }
}
