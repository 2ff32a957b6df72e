import AllocationIndex
import ArgumentParser
import Catalog
import Report
import Foundation
import Scanner

struct DigestsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "digests",
        abstract: "Print the SHA-256 of every 4 MiB chunk of an image's guest data (made first when missing).",
        discussion: Help.reflow(
            """
            The digests a Proxmox Backup Server client computes for the same disk: fixed 4 MiB chunks of the
            guest view, the last one short, SHA-256 of each. They are recorded with the image's latest scan by
            scan --digests; when the latest scan has none, they are made now (reading only chunks no earlier
            digest scan saw unchanged, never unallocated or zero ones) unless --no-rescan is given.
            --output json prints {"chunk_size": 4194304, "sha256": ["<hex>", ...]}, one entry per chunk in order.
            """))

    @OptionGroup var index: IndexOptions
    @OptionGroup var chain: ChainOptions

    @Argument(help: ArgumentHelp("The image.", valueName: "image"))
    var image: String

    @Option(help: "human or json.")
    var output: OutputFormat = .human

    @Flag(help: "Fail instead of scanning or reading when the index or its digests are missing or stale.")
    var noRescan = false

    @Flag(name: .shortAndLong, help: "No progress on standard error.")
    var quiet = false

    func run() throws {
        let store = try index.openStore()
        let indexed = try IndexedImage.load(image, store: store, chain: chain, rescan: !noRescan, checkHeaders: true, quiet: quiet)
        let catalog = ImageCatalog(indexer: ImageIndexer(store: store, options: chain.scanOptions))
        let showProgress = !quiet && Console.standardErrorIsTerminal
        let outcome = try catalog.digests(
            of: indexed, make: !noRescan,
            progress: showProgress ? { done, total in Console.progress("digests: \(Units.bytes(done)) of \(Units.bytes(total))") } : nil)
        if showProgress { Console.endProgress() }
        let digests = outcome.digests
        switch output {
        case .json:
            Console.print(digests.listJSON)
        case .human:
            let size = UInt64(indexed.scan.virtualSize)
            let rows = (0..<digests.chunkCount).map { chunk -> [String] in
                let start = UInt64(chunk) * digests.chunkSize
                return [
                    "\(chunk)", "0x" + String(start, radix: 16), Units.bytes(min(digests.chunkSize, size - start)),
                    digests.hexDigest(chunk),
                ]
            }
            Console.print(TextTable.render(header: ["CHUNK", "START", "LENGTH", "SHA256"], rows: rows))
            Console.print(
                "\(Plural.count(digests.chunkCount, "chunk")) of \(Units.bytes(digests.chunkSize)), scan #\(digests.scanID)"
                    + (outcome.made ? "; made now, reading \(Units.bytes(digests.bytesRead))" : ""))
        }
        try Console.flushStandardOutput()
    }
}

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Read an image (or a copy of it) again and check every chunk against its recorded digests.",
        discussion: Help.reflow(
            """
            Checks the image's content against the SHA-256 digests its latest digest scan recorded (scan
            --digests), reading every stored byte again: it finds silent corruption that kept the file's size
            and mtime. With --copy FILE it checks that FILE (raw, qcow2 or VHD, read through extentdb's own
            readers; the index is not touched) holds the image's content instead.
            Exit status: 0 when every chunk matches, 1 when a chunk differs (each is named with its byte
            range) or the image changed since its digest scan, 2 for a usage error.
            """))

    @OptionGroup var index: IndexOptions
    @OptionGroup var chain: ChainOptions

    @Argument(help: ArgumentHelp("The image whose digests are the reference.", valueName: "image"))
    var image: String

    @Option(help: ArgumentHelp("Check this copy (a backup, an export) against IMAGE's digests instead.", valueName: "file"))
    var copy: String?

    @Option(help: "human or json.")
    var output: OutputFormat = .human

    @Flag(name: .shortAndLong, help: "No progress on standard error.")
    var quiet = false

    func run() throws {
        let store = try index.openStore()
        let catalog = ImageCatalog(indexer: ImageIndexer(store: store, options: chain.scanOptions))
        // The digests belong to the scan they were made of: a changed image is said to have changed.
        let lookup = try catalog.lookup(path: image, rescan: false, checkHeaders: true, answerStale: true)
        let showProgress = !quiet && Console.standardErrorIsTerminal
        let report = try catalog.verify(
            lookup.indexed, copy: copy,
            progress: showProgress ? { done, total in Console.progress("verify: \(Units.bytes(done)) of \(Units.bytes(total))") } : nil)
        if showProgress { Console.endProgress() }
        // Checking a copy compares it with the recorded digests alone; checking the image also says whether
        // its files changed since (a ctime that moved although size and mtime were kept, too).
        let changed = copy == nil ? (lookup.staleNotRescanned ?? staleness(of: lookup.indexed)) : nil
        switch output {
        case .json:
            var object: [String: Any] = [
                "path": report.path, "checked": report.checked, "chunk_size": report.chunkSize, "chunk_count": report.chunkCount,
                "bytes_read": report.bytesRead, "matches": report.matches && changed == nil,
                "mismatches": report.mismatches.map { mismatch -> [String: Any] in
                    var item: [String: Any] = [
                        "chunk": mismatch.chunk, "start": mismatch.range.lowerBound, "length": mismatch.range.count,
                        "expected": mismatch.expected,
                    ]
                    item["actual"] = mismatch.actual ?? NSNull()
                    return item
                },
            ]
            if let size = report.copySize { object["copy_size"] = size }
            if let changed { object["changed"] = changed }
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
            Console.print(String(decoding: data, as: UTF8.self))
        case .human:
            if let changed { Console.print("\(TerminalText.name(report.path)) changed since its digest scan: \(changed)") }
            if let size = report.copySize {
                Console.print("\(TerminalText.name(report.checked)) is \(size) bytes, the image \(report.virtualSize)")
            }
            for mismatch in report.mismatches {
                Console.print(
                    "chunk \(mismatch.chunk) at 0x\(String(mismatch.range.lowerBound, radix: 16))-0x\(String(mismatch.range.upperBound - 1, radix: 16)) "
                        + "(\(Units.bytes(UInt64(mismatch.range.count)))): "
                        + (mismatch.actual.map { "sha256 \($0), expected \(mismatch.expected)" } ?? "missing from the copy"))
            }
            Console.print(
                report.matches && changed == nil
                    ? "\(TerminalText.name(report.checked)): all \(Plural.count(report.chunkCount, "chunk")) match (read \(Units.bytes(report.bytesRead)))"
                    : "\(TerminalText.name(report.checked)): \(report.mismatches.count) of \(Plural.count(report.chunkCount, "chunk")) differ"
            )
        }
        try Console.flushStandardOutput()
        if !report.matches || changed != nil { throw ExitCode(ExitStatus.failure) }
    }

    /// Why the image no longer is what its scan describes (stat or header), or nil.
    private func staleness(of indexed: IndexedScan) -> String? {
        if case .stale(let reason) = ImageIndexer.freshnessWithHeaders(of: indexed) { return reason }
        return nil
    }
}
