import AllocationIndex
import ArgumentParser
import Foundation
import Scanner

struct GCCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc",
        abstract: "Apply history retention: keep at most N scans per image and none older than D days.",
        discussion: Help.reflow(
            """
            The latest scan of every image is always kept. Without --keep or --keep-days, keeps \(ImageIndexer.defaultKeepScans)
            scans per image (what 'scan' keeps by default). --vacuum then gives the freed space back to the file system.
            """))

    @OptionGroup var index: IndexOptions

    @Option(help: "Scans kept per image.")
    var keep: Int?

    @Option(help: "Delete scans older than this many days.")
    var keepDays: Double?

    @Flag(help: "Give the freed space back afterwards (like 'extentdb vacuum').")
    var vacuum = false

    @Option(help: "human or json.")
    var output: OutputFormat = .human

    func validate() throws {
        if let keep, keep < 1 { throw ValidationError("--keep must be at least 1 (the latest scan is always kept)") }
        if let keepDays, !(keepDays >= 0) { throw ValidationError("--keep-days must not be negative") }
    }

    func run() throws {
        let store = try index.openStore(existing: true)
        guard !store.isReadOnly else { throw CommandFailure(StoreError.readOnly(index.resolvedPath).description) }
        let cutoff = keepDays.map { Int64((Date().timeIntervalSince1970 - $0 * 86_400) * 1e9) }
        let result = try store.collectGarbage(
            keep: keep ?? (keepDays == nil ? ImageIndexer.defaultKeepScans : nil), olderThanNanoseconds: cutoff)
        var object: [String: Any] = ["scans_deleted": result.scansDeleted, "layer_records_deleted": result.imagesForgotten]
        var sizes: (before: UInt64, after: UInt64)?
        if vacuum {
            sizes = try store.vacuum()
            object["bytes_before"] = sizes?.before
            object["bytes_after"] = sizes?.after
        }
        try LifecycleOutput.print(
            output, object,
            human: {
                Console.print(
                    "\(Plural.count(result.scansDeleted, "scan")) deleted, \(Plural.count(result.imagesForgotten, "unused layer record")) removed"
                )
                if let sizes { Console.print("index: \(Units.bytes(sizes.before)) -> \(Units.bytes(sizes.after))") }
            })
    }
}

struct VacuumCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vacuum", abstract: "Give the index's free space back to the file system (SQLite VACUUM).")

    @OptionGroup var index: IndexOptions

    @Option(help: "human or json.")
    var output: OutputFormat = .human

    func run() throws {
        let store = try index.openStore(existing: true)
        guard !store.isReadOnly else { throw CommandFailure(StoreError.readOnly(index.resolvedPath).description) }
        let sizes = try store.vacuum()
        try LifecycleOutput.print(
            output, ["bytes_before": sizes.before, "bytes_after": sizes.after],
            human: {
                Console.print("index: \(Units.bytes(sizes.before)) -> \(Units.bytes(sizes.after))")
            })
    }
}

struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Check the index: SQLite integrity, schema version, rows that point at nothing. Exit 1 if unhealthy.")

    @OptionGroup var index: IndexOptions

    @Option(help: "human or json.")
    var output: OutputFormat = .human

    func run() throws {
        let store = try index.openStore(existing: true)
        let check = try store.check()
        let object: [String: Any] = [
            "path": index.resolvedPath, "healthy": check.isHealthy,
            "integrity": check.integrityProblems.isEmpty ? ["ok"] : check.integrityProblems,
            "schema": check.appliedMigrations, "expected_schema": check.knownMigrations, "orphans": check.orphans,
            "read_only": store.isReadOnly,
        ]
        try LifecycleOutput.print(
            output, object,
            human: {
                Console.print("index: \(index.resolvedPath)\(store.isReadOnly ? " (read-only)" : "")")
                Console.print("integrity: " + (check.integrityProblems.isEmpty ? "ok" : check.integrityProblems.joined(separator: "; ")))
                Console.print(
                    "schema: \(check.appliedMigrations.last ?? "none")"
                        + (check.appliedMigrations == check.knownMigrations
                            ? " (current)" : " (expected \(check.knownMigrations.last ?? ""))"))
                Console.print("orphan rows: " + (check.orphans.isEmpty ? "none" : check.orphans.joined(separator: ", ")))
            })
        if !check.isHealthy { throw ExitCode(ExitStatus.failure) }
    }
}
