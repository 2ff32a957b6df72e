import AllocationIndex
import Catalog
import Export
import Foundation
import ImageFormats
import ImageIO
import Scanner

/// A failure as the user sees it: one line for people, or with `--output json` an object on standard
/// error, `{"error": ..., "code": ..., "path": ..., "field": ..., "offset": ...}` (keys without a value
/// left out). The library classifies the error (``CatalogError``); this adds the CLI's own hint.
struct ErrorReport {
    var message: String
    var code: String?
    var path: String?
    var field: String?
    var offset: UInt64?

    init(_ error: any Error) {
        if let failure = error as? CommandFailure {
            message = failure.description
            return
        }
        let classified = CatalogError(classifying: error)
        message = classified.message + (classified.remedy.map { "; " + Self.hint($0) } ?? "")
        code = classified.code.rawValue
        path = classified.path
        field = classified.field
        offset = classified.offset
    }

    /// A library ``Remedy`` in the CLI's words: the flag or command that does it.
    static func hint(_ remedy: Remedy) -> String {
        switch remedy {
        case .scanFirst: return "run 'extentdb scan' or drop --no-rescan"
        case .pinFormat(let formats): return "pass --image-format \(formats.joined(separator: " or ")) to say which it is"
        case .trustDirectory:
            return "pass --trust-root DIR for a directory of shared images, or --allow-outside-backing to trust every file"
        case .readAsRaw: return "pass --image-format raw to read its bytes as a raw disk"
        case .outputFile: return "give a file with --to"
        case .clusterSize(let size): return "--cluster-size \(size) fits"
        case .digestScanFirst: return "run 'extentdb scan --digests' on it first"
        }
    }

    /// The exit status of a failure: 2 for a request that cannot be right, 1 for everything else.
    static func exitStatus(_ error: any Error) -> Int32 {
        if error is CommandFailure { return ExitStatus.failure }
        switch CatalogError(classifying: error).code {
        case .invalidArgument: return ExitStatus.usage
        case .notFound, .notIndexed, .stale, .missing, .replaced, .refused, .invalidImage, .invalidExport, .busy, .indexUnavailable,
            .indexReadOnly, .ioFailed, .internalError:
            return ExitStatus.failure
        }
    }

    /// The line or JSON object for standard error.
    func rendered(json: Bool) -> String {
        guard json else { return "extentdb: \(message)" }
        var object: [String: Any] = ["error": message]
        if let code { object["code"] = code }
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
