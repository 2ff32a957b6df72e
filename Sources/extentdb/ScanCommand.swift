import AllocationIndex
import ArgumentParser
import Catalog
import Foundation
import ImageFormats
import ImageIO
import Report
import Scanner
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

struct ScanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scan",
        abstract: "Scan images (files, or directories searched recursively) into the index.",
        discussion: Help.reflow(
            """
            Images are recognised by content (QCOW2 magic, VHD footer cookie). Files named on the command line
            that are neither are indexed as raw images; inside directories only QCOW2/VHD files are picked up
            unless --include-raw is given. An image whose files (the whole backing chain) have the same device,
            inode, size and mtime as at its last scan is not scanned again unless --force is given.
            """))

    @OptionGroup var index: IndexOptions
    @OptionGroup var chain: ChainOptions

    @Argument(help: ArgumentHelp("Image files or directories.", valueName: "path"))
    var paths: [String]

    @Option(name: .shortAndLong, help: "Images scanned in parallel (default: number of CPUs).")
    var jobs: Int?

    @Flag(help: "Rescan even when the index is fresh.")
    var force = false

    @Option(help: "Scans kept per image after this one is recorded; older ones are deleted.")
    var keep: Int = ImageIndexer.defaultKeepScans

    @Flag(help: "Inside directories, also index files that are not QCOW2/VHD as raw images.")
    var includeRaw = false

    @Option(help: "Summary format: human or json.")
    var output: OutputFormat = .human

    @Flag(
        help: ArgumentHelp(
            "Also read the guest data once and record the SHA-256 of every 4 MiB chunk (extentdb digests, verify, --since-scan).",
            discussion: "Chunks with no stored data, and chunks an earlier digest scan saw supplied by unchanged files, are not read."))
    var digests = false

    @Flag(name: .shortAndLong, help: "No progress or per-image lines.")
    var quiet = false

    func validate() throws {
        if let jobs, jobs < 1 { throw ValidationError("--jobs must be at least 1") }
        if keep < 1 { throw ValidationError("--keep must be at least 1") }
        if paths.isEmpty { throw ValidationError("give at least one image or directory") }
    }

    struct Result: Sendable {
        var path: String
        var action: String
        var indexed: IndexedScan?
        var error: String?
        /// Why a file found in a directory was not scanned (foreign container, special file, link leaving
        /// the directory).
        var skipped: String?
        /// What the user should know about the image, though it was scanned: a writer holding it, a dirty
        /// bit (the scan's warnings, as `info` shows them).
        var warnings: [String] = []
        /// The digest scan (`--digests`): the digests, and whether this run made them.
        var digests: DigestOutcome?
    }

    func run() throws {
        let (found, skippedFiles, notRecognised) = try collectImages()
        // An image named twice (a symbolic link beside its target, a file given twice) is scanned and
        // reported once.
        let distinct = ImageDiscovery.distinctImages(found)
        let candidates = distinct.map(\.path)
        let store = try index.openStore()
        let indexer = ImageIndexer(store: store, options: chain.scanOptions, keepScans: keep)
        let results = Mutex<[Result?]>(Array(repeating: nil, count: candidates.count))
        let done = Mutex(0)
        let showProgress = !quiet && Console.standardErrorIsTerminal && output == .human
        let workers = min(jobs ?? ProcessInfo.processInfo.activeProcessorCount, max(candidates.count, 1))
        let next = Mutex(0)
        let force = self.force
        let digests = self.digests
        let catalog = ImageCatalog(indexer: indexer)
        // Images another host of a pool is scanning right now are put off to a second round, which waits for
        // that scan and reuses it: hosts scanning one shared directory share the work.
        let busy = Mutex<[Int]>([])
        // On a pool catalog each host visits the images in an order of its own (seeded by its name), so hosts
        // that start together mostly scan different images instead of queueing behind each other's locks;
        // the results are reported in the directory's order whatever the visiting order.
        let order = store.isShared ? HostOrder.permutation(count: candidates.count, seed: HostName.current) : Array(candidates.indices)
        // On a pool catalog the latest scans of the images about to be visited are read a batch at a time.
        let lookahead = LatestScanLookahead(store: store, canonicalPaths: order.map { distinct[$0].canonical })
        // `position`: in the visiting order, for the first visit; nil for a visit put off.
        let work: @Sendable (Int, Int?) -> Void = { index, position in
            let path = candidates[index]
            let waits = position == nil
            var result = Result(path: path, action: "failed")
            // Checked before the scan: a writer may change the image while it is read.
            let inUse = QemuImageLock.hasWriter(path: path) == true
            do {
                let hint = position.flatMap(lookahead.hint(at:))
                let outcome = try indexer.ensureIndexed(path: path, force: force, progress: nil, waitsForOtherHosts: waits, hint: hint)
                guard let outcome else {
                    busy.withLock { $0.append(index) }
                    return
                }
                result = Result(path: outcome.path, action: outcome.action.rawValue, indexed: outcome.indexed)
                result.warnings = Self.warnings(of: outcome.indexed)
                if let disagreement = outcome.hostDisagreement {
                    result.warnings.append("\(outcome.path): \(disagreement)")
                }
                if digests {
                    let progress: ((UInt64, UInt64) -> Void)? =
                        showProgress && candidates.count == 1
                        ? { done, total in Console.progress("digests: \(Units.bytes(done)) of \(Units.bytes(total)) \(path)") } : nil
                    result.digests = try catalog.digests(of: outcome.indexed, make: true, progress: progress)
                }
            } catch {
                result.error = "\(error)"
            }
            if inUse {
                result.warnings.insert("\(result.path) is in use by a writer (qemu holds its write lock); snapshot first", at: 0)
            }
            results.withLock { $0[index] = result }
            let finished = done.withLock { value in
                value += 1
                return value
            }
            if showProgress {
                let metadata = Units.bytes(FileBlockSource.bytesRead.load(ordering: .relaxed))
                Console.progress("[\(finished)/\(candidates.count)] \(metadata) of metadata read; \(result.action) \(path)")
            }
        }
        let workPutOff: @Sendable () -> Void = {
            while let putOff = busy.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) { work(putOff, nil) }
        }
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            while true {
                let position: Int? = next.withLock { value in
                    defer { value += 1 }
                    return value < candidates.count ? value : nil
                }
                guard let position else { break }
                work(order[position], position)
            }
            workPutOff()
        }
        // Put off by a worker after the others had finished.
        workPutOff()
        if showProgress { Console.endProgress() }
        let all = results.withLock { $0.compactMap { $0 } } + skippedFiles
        try report(all, notRecognised: notRecognised)
        if all.contains(where: { $0.error != nil }) { throw ExitCode(ExitStatus.failure) }
    }

    private func report(_ results: [Result], notRecognised: Int) throws {
        let scanned = results.filter { $0.action == "scanned" }.count
        let unchanged = results.filter { $0.action == "unchanged" }.count
        let reused = results.filter { $0.action == "reused" }.count
        let failed = results.filter { $0.error != nil }
        let skipped = results.filter { $0.skipped != nil }
        switch output {
        case .json:
            var items: [[String: Any]] = []
            for result in results {
                var item: [String: Any] = ["path": result.path, "action": result.action]
                if let indexed = result.indexed {
                    // The shared vocabulary (README, "One vocabulary"): the keys list and info use.
                    item["id"] = indexed.image.id ?? 0
                    item["scan_id"] = indexed.scan.id ?? 0
                    item["format"] = indexed.image.format.rawValue
                    item["virtual_size"] = indexed.scan.virtualSize
                    item["extent_count"] = indexed.scan.extentCount
                    item["chain_allocated_bytes"] = indexed.scan.dataBytes
                    item["allocated_bytes"] = indexed.scan.ownDataBytes
                    item["chain_length"] = indexed.scan.chainDepth
                    item["duration_ms"] = Double(indexed.scan.durationNs) / 1e6
                }
                if let outcome = result.digests {
                    item["digests"] = [
                        "chunk_size": outcome.digests.chunkSize, "chunk_count": outcome.digests.chunkCount, "made": outcome.made,
                        "bytes_read": outcome.made ? outcome.digests.bytesRead : 0,
                        "chunks_read": outcome.made ? outcome.digests.chunksRead : 0,
                        "zero_bytes_found": outcome.digests.zeroDataBytes,
                    ]
                }
                if let error = result.error { item["error"] = error }
                if !result.warnings.isEmpty { item["warnings"] = result.warnings }
                if let reason = result.skipped { item["reason"] = reason }
                items.append(item)
            }
            let summary: [String: Any] = [
                "images": items,
                "summary": [
                    "scanned": scanned, "unchanged": unchanged, "reused": reused, "failed": failed.count, "skipped": skipped.count,
                    "total": results.count,
                    "not_recognised": notRecognised,
                ],
            ]
            let data = try JSONSerialization.data(withJSONObject: summary, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])
            Console.print(String(decoding: data, as: UTF8.self))
        case .human:
            if !quiet {
                for result in results {
                    if let indexed = result.indexed {
                        let scan = indexed.scan
                        Console.print(
                            "\(result.action.padding(toLength: 9, withPad: " ", startingAt: 0)) \(result.path): "
                                + "\(indexed.image.format), \(Units.bytes(UInt64(scan.virtualSize))) virtual, "
                                + "\(Units.bytes(UInt64(scan.dataBytes))) data, \(Plural.count(Int(scan.extentCount), "extent"))"
                                + (result.action == "scanned" ? String(format: " (%.1f ms)", Double(scan.durationNs) / 1e6) : "")
                                + (result.action == "reused" ? " (scanned by \(scan.host ?? "another host") meanwhile)" : ""))
                        if let outcome = result.digests {
                            let made = outcome.digests
                            Console.print(
                                "          digests: \(Plural.count(made.chunkCount, "chunk")) of \(Units.bytes(made.chunkSize)); "
                                    + (outcome.made
                                        ? "read \(Units.bytes(made.bytesRead)) in \(Plural.count(made.chunksRead, "chunk")), "
                                            + "\(Units.bytes(made.zeroDataBytes)) of stored data found zero"
                                        : "already recorded"))
                        }
                    }
                }
            }
            for result in results {
                for warning in result.warnings { Console.error("extentdb: warning: \(warning)") }
            }
            for result in skipped { Console.error("extentdb: skipped \(TerminalText.name(result.path)): \(result.skipped ?? "")") }
            for result in failed { Console.error("extentdb: \(result.error ?? "")") }
            Console.print(
                "\(Plural.count(results.count, "image")): \(scanned) scanned, \(unchanged) unchanged, \(failed.count) failed"
                    + (reused == 0 ? "" : ", \(reused) scanned by other hosts meanwhile")
                    + (skipped.isEmpty ? "" : ", \(skipped.count) skipped"))
            if notRecognised > 0 {
                Console.print(
                    "\(Plural.count(notRecognised, "other file")) in the directories \(notRecognised == 1 ? "is" : "are") not QCOW2 or VHD and "
                        + "\(notRecognised == 1 ? "was" : "were") not indexed (--include-raw indexes them as raw disks; "
                        + "raw files under a chain are scanned as its layers)")
            }
        }
        try Console.flushStandardOutput()
    }

    /// The warnings recorded with a scan (a dirty qcow2, a damaged VHD footer, ...), as `info` shows them.
    static func warnings(of indexed: IndexedScan) -> [String] {
        (try? JSONDecoder().decode([String].self, from: Data(indexed.scan.warningsJson.utf8))) ?? []
    }

    /// Expands directories into the image files under them, keeping explicit files as given: the library's
    /// one discovery rule (``ImageDiscovery``), which the service's watcher follows too.
    private func collectImages() throws -> (images: [String], skipped: [Result], notRecognised: Int) {
        let discovery = ImageDiscovery(includeRaw: includeRaw, pinnedFormat: chain.imageFormat)
        var images: [String] = []
        var skipped: [Result] = []
        var notRecognised = 0
        for path in paths {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                throw CommandFailure("\(path): no such file or directory")
            }
            guard isDirectory.boolValue else {
                images.append(path)
                continue
            }
            guard FileManager.default.isReadableFile(atPath: path) else { throw CommandFailure("\(path): cannot list directory") }
            let found = discovery.walk(path)
            images.append(contentsOf: found.images)
            skipped += found.skipped.map { Result(path: $0.path, action: "skipped", skipped: $0.reason) }
            notRecognised += found.otherFiles.count
        }
        return (images, skipped.sorted { $0.path < $1.path }, notRecognised)
    }
}

/// Human byte units for the CLI: the report's formatter (binary units, like `df -h`).
enum Units {
    static func bytes(_ value: UInt64) -> String { ByteUnits.format(value) }
}
