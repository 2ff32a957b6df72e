import Foundation
import Hummingbird
import NIOCore
import NIOPosix

#if canImport(Glibc)
    import Glibc
#endif

/// A response body fed by synchronous code that writes to a file descriptor: the library's writers
/// (`ExportOutput`) run unchanged on a worker thread, writing into a pipe; the request side reads the pipe
/// in 256 KiB pieces and sends each one before reading the next.
///
/// Memory stays bounded (the pipe's buffer plus one piece), and a slow client slows the producer: it
/// blocks on the full pipe. When the client goes away or the service stops, the read end is closed, the
/// producer's next write fails with EPIPE, and its thread is released.
enum PipeStream {
    static let pieceSize = 256 * 1024

    /// - Parameters:
    ///   - contentLength: the body length when known beforehand.
    ///   - pool: threads for the producer and the reads.
    ///   - produce: writes the body to the descriptor it is given; it must not close it.
    ///   - done: called once the body ended or failed (release what the request held).
    static func body(
        contentLength: Int?, pool: NIOThreadPool, produce: @escaping @Sendable (Int32) throws -> Void,
        done: @escaping @Sendable (_ error: (any Error)?) -> Void
    ) -> ResponseBody {
        ResponseBody(contentLength: contentLength) { writer in
            var descriptors: [Int32] = [-1, -1]
            guard pipe(&descriptors) == 0 else {
                done(APIError(.internalServerError, "internal", "cannot create a pipe"))
                throw APIError(.internalServerError, "internal", "cannot create a pipe")
            }
            let (readEnd, writeEnd) = (descriptors[0], descriptors[1])
            _ = fcntl(readEnd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(writeEnd, F_SETFD, FD_CLOEXEC)
            let producer = Task {
                defer { close(writeEnd) }
                try await pool.runIfActive { try produce(writeEnd) }
            }
            var failure: (any Error)?
            do {
                while true {
                    let piece = try await pool.runIfActive { () throws -> ByteBuffer in
                        var buffer = ByteBuffer()
                        buffer.reserveCapacity(pieceSize)
                        let count = try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: pieceSize) { bytes in
                            while true {
                                let result = read(readEnd, bytes.baseAddress, pieceSize)
                                if result >= 0 { return result }
                                if errno != EINTR { throw APIError(.internalServerError, "internal", "reading the export pipe failed") }
                            }
                        }
                        _ = count
                        return buffer
                    }
                    if piece.readableBytes == 0 { break }
                    try await writer.write(piece)
                }
            } catch {
                failure = error
            }
            close(readEnd)
            do {
                try await producer.value
            } catch {
                if failure == nil { failure = error }
            }
            done(failure)
            if let failure { throw failure }
            try await writer.finish(nil)
        }
    }
}
