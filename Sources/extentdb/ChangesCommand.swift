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
        abstract: "What changed: against a related base, or as a qcow2 dirty bitmap marks it, in the formats backup tools read.",
        discussion: Help.reflow(
            """
            BASE may be an ancestor, a sibling or cousin snapshot (XenServer's layout), or a descendant: any image
            whose chain shares a layer with IMAGE's. A range differs when a layer above the shared one supplies it
            on either side; the list is a superset of the bytes that differ, exact at layer granularity. No image
            data is read to decide.
            --since-scan N lists the 4 MiB chunks whose SHA-256 differs from digest scan N's (scan --digests;
            the latest scan's digests are made first when missing): what changed by content, in-place rewrites
            of a standalone image included, whatever the metadata says.
            --bitmap NAME lists what a qcow2 persistent dirty bitmap of IMAGE marks, as the last scan read it (a
            bitmap flagged in_use, whose writer died, is refused, as qemu does).
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
    var base: String?

    @Option(help: ArgumentHelp("A qcow2 persistent dirty bitmap of IMAGE: what it marks (qemu-img bitmap --add).", valueName: "name"))
    var bitmap: String?

    @Option(help: ArgumentHelp("A digest scan of IMAGE (scan --digests): the chunks whose content changed since.", valueName: "n"))
    var sinceScan: Int64?

    func validate() throws {
        guard [base != nil, bitmap != nil, sinceScan != nil].filter({ $0 }).count == 1 else {
            throw ValidationError("give one of --base BASE, --bitmap NAME and --since-scan N")
        }
    }

    @Option(help: "table, json, imageio, xapi-cbt or vmware.")
    var output: Output = .table

    @Flag(help: "Fail instead of scanning when the index is missing or stale.")
    var noRescan = false

    func run() throws {
        let store = try index.openStore()
        let indexed = try IndexedImage.load(image, store: store, chain: chain, rescan: !noRescan, checkHeaders: true)
        let catalog = ImageCatalog(indexer: ImageIndexer(store: store, options: chain.scanOptions))
        let changes: ChangeList
        let against: String
        if let bitmap {
            changes = try catalog.changes(of: indexed, bitmap: bitmap)
            against = "bitmap \(bitmap)"
        } else if let sinceScan {
            changes = try catalog.changes(of: indexed, sinceScan: sinceScan)
            against = "changed by content since digest scan #\(sinceScan)"
        } else {
            let basePath = try ImageIndexer.canonicalPath(base ?? "")
            try IndexedImage.loadRelatedBase(basePath, of: indexed, store: store, chain: chain, rescan: !noRescan)
            changes = try catalog.changes(of: indexed, base: basePath)
            against = "differ from \(TerminalText.name(basePath))"
        }
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
                "\(Plural.count(changes.changed.count, "range")) \(bitmap == nil ? "" : "marked by ")\(against): "
                    + "\(Units.bytes(changes.changedBytes)) of \(Units.bytes(changes.virtualSize))")
        }
        try Console.flushStandardOutput()
    }
}
