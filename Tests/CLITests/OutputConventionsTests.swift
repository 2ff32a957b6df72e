import Foundation
import Testing

@testable import TestSupport

/// What users expect of a command-line tool's output: a write that fails is an error, and a command that
/// only reads an index does not create one.
@Suite(.serialized) struct OutputConventionsTests {
    /// Every subcommand that writes to standard output, and the two flags that print; `forget` comes last
    /// (it empties the index). `nbd` and `serve` log to standard error.
    static let printingCommands = [
        "list", "info root/vmB/disk.qcow2", "map root/vmB/disk.qcow2", "read-headers root/vmB/disk.qcow2",
        "export root/vmB/disk.qcow2 --format raw", "export root/vmB/disk.qcow2 --format qcow2", "report", "check",
        "diff root/vmB/disk.qcow2 root/vmB/disk.qcow2", "scan root/vmB/disk.qcow2", "gc", "vacuum", "prune", "--help",
        "--version", "map --help", "forget root/vmB/disk.qcow2",
    ]

    @Test("with standard output on /dev/full, every command that prints (and --help, --version) exits 1 and says so")
    func writeErrorsAreErrors() throws {
        let workspace = try makeTenantsWorkspace()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let result = try script(
            """
            $X scan root/vmB/disk.qcow2 > /dev/null
            for command in \(Self.printingCommands.map { "\"\($0)\"" }.joined(separator: " ")); do
                status=0; $X $command > /dev/full 2> err.txt || status=$?
                echo "$command: $status $(grep -c 'No space left on device' err.txt)"
            done
            """, database: directory.appendingPathComponent("index.sqlite").path, in: directory)
        let expected =
            Self.printingCommands.map { "\($0): 1 1" }.joined(separator: "\n") + "\n"
        #expect(result.stdout == expected, "\(result.stdout)\n\(result.stderr)")
    }

    @Test("a command that only reads the index says there is none, exits 1 and creates nothing")
    func noIndexNoCreation() throws {
        let workspace = try makeTenantsWorkspace()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let result = try script(
            """
            for command in list check gc prune vacuum "forget root/vmB/disk.qcow2"; do
                status=0; $X $command --db typo/x.sqlite 2> err.txt || status=$?
                echo "$command: $status $(grep -c 'no index at' err.txt)"
            done
            test -e typo && echo created
            true
            """, database: directory.appendingPathComponent("index.sqlite").path, in: directory)
        let expected =
            ["list", "check", "gc", "prune", "vacuum", "forget root/vmB/disk.qcow2"].map { "\($0): 1 1" }.joined(separator: "\n") + "\n"
        #expect(result.stdout == expected, "\(result.stdout)\n\(result.stderr)")
    }
}
