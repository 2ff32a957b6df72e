import Foundation
import ImageFormats
import Scanner
import Testing

@testable import TestSupport

/// One file of a fuzz input: its size and its non-zero stretches (scripts/fuzz-input-to-swift.py prints
/// them from a crash artifact), so an input of kilobytes reads as a few lines.
struct FuzzFile {
    enum Piece {
        case bytes(Int, String)
        case fill(Int, UInt8, Int)
    }

    var name: String
    var size: Int
    var pieces: [Piece]

    var contents: [UInt8] {
        var bytes = [UInt8](repeating: 0, count: size)
        for piece in pieces {
            switch piece {
            case .bytes(let offset, let hex):
                var index = hex.startIndex
                var position = offset
                while index < hex.endIndex {
                    let next = hex.index(index, offsetBy: 2)
                    bytes[position] = UInt8(hex[index..<next], radix: 16) ?? 0
                    position += 1
                    index = next
                }
            case .fill(let offset, let byte, let count):
                for position in offset..<(offset + count) { bytes[position] = byte }
            }
        }
        return bytes
    }
}

/// Crashes the fuzz harnesses in Fuzz/ found, replayed through the scanner exactly as the harness ran them
/// (files written to a directory, the first one scanned). Each must now fail with an error naming the
/// field and its offset.
@Suite struct FuzzRegressionTests {
    /// Writes `files` to a fresh directory, scans the first, and returns the error the scan threw.
    func scanError(_ files: [FuzzFile]) throws -> String? {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        for file in files {
            try Data(file.contents).write(to: directory.url.appendingPathComponent(file.name))
        }
        do {
            _ = try ChainScanner.scan(path: directory.path(files[0].name))
            return nil
        } catch {
            return "\(error)"
        }
    }

    @Test("qcow2 crash-7c1fca39: a refcount table entry near 2^64 overflowed the preallocation probe")
    func refcountBlockOffsetOverflow() throws {
        // A v3 image with 512-byte clusters whose refcount table (at 512) holds 0xFFFF...FE00.
        let error = try scanError([
            FuzzFile(
                name: "disk.qcow2", size: 1656,
                pieces: [
                    .bytes(0, "514649fb000000030000000000000088000000040000000900000000000010"),
                    .bytes(39, "010000000000000600000000000000020000000001"),
                    .bytes(99, "0400000070"),
                    .bytes(112, "e2792aca00000003726177"),
                    .bytes(136, "62617365"),
                    .fill(507, 0xff, 105),
                    .bytes(623, "04"),
                    .fill(963, 0x42, 494),
                ])
        ])
        #expect(
            error?.contains("refcount table entry at offset 512: value 18446744073709551104 out of bounds (limit 1656)") == true,
            "\(error ?? "no error")")
    }
}
