import Foundation
import Testing

@testable import AllocationIndex
@testable import TestSupport

/// An index another process is creating (tables made, application id not yet set) must read as ours.
@Suite struct OwnTablesTests {
    @Test("every table the migrations create is one the ownership check accepts")
    func migrationsTablesAreOurs() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let path = directory.path("index.sqlite")
        _ = try IndexStore(path: path)
        let output = try run(
            "/usr/bin/python3",
            [
                "-c",
                "import sqlite3, sys; print('\\n'.join(r[0] for r in sqlite3.connect(sys.argv[1]).execute(\"SELECT name FROM sqlite_master WHERE type = 'table'\")))",
                path,
            ])
        let tables = Set(output.split(separator: "\n").map(String.init))
        #expect(tables.contains("scan_digests") && tables.contains("scan_bitmaps"), "\(tables)")
        #expect(tables.isSubset(of: IndexStore.ownTables), "not accepted: \(tables.subtracting(IndexStore.ownTables))")
    }
}
