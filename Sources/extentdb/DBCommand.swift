import AllocationIndex
import ArgumentParser
import Foundation
import PoolCatalog

/// `extentdb db`: the index database itself (for now, its schema).
struct DBCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "db", abstract: "Work on the index database itself.", subcommands: [DBMigrateCommand.self])
}

/// `extentdb db migrate`: applies pending migrations and says which (every command also does it on open;
/// this one is for a deployment step, or the first host of a pool).
struct DBMigrateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Apply the index's pending schema migrations and print what was applied.",
        discussion: Help.reflow(
            """
            For a PostgreSQL catalog, hosts that start at once take turns under an advisory lock: the migrations are applied once.
            A SQLite index is migrated the same way whenever a command opens it for writing.
            """))

    @OptionGroup var index: IndexOptions

    @Option(help: "human or json.")
    var output: OutputFormat = .human

    func run() throws {
        let location = try index.location()
        let before: Set<String>
        let after: [String]
        switch location {
        case .sqlite(let path):
            before = FileManager.default.fileExists(atPath: path) ? Set(try Self.sqliteApplied(path)) : []
            let store = try index.openStore()
            guard let sqlite = store as? IndexStore else { throw CommandFailure("\(location) is not a SQLite index") }
            after = try sqlite.appliedMigrations()
        case .postgres(let url):
            let store: PostgresStore
            do {
                store = try PostgresStore(
                    location: url, password: PostgresPassword.lookup(for: url, warn: { Console.error("extentdb: warning: \($0)") }),
                    maximumConnections: 1, migrate: false)
            } catch {
                throw CommandFailure("cannot open index: \(error)")
            }
            before = Set((try? store.appliedMigrations()) ?? [])
            _ = try store.migrate()
            after = try store.appliedMigrations()
        }
        let applied = after.filter { !before.contains($0) }
        try LifecycleOutput.print(
            output, ["index": location.description, "applied": applied, "schema": after],
            human: {
                for name in applied { Console.print("applied \(name)") }
                Console.print("schema: \(after.last ?? "none") (\(applied.isEmpty ? "nothing to apply" : "\(applied.count) applied"))")
            })
    }

    /// The migrations a SQLite index has, read without migrating it.
    static func sqliteApplied(_ path: String) throws -> [String] {
        do {
            return try IndexStore.appliedMigrations(path: path)
        } catch {
            throw CommandFailure("cannot open index \(path): \(error)")
        }
    }
}
