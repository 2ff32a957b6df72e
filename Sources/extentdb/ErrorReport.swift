import AllocationIndex
import Export
import Foundation
import ImageFormats
import ImageIO
import Scanner

/// A failure as the user sees it: one line for people, or with `--output json` an object on standard
/// error, `{"error": ..., "path": ..., "field": ..., "offset": ...}` (keys without a value left out).
struct ErrorReport {
    var message: String
    var path: String?
    var field: String?
    var offset: UInt64?

    init(_ error: any Error) {
        switch error {
        case let error as ImageError:
            message = error.description
            path = error.path
            if case .format(let format) = error.reason {
                field = format.field
                offset = format.offset
            }
            if case .io(let io) = error.reason { path = io.path }
        case let error as ExportError:
            message = error.description
            if case let .data(path, offset, _) = error {
                self.path = path
                self.offset = offset
            }
        default:
            message = IndexStore.describe(error) ?? "\(error)"
        }
    }

    /// The line or JSON object for standard error.
    func rendered(json: Bool) -> String {
        guard json else { return "extentdb: \(message)" }
        var object: [String: Any] = ["error": message]
        if let path { object["path"] = path }
        if let field { object["field"] = field }
        if let offset { object["offset"] = offset }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }
}

/// The command line as the parser wants it: `--db PATH` given before the subcommand moves after it, so
/// `extentdb --db X scan ...` works like `extentdb scan --db X ...`.
enum CommandLineArguments {
    static func normalised(_ arguments: [String], subcommands: Set<String>) -> [String] {
        guard let first = arguments.firstIndex(where: { subcommands.contains($0) }), first > 0 else { return arguments }
        var leading = Array(arguments[..<first])
        var moved: [String] = []
        var index = 0
        while index < leading.count {
            if leading[index] == "--db", index + 1 < leading.count {
                moved += ["--db", leading[index + 1]]
                leading.removeSubrange(index...(index + 1))
            } else if leading[index].hasPrefix("--db=") {
                moved.append(leading.remove(at: index))
            } else {
                index += 1
            }
        }
        return leading + [arguments[first]] + moved + arguments[(first + 1)...]
    }

    /// True when the command asked for JSON output (`--output json` or `--output=json`).
    static func wantsJSON(_ arguments: [String]) -> Bool {
        zip(arguments, arguments.dropFirst()).contains { $0 == "--output" && $1 == "json" } || arguments.contains("--output=json")
    }
}
