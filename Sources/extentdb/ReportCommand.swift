import AllocationIndex
import ArgumentParser
import Foundation
import ImageIO
import Report
import Scanner

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Sparse-usage report of indexed images: table, JSON, CSV or a self-contained HTML page.",
        discussion: Help.reflow(
            """
            Answers from the index (plus a stat per image for size on disk and freshness); nothing is scanned.
            No PATH reports everything in the index; a directory reports the images under it.
            Sort keys: \(Report.sortKeys.joined(separator: ", ")) (numbers largest first).
            """))

    enum Output: String, ExpressibleByArgument, CaseIterable {
        case table, json, csv, html

        init?(argument: String) {
            self.init(rawValue: argument == "human" ? "table" : argument)
        }
    }

    @OptionGroup var index: IndexOptions

    @Argument(help: ArgumentHelp("Images or directories (default: the whole index).", valueName: "path"))
    var paths: [String] = []

    @Option(help: "table, json, csv or html.")
    var output: Output = .table

    @Option(help: ArgumentHelp("Write the report to this file instead of standard output.", valueName: "path"))
    var to: String?

    @Option(help: "Sort key.")
    var sort: String = "path"

    @Option(help: "Only the first N images after sorting.")
    var top: Int?

    @Flag(help: "Include every scan of each image (allocated bytes over time; a line chart in HTML).")
    var history = false

    func validate() throws {
        guard Report.sortKeys.contains(sort) else {
            throw ValidationError("unknown --sort key '\(sort)' (one of: \(Report.sortKeys.joined(separator: ", ")))")
        }
        if let top, top < 1 { throw ValidationError("--top must be at least 1") }
    }

    func run() throws {
        let store = try index.openStore()
        var files: [String] = []
        var directories: [String] = []
        for path in paths {
            let absolute = PathResolver.absolute(path, relativeTo: PathResolver.currentDirectory())
            guard let canonical = PathResolver.canonical(absolute), let identity = try? FileIdentity(path: canonical) else {
                // Not on disk (any more): match what the index recorded under that path.
                directories.append(absolute)
                files.append(absolute)
                continue
            }
            if identity.kind == .directory { directories.append(canonical) } else { files.append(canonical) }
        }
        let report = try Report(store: store, paths: files, directories: directories, sort: sort, top: top, history: history)
        if !paths.isEmpty && report.images.isEmpty {
            throw CommandFailure("no indexed images under \(paths.joined(separator: ", ")); run 'extentdb scan' first")
        }
        let text: String
        switch output {
        case .table: text = TerminalText.escaped(report.table())
        case .json: text = try report.json()
        case .csv: text = report.csv()
        case .html: text = try report.html(store: store)
        }
        if let to {
            do {
                try text.write(toFile: to, atomically: true, encoding: .utf8)
            } catch {
                throw CommandFailure("\(to): cannot write report: \(error.localizedDescription)")
            }
        } else {
            Console.output.write(text)
            try Console.flushStandardOutput()
        }
    }
}

