import AllocationIndex
import ArgumentParser
import Catalog
import Foundation
import ImageIO
import Report
import Scanner

struct ChangesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "changes",
        abstract: "What differs between an image and a related base, from the index alone, in the formats backup tools read.",
        discussion: Help.reflow(
            """
            BASE may be an ancestor, a sibling or cousin snapshot (XenServer's layout), or a descendant: any image
            whose chain shares a layer with IMAGE's. A range differs when a layer above the shared one supplies it
            on either side; the list is a superset of the bytes that differ, exact at layer granularity. No image
            data is read to decide.
            Outputs:
              table     the changed ranges, with totals
              json      [{"start","length","zero"}]; zero: the range reads as zeros in IMAGE
              imageio   oVirt imageio's dirty extents over the whole disk: [{"start","length","dirty","zero"}]
              xapi-cbt  VDI.list_changed_blocks: base64 bitmap, 64 KiB blocks, first block in the high bit
              vmware    QueryChangedDiskAreas' DiskChangeInfo: {"startOffset","length","changedArea"}
            """))

    enum Output: String, ExpressibleByArgument, CaseIterable {
        case table, json, imageio
        case xapiCBT = "xapi-cbt"
        case vmware

        init?(argument: String) {
            self.init(rawValue: argument == "human" ? "table" : argument)
        }
    }

    @OptionGroup var index: IndexOptions
    @OptionGroup var chain: ChainOptions

    @Argument(help: ArgumentHelp("The image.", valueName: "image"))
    var image: String

    @Option(help: ArgumentHelp("The related base the changes are against.", valueName: "base"))
    var base: String

    @Option(help: "table, json, imageio, xapi-cbt or vmware.")
    var output: Output = .table

    @Flag(help: "Fail instead of scanning when the index is missing or stale.")
    var noRescan = false

    func run() throws {
        let store = try index.openStore()
        let indexed = try IndexedImage.load(image, store: store, chain: chain, rescan: !noRescan, checkHeaders: true)
        let basePath = try ImageIndexer.canonicalPath(base)
        if !indexed.layers.contains(where: { $0.path == basePath }) {
            _ = try IndexedImage.load(basePath, store: store, chain: chain, rescan: !noRescan, checkHeaders: true)
        }
        let changes = try ImageCatalog(indexer: ImageIndexer(store: store, options: chain.scanOptions)).changes(of: indexed, base: basePath)
        switch output {
        case .json: Console.print(changes.rendered(.json))
        case .imageio: Console.print(changes.rendered(.imageio))
        case .xapiCBT: Console.print(changes.rendered(.xapiCBT))
        case .vmware: Console.print(changes.rendered(.vmware))
        case .table:
            let rows = changes.changed.map { piece in
                ["0x" + String(piece.start, radix: 16), Units.bytes(piece.length), piece.zero ? "zero" : "data"]
            }
            Console.print(TextTable.render(header: ["START", "LENGTH", "READS"], rows: rows))
            Console.print(
                "\(Plural.count(changes.changed.count, "range")) differ from \(TerminalText.name(basePath)): "
                    + "\(Units.bytes(changes.changedBytes)) of \(Units.bytes(changes.virtualSize))")
        }
        try Console.flushStandardOutput()
    }
}
