import ImageFormats
import ImageIO

/// Why an image could not be scanned, naming the file; the CLI turns it into exit code 1.
public struct ImageError: Error, Sendable, CustomStringConvertible {
    public enum Reason: Sendable {
        case format(FormatError)
        case io(IOError)
        case chain(String)
        /// The path of an indexed image now leads through a symbolic link: the file it was indexed from was
        /// replaced by a pointer to another, which is never followed.
        case replaced(String)
        /// A file the image names lies where the boundary does not allow (``ChainBoundary``); the message is
        /// the same whatever that file is, or whether it exists.
        case refused(String)
    }

    public var path: String
    public var reason: Reason
    /// What a person can do about it, rendered by each front end in its own words.
    public var remedy: Remedy?

    public init(path: String, _ reason: Reason, remedy: Remedy? = nil) {
        self.path = path
        self.reason = reason
        self.remedy = remedy
    }

    public static func format(_ path: String, _ error: FormatError) -> ImageError { .init(path: path, .format(error)) }
    public static func chain(_ path: String, _ message: String, remedy: Remedy? = nil) -> ImageError {
        .init(path: path, .chain(message), remedy: remedy)
    }

    public var description: String {
        switch reason {
        case .format(let error): return "\(path): \(error)"
        case .io(let error): return error.description
        case .chain(let message), .replaced(let message), .refused(let message): return "\(path): \(message)"
        }
    }
}

extension IOError {
    var asImageError: ImageError { ImageError(path: path, .io(self)) }
}

/// Runs `body`, turning format and I/O errors into an ``ImageError`` that names `path`.
func attributing<T>(to path: String, _ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as ImageError {
        throw error
    } catch let error as FormatError {
        throw ImageError.format(path, error)
    } catch let error as IOError {
        throw error.asImageError
    }
}
