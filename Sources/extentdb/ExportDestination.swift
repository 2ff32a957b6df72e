import CExtentShims
import Export
import Foundation
import ImageIO

#if canImport(Glibc)
    import Glibc
#endif

/// Where an export goes: an ``OutputFile`` (complete or absent, never partial) or standard output.
final class ExportDestination {
    let descriptor: Int32
    let name: String
    private let file: OutputFile?

    init(path: String?) throws {
        guard let path else {
            try Self.checkStandardOutput()
            descriptor = 1
            name = "standard output"
            file = nil
            return
        }
        let file = try OutputFile(path: path)
        self.file = file
        descriptor = file.descriptor
        name = path
    }

    /// Standard output must not be a terminal, and a regular file there must be written from byte 0:
    /// an image appended (`>>`) or written at an offset would be corrupt.
    static func checkStandardOutput() throws {
        guard isatty(1) == 0 else {
            throw CommandFailure("refusing to write a binary image to a terminal; use --to FILE or redirect standard output")
        }
        var info = stat()
        guard fstat(1, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { return }
        if fcntl(1, F_GETFL) & O_APPEND != 0 {
            throw CommandFailure("standard output is a file opened for appending (>>); an image must start at byte 0: use --to FILE or >")
        }
        let position = lseek(1, 0, SEEK_CUR)
        if position != 0 {
            throw CommandFailure(
                "standard output is a file positioned at byte \(position); an image must start at byte 0: use --to FILE or >")
        }
    }

    func commit(sync: Bool = false) throws {
        try file?.commit(sync: sync)
    }

    func abandon() {
        file?.abandon()
    }
}
