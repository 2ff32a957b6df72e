import AllocationIndex
import ArgumentParser
import Foundation
import ImageFormats
import Operations
import Scanner

struct ReadHeadersCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "read-headers",
        abstract: "Print the data-cluster JSON xapi's stream_vdi reads from `vhd-tool read_headers`.",
        discussion: Help.reflow(
            """
            --format legacy, as vhd-tool read_headers:
              {"virtual_size":N,"cluster_bits":B,"data_clusters":[i,j,...]}
            --format interval, as vhd-tool read_headers_interval (ranges are inclusive):
              {"virtual_size":N,"cluster_bits":B,"data_clusters":[[first,last],...]}

            A cluster is the qcow2 cluster or the VHD block; it is listed when any byte of it holds data in
            the guest view (any layer of the chain). Sub-cluster extents are rounded outward.
            """))

    @OptionGroup var index: IndexOptions
    @OptionGroup var chain: ChainOptions

    @Argument(help: ArgumentHelp("The image.", valueName: "image"))
    var image: String

    @Option(help: "legacy (every cluster index) or interval ([first, last] ranges).")
    var format: ReadHeadersStyle = .legacy

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
        let bits = ReadHeadersJSONWriter.clusterBits(of: indexed, override: clusterBits)
        try ReadHeadersJSONWriter.write(store: store, indexed: indexed, style: format, clusterBits: bits, sink: &Console.output)
    }
}

extension ReadHeadersStyle: ExpressibleByArgument {}
