import CExtentShims
import Foundation
import ImageFormats
import ImageIO
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Copies file ranges into a regular output file, two at a time.
///
/// Ranges are queued with their target offsets and copied in batches by two threads, so both cores move
/// page-cache data. On file systems that offload `copy_file_range` (XFS and btrfs share extents, NFS 4.2
/// and SMB copy on the server) the kernel does the copy; on ext4 and tmpfs, where it is a splice-based
/// copy that measured ~1.8x slower here than `pread`/`pwrite` with a buffer per thread, those are used.
/// Each thread keeps its buffer for the copier's life (a fresh 1 MiB per piece cost a page fault per 4 KiB
/// and an `munmap`), and takes the next piece when it is free, so neither waits on a fixed share.
final class KernelCopier {
    /// statfs magics of file systems where `copy_file_range` is only an in-kernel byte copy.
    static let byteCopyFileSystems: Set<Int64> = [0xEF53 /* ext2/3/4 */, 0x0102_1994 /* tmpfs */]
    struct Job {
        var source: Int32
        var sourcePath: String
        var sourceOffset: UInt64
        var targetOffset: UInt64
        var count: UInt64
    }

    let target: Int32
    let name: String
    private var jobs: [Job] = []
    private var queuedBytes: UInt64 = 0
    /// Bytes queued before a batch is run.
    static let batchBytes: UInt64 = 256 << 20
    /// Largest single job: big extents are split so both threads get work.
    static let pieceBytes = Limits.Export.kernelCopyPieceBytes

    /// Whether the kernel's copy is worth it for this target (see the type's documentation).
    let usesKernelCopy: Bool
    /// Leave each 4 KiB block of zeros (aligned to the target) unwritten, a hole in the fresh target
    /// (`qemu-img convert -S 4k`); the copy then goes through user space, where the bytes can be seen.
    let skipsZeroBlocks: Bool

    /// - Parameters:
    ///   - kernelCopy: force one method (tests); nil chooses by the target's file system.
    ///   - skipsZeroBlocks: look for zero blocks (a target that is a new file, whose holes read as zeros).
    init(target: Int32, name: String, kernelCopy: Bool? = nil, skipsZeroBlocks: Bool = false) {
        self.target = target
        self.name = name
        self.skipsZeroBlocks = skipsZeroBlocks
        usesKernelCopy =
            skipsZeroBlocks ? false : kernelCopy ?? !Self.byteCopyFileSystems.contains(extentdb_filesystem_type(target))
        buffers = (0..<Self.threads).map { _ in
            UnsafeMutableRawBufferPointer.allocate(byteCount: Self.bufferBytes, alignment: 4096)
        }
    }

    deinit {
        for buffer in buffers { buffer.deallocate() }
    }

    /// Threads copying at once: both cores (reads run side by side; ext4 serialises the writes to one file).
    static let threads = 2
    /// Each thread's read size. 512 KiB measured steadier than 1 MiB here: with 1 MiB, most 2 GiB copies
    /// of a C harness with this loop took over a second (the others ~330 ms); with 512 KiB few did.
    static let bufferBytes = 512 << 10
    /// One buffer per thread, reused for every piece of every batch.
    private let buffers: [UnsafeMutableRawBufferPointer]

    /// Queues a copy; runs the queue when it holds a batch. Returns the bytes completed by that run.
    func enqueue(source: Int32, sourcePath: String, sourceOffset: UInt64, targetOffset: UInt64, count: UInt64) throws -> UInt64 {
        var done: UInt64 = 0
        while done < count {
            let piece = min(Self.pieceBytes, count - done)
            jobs.append(
                Job(
                    source: source, sourcePath: sourcePath, sourceOffset: sourceOffset + done, targetOffset: targetOffset + done,
                    count: piece))
            done += piece
        }
        queuedBytes += count
        return queuedBytes >= Self.batchBytes ? try flush() : 0
    }

