import CExtentShims
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// Random-access reads of an image file with `pread`, looped until full (pread may return short counts).
///
/// The file is opened read-only; `close()` (or deinit) releases the descriptor.
public final class FileBlockSource: @unchecked Sendable {
    public let path: String
    public let descriptor: FileDescriptor
    /// Length of the file when it was opened.
    public let size: UInt64
    private var isClosed = false

    public init(path: String) throws(IOError) {
        self.path = path
        do {
            descriptor = try FileDescriptor.open(FilePath(path), .readOnly, options: [.closeOnExec])
        } catch {
            throw IOError(path: path, operation: "open", errno: error as? Errno)
        }
        let end: Int64
        do {
            end = try descriptor.seek(offset: 0, from: .end)
        } catch {
            try? descriptor.close()
            throw IOError(path: path, operation: "seek to end", errno: error as? Errno)
        }
        size = UInt64(end)
    }

    deinit { close() }

    public func close() {
        guard !isClosed else { return }
        isClosed = true
        try? descriptor.close()
    }

    /// Reads exactly `buffer.count` bytes at `offset`, or fewer only at end of file; returns the count read.
    @discardableResult
    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(IOError) -> Int {
        var done = 0
        while done < buffer.count {
            let chunk = UnsafeMutableRawBufferPointer(rebasing: buffer[done...])
            let count: Int
            do {
                count = try descriptor.read(fromAbsoluteOffset: Int64(offset) + Int64(done), into: chunk, retryOnInterrupt: true)
            } catch {
                throw IOError(path: path, operation: "read \(buffer.count) bytes at offset \(offset)", errno: error as? Errno)
            }
            if count == 0 { break }
            done += count
        }
        return done
    }

    /// Reads up to `count` bytes at `offset` (fewer at end of file) into a new array.
    public func read(at offset: UInt64, count: Int) throws(IOError) -> [UInt8] {
        guard count > 0 else { return [] }
        var bytes = [UInt8](repeating: 0, count: count)
        var got = 0
        var failure: IOError?
        bytes.withUnsafeMutableBytes { buffer in
            do throws(IOError) { got = try read(at: offset, into: buffer) } catch { failure = error }
        }
        if let failure { throw failure }
        if got < count { bytes.removeLast(count - got) }
        return bytes
    }

    /// Reads exactly `count` bytes at `offset`, failing with a message naming `field` if the file is shorter.
    public func readExactly(at offset: UInt64, count: Int, field: String) throws(IOError) -> [UInt8] {
        let bytes = try read(at: offset, count: count)
        guard bytes.count == count else {
            throw IOError(
                path: path, operation: "read \(field)",
                detail: "truncated at offset \(offset): needs \(count) bytes, file has \(bytes.count) there")
        }
        return bytes
    }

    /// The data segments of the file as sorted `[start, end)` byte ranges inside `[0, size)`.
    ///
    /// Asked of the file system with FIEMAP where it has it (unwritten, fallocated extents read as zeros
    /// and are not data), else with `SEEK_DATA`/`SEEK_HOLE`; see ``FileExtentMap``. On file systems without
    /// hole support the whole file is one segment.
    public func dataSegments() throws(IOError) -> [Range<UInt64>] {
        try FileExtentMap.dataSegments(descriptor: descriptor, size: size, path: path).segments
    }
}
