import ArgumentParser
import CExtentShims
import Export
import Foundation
import Scanner

#if canImport(Glibc)
    import Glibc
#endif

/// Entry point: parses arguments and maps failures to exit codes —
/// 0 success, 1 bad input or image error, 2 usage error.
@main
enum Main {
    static func main() {
        signal(SIGPIPE, SIG_IGN)
        // SIGINT/SIGTERM/SIGHUP: remove a partial output file, end the progress line, exit 128 + signal.
        // A scan's open transaction is rolled back by SQLite, as after SIGKILL.
        extentdb_install_signal_cleanup()
        let subcommands = Set(Extentdb.configuration.subcommands.compactMap { $0.configuration.commandName })
        let given = Array(CommandLine.arguments.dropFirst())
        if given.isEmpty {
            // Nothing asked: the help, as a usage error (on standard error, exit 2), as git and qemu-img do.
            FileHandle.standardError.write(Data((Extentdb.helpMessage() + "\n").utf8))
            exit(ExitStatus.usage)
        }
        let arguments = CommandLineArguments.normalised(given, subcommands: subcommands)
        let json = CommandLineArguments.wantsJSON(arguments)
        if let word = UnknownCommand.word(in: given, subcommands: subcommands) {
            let message = UnknownCommand.message(for: word, subcommands: subcommands)
            Console.error(json ? ErrorReport(CommandFailure(message)).rendered(json: true) : "extentdb: \(message)")
            exit(ExitStatus.usage)
        }
        var command: ParsableCommand
        do {
            command = try Extentdb.parseAsRoot(arguments)
        } catch {
            let code = Extentdb.exitCode(for: error)
            let message = Extentdb.fullMessage(for: error)
            if code == .success {
                // --help, --version: a failed write of them is an error too.
                if !message.isEmpty { Console.print(message) }
                flushOrFail(json: json)
                exit(0)
            }
            Console.error(json ? ErrorReport(CommandFailure(message)).rendered(json: true) : message)
            exit(ExitStatus.usage)
        }
        do {
            try command.run()
            try Console.flushStandardOutput()
            exit(0)
        } catch let error as ExitCode {
            flushOrFail(json: json)
            exit(error.rawValue)
        } catch {
            flushOrFail(json: json)
            switch Extentdb.exitCode(for: error) {
            case .success:
                Console.print(Extentdb.fullMessage(for: error))
                flushOrFail(json: json)
                exit(0)
            case .validationFailure where !(error is CommandFailure):
                let message = Extentdb.fullMessage(for: error)
                Console.error(json ? ErrorReport(CommandFailure(message)).rendered(json: true) : message)
                exit(ExitStatus.usage)
            default:
                Console.error(ErrorReport(error).rendered(json: json))
                exit(ErrorReport.exitStatus(error))
            }
        }
    }

    /// Flushes standard output before an exit; a failed write ends the process with status 1 and says why.
    static func flushOrFail(json: Bool) {
        do {
            try Console.flushStandardOutput()
        } catch {
            Console.error(ErrorReport(error).rendered(json: json))
            exit(ExitStatus.failure)
        }
    }
}

enum ExitStatus {
    static let failure: Int32 = 1
    static let usage: Int32 = 2
}

struct Extentdb: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "extentdb",
        abstract: "Index the allocated extents of VHD, QCOW2 and raw disk images in SQLite, and answer from the index.",
        discussion: Help.reflow(
            """
            Scan once, then ask the index: `map` answers qemu-img map's question without re-walking
            the image's L1/L2 tables, and `read-headers` gives xapi the JSON it reads from vhd-tool.

            Exit codes: 0 success, 1 bad input or image error, 2 usage error.
            """),
        version: "extentdb \(extentdbVersion)",
        subcommands: [
            ScanCommand.self, MapCommand.self, InfoCommand.self, ReadHeadersCommand.self, ExportCommand.self, ReportCommand.self,
            DiffCommand.self, ChangesCommand.self, DigestsCommand.self, VerifyCommand.self, ListCommand.self, ForgetCommand.self,
            PruneCommand.self, GCCommand.self,
            VacuumCommand.self,
            CheckCommand.self, DBCommand.self, NBDCommand.self, ServeCommand.self,
        ]
    )
}
