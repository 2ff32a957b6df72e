import AllocationIndex
import ArgumentParser
import Foundation
import ImageFormats
import Report
import Scanner

struct MapCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "map",
        abstract: "Print an image's allocation map from the index (scanning first if it is not indexed or stale).",
        discussion: Help.reflow(
            """
            --output json prints the list `qemu-img map --output=json` prints (start, length, depth, present,
            zero, data, offset), plus "compressed": true on compressed extents. Only a stat of each chain
            layer is done to check freshness; the image's tables are not read when the index is fresh.
            """))

    @OptionGroup var index: IndexOptions
    @OptionGroup var chain: ChainOptions

    @Argument(help: ArgumentHelp("The image.", valueName: "image"))
    var image: String

    @Option(help: "human or json.")
    var output: OutputFormat = .human

    @Option(help: "Start of the guest range to print (bytes, or with K/M/G/T suffixes as qemu-img).")
    var offset: ByteCount = ByteCount(0)

    @Option(help: "Length of the guest range to print (default: to the end; K/M/G/T suffixes).")
    var length: ByteCount?

    @Flag(help: "Fail instead of scanning when the index is missing or stale.")
    var noRescan = false

    func run() throws {
        let store = try index.openStore()
        let indexed = try IndexedImage.load(image, store: store, chain: chain, rescan: !noRescan)
        let size = UInt64(indexed.scan.virtualSize)
        let lower = min(offset.value, size)
        let upper = length.map { min(lower.addingReportingOverflow($0.value).overflow ? size : lower + $0.value, size) } ?? size
        guard let scanID = indexed.scan.id else { throw CommandFailure("index has no scan id") }
        switch output {
        case .json:
            try MapJSONWriter.write(store: store, scanID: scanID, from: lower, to: upper, sink: &Console.output)
        case .human:
            try MapTableWriter.write(store: store, indexed: indexed, from: lower, to: upper)
        }
    }
}

/// Writes extents in qemu-img map's JSON list shape, formatting numbers by hand for speed.
enum MapJSONWriter {
    static func write(store: IndexStore, scanID: Int64, from lower: UInt64, to upper: UInt64, sink: inout ByteSink) throws {
        var first = true
        // Stored compressed clusters are one extent each (with their descriptors); print them merged.
        var pending: Extent?
        sink.write("[" as StaticString)
        try store.forEachBatch(scanID: scanID, from: lower, to: upper) { batch in
            for extent in batch {
                if var held = pending {
                    if held.canMergeForDisplay(with: extent) {
                        held.length += extent.length
                        pending = held
                        continue
                    }
                    if !first { sink.write(",\n" as StaticString) }
                    first = false
                    append(held, to: &sink)
                }
                pending = extent
            }
            try sink.flushIfNeeded()
        }
        if let held = pending {
            if !first { sink.write(",\n" as StaticString) }
            append(held, to: &sink)
        } else if lower == upper && lower == 0 {
            // qemu-img map prints one empty entry for a zero-length disk; so do we, to stay a drop-in.
            sink.write("{ \"start\": 0, \"length\": 0, \"depth\": 0, \"present\": false, \"zero\": false, \"data\": false}" as StaticString)
        }
        sink.write("]\n" as StaticString)
        try sink.flush()
    }

    @inline(__always)
    static func append(_ extent: Extent, to sink: inout ByteSink) {
        sink.reserve(200)
        sink.write("{ \"start\": ")
        sink.writeDecimal(extent.start)
        sink.write(", \"length\": ")
        sink.writeDecimal(extent.length)
        sink.write(", \"depth\": ")
        sink.writeDecimal(UInt64(extent.depth))
        switch (extent.present, extent.zero, extent.data) {
        case (true, true, true): sink.write(", \"present\": true, \"zero\": true, \"data\": true")
        case (true, true, false): sink.write(", \"present\": true, \"zero\": true, \"data\": false")
        case (true, false, true): sink.write(", \"present\": true, \"zero\": false, \"data\": true")
        case (true, false, false): sink.write(", \"present\": true, \"zero\": false, \"data\": false")
        case (false, true, true): sink.write(", \"present\": false, \"zero\": true, \"data\": true")
        case (false, true, false): sink.write(", \"present\": false, \"zero\": true, \"data\": false")
        case (false, false, true): sink.write(", \"present\": false, \"zero\": false, \"data\": true")
        case (false, false, false): sink.write(", \"present\": false, \"zero\": false, \"data\": false")
        }
        if extent.compressed { sink.write(", \"compressed\": true" as StaticString) }
        if let offset = extent.offset {
            sink.write(", \"offset\": " as StaticString)
            sink.writeDecimal(offset)
        }
        sink.write("}" as StaticString)
    }
}

