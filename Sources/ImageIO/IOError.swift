import SystemPackage

/// A failed system call on an image or output file, with the path and what was being done.
public struct IOError: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var operation: String
    public var errno: Errno?
    public var detail: String?

    public init(path: String, operation: String, errno: Errno? = nil, detail: String? = nil) {
        self.path = path
        self.operation = operation
        self.errno = errno
        self.detail = detail
    }

    public var description: String { "\(path): \(shortDescription)" }

    /// The error without the path (for messages that name the file themselves).
    public var shortDescription: String {
        var text = "\(operation) failed"
        if let errno { text += ": \(errno.description)" }
        if let detail { text += ": \(detail)" }
        return text
    }
}
