import CExtentShims
import Foundation
import Operations
import Report

#if canImport(Glibc)
    import Glibc
#endif

/// Buffered standard output and unbuffered diagnostics on standard error.
enum Console {
    nonisolated(unsafe) static var output = ByteSink(descriptor: 1)

    /// Writes a diagnostic line; control characters in it (from file names and header fields) are escaped.
    static func error(_ message: String) {
        let safe = TerminalText.escaped(message)
        let line = safe.hasSuffix("\n") ? safe : safe + "\n"
        FileHandle.standardError.write(Data(line.utf8))
    }

    /// Redraws a one-line status on standard error (a terminal), without a newline.
    static func progress(_ text: String) {
        extentdb_set_progress_shown(1)
        FileHandle.standardError.write(Data(("\r\u{1B}[K" + TerminalText.escaped(text, keepingNewlines: false)).utf8))
    }

    /// Clears the status line drawn by ``progress(_:)``.
    static func endProgress() {
        extentdb_set_progress_shown(0)
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }

    /// Writes a line of human output; control characters other than newlines and tabs are escaped, so a
    /// name chosen by an image's author cannot drive the terminal.
    static func print(_ text: String) {
        output.write(TerminalText.escaped(text))
        output.write("\n")
    }

    /// Flushes standard output; a failed write (a full disk, a closed pipe) is an error, never a silent
    /// exit 0 with nothing written.
    static func flushStandardOutput() throws {
        try output.flush()
    }

    static var standardErrorIsTerminal: Bool { isatty(2) == 1 }
}
