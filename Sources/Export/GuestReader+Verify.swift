import Foundation
import ImageIO
import Scanner

#if canImport(Glibc)
    import Glibc
#endif

extension GuestReader {
    /// Checks that every data file opened so far still has the identity (device, inode, size, mtime) the
    /// plan was made from, with one `fstat` per open file and no read.
    ///
    /// A long-lived reader (an NBD connection) calls it after each read: bytes read from a file rewritten
    /// in place are then refused rather than mixed with what the index describes.
    /// - Throws: `ExportError.data` naming the first file that changed.
    public func verifyUnchanged() throws {
        for (depth, source) in sources {
            var info = stat()
            guard fstat(source.descriptor.rawValue, &info) == 0 else {
                throw ExportError.data(path: source.path, offset: 0, reason: "fstat failed (errno \(errno))")
            }
            let now = FileIdentity(status: info)
            guard let expected = plan.layers[depth].dataIdentity, now.matches(expected) else {
                throw ExportError.data(path: source.path, offset: 0, reason: "the file changed while it was being read (size or mtime)")
            }
        }
    }
}
