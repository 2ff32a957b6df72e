import AllocationIndex
import ArgumentParser
import Export
import Foundation
import ImageFormats
import ImageIO
import Scanner

#if canImport(Glibc)
    import Glibc
#endif

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Stream an image's guest data as raw, qcow2, vhd or xva, planned from the index.",
        discussion: Help.reflow(
            """
            The extents come from the image's latest scan; the image is rescanned first when its identity
            (device, inode, size, mtime, header checksum) changed (--no-rescan makes that an error). Only data
            extents are read: zero and unallocated ranges never are, and no L1/L2 table, BAT or bitmap is read.

            raw   sparse file with --to (holes + copy_file_range), every byte on a pipe
            qcow2 qcow2 v3 written front to back (works on a pipe); zero ranges become zero clusters
            vhd   dynamic VHD (differencing with --base), front to back; up to 2040 GiB
            xva   xapi's XVA disk stream: tar of 1 MiB chunks PREFIX/NNNNNNNN + .xxhash (XXH64)

            --base BASE exports only what the layers above BASE supply: a qcow2 overlay backed by BASE, a
            differencing VHD whose parent is BASE, changed ranges of a raw file (and --extents JSON), or
            only the changed XVA chunks.
            """))

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case raw, qcow2, vhd, xva
    }

    @OptionGroup var index: IndexOptions
    @OptionGroup var chain: ChainOptions

    @Argument(help: ArgumentHelp("The image.", valueName: "image"))
    var image: String

    @Option(help: "Output format: raw, qcow2, vhd or xva.")
    var format: Format

    @Option(help: ArgumentHelp("Export only what the chain supplies above this ancestor.", valueName: "image"))
    var base: String?

    @Option(help: ArgumentHelp("Output file (default: standard output, which must not be a terminal).", valueName: "path"))
    var to: String?

    @Option(
        name: .customLong("backing-name"),
        help: ArgumentHelp(
            "With --base, qcow2 or vhd: how the delta names its base, recorded as-is (the name the base will have at the destination).",
            discussion: """
                Default: the base's path relative to the output's directory (to the current directory when writing \
                to standard output), e.g. ../base/parent.vhd, so the pair keeps working when moved together. qcow2 \
                records it as the backing file name; a VHD in its W2ru and MacX parent locators (W2ku keeps the \
                base's absolute path, the parent name field its file name).
                """, valueName: "name"),
        transform: { name in
            guard !name.isEmpty else { throw ValidationError("--backing-name must not be empty") }
            return name
        })
    var explicitBackingName: String?

    @Option(help: "Start of the guest range (raw only).")
    var offset: ByteCount?

    @Option(help: "Length of the guest range (raw only).")
    var length: ByteCount?

    @Option(help: ArgumentHelp(
        "qcow2 cluster size in bytes (default: 65536, or the smallest size whose L1 table fits qemu's 32 MiB limit).",
        valueName: "bytes"))
    var clusterSize: ByteCount?

    @Option(help: "XVA chunk name prefix.")
    var prefix: String = "Ref:0"

    @Flag(help: "XVA: leave out the two zero blocks that end a tar archive.")
    var noTarEnd = false

    @Option(help: ArgumentHelp("raw with --base: write the changed extents as JSON here (default: standard output).", valueName: "path"))
    var extents: String?

    @Flag(help: "Fail instead of rescanning when the index is stale.")
    var noRescan = false

    @Flag(name: .shortAndLong, help: "No progress on standard error.")
    var quiet = false

    @Flag(help: "Flush the output file to stable storage before renaming it into place.")
    var fsync = false

    func validate() throws {
        if format != .raw && (offset != nil || length != nil) {
            throw ValidationError("--offset/--length apply to --format raw only")
        }
        if extents != nil && (format != .raw || base == nil) {
            throw ValidationError("--extents goes with --format raw --base")
        }
    }

    func run() throws {
        let store = try index.openStore()
        // The plan's identity check: device, inode, size, mtime and header checksum of every layer.
        let indexed = try IndexedImage.load(image, store: store, chain: chain, rescan: !noRescan, checkHeaders: true, quiet: quiet)
        let size = UInt64(indexed.scan.virtualSize)
        let lower = min(offset?.value ?? 0, size)
        let upper = length.map { lower.addingReportingOverflow($0.value).overflow ? size : min(lower + $0.value, size) } ?? size
        let basePath = try base.map { try ImageIndexer.canonicalPath($0) }
        let plan = try ExportPlan(store: store, indexed: indexed, basePath: basePath, range: lower..<upper)
        let reader = GuestReader(plan: plan)
        let destination = try ExportDestination(path: to)
        let output = ExportOutput(descriptor: destination.descriptor, name: destination.name)
        let meter = ProgressMeter(enabled: !quiet && Console.standardErrorIsTerminal)
        output.progress = { meter.add($0) }
        // The writer announces the bytes it will send for its format, worked out from the plan.
        if meter.enabled { output.expectsTotal = { meter.total = $0 } }
        output.syncsOnFinish = fsync
        do {
            switch format {
            case .raw:
                let changed = try RawExporter(plan: plan, reader: reader).export(to: output)
                if let extents {
                    try writeExtents(changed, to: extents)
                } else if plan.baseDepth != nil {
                    // The data went to --to; the changed extents go to standard output.
                    Console.output.write(extentsJSON(changed))
                }
            case .qcow2:
                let backing = plan.base.map { base in (name: backingName(for: base.path), format: base.format == .vhd ? "vpc" : base.format.rawValue) }
                var chosen = clusterSize?.value ?? 65536
                if clusterSize == nil, let fitting = QCOW2StreamWriter.smallestClusterSize(virtualSize: plan.virtualSize), fitting != chosen {
                    chosen = fitting
                    if !quiet { Console.error("extentdb: using \(fitting)-byte clusters: with 65536 the L1 table would exceed qemu's 32 MiB limit") }
                }
                try QCOW2StreamWriter(plan: plan, reader: reader, clusterSize: chosen, backing: backing).export(to: output)
            case .vhd:
                try VHDStreamWriter(plan: plan, reader: reader, parent: try vhdParent(plan)).export(to: output)
            case .xva:
                try XVAWriter(plan: plan, reader: reader, prefix: prefix, closeArchive: !noTarEnd).export(to: output)
            }
            try destination.commit()
            meter.finish()
        } catch {
            destination.abandon()
            meter.finish()
            throw error
        }
    }

    /// How a delta names its base: `--backing-name` as given, else the base's path relative to the output's
    /// directory (the current directory for standard output), so that base and delta can move together.
    private func backingName(for basePath: String) -> String {
        if let explicitBackingName { return explicitBackingName }
        let current = PathResolver.currentDirectory()
        let directory = to.map { PathResolver.directory(of: PathResolver.absolute($0, relativeTo: current)) } ?? current
        // The base path is canonical; so must the directory be, or a symbolic link would count as a level.
        return PathResolver.relative(basePath, from: PathResolver.canonical(directory) ?? directory)
    }

    private func vhdParent(_ plan: ExportPlan) throws -> VHDStreamWriter.Parent? {
        guard let base = plan.base else { return nil }
        guard base.format == .vhd, let vhd = base.metadata?.vhd else {
            throw CommandFailure("a differencing VHD needs a VHD parent; \(base.path) is \(base.format.rawValue) (export as qcow2 instead)")
        }
        let identity = try FileIdentity(path: base.path)
        let name = String(base.path.split(separator: "/").last ?? "")
        return VHDStreamWriter.Parent(
            uniqueID: Self.uuidBytes(vhd.uniqueID),
            timestamp: VHDStreamWriter.vhdTimestamp(Date(timeIntervalSince1970: Double(identity.modificationTimeNanoseconds) / 1e9)),
            name: name, relativePath: backingName(for: base.path), absolutePath: base.path)
    }

    static func uuidBytes(_ text: String) -> [UInt8] {
        let hex = Array(text.replacingOccurrences(of: "-", with: "").utf8)
        return stride(from: 0, to: min(hex.count, 32), by: 2).map { UInt8(String(decoding: hex[$0..<$0 + 2], as: UTF8.self), radix: 16) ?? 0 }
    }

    private func writeExtents(_ changed: [Extent], to path: String) throws {
        try extentsJSON(changed).write(toFile: path, atomically: true, encoding: .utf8)
    }

    /// The changed extents of an incremental raw export, in qemu-img map's list shape.
    private func extentsJSON(_ changed: [Extent]) -> String {
        var text = "["
        for (index, extent) in changed.enumerated() {
            text += (index == 0 ? "" : ",\n") + "{ \"start\": \(extent.start), \"length\": \(extent.length), \"depth\": \(extent.depth), "
                + "\"zero\": \(extent.zero || !extent.data), \"data\": \(extent.data && !extent.zero)}"
        }
        return text + "]\n"
    }
}
