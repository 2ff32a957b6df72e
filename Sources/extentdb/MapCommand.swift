import AllocationIndex
import ArgumentParser
import Catalog
import Foundation
import ImageFormats
import Operations
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

            Data clusters or blocks whose bytes the host file system holds as holes or unwritten extents
            (a preallocated image's unused space) read as zeros. qemu-img map reports them as "zero": true
            only when it guesses the image is metadata-preallocated; --output json does the same, so it stays
            equal to qemu-img map, and --detect-zeros reports all of them. The human table always does
            (status data(zero)).
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

    @Flag(help: "With --output json, also report data over host holes and unwritten extents as \"zero\": true.")
    var detectZeros = false

    func run() throws {
        let store = try index.openStore()
        let indexed = try IndexedImage.load(image, store: store, chain: chain, rescan: !noRescan)
        let window = GuestWindow(offset: offset.value, length: length?.value, virtualSize: UInt64(indexed.scan.virtualSize))
        let (lower, upper) = (window.lower, window.upper)
        guard let scanID = indexed.scan.id else { throw CommandFailure("index has no scan id") }
        switch output {
        case .json:
            try MapJSONWriter.write(store: store, scanID: scanID, from: lower, to: upper, detectZeros: detectZeros, sink: &Console.output)
        case .human:
            try MapTableWriter.write(store: store, indexed: indexed, from: lower, to: upper)
        }
    }
}

/// Writes a readable table: one row per extent, with the file that supplies it.
enum MapTableWriter {
    static func write(store: any IndexStoring, indexed: IndexedScan, from lower: UInt64, to upper: UInt64) throws {
        guard let scanID = indexed.scan.id else { return }
        let header = ["Offset", "Length", "Depth", "Status", "Mapped to", "File"]
        Console.print(row(header))
        let files = Dictionary(uniqueKeysWithValues: indexed.layers.map { (UInt32($0.depth), $0.path) })
        // The rows of the JSON output (and the scan's extent count): stored compressed clusters merged.
        var pending: Extent?
        try store.forEachExtent(scanID: scanID, from: lower, to: upper) { stored in
            let extent = stored.withStoredZerosShown
            if var held = pending, held.canMergeForDisplay(with: extent) {
                held.length += extent.length
                pending = held
                return
            }
            if let held = pending { printRow(held, files: files) }
            pending = extent
        }
        if let held = pending { printRow(held, files: files) }
        try Console.flushStandardOutput()
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
            row(["0x" + String(extent.start, radix: 16), "0x" + String(extent.length, radix: 16), "\(extent.depth)", status, mapped, file])
                + "\n")
    }

    static let widths = [18, 18, 5, 12, 18, 0]

    static func row(_ cells: [String]) -> String {
        zip(cells, widths).map { cell, width in
            width == 0 ? cell : cell.padding(toLength: max(width, cell.count), withPad: " ", startingAt: 0)
        }
        .joined(separator: " ")
    }
}

/// The latest scan of an image, rescanning when the index is missing or stale (the library's policy).
enum IndexedImage {
    /// - Parameters:
    ///   - checkHeaders: also compare each layer's header checksum (exports), not only `stat`.
    ///   - quiet: do not say on standard error that the image was rescanned.
    static func load(
        _ path: String, store: any IndexStoring, chain: ChainOptions, rescan: Bool, checkHeaders: Bool = false, quiet: Bool = false
    ) throws -> IndexedScan {
        let catalog = ImageCatalog(indexer: ImageIndexer(store: store, options: chain.scanOptions))
        let lookup: ImageIndexer.Lookup
        do {
            lookup = try catalog.lookup(path: path, rescan: rescan, checkHeaders: checkHeaders)
        } catch {
            guard store.isReadOnly, error.code == .notIndexed || error.code == .stale else { throw error }
            throw CatalogError(
                error.code, error.message + " (the index is read-only for this user)", path: error.path, remedy: error.remedy)
        }
        if let reason = lookup.rescannedBecause, !quiet {
            Console.error("extentdb: \(lookup.indexed.image.path): rescanned first (\(reason))")
        }
        if let reason = lookup.staleNotRescanned {
            Console.error("extentdb: \(lookup.indexed.image.path): stale (read-only index, not rescanned): \(reason)")
        }
        return lookup.indexed
    }

    /// Makes the scan of a base outside the image's chain (a sibling or cousin snapshot) fresh, as the
    /// image's own: its scan decides which ranges its branch wrote. An ancestor is already part of it.
    static func loadRelatedBase(
        _ basePath: String, of indexed: IndexedScan, store: any IndexStoring, chain: ChainOptions, rescan: Bool, quiet: Bool = false
    ) throws {
        guard !indexed.layers.contains(where: { $0.path == basePath }) else { return }
        _ = try load(basePath, store: store, chain: chain, rescan: rescan, checkHeaders: true, quiet: quiet)
    }
}