    /// Runs every queued copy; returns the bytes copied.
    @discardableResult
    func flush() throws -> UInt64 {
        guard !jobs.isEmpty else { return 0 }
        let batch = jobs
        let bytes = queuedBytes
        jobs.removeAll(keepingCapacity: true)
        queuedBytes = 0
        let failure = FirstError()
        let target = self.target
        let name = self.name
        let kernel = usesKernelCopy
        let skipsZeros = skipsZeroBlocks
        nonisolated(unsafe) let buffers = self.buffers  // each thread uses only its own
        let next = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: min(Self.threads, batch.count)) { worker in
            while !failure.isSet {
                let index = next.add(1, ordering: .relaxed).oldValue
                guard index < batch.count else { return }
                do {
                    let job = batch[index]
                    if kernel {
                        try Self.copy(job, into: target, name: name, buffer: buffers[worker])
                    } else {
                        try Self.copyByHand(
                            source: job.source, sourcePath: job.sourcePath, from: job.sourceOffset, into: target,
                            at: job.targetOffset, count: job.count, name: name, buffer: buffers[worker], skipsZeros: skipsZeros)
                    }
                } catch {
                    failure.record(error)
                }
            }
        }
        if let error = failure.error { throw error }
        return bytes
    }

    private static func copy(_ job: Job, into target: Int32, name: String, buffer: UnsafeMutableRawBufferPointer) throws {
        var inOffset = Int64(job.sourceOffset)
        var outOffset = Int64(job.targetOffset)
        var remaining = job.count
        while remaining > 0 {
            let copied = extentdb_copy_file_range(job.source, &inOffset, target, &outOffset, remaining)
            if copied > 0 {
                remaining -= UInt64(copied)
                continue
            }
            let code = extentdb_errno()
            if copied < 0 && code == EINTR { continue }
            if copied == 0 {
                throw ExportError.data(
                    path: job.sourcePath, offset: UInt64(inOffset),
                    reason: "file ends after \(job.count - remaining) of \(job.count) bytes (truncated image?)")
            }
            guard code == EXDEV || code == EINVAL || code == ENOSYS || code == EOPNOTSUPP else {
                throw ExportError.output("\(name): copy_file_range failed at byte \(outOffset): \(String(cString: strerror(code)))")
            }
            try copyByHand(
                source: job.source, sourcePath: job.sourcePath, from: UInt64(inOffset), into: target, at: UInt64(outOffset),
                count: remaining, name: name, buffer: buffer)
            return
        }
    }

    private static func copyByHand(
        source: Int32, sourcePath: String, from: UInt64, into target: Int32, at: UInt64, count: UInt64, name: String,
        buffer: UnsafeMutableRawBufferPointer, skipsZeros: Bool = false
    ) throws {
        guard let base = buffer.baseAddress else { return }
        var done: UInt64 = 0
        while done < count {
            let piece = Int(min(UInt64(buffer.count), count - done))
            let got = pread(source, base, piece, off_t(from + done))
            if got < 0 && errno == EINTR { continue }
            guard got > 0 else { throw ExportError.data(path: sourcePath, offset: from + done, reason: "read failed or the file ended") }
            if skipsZeros {
                try writeSkippingZeros(UnsafeRawBufferPointer(rebasing: buffer[0..<got]), into: target, at: at + done, name: name)
                done += UInt64(got)
                continue
            }
            var written = 0
            while written < got {
                let result = pwrite(target, base + written, got - written, off_t(at + done + UInt64(written)))
                if result < 0 && errno == EINTR { continue }
                guard result > 0 else {
                    throw ExportError.output("\(name): write failed at byte \(at + done): \(String(cString: strerror(errno)))")
                }
                written += result
            }
            done += UInt64(got)
        }
    }
}

extension KernelCopier {
    /// Writes `bytes` at `offset`, leaving out each 4 KiB block (aligned to the target) that holds only zeros.
    static func writeSkippingZeros(_ bytes: UnsafeRawBufferPointer, into target: Int32, at offset: UInt64, name: String) throws {
        guard let base = bytes.baseAddress else { return }
        try ExportOutput.forEachRun(of: bytes, at: offset) { run, zero in
            guard !zero else { return }
            var written = run.lowerBound
            while written < run.upperBound {
                let result = pwrite(target, base + written, run.upperBound - written, off_t(offset + UInt64(written)))
                if result < 0 && errno == EINTR { continue }
                guard result > 0 else {
                    throw ExportError.output(
                        "\(name): write failed at byte \(offset + UInt64(written)): \(String(cString: strerror(errno)))")
                }
                written += result
            }
        }
    }
}
