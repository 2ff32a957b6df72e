import Foundation

@testable import TestSupport

#if canImport(Glibc)
    import Glibc
#endif

/// A running server (`extentdb nbd` or `qemu-nbd`) on a Unix socket in a test directory; `stop()` kills it.
final class NBDServerProcess {
    private let process: BackgroundProcess
    let socket: String
    let log: URL
    var uri: String { "nbd+unix:///?socket=\(socket)" }

    /// Starts `extentdb nbd image --socket …` and waits (at most 60 s) until it says it is serving.
    init(extentdb image: String, database: String, in directory: URL, arguments: [String] = []) throws {
        socket = directory.appendingPathComponent("nbd-\(UUID().uuidString.prefix(8)).sock").path
        log = directory.appendingPathComponent("nbd-\(UUID().uuidString.prefix(8)).log")
        var environment = ProcessInfo.processInfo.environment
        environment["EXTENTDB_DB"] = database
        process = try BackgroundProcess(
            productsDirectory.appendingPathComponent("extentdb"), ["nbd", image, "--socket", socket] + arguments, environment: environment,
            in: directory, log: log)
        try waitUntil { (try? String(contentsOf: self.log, encoding: .utf8))?.contains("serving") == true }
    }

    /// Starts `qemu-nbd -r -A -t` (read-only, allocation depth, persistent) and waits until it accepts.
    /// - Parameter workingDirectory: where qemu resolves relative data-file names (the image's directory).
    init(qemuNBD image: String, format: String, in directory: URL, workingDirectory: URL? = nil) throws {
        socket = directory.appendingPathComponent("qemu-\(UUID().uuidString.prefix(8)).sock").path
        log = directory.appendingPathComponent("qemu-\(UUID().uuidString.prefix(8)).log")
        process = try BackgroundProcess(
            URL(fileURLWithPath: "/usr/bin/qemu-nbd"), ["-r", "-A", "-t", "-f", format, "-k", socket, image],
            in: workingDirectory ?? directory, log: log)
        try waitUntil { Self.accepts(self.socket) }
    }

    /// True when a Unix socket at `path` accepts a connection (which is closed at once).
    static func accepts(_ path: String) -> Bool {
        let descriptor = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8.prefix(107)) + [0]
        withUnsafeMutableBytes(of: &address.sun_path) { raw in raw.copyBytes(from: bytes) }
        return withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0
            }
        }
    }

    private func waitUntil(_ ready: () -> Bool) throws {
        for _ in 0..<1200 {
            if ready() { return }
            guard process.isRunning else { throw CommandFailed(command: "server", status: process.terminationStatus, stderr: logText) }
            usleep(50_000)
        }
        stop()
        throw CommandFailed(command: "server start", status: -1, stderr: logText)
    }

    var logText: String { process.logText }

    var isRunning: Bool { process.isRunning }

    /// Kills the server with SIGKILL: a child of the test runner inherits its blocked signals, and
    /// qemu-nbd (unlike extentdb, which unblocks them) would never see SIGTERM.
    func stop() { process.stop(signal: SIGKILL) }
}

/// One row of a block status map: offset, length and the context's value.
struct MapRow: Equatable, CustomStringConvertible {
    var offset: UInt64
    var length: UInt64
    var value: UInt32
    var description: String { "\(offset)+\(length)=\(value)" }
}

/// Merges neighbours with the same value (servers may split a map at request boundaries).
func merged(_ rows: [MapRow]) -> [MapRow] {
    var out: [MapRow] = []
    for row in rows where row.length > 0 {
        if let last = out.last, last.value == row.value, last.offset + last.length == row.offset {
            out[out.count - 1].length += row.length
        } else {
            out.append(row)
        }
    }
    return out
}

/// `nbdinfo --map=CONTEXT URI`, parsed.
func nbdinfoMap(_ uri: String, context: String, in directory: URL) throws -> [MapRow] {
    let result = try runProcess(URL(fileURLWithPath: "/usr/bin/timeout"), ["60", "nbdinfo", "--map=\(context)", uri], in: directory)
    guard result.status == 0 else { throw CommandFailed(command: "nbdinfo --map=\(context)", status: result.status, stderr: result.stderr) }
    let rows = result.stdout.split(separator: "\n").compactMap { line -> MapRow? in
        let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard fields.count >= 3, let offset = UInt64(fields[0]), let length = UInt64(fields[1]), let value = UInt32(fields[2]) else {
            return nil
        }
        return MapRow(offset: offset, length: length, value: value)
    }
    return merged(rows)
}

/// What `extentdb map --output json` says each context should report.
func expectedMaps(_ image: String, database: String, in directory: URL, arguments: [String] = []) throws -> (
    allocation: [MapRow], depth: [MapRow]
) {
    let result = try extentdb(["map", "--output", "json", image] + arguments, database: database, directory: directory)
    guard result.status == 0 else { throw CommandFailed(command: "extentdb map", status: result.status, stderr: result.stderr) }
    let list = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]] ?? []
    var allocation: [MapRow] = []
    var depth: [MapRow] = []
    for entry in list {
        let start = (entry["start"] as? NSNumber)?.uint64Value ?? 0
        let length = (entry["length"] as? NSNumber)?.uint64Value ?? 0
        let data = entry["data"] as? Bool ?? false
        let zero = entry["zero"] as? Bool ?? false
        let present = entry["present"] as? Bool ?? false
        let layer = (entry["depth"] as? NSNumber)?.uint32Value ?? 0
        allocation.append(MapRow(offset: start, length: length, value: (data ? 0 : 1) | (zero ? 2 : 0)))
        depth.append(MapRow(offset: start, length: length, value: present ? layer + 1 : 0))
    }
    return (merged(allocation), merged(depth))
}
