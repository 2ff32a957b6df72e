import CExtentShims
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Where an export goes: a file descriptor written front to back, with its running length.
///
/// Writes are loops over `write(2)` (short writes and EINTR handled); a closed pipe or a full disk is an
/// ``ExportError/output(_:)`` naming the destination.
public final class ExportOutput {
    public let descriptor: Int32
    public let name: String
    /// True for a regular file, where holes (`lseek` past the end, `ftruncate`) and `copy_file_range` work.
    public let isRegularFile: Bool
    public private(set) var position: UInt64 = 0
    /// Called with the number of bytes just sent: written, or copied in the kernel. Holes skipped in a
    /// regular file are not sent and are not reported.
    public var progress: ((UInt64) -> Void)?
    /// Called once, before the first byte, with the number of bytes the export will send; the calls to
    /// `progress` add up to it. Writers only work the figure out when someone listens.
    public var expectsTotal: ((UInt64) -> Void)?
    /// The total announced with ``announce(total:)``, if any.
    public private(set) var announcedTotal: UInt64?
    /// The bytes reported to `progress` so far.
    public private(set) var reportedBytes: UInt64 = 0
    /// Flush the file to stable storage before it is renamed into place (`--fsync`).
    public var syncsOnFinish = false

    public init(descriptor: Int32, name: String) {
        self.descriptor = descriptor
        self.name = name
        var info = stat()
        let known = fstat(descriptor, &info) == 0
        isRegularFile = known && (info.st_mode & S_IFMT) == S_IFREG
        if known && (info.st_mode & S_IFMT) == S_IFIFO {
            // A larger pipe buffer means fewer wake-ups of the reader on the other end (best effort).
            _ = extentdb_set_pipe_size(descriptor, 1 << 20)
        }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        var done = 0
        while done < bytes.count {
            let result = Glibc.write(descriptor, base + done, bytes.count - done)
            if result < 0 {
                if errno == EINTR { continue }
                let code = errno
                throw ExportError.output("\(name): write failed at byte \(position + UInt64(done)): \(String(cString: strerror(code)))")
            }
            done += result
        }
        position += UInt64(bytes.count)
        report(UInt64(bytes.count))
    }

    /// True when a listener wants the export's total (``expectsTotal``), so writers may skip the extra
    /// pass over the index that works it out.
    public var wantsTotal: Bool { expectsTotal != nil }

    /// Announces how many bytes the export will send (see ``expectsTotal``).
    public func announce(total: UInt64) {
        announcedTotal = total
        expectsTotal?(total)
    }

    /// Reports `count` bytes as sent (written here, or copied into the file by the kernel).
    public func report(_ count: UInt64) {
        reportedBytes += count
        progress?(count)
    }

    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    /// Writes `bytes`, leaving each 4 KiB block (aligned to the output) that holds only zeros as a hole
    /// (or zeroed, over a copy of the base): `qemu-img convert -S 4k`. Into a stream every byte is written.
    public func writeDetectingZeros(_ bytes: UnsafeRawBufferPointer) throws {
        guard isRegularFile else { return try write(bytes) }
        try Self.forEachRun(of: bytes, at: position) { run, zero in
            let piece = UnsafeRawBufferPointer(rebasing: bytes[run])
            if zero {
                try self.zero(UInt64(piece.count))
                report(UInt64(piece.count))
            } else {
                try write(piece)
            }
        }
    }

    /// Splits `bytes`, which go to output offset `offset`, into runs of whole 4 KiB blocks (aligned to the
    /// output) that hold only zeros and runs of anything else, in order.
    public static func forEachRun(of bytes: UnsafeRawBufferPointer, at offset: UInt64, _ body: (Range<Int>, Bool) throws -> Void) rethrows {
        let block = 4096
        var start = 0
        while start < bytes.count {
            // The piece up to the next 4 KiB boundary of the output, then neighbouring whole blocks of its kind.
            let length = min(block - Int((offset + UInt64(start)) % UInt64(block)), bytes.count - start)
            let zero = length == block && isZero(UnsafeRawBufferPointer(rebasing: bytes[start..<(start + length)]))
            var end = start + length
            if length == block {
                while end + block <= bytes.count, isZero(UnsafeRawBufferPointer(rebasing: bytes[end..<(end + block)])) == zero {
                    end += block
                }
            }
            try body(start..<end, zero)
            start = end
        }
    }

    @inline(__always)
    public static func isZero(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var accumulated: UInt64 = 0
        var offset = 0
        while offset + 8 <= bytes.count {
            accumulated |= bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
            offset += 8
        }
        while offset < bytes.count {
            accumulated |= UInt64(bytes[offset])
            offset += 1
        }
        return accumulated == 0
    }

