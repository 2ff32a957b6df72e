import AllocationIndex
import ArgumentParser
import Foundation
import ImageFormats
import Scanner

struct ReadHeadersCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "read-headers",
        abstract: "Print the data-cluster JSON xapi's stream_vdi reads from `vhd-tool read_headers`.",
        discussion: Help.reflow(
            """
            legacy:   {"virtual_size":N,"cluster_bits":B,"data_clusters":[i,j,...]}   (vhd-tool read_headers)
            interval: {"virtual_size":N,"cluster_bits":B,"data_clusters":[[first,last],...]}
                      (vhd-tool read_headers_interval; ranges are inclusive)
            A cluster is the qcow2 cluster or the VHD block; it is listed when any byte of it holds data in
            the guest view (any layer of the chain). Sub-cluster extents are rounded outward.
            """))

    enum Style: String, ExpressibleByArgument, CaseIterable {
        case legacy
        case interval
    }

    @OptionGroup var index: IndexOptions
    @OptionGroup var chain: ChainOptions

    @Argument(help: ArgumentHelp("The image.", valueName: "image"))
    var image: String

    @Option(help: "legacy (every cluster index) or interval ([first, last] ranges).")
    var format: Style = .legacy

    @Option(help: "Cluster size as a power of two, for images without clusters (raw; default 16, i.e. 64 KiB).")
    var clusterBits: Int?

    @Flag(help: "Fail instead of scanning when the index is missing or stale.")
    var noRescan = false

    func validate() throws {
        if let clusterBits, !(9...30).contains(clusterBits) { throw ValidationError("--cluster-bits must be 9 to 30") }
    }

    func run() throws {
        let store = try index.openStore()
        let indexed = try IndexedImage.load(image, store: store, chain: chain, rescan: !noRescan)
        guard let scanID = indexed.scan.id else { throw CommandFailure("index has no scan id") }
        let bits: UInt64
        if let clusterBits {
            bits = UInt64(clusterBits)
        } else if let size = indexed.image.clusterSize, size > 0 {
            bits = UInt64(Int64(size).trailingZeroBitCount)
        } else {
            bits = 16
        }
        var ranges = DataClusterRanges(clusterBits: bits)
        try store.forEachExtent(scanID: scanID) { ranges.add($0) }
        var sink = Console.output
        sink.write("{\"virtual_size\":\(indexed.scan.virtualSize),\"cluster_bits\":\(bits),\"data_clusters\":[")
        var first = true
        for range in ranges.ranges {
            switch format {
            case .interval:
                if !first { sink.write("," as StaticString) }
                sink.write("[" as StaticString)
                sink.writeDecimal(range.lowerBound)
                sink.write("," as StaticString)
                sink.writeDecimal(range.upperBound)
                sink.write("]" as StaticString)
                first = false
            case .legacy:
                for cluster in range {
                    if !first { sink.write("," as StaticString) }
                    sink.writeDecimal(cluster)
                    first = false
                    try sink.flushIfNeeded()
                }
            }
            try sink.flushIfNeeded()
        }
        sink.write("]}\n")
        try sink.flush()
    }
}

/// Inclusive ranges of clusters that hold data, built from extents in guest order.
struct DataClusterRanges {
    let clusterBits: UInt64
    private(set) var ranges: [ClosedRange<UInt64>] = []

    init(clusterBits: UInt64) { self.clusterBits = clusterBits }

    /// Adds the clusters an extent touches, if it holds data that does not read as zeros.
    mutating func add(_ extent: Extent) {
        guard extent.data, !extent.zero, extent.length > 0 else { return }
        let first = extent.start >> clusterBits
        let last = (extent.end - 1) >> clusterBits
        if let previous = ranges.last, first <= previous.upperBound + 1 {
            ranges[ranges.count - 1] = previous.lowerBound...max(previous.upperBound, last)
        } else {
            ranges.append(first...last)
        }
    }
}
