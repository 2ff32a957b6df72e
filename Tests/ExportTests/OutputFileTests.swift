import Foundation
import Testing

@testable import Export
@testable import TestSupport

#if canImport(Glibc)
    import Glibc
#endif

/// The output file never writes through a name someone else chose: planted links, FIFOs, leftovers.
@Suite struct OutputFileTests {
    /// Writes `text` through an ``OutputFile`` and commits it.
    func write(_ text: String, to file: OutputFile) throws {
        let bytes = Array(text.utf8)
        #expect(Glibc.write(file.descriptor, bytes, bytes.count) == bytes.count)
        try file.commit()
    }

    @Test("a symbolic link planted at the partial file's name is never followed (named fallback)")
    func plantedLink() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let victim = directory.path("victim")
        try "precious".write(toFile: victim, atomically: false, encoding: .utf8)
        // The attacker knows the name the first attempt will use and plants a link there.
        let names = ["predictable", "second"]
        let counter = Counter()
        let planted = directory.path(".out.img.extentdb-\(getpid())-predictable.partial")
        #expect(symlink(victim, planted) == 0)
        let file = try OutputFile(path: directory.path("out.img"), useTemporaryFile: false, names: { names[counter.next()] })
        #expect(file.partialName == ".out.img.extentdb-\(getpid())-second.partial")
        try write("image", to: file)
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "precious")
        #expect(try String(contentsOfFile: directory.path("out.img"), encoding: .utf8) == "image")
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: planted)) == victim)
    }

    @Test("with O_TMPFILE nothing exists under any name until commit; abandoning leaves nothing")
    func unnamedUntilCommit() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let file = try OutputFile(path: directory.path("out.img"))
        #expect(file.partialName == nil)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.url.path).isEmpty)
        file.abandon()
        let named = try OutputFile(path: directory.path("out.img"), useTemporaryFile: false)
        named.abandon()
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.url.path).isEmpty)
    }

    @Test("partial files of a killed export (dead PID) are removed by the next export to the same target")
    func abandonedPartials() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        // PID 2^22 + 1 is above Linux's pid_max limit, so no process has it.
        let dead = directory.path(".out.img.extentdb-4194305-abc.partial")
        let live = directory.path(".out.img.extentdb-\(getpid())-abc.partial")
        let other = directory.path(".other.img.extentdb-4194305-abc.partial")
        for path in [dead, live, other] { try "x".write(toFile: path, atomically: false, encoding: .utf8) }
        let file = try OutputFile(path: directory.path("out.img"))
        try write("image", to: file)
        #expect(!FileManager.default.fileExists(atPath: dead))
        #expect(FileManager.default.fileExists(atPath: live))
        #expect(FileManager.default.fileExists(atPath: other))
    }

    @Test("an existing target that is not a regular file is refused at creation")
    func specialTargets() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        #expect(mkfifo(directory.path("fifo"), 0o600) == 0)
        #expect(symlink("/etc/passwd", directory.path("link")) == 0)
        for name in ["fifo", "link"] {
            #expect(throws: ExportError.self) { try OutputFile(path: directory.path(name)) }
        }
        #expect(throws: ExportError.self) { try OutputFile(path: "/dev/null") }
    }
}

/// A counter shared with a `@Sendable` name source.
final class Counter: @unchecked Sendable {
    private var value = 0
    private let lock = NSLock()
    func next() -> Int {
        lock.lock()
        defer { lock.unlock() }
        defer { value += 1 }
        return value
    }
}
