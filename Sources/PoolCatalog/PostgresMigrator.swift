import AllocationIndex
import PostgresNIO

/// Applies `migrations/postgres/NNNN_name.sql` in order, each once, recording them in `extentdb_migrations`.
///
/// All pending migrations are applied in one transaction that first takes a transaction-level advisory
/// lock, so hosts that start at once queue: the first applies, the others find nothing left to do.
enum PostgresMigrator {
    /// The advisory lock key every extentdb process migrates under ("EXDBMIGR").
    static let lockKey: Int64 = 0x4558_4442_4D49_4752

    static var migrationNames: [String] { EmbeddedMigrations.all.map(\.name) }

    /// Applies what is pending; returns the names applied, in order. A catalog that has every migration is
    /// told by one read, without the lock (every command opens the store; a read-only role may not lock or
    /// create anything).
    static func migrate(_ database: BlockingPostgres) throws -> [String] {
        let names = Set(migrationNames)
        let current = try? database.withConnection { session in
            try session.rows("SELECT name FROM extentdb_migrations").map { try $0.decode(String.self) }
        }
        if let current, names.isSubset(of: Set(current)) { return [] }
        return try database.transaction { session in
            try session.execute("SELECT pg_advisory_xact_lock(\(lockKey))")
            try session.execute(
                "CREATE TABLE IF NOT EXISTS extentdb_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
            let applied = Set(try session.rows("SELECT name FROM extentdb_migrations").map { try $0.decode(String.self) })
            var done: [String] = []
            for migration in EmbeddedMigrations.all where !applied.contains(migration.name) {
                for statement in SQLStatements.split(migration.sql) {
                    try session.execute(PostgresQuery(unsafeSQL: statement))
                }
                try session.execute("INSERT INTO extentdb_migrations (name) VALUES (\(migration.name))")
                done.append(migration.name)
            }
            return done
        }
    }

    /// The migrations the catalog has, in order.
    static func applied(_ database: BlockingPostgres) throws -> [String] {
        try database.withConnection { session in
            try session.rows("SELECT name FROM extentdb_migrations ORDER BY name").map { try $0.decode(String.self) }
        }
    }
}

/// Splits a migration file into statements (the extended query protocol runs one at a time): at semicolons
/// outside quotes, comments and dollar-quoted bodies.
enum SQLStatements {
    static func split(_ sql: String) -> [String] {
        var statements: [String] = []
        var current = ""
        let characters = Array(sql)
        var index = 0
        var quote: Character?
        var dollarTag: String?
        while index < characters.count {
            let character = characters[index]
            if let tag = dollarTag {
                if sql.hasPrefix(tag, at: index, in: characters) {
                    current += tag
                    index += tag.count
                    dollarTag = nil
                    continue
                }
            } else if let open = quote {
                if character == open { quote = nil }
            } else if character == "-", index + 1 < characters.count, characters[index + 1] == "-" {
                while index < characters.count, characters[index] != "\n" { index += 1 }
                continue
            } else if character == "'" || character == "\"" {
                quote = character
            } else if character == "$", let end = characters[(index + 1)...].firstIndex(of: "$"),
                characters[(index + 1)..<end].allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" })
            {
                let tag = String(characters[index...end])
                current += tag
                index = end + 1
                dollarTag = tag
                continue
            } else if character == ";" {
                let statement = current.trimmingCharacters(in: .whitespacesAndNewlines)
                if !statement.isEmpty { statements.append(statement) }
                current = ""
                index += 1
                continue
            }
            current.append(character)
            index += 1
        }
        let last = current.trimmingCharacters(in: .whitespacesAndNewlines)
        if !last.isEmpty { statements.append(last) }
        return statements
    }
}

extension String {
    fileprivate func hasPrefix(_ tag: String, at index: Int, in characters: [Character]) -> Bool {
        let tagCharacters = Array(tag)
        guard index + tagCharacters.count <= characters.count else { return false }
        return Array(characters[index..<(index + tagCharacters.count)]) == tagCharacters
    }
}
