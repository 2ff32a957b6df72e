import Foundation

#if canImport(Glibc)
    import Glibc
#endif

// The one way tests run a process: `runProcess` to completion, `BackgroundProcess` for one that must stay up
// (a server) or be killed mid-way. Everything else (`run`, `shell`, `bash`, the CLI tests' `extentdb` and
// `script`) is a one-liner over `runProcess`.
//
// A child inherits the test runner's blocked signals, SIGTERM among them: extentdb unblocks them itself,
// other programs (qemu-nbd, bash) never see a SIGTERM, so background processes are stopped with SIGKILL and
// time limits come from `/usr/bin/timeout`, as they always have.

/// What a finished process printed and how it ended.
struct ProcessResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

struct CommandFailed: Error, CustomStringConvertible {
    var command: String
    var status: Int32
    var stderr: String
    var description: String { "\(command) exited \(status): \(stderr)" }
}

/// Runs an executable to completion with standard input from /dev/null. Output goes through temporary files,
/// so a process that fills one stream while the other is being read cannot deadlock the test, and a
/// background child that keeps a stream open cannot hold it up after the process exits.
/// - Parameters:
///   - environment: the whole environment; nil inherits the test runner's.
///   - directory: the working directory; nil keeps the test runner's.
///   - timeout: seconds after which `/usr/bin/timeout` ends the process (status 124); nil for no limit.
func runProcess(
    _ executable: URL, _ arguments: [String], environment: [String: String]? = nil, in directory: URL? = nil, timeout: Int? = nil
) throws -> ProcessResult {
    let scratch = try TemporaryDirectory(prefix: "extentdb-process")
    defer { scratch.cleanup() }
    let outURL = scratch.url.appendingPathComponent("stdout")
    let errURL = scratch.url.appendingPathComponent("stderr")
    FileManager.default.createFile(atPath: outURL.path, contents: nil)
    FileManager.default.createFile(atPath: errURL.path, contents: nil)
    let out = try FileHandle(forWritingTo: outURL)
    let err = try FileHandle(forWritingTo: errURL)
    let process = Process()
    if let timeout {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
        process.arguments = ["\(timeout)", executable.path] + arguments
    } else {
        process.executableURL = executable
        process.arguments = arguments
    }
    if let environment { process.environment = environment }
    if let directory { process.currentDirectoryURL = directory }
    process.standardOutput = out
    process.standardError = err
    process.standardInput = FileHandle.nullDevice
    try process.run()
    process.waitUntilExit()
    try out.close()
    try err.close()
    return ProcessResult(
        status: process.terminationStatus, stdout: String(decoding: try Data(contentsOf: outURL), as: UTF8.self),
        stderr: String(decoding: try Data(contentsOf: errURL), as: UTF8.self))
}

/// Runs a program found on PATH and returns its standard output; throws on a non-zero exit.
@discardableResult
func run(_ program: String, _ arguments: [String], in directory: URL? = nil) throws -> String {
    let result = try runProcess(URL(fileURLWithPath: "/usr/bin/env"), [program] + arguments, in: directory)
    guard result.status == 0 else {
        throw CommandFailed(command: ([program] + arguments).joined(separator: " "), status: result.status, stderr: result.stderr)
    }
    return result.stdout
}

/// Runs a bash script in `directory`; throws on a non-zero exit.
func shell(_ script: String, in directory: URL) throws {
    let result = try runProcess(URL(fileURLWithPath: "/bin/bash"), ["-c", script], in: directory)
    guard result.status == 0 else { throw CommandFailed(command: "bash -c \(script)", status: result.status, stderr: result.stderr) }
}

/// Runs a bash script in `directory` with a time limit; returns its result.
func bash(_ script: String, in directory: URL, seconds: Int = 120) throws -> ProcessResult {
    try runProcess(URL(fileURLWithPath: "/bin/bash"), ["-c", script], in: directory, timeout: seconds)
}

/// A process left running while the test goes on: a server, or a command to kill part-way. Its standard
/// input is /dev/null; its standard output and error go to `log` (created empty), or to /dev/null.
final class BackgroundProcess {
    private let process = Process()
    let log: URL?

    /// Starts `executable`; `environment` nil inherits the test runner's, `directory` nil keeps its working
    /// directory.
    init(_ executable: URL, _ arguments: [String], environment: [String: String]? = nil, in directory: URL? = nil, log: URL? = nil)
        throws
    {
        self.log = log
        process.executableURL = executable
        process.arguments = arguments
        if let environment { process.environment = environment }
        if let directory { process.currentDirectoryURL = directory }
        process.standardInput = FileHandle.nullDevice
        guard let log else {
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            return
        }
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let output = try FileHandle(forWritingTo: log)
        process.standardOutput = output
        process.standardError = output
        try process.run()
        try output.close()
    }

    /// What the process has written to its log so far.
    var logText: String { log.flatMap { try? String(contentsOf: $0, encoding: .utf8) } ?? "" }

    var isRunning: Bool { process.isRunning }

    var terminationStatus: Int32 { process.terminationStatus }

    /// Sends `signal` (SIGKILL unless told: see above) if the process still runs, and waits for it to end.
    func stop(signal: Int32 = SIGKILL) {
        if process.isRunning {
            kill(process.processIdentifier, signal)
            process.waitUntilExit()
        }
    }
}