/// Writes a readable table: one row per extent, with the file that supplies it.
enum MapTableWriter {
    static func write(store: IndexStore, indexed: IndexedScan, from lower: UInt64, to upper: UInt64) throws {
        guard let scanID = indexed.scan.id else { return }
        let header = ["Offset", "Length", "Depth", "Status", "Mapped to", "File"]
        Console.print(row(header))
        let files = Dictionary(uniqueKeysWithValues: indexed.layers.map { (UInt32($0.depth), $0.path) })
        // The rows of the JSON output (and the scan's extent count): stored compressed clusters merged.
        var pending: Extent?
        try store.forEachExtent(scanID: scanID, from: lower, to: upper) { extent in
            if var held = pending, held.canMergeForDisplay(with: extent) {
                held.length += extent.length
                pending = held
                return
            }
            if let held = pending { printRow(held, files: files) }
            pending = extent
        }
        if let held = pending { printRow(held, files: files) }
        Console.flushStandardOutput()
    }

    /// One table row: offset, length, depth, status, host offset and the file that supplies it.
    static func printRow(_ extent: Extent, files: [UInt32: String]) {
        let status: String
        switch (extent.present, extent.data, extent.zero, extent.compressed) {
        case (_, true, _, true): status = "compressed"
        case (_, true, true, _): status = "data(zero)"
        case (_, true, false, _): status = "data"
        case (true, false, _, _): status = "zero"
        default: status = "unallocated"
        }
        let mapped = extent.offset.map { "0x" + String($0, radix: 16) } ?? "-"
        let file = extent.present ? TerminalText.name(files[extent.depth] ?? "-") : "-"
        Console.output.write(
            row(["0x" + String(extent.start, radix: 16), "0x" + String(extent.length, radix: 16), "\(extent.depth)", status, mapped, file]) + "\n")
    }

    static let widths = [18, 18, 5, 12, 18, 0]

    static func row(_ cells: [String]) -> String {
        zip(cells, widths).map { cell, width in width == 0 ? cell : cell.padding(toLength: max(width, cell.count), withPad: " ", startingAt: 0) }
            .joined(separator: " ")
    }
}

/// The latest scan of an image, rescanning when the index is missing or stale (the library's policy).
enum IndexedImage {
    /// - Parameters:
    ///   - checkHeaders: also compare each layer's header checksum (exports), not only `stat`.
    ///   - quiet: do not say on standard error that the image was rescanned.
    static func load(
        _ path: String, store: IndexStore, chain: ChainOptions, rescan: Bool, checkHeaders: Bool = false, quiet: Bool = false
    ) throws -> IndexedScan {
        do {
            let lookup = try ImageIndexer(store: store, options: chain.scanOptions).lookup(path: path, rescan: rescan, checkHeaders: checkHeaders)
            if let reason = lookup.rescannedBecause, !quiet {
                Console.error("extentdb: \(lookup.indexed.image.path): rescanned first (\(reason))")
            }
            if let reason = lookup.staleNotRescanned {
                Console.error("extentdb: \(lookup.indexed.image.path): stale (read-only index, not rescanned): \(reason)")
            }
            return lookup.indexed
        } catch let error as ImageIndexer.LookupError {
            throw CommandFailure(error.description + (store.isReadOnly ? " (the index is read-only for this user)" : ""))
        }
    }
}
