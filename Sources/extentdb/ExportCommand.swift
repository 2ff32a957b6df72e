import AllocationIndex
import ArgumentParser
import Catalog
import Export
import Foundation
import ImageFormats
import ImageIO
import Operations
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

            raw    sparse file with --to (holes + copy_file_range), every byte on a pipe
            qcow2  qcow2 v3 written front to back (works on a pipe); zero ranges become zero clusters
            vhd    dynamic VHD (differencing with --base), front to back; up to 2040 GiB
            xva    xapi's XVA disk stream: tar of 1 MiB chunks PREFIX/NNNNNNNN + .xxhash (XXH64)

            --base BASE exports only what the layers above BASE supply: a qcow2 overlay backed by BASE, a
            differencing VHD whose parent is BASE, changed ranges of a raw file (and --extents JSON), or
            only the changed XVA chunks.
            """))

    @OptionGroup var index: IndexOptions
    @OptionGroup var chain: ChainOptions

    @Argument(help: ArgumentHelp("The image.", valueName: "image"))
    var image: String

    @Option(name: [.customShort("O"), .long], help: "Output format: raw, qcow2, vhd or xva (-O as qemu-img convert -O).")
    var format: ExportFormat

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

    @Option(
        help: ArgumentHelp(
            "Send only what this qcow2 persistent dirty bitmap marks: a qcow2 over the previous backup (--backing-name), or raw ranges.",
            valueName: "name"))
    var bitmap: String?

    @Option(
        help: ArgumentHelp(
            "Send only the 4 MiB chunks whose content changed since digest scan N (scan --digests): a qcow2 over the previous backup (--backing-name), or raw ranges.",
            valueName: "n"))
    var sinceScan: Int64?

    @Option(
        help: ArgumentHelp(
            "raw with --base, --bitmap or --since-scan: apply the delta to this copy of the base (a new file takes its name when complete).",
            valueName: "copy"))
    var into: String?

    @Option(help: "Start of the guest range (raw only).")
    var offset: ByteCount?

    @Option(help: "Length of the guest range (raw only).")
    var length: ByteCount?

    @Option(
        help: ArgumentHelp(
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

    @Flag(
        help: ArgumentHelp(
            "raw into a file: copy the data in the kernel, zeros and all, instead of leaving each 4 KiB block of zeros as a hole (qemu-img convert -S 0)."
        ))
    var noDetectZeros = false

    func validate() throws {
        if format != .raw && (offset != nil || length != nil) {
            throw ValidationError("--offset/--length apply to --format raw only")
        }
        let deltas = [base != nil, bitmap != nil, sinceScan != nil].filter { $0 }.count
        if extents != nil && (format != .raw || deltas == 0) {
            throw ValidationError("--extents goes with --format raw and --base, --bitmap or --since-scan")
        }
        if deltas > 1 { throw ValidationError("give one of --base, --bitmap and --since-scan") }
        if into != nil {
            guard format == .raw, deltas == 1 else {
                throw ValidationError("--into goes with --format raw and --base, --bitmap or --since-scan")
            }
            guard to == nil else { throw ValidationError("give --to or --into, not both") }
            guard offset == nil, length == nil else { throw ValidationError("--into applies the whole delta; drop --offset/--length") }
        }
    }

    func run() throws {
        let store = try index.openStore()
        // The plan's identity check: device, inode, size, mtime and header checksum of every layer.
        let indexed = try IndexedImage.load(image, store: store, chain: chain, rescan: !noRescan, checkHeaders: true, quiet: quiet)
        let window = GuestWindow(offset: offset?.value ?? 0, length: length?.value, virtualSize: UInt64(indexed.scan.virtualSize))
        let current = PathResolver.currentDirectory()
        let basePath = try base.map { try ImageIndexer.canonicalPath($0) }
        if let basePath {
            try IndexedImage.loadRelatedBase(basePath, of: indexed, store: store, chain: chain, rescan: !noRescan, quiet: quiet)
        }
        var request = ExportRequest(
            format: format, basePath: basePath,
            range: format == .raw ? window.range : nil, clusterSize: clusterSize?.value, backingName: explicitBackingName,
            outputDirectory: to.map { PathResolver.directory(of: PathResolver.absolute($0, relativeTo: current)) } ?? current)
        if let bitmap {
            request.dirtyRanges = try ImageCatalog(indexer: ImageIndexer(store: store)).dirtyRanges(of: indexed, bitmap: bitmap)
        }
        if let sinceScan {
            // The latest scan's digests are made first when missing (reading what changed since they were).
            request.dirtyRanges = try ImageCatalog(indexer: ImageIndexer(store: store, options: chain.scanOptions)).changedRanges(
                of: indexed, sinceScan: sinceScan)
        }
        request.xvaPrefix = prefix
        request.detectsZeros = !noDetectZeros
        request.closesArchive = !noTarEnd
        var job = try ExportJob(store: store, indexed: indexed, request: request)
        let quiet = quiet
        job.notice = { if !quiet { Console.error("extentdb: \($0)") } }
        let destination = try ExportDestination(path: into ?? to)
        let output = ExportOutput(descriptor: destination.descriptor, name: destination.name)
        if let into {
            // The copy of the base, cloned or copied into the new file; the delta then goes over it.
            do {
                try output.seed(fromFileAt: into)
            } catch {
                destination.abandon()
                throw error
            }
        }
        let meter = ProgressMeter(enabled: !quiet && Console.standardErrorIsTerminal)
        output.progress = { meter.add($0) }
        // The writer announces the bytes it will send for its format, worked out from the plan.
        if meter.enabled { output.expectsTotal = { meter.total = $0 } }
        output.syncsOnFinish = fsync
        do {
            let changed = try job.run(to: output)
            if format == .raw, let extents {
                try ExportJob.changedExtentsJSON(changed).write(toFile: extents, atomically: true, encoding: .utf8)
            } else if format == .raw, job.plan.baseDepth != nil {
                // The data went to --to; the changed extents go to standard output.
                Console.output.write(ExportJob.changedExtentsJSON(changed))
            }
            try destination.commit()
            meter.finish()
        } catch {
            destination.abandon()
            meter.finish()
            throw error
        }
    }
}

extension ExportFormat: ExpressibleByArgument {}