    /// Writes `count` zero bytes (streams) from a shared zero buffer.
    public func writeZeros(_ count: UInt64) throws {
        var remaining = count
        while remaining > 0 {
            let piece = Int(min(remaining, UInt64(Self.zeros.count)))
            try Self.zeros.withUnsafeBytes { try write(UnsafeRawBufferPointer(rebasing: $0[0..<piece])) }
            remaining -= UInt64(piece)
        }
    }

    /// Moves forward over `count` bytes that read as zero (or are filled at explicit offsets): a hole in a
    /// regular file, which sends nothing and reports no progress; zeros in a stream, which are sent.
    public func skip(_ count: UInt64) throws {
        guard isRegularFile else { return try writeZeros(count) }
        guard lseek(descriptor, off_t(position + count), SEEK_SET) >= 0 else {
            throw ExportError.output("\(name): seek failed: \(String(cString: strerror(errno)))")
        }
        position += count
    }

    /// Sends `count` bytes of `source` at `offset` to the output in the kernel (`sendfile`: page
    /// references into a pipe, no copy through user space).
    /// - Returns: false when the kernel cannot do it for this pair (the caller then reads and writes).
    public func send(from source: Int32, offset: UInt64, count: UInt64) throws -> Bool {
        var inOffset = Int64(offset)
        var remaining = count
        while remaining > 0 {
            let sent = extentdb_sendfile(descriptor, source, &inOffset, remaining)
            if sent < 0 {
                let code = extentdb_errno()
                if code == EINTR || code == EAGAIN { continue }
                if (code == EINVAL || code == ENOSYS) && remaining == count { return false }
                throw ExportError.output(
                    "\(name): write failed at byte \(position + (count - remaining)): \(String(cString: strerror(code)))")
            }
            if sent == 0 { throw ExportError.output("\(name): source ended at offset \(inOffset) while sending") }
            remaining -= UInt64(sent)
        }
        position += count
        report(count)
        return true
    }

    /// The file already holds the base's content (`export --into COPY`): a range the delta says reads as
    /// zeros must be zeroed, not skipped.
    public var holdsBase = false

    /// Makes the next `count` bytes read as zeros in a file that may hold other data: a punched hole, or
    /// zeros written where the file system cannot punch.
    public func zero(_ count: UInt64) throws {
        guard isRegularFile, holdsBase else { return try skip(count) }
        if extentdb_punch_hole(descriptor, Int64(position), Int64(count)) == 0 {
            try skip(count)
            return
        }
        guard lseek(descriptor, off_t(position), SEEK_SET) >= 0 else {
            throw ExportError.output("\(name): seek failed: \(String(cString: strerror(errno)))")
        }
        try writeZeros(count)
    }

    /// Fills the file with the content of the file at `path` (the copy of the base a delta is applied to):
    /// shared extents where the file system can (FICLONE), else its data segments copied by the kernel
    /// (holes stay holes). The output's position stays at 0.
    public func seed(fromFileAt path: String) throws {
        let source = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard source >= 0 else { throw ExportError.output("\(path): cannot open the copy: \(String(cString: strerror(errno)))") }
        defer { close(source) }
        var info = stat()
        guard fstat(source, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            throw ExportError.output("\(path): the copy to apply to must be a regular file")
        }
        holdsBase = true
        if extentdb_clone_file(descriptor, source) == 0 { return }
        let size = Int64(info.st_size)
        var offset: Int64 = 0
        while offset < size {
            let data = extentdb_seek_data(source, offset)
            guard data >= 0 else { break }  // ENXIO: only a hole remains
            let hole = max(data, min(extentdb_seek_hole(source, data), size))
            var from = data
            var to = data
            var remaining = UInt64(hole - data)
            while remaining > 0 {
                let copied = extentdb_copy_file_range(source, &from, descriptor, &to, remaining)
                guard copied > 0 else {
                    throw ExportError.output("\(path): copying it failed at byte \(from): \(String(cString: strerror(extentdb_errno())))")
                }
                remaining -= UInt64(copied)
            }
            offset = hole
        }
        guard ftruncate(descriptor, off_t(size)) == 0 else {
            throw ExportError.output("\(name): ftruncate failed: \(String(cString: strerror(errno)))")
        }
    }

    /// Sets the file length (regular files): the tail after the last write becomes a hole.
    public func finish(length: UInt64) throws {
        if isRegularFile {
            guard ftruncate(descriptor, off_t(length)) == 0 else {
                throw ExportError.output("\(name): ftruncate to \(length) failed: \(String(cString: strerror(errno)))")
            }
            if syncsOnFinish, fsync(descriptor) != 0 {
                throw ExportError.output("\(name): fsync failed: \(String(cString: strerror(errno)))")
            }
        } else if position < length {
            try writeZeros(length - position)
        }
    }

    static let zeros = [UInt8](repeating: 0, count: 1 << 20)
}
