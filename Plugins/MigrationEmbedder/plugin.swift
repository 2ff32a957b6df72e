import Foundation
import PackagePlugin

/// Embeds `migrations/*.sql` (at the package root) into the target as Swift source, so the installed
/// binary carries its schema wherever it runs from. Files are applied in file-name order.
@main
struct MigrationEmbedder: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        // The PostgreSQL catalog has its own series (another SQL dialect); every other target the SQLite one.
        let base = context.package.directoryURL.appending(path: "migrations")
        let directory = target.name == "PoolCatalog" ? base.appending(path: "postgres") : base
        let files = try FileManager.default
            .contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "sql" }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
        let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedMigrations.swift")
        return [
            .buildCommand(
                displayName: "Embedding \(files.count) migrations",
                executable: try context.tool(named: "embed-migrations").url,
                arguments: [output.path] + files.map(\.path),
                inputFiles: files,
                outputFiles: [output]
            )
        ]
    }
}
