import ImageFormats
import ImageIO

/// One image format, after qemu's `BlockDriver` table (`.format_name`, `.bdrv_probe`, `.bdrv_open`,
/// `.bdrv_get_specific_info`; end of `block/qcow2.c`): the scanner, `info` and discovery call a format only
/// through this, and find it in ``FormatRegistry``.
///
/// Adding a format is one folder under `Formats/` with its driver, one line in ``FormatRegistry/drivers``,
/// a case of `ImageFormat`, and a migration widening the index's `CHECK (format IN ...)`.
protocol FormatDriver: Sendable {
    /// The format it reads (the index's `format` column).
    var format: ImageFormat { get }

    /// True when the file's first bytes (`head`, up to 512) or its last 512 bytes (`tail`) carry the
    /// format's magic: a probe by content, never by name.
    func probe(head: ArraySlice<UInt8>, tail: ArraySlice<UInt8>) -> Bool

    /// Opens one layer: its header metadata (the details `info` shows, the backing reference among them)
    /// and, when the request asks, its own layer map. Files the layer names are opened through the request's
    /// boundary only.
    func open(_ request: LayerOpenRequest) throws -> ScannedLayer

    /// The bytes a scan's header checksum covers: a small read that catches a header rewritten with its
    /// mtime restored.
    func headerBytes(_ source: FileBlockSource) throws -> [UInt8]
}

/// What a driver needs to open one file of a chain.
struct LayerOpenRequest {
    /// The opened file; every read goes through it (``ChainBoundary`` vetted it).
    var source: FileBlockSource
    /// The path it was opened by; relative names inside it resolve against its directory.
    var givenPath: String
    /// Map the layer's allocation too (a scan), or read its header only (`info`).
    var withMap: Bool
    var options: ScanOptions
    /// Opens backing, parent and data files the layer names, on the chain's rules.
    var boundary: ChainBoundary
    var directory: ChainDirectory

    var canonical: String { source.openedPath }
    var identity: FileIdentity { source.identity }
}

/// Every format extentdb reads, in probe order.
enum FormatRegistry {
    /// Probed in this order; raw, which claims every file, comes last.
    static let drivers: [any FormatDriver] = [QCOW2Driver(), VHDDriver(), RawDriver()]

    /// The driver of `format`.
    static func driver(for format: ImageFormat) -> any FormatDriver {
        drivers.first { $0.format == format } ?? RawDriver()
    }

    /// The format the file's content says: the first driver whose probe claims it.
    ///
    /// - Parameters:
    ///   - head: at least the first 8 bytes of the file when it has them.
    ///   - tail: the file's last 512 bytes (or fewer for a shorter file).
    static func detect(head: ArraySlice<UInt8>, tail: ArraySlice<UInt8>) -> ImageFormat {
        drivers.first { $0.probe(head: head, tail: tail) }?.format ?? .raw
    }
}
