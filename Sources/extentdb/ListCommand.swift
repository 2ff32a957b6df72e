import AllocationIndex
import ArgumentParser
import Catalog
import Foundation
import ImageIO
import Report
import Scanner

struct ListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List indexed images: format, size, last scan, scans kept and state.",
        discussion: Help.reflow(
            """
            State: fresh (every chain layer has the identity it had at the last scan), stale (a layer changed;
            the next map/export rescans it), missing (the image file is gone; 'extentdb prune' forgets it),
            failed (its last scan failed; the error is shown). Only a stat per layer is done.
            """))

    @OptionGroup var index: IndexOptions

    @Argument(help: ArgumentHelp("Images or directories to list (default: the whole index).", valueName: "path"))
    var paths: [String] = []

    @Option(help: "human or json.")
    var output: OutputFormat = .human

    func run() throws {
        let store = try index.openStore(existing: true)
        let filter = PathFilter(paths)
        let entries = try ImageCatalog(indexer: ImageIndexer(store: store)).summaries(matching: filter.matches)
        switch output {
        case .json:
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
            Console.print(String(decoding: try encoder.encode(["images": entries]), as: UTF8.self))
        case .human:
            let rows = entries.map { entry in
                [
                    entry.state, entry.format ?? "-", entry.virtualSize.map { Units.bytes($0) } ?? "-",
                    entry.scannedAt ?? entry.failedAt ?? "-", entry.scansKept.map { "\($0)" } ?? "0", TerminalText.name(entry.path),
                ]
            }
            Console.print(TextTable.render(header: ["STATE", "FORMAT", "VIRTUAL", "SCANNED (UTC)", "SCANS", "PATH"], rows: rows))
            for entry in entries {
                guard let reason = entry.error ?? entry.staleReason else { continue }
                Console.print("\(entry.state) \(TerminalText.name(entry.path)): \(reason)")
            }
            Console.print(Plural.count(entries.count, "image"))
        }
        try Console.flushStandardOutput()
    }
}

/// Which recorded paths a command's PATH arguments select: exact files, or everything under a directory.
struct PathFilter {
    let exact: Set<String>
    let directories: [String]
    let all: Bool

    init(_ paths: [String]) {
        all = paths.isEmpty
        var exact = Set<String>()
        var directories: [String] = []
        for path in paths {
            let absolute = PathResolver.absolute(path, relativeTo: PathResolver.currentDirectory())
            let canonical = PathResolver.canonical(absolute) ?? absolute
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: canonical, isDirectory: &isDirectory), isDirectory.boolValue {
                directories.append(canonical)
            } else {
                exact.insert(canonical)
                exact.insert(absolute)
            }
        }
        self.exact = exact
        self.directories = directories
    }

    func matches(_ path: String) -> Bool {
        all || exact.contains(path) || directories.contains { PathResolver.isInside(path, directory: $0) }
    }
}

/// "1 image", "3 images".
enum Plural {
    static func count(_ value: Int, _ noun: String, plural: String? = nil) -> String {
        "\(value) " + (value == 1 ? noun : plural ?? noun + "s")
    }
}

/// Left-aligned columns separated by two spaces, the last column unpadded.
enum TextTable {
    static func render(header: [String], rows: [[String]]) -> String {
        let all = [header] + rows
        let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
        return all.map { row in
            row.enumerated().map { column, cell in
                column == row.count - 1 ? cell : cell.padding(toLength: widths[column], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }
}