struct DiffCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "Ranges where two allocation maps differ: two images, or two scans of one image.",
        discussion: Help.reflow(
            """
            extentdb diff A B            latest scans of two images (scanned first if needed)
            extentdb diff IMAGE --scan N compare scan N with the latest scan of IMAGE
            extentdb diff IMAGE --scan N --scan M
            Two images are compared as the guest sees them: a range differs when one reads data and the other
            zeros, whatever the layers, host offsets or formats (an image and its export do not differ).
            Two scans of one image are compared by layout: a range differs when its status (data, zero,
            unallocated), its supplying layer or its host location changed.
            --output json prints qemu-img-map-style entries with the status before and after.
            """))

    @OptionGroup var index: IndexOptions
    @OptionGroup var chain: ChainOptions

    @Argument(help: ArgumentHelp("One or two images.", valueName: "image"))
    var images: [String]

    @Option(name: .customLong("scan"), help: "Scan ids to compare (see 'extentdb report --history --output json').")
    var scans: [Int64] = []

    @Option(help: "human or json.")
    var output: OutputFormat = .human

    func validate() throws {
        switch (images.count, scans.count) {
        case (2, 0), (1, 1), (1, 2): break
        default: throw ValidationError("give two images, or one image with one or two --scan ids")
        }
    }

    func run() throws {
        let store = try index.openStore()
        let (before, after) = try scanPair(store: store)
        let comparison: AllocationDiff.Comparison = images.count == 2 ? .guest : .layout
        let diff = try AllocationDiff(store: store, before: before, after: after, comparison: comparison)
        switch output {
        case .json:
            var sink = Console.output
            sink.write("{\"before_scan\": \(before), \"after_scan\": \(after), \"comparison\": \"\(comparison.rawValue)\", ")
            sink.write("\"changed_bytes\": \(diff.changedBytes), ")
            sink.write("\"newly_allocated_bytes\": \(diff.newlyAllocatedBytes), \"freed_bytes\": \(diff.freedBytes), \"changes\": [")
            for (index, change) in diff.changes.enumerated() {
                sink.write(index == 0 ? "\n" : ",\n")
                sink.write(
                    "{ \"start\": \(change.start), \"length\": \(change.length), \"before\": \(side(change.before)), \"after\": \(side(change.after))}"
                )
            }
            sink.write("]}\n")
            try sink.flush()
        case .human:
            Console.print(
                "scan #\(before) -> scan #\(after)\(comparison == .guest ? " (as the guest sees them)" : ""): "
                    + "\(diff.changes.count) ranges differ, \(Units.bytes(diff.changedBytes)) in all")
            Console.print("newly allocated: \(Units.bytes(diff.newlyAllocatedBytes)), freed: \(Units.bytes(diff.freedBytes))")
            for change in diff.changes.prefix(200) {
                Console.print(
                    "0x\(String(change.start, radix: 16)) +0x\(String(change.length, radix: 16)): \(label(change.before)) -> \(label(change.after))"
                )
            }
            if diff.changes.count > 200 { Console.print("... \(diff.changes.count - 200) more (use --output json)") }
            try Console.flushStandardOutput()
        }
    }

    private func scanPair(store: any IndexStoring) throws -> (Int64, Int64) {
        if images.count == 2 {
            let a = try IndexedImage.load(images[0], store: store, chain: chain, rescan: true)
            let b = try IndexedImage.load(images[1], store: store, chain: chain, rescan: true)
            return (a.scan.id ?? 0, b.scan.id ?? 0)
        }
        let latest = try IndexedImage.load(images[0], store: store, chain: chain, rescan: true)
        let known = Set(try store.scans(path: latest.image.path).compactMap(\.id))
        for scan in scans where !known.contains(scan) {
            if try store.scanWasRemoved(id: scan) {
                throw CommandFailure(
                    "scan #\(scan) was removed from the index by gc or history retention (scan --keep); the scans of "
                        + "\(latest.image.path) now: \(known.sorted().map { "#\($0)" }.joined(separator: ", "))")
            }
            throw CommandFailure(
                "scan #\(scan) is not a scan of \(latest.image.path) (its scans: \(known.sorted().map { "#\($0)" }.joined(separator: ", ")))"
            )
        }
        return scans.count == 2 ? (scans[0], scans[1]) : (scans[0], latest.scan.id ?? 0)
    }

    private func side(_ side: AllocationDiff.Side) -> String {
        guard images.count != 2 else { return "{ \"zero\": \(side.zero), \"data\": \(side.data)}" }
        return "{ \"depth\": \(side.depth), \"present\": \(side.present), \"zero\": \(side.zero), \"data\": \(side.data)"
            + (side.offset.map { ", \"offset\": \($0)" } ?? "") + "}"
    }

    private func label(_ side: AllocationDiff.Side) -> String {
        guard images.count != 2 else { return side.guestData ? "data" : "zero" }
        let status = side.data ? (side.zero ? "data(zero)" : "data") : side.present ? "zero" : "unallocated"
        return "\(status)@\(side.depth)" + (side.offset.map { " 0x\(String($0, radix: 16))" } ?? "")
    }
}
