import PostgresNIO

/// Decodes a flat `Decodable` record (an ``ImageRecord``, a ``ScanRecord``, a ``ScanLayerRecord``) straight
/// from one result row: each key is read from the column named `prefix` + key, in its binary form.
///
/// A lookup or a listing reads an image, its latest scan and a layer in one row; decoding their columns this
/// way costs a fraction of parsing `row_to_json` texts with `JSONDecoder`, which the store used before. Only
/// what such records hold is supported: strings, 64-bit integers, booleans, NULLs, and `String`-backed enums;
/// anything else is a decoding error.
struct RowDecoder: Decoder {
    let row: PostgresRandomAccessRow
    /// Where this record's columns are in the row.
    let columns: Columns

    /// Where the columns named `prefix` + key are in the rows of one result (`i_` for `i.id AS i_id`, ...),
    /// by key: worked out once for all the rows of a result, which share their columns.
    struct Columns: Sendable {
        let prefix: String
        let indices: [String: Int]

        init(of row: PostgresRandomAccessRow, prefix: String) {
            self.prefix = prefix
            var indices: [String: Int] = [:]
            for (index, cell) in row.enumerated() where cell.columnName.hasPrefix(prefix) {
                indices[String(cell.columnName.dropFirst(prefix.count))] = index
            }
            self.indices = indices
        }
    }

    var codingPath: [any CodingKey] { [] }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        KeyedDecodingContainer(Cells<Key>(row: row, columns: columns))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        throw DecodingError.typeMismatch([Any].self, .init(codingPath: [], debugDescription: "a row holds no lists"))
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        throw DecodingError.typeMismatch(Any.self, .init(codingPath: [], debugDescription: "a row is read by column"))
    }

    /// The row's cells for one record.
    struct Cells<Key: CodingKey>: KeyedDecodingContainerProtocol {
        let row: PostgresRandomAccessRow
        let columns: Columns

        var codingPath: [any CodingKey] { [] }
        var allKeys: [Key] { columns.indices.keys.compactMap { Key(stringValue: $0) } }

        func contains(_ key: Key) -> Bool { columns.indices[key.stringValue] != nil }

        func cell(_ key: Key) throws -> PostgresCell {
            guard let index = columns.indices[key.stringValue] else {
                throw DecodingError.keyNotFound(
                    key, .init(codingPath: [key], debugDescription: "no column \(columns.prefix + key.stringValue)"))
            }
            return row[index]
        }

        /// An optional's cell: nil for a column the row lacks or a NULL (one lookup for `decodeIfPresent`).
        func decodeIfPresent(_ type: String.Type, forKey key: Key) throws -> String? { try optional(key)?.decode(String.self) }
        func decodeIfPresent(_ type: Int64.Type, forKey key: Key) throws -> Int64? { try optional(key)?.decode(Int64.self) }
        func decodeIfPresent(_ type: Bool.Type, forKey key: Key) throws -> Bool? { try optional(key)?.decode(Bool.self) }

        private func optional(_ key: Key) -> PostgresCell? {
            guard let index = columns.indices[key.stringValue] else { return nil }
            let cell = row[index]
            return cell.bytes == nil ? nil : cell
        }

        func decodeNil(forKey key: Key) throws -> Bool { try cell(key).bytes == nil }
        func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try cell(key).decode(Bool.self) }
        func decode(_ type: String.Type, forKey key: Key) throws -> String { try cell(key).decode(String.self) }
        func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try cell(key).decode(Int64.self) }
        func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try cell(key).decode(Int.self) }
        func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try unsupported(type, key) }
        func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try unsupported(type, key) }
        func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try unsupported(type, key) }
        func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try unsupported(type, key) }
        func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try unsupported(type, key) }
        func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try unsupported(type, key) }
        func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try unsupported(type, key) }
        func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try unsupported(type, key) }
        func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try unsupported(type, key) }
        func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try unsupported(type, key) }

        /// `String`-backed enums (an image's format) decode through a one-cell decoder.
        func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
            try T(from: CellDecoder(cell: try cell(key), key: key))
        }

        func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws
            -> KeyedDecodingContainer<NestedKey>
        {
            try unsupported(KeyedDecodingContainer<NestedKey>.self, key)
        }

        func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
            try unsupported((any UnkeyedDecodingContainer).self, key)
        }

        func superDecoder() throws -> any Decoder { RowDecoder(row: row, columns: columns) }
        func superDecoder(forKey key: Key) throws -> any Decoder { RowDecoder(row: row, columns: columns) }

        private func unsupported<T>(_ type: T.Type, _ key: Key) throws -> T {
            throw DecodingError.typeMismatch(type, .init(codingPath: [key], debugDescription: "column \(columns.prefix + key.stringValue)"))
        }
    }

    /// One cell, for a `String`-backed enum's `init(from:)`.
    struct CellDecoder: Decoder, SingleValueDecodingContainer {
        let cell: PostgresCell
        let key: any CodingKey

        var codingPath: [any CodingKey] { [key] }
        var userInfo: [CodingUserInfoKey: Any] { [:] }

        func container<Nested: CodingKey>(keyedBy type: Nested.Type) throws -> KeyedDecodingContainer<Nested> {
            throw DecodingError.typeMismatch(type, .init(codingPath: [key], debugDescription: "column \(cell.columnName) is one value"))
        }

        func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
            throw DecodingError.typeMismatch(
                [Any].self, .init(codingPath: [key], debugDescription: "column \(cell.columnName) is one value"))
        }

        func singleValueContainer() throws -> any SingleValueDecodingContainer { self }

        func decodeNil() -> Bool { cell.bytes == nil }
        func decode(_ type: Bool.Type) throws -> Bool { try cell.decode(Bool.self) }
        func decode(_ type: String.Type) throws -> String { try cell.decode(String.self) }
        func decode(_ type: Int64.Type) throws -> Int64 { try cell.decode(Int64.self) }
        func decode(_ type: Int.Type) throws -> Int { try cell.decode(Int.self) }
        func decode<T: Decodable>(_ type: T.Type) throws -> T {
            throw DecodingError.typeMismatch(type, .init(codingPath: [key], debugDescription: "column \(cell.columnName)"))
        }
    }
}
