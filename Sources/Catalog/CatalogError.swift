import AllocationIndex
import Export
import Foundation
import ImageFormats
import ImageIO
import Report
import Scanner

/// An error as every front end sees it: a stable ``Code`` to switch on, a message for people, where it
/// happened, and what to do about it.
///
/// Modelled on NIO's `FileSystemError` (`code`, `message`, `cause`): the library's own errors (image,
/// export, index) are classified here once; the CLI maps ``code`` to an exit code, HTTP to a status and
/// the NBD server to a reply, each with one `switch`. ``remedy`` is rendered by each front end in its own
/// words, so no message names a CLI flag.
public struct CatalogError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure it is. The raw values are part of the API (HTTP's `error` field): never renamed.
    public enum Code: String, Sendable, CaseIterable {
        /// A request or argument that cannot be right (a relative path, a negative offset, an unknown key).
        case invalidArgument = "bad_request"
        /// No such file, image or scan.
        case notFound = "not_found"
        /// The image is not in the index and scanning was ruled out.
        case notIndexed = "not_indexed"
        /// The index no longer describes the image and rescanning was ruled out.
        case stale
        /// The image file was deleted; its last scan is still in the index.
        case missing
        /// The indexed file was replaced by a symbolic link, which is never followed.
        case replaced
        /// A path or file the caller may not use (outside the roots, a link into another directory).
        case refused = "forbidden"
        /// The image's bytes or chain are wrong: the message names the file, field and offset.
        case invalidImage = "image_error"
        /// An export that cannot be made as asked (a base that does not fit, a size over a format's limit).
        case invalidExport = "bad_export"
        /// A limit was reached (concurrent exports, scans queued); try again later.
        case busy
        /// The index cannot be used: unreadable, another program's database, or its file system is full.
        case indexUnavailable = "index_unavailable"
        /// The index can only be read here, and the request needs to write it.
        case indexReadOnly = "index_read_only"
        /// Writing an output or reading image data failed.
        case ioFailed = "io_failed"
        /// Anything else: a bug. The message says what failed, never a type name.
        case internalError = "internal"
    }

    public var code: Code
    public var message: String
    /// The file the error is about, when it is about one.
    public var path: String?
    /// The on-disk field, and its absolute byte offset, for errors in an image's bytes.
    public var field: String?
    public var offset: UInt64?
    public var remedy: Remedy?
    /// The library error this was classified from, kept for logs.
    public var cause: (any Error & Sendable)?

    public init(
        _ code: Code, _ message: String, path: String? = nil, field: String? = nil, offset: UInt64? = nil, remedy: Remedy? = nil,
        cause: (any Error & Sendable)? = nil
    ) {
        self.code = code
        self.message = message
        self.path = path
        self.field = field
        self.offset = offset
        self.remedy = remedy
        self.cause = cause
    }

    public var description: String { message }

    /// Classifies any error the library throws: the one place library errors get a code.
    public init(classifying error: any Error) {
        switch error {
        case let error as CatalogError:
            self = error
        case let error as ImageError:
            self.init(.invalidImage, error.description, path: error.path, remedy: error.remedy, cause: error)
            switch error.reason {
            case .format(let format):
                field = format.field
                offset = format.offset
            case .io(let io):
                path = io.path
            case .replaced:
                code = .replaced
            case .refused:
                code = .refused
            case .chain:
                break
            }
        case let error as ImageIndexer.LookupError:
            switch error {
            case .notIndexed(let path): self.init(.notIndexed, error.description, path: path, remedy: .scanFirst, cause: error)
            case .stale(let path, _): self.init(.stale, error.description, path: path, remedy: .scanFirst, cause: error)
            }
        case let error as ExportError:
            switch error {
            case .plan: self.init(.invalidExport, error.description, remedy: error.remedy, cause: error)
            case let .data(path, offset, _): self.init(.ioFailed, error.description, path: path, offset: offset, cause: error)
            case .output: self.init(.ioFailed, error.description, remedy: error.remedy, cause: error)
            }
        case let error as FormatError:
            self.init(.invalidImage, error.description, field: error.field, offset: error.offset, cause: error)
        case let error as IOError:
            self.init(.ioFailed, error.description, path: error.path, cause: error)
        case let error as StoreError:
            self.init(Self.code(of: error), error.description, cause: error)
        case let error as ReportError:
            self.init(.invalidArgument, error.description, cause: error)
        default:
            self.init(.internalError, IndexStore.describe(error) ?? "\(error)")
        }
    }

    /// Index errors: a read-only index, a record that is gone, and the rest (the index cannot be used).
    static func code(of error: StoreError) -> Code {
        switch error {
        case .readOnly, .needsUpgrade: return .indexReadOnly
        case .notFound, .scanGone: return .notFound
        case .invalidScan: return .internalError
        case .corruptChunk, .cannotCreateDirectory, .foreignDatabase, .unreadable, .damaged, .full, .danglingLink, .server:
            return .indexUnavailable
        }
    }
}
