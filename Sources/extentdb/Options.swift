import AllocationIndex
import ArgumentParser
import Foundation

/// The index location every command takes.
struct IndexOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "Index database file.",
            discussion: "Default: $EXTENTDB_DB, else $XDG_DATA_HOME/extentdb/index.sqlite (~/.local/share/extentdb/index.sqlite).",
            valueName: "path"))
    var db: String?

    var resolvedPath: String {
        if let db { return db }
        let environment = ProcessInfo.processInfo.environment
        if let path = environment["EXTENTDB_DB"], !path.isEmpty { return path }
        if let data = environment["XDG_DATA_HOME"], !data.isEmpty { return data + "/extentdb/index.sqlite" }
        let home = environment["HOME"] ?? NSHomeDirectory()
        return home + "/.local/share/extentdb/index.sqlite"
    }

    func openStore() throws -> IndexStore {
        do {
            return try IndexStore(path: resolvedPath)
        } catch {
            throw CommandFailure("cannot open index \(resolvedPath): \(error)")
        }
    }
}

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case human
    case json
}

/// A failure with a message meant for the user; exit code 1.
struct CommandFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
