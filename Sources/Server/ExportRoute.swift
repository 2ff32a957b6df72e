import AllocationIndex
import Catalog
import Export
import Foundation
import Hummingbird
import Logging
import NIOConcurrencyHelpers
import Scanner

/// `GET /v1/images/{id}/export?format=raw|qcow2|vhd|xva[&base={id}|&bitmap=NAME&backing_name=NAME]`: the bytes `extentdb export` writes,
/// streamed through a pipe from the library's writers (``ExportJob``). raw honours one `Range:`.
struct ExportRoute {
    let service: IndexService

    func register(on group: RouterGroup<ServiceRequestContext>) {
        group.get("images/:id/export", use: export)
    }

    /// The file name an export is offered under: the image's own name when it already ends in the export's
    /// extension (`top.qcow2` as qcow2 stays `top.qcow2`, `disk.img` as raw stays `disk.img`), the image's
    /// extension replaced when it names another format (`top.qcow2` as vhd is `top.vhd`), else the name with
    /// the extension added.
    static func fileName(of path: String, as format: ExportFormat) -> String {
        let name = path.split(separator: "/").last.map(String.init) ?? "image"
        let lowered = name.lowercased()
        let extensions: [ExportFormat: [String]] = [
            .raw: [".raw", ".img"], .qcow2: [".qcow2"], .vhd: [".vhd", ".vpc"], .xva: [".xva"],
        ]
        let own = extensions[format] ?? []
        if own.contains(where: { lowered.hasSuffix($0) && lowered.count > $0.count }) { return name }
        let known = [".raw", ".img", ".qcow2", ".qcow", ".vhd", ".vpc", ".xva"]
        if let suffix = known.first(where: { lowered.hasSuffix($0) && lowered.count > $0.count }) {
            return String(name.dropLast(suffix.count)) + "." + format.rawValue
        }
        return name + "." + format.rawValue
    }

    @Sendable func export(_ request: Request, context: ServiceRequestContext) async throws -> Response {
        let query = request.uri.queryParameters
        guard let formatName = query.get("format") else { throw APIError.badRequest("format is required: raw, qcow2, vhd or xva") }
        guard let format = ExportFormat(rawValue: formatName) else { throw APIError.badRequest("format must be raw, qcow2, vhd or xva") }
        // The identity check of an export: stat and header checksum of every layer.
        let indexed = try await service.freshImage(id: try imageID(context), checkHeaders: true)
        var basePath: String?
        if let baseText = query.get("base") {
            guard let baseID = Int64(baseText), baseID > 0 else { throw APIError.badRequest("base must be an image id") }
            // Any related base: an ancestor, or a sibling or cousin snapshot (made fresh like the image).
            basePath = try await service.freshImage(id: baseID, checkHeaders: true).image.path
            if format == .raw {
                throw APIError.badRequest("an incremental raw export needs a file; over HTTP ask for qcow2, vhd or xva with base")
            }
        }
        let size = UInt64(indexed.scan.virtualSize)
        var status = HTTPResponse.Status.ok
        var headers: HTTPFields = [.contentType: "application/octet-stream", .acceptRanges: format == .raw ? "bytes" : "none"]
        var range: Range<UInt64>?
        if format == .raw, let header = request.headers[.range] {
            switch ByteRange.parse(header, size: size) {
            case .whole:
                break
            case .unsatisfiable:
                throw RangeNotSatisfiable(size: size)
            case .range(let asked):
                range = asked
                status = .partialContent
                headers[.contentRange] = "bytes \(asked.lowerBound)-\(asked.upperBound - 1)/\(size)"
            }
        }
        let name = Self.fileName(of: indexed.image.path, as: format)
        headers[.contentDisposition] = "attachment; filename=\"\(name.filter { $0 != "\"" && $0 != "\\" && !$0.isNewline })\""
        var exportRequest = ExportRequest(format: format, basePath: basePath, range: range ?? (format == .raw ? 0..<size : nil))
        // A response must start at once: no read of the whole data before the first byte (the index's zeros,
        // stored and found by digest scans, are still left out).
        exportRequest.detectsZeros = false
        // Only what a qcow2 persistent bitmap marks, over the previous backup the client names.
        if let bitmap = query.get("bitmap") {
            guard basePath == nil else { throw APIError.badRequest("give base or bitmap, not both") }
            guard format != .raw else {
                throw APIError.badRequest("a bitmap's ranges over HTTP: ask for qcow2 (with backing_name) or xva; raw needs a file")
            }
            exportRequest.dirtyRanges = try service.catalog.dirtyRanges(of: indexed, bitmap: bitmap)
            exportRequest.backingName = query.get("backing_name")
        }
        // A delta names its base by file name: base and delta sit side by side where the client puts them.
        if let basePath { exportRequest.backingName = String(basePath.split(separator: "/").last ?? "") }
        let job = try ExportJob(store: service.store, indexed: indexed, request: exportRequest)
        let client = context.clientKey
        try service.beginExport(client: client)
        let service = service
        let metrics = service.metrics
        let length = job.streamLength.map { Int(clamping: $0) }
        let logger = service.logger
        let sent = NIOLockedValueBox<UInt64>(0)
        let started = ContinuousClock.now
        let body = PipeStream.body(
            contentLength: length, pool: service.blockingPool,
            produce: { descriptor in
                let output = ExportOutput(descriptor: descriptor, name: "HTTP response")
                output.progress = { bytes in
                    metrics.exported(bytes: bytes)
                    sent.withLockedValue { $0 += bytes }
                }
                try job.run(to: output)
            },
            done: { error in
                service.endExport(client: client)
                // The access log's record of who read which disk, with what was really sent.
                var metadata: Logger.Metadata = [
                    "client": "\(client)", "image": "\(indexed.image.path)", "format": "\(format.rawValue)",
                    "bytes": "\(sent.withLockedValue { $0 })", "seconds": "\(AccessLogMiddleware.seconds(since: started))",
                    "result": "\(error == nil ? "complete" : error is CancellationError ? "cut" : "ended early")",
                ]
                if let error { metadata["reason"] = "\(error)" }
                if error is CancellationError {
                    // What a shutdown past --shutdown-timeout cuts (or a connection torn down under it): named.
                    metadata["reason"] = "cancelled: the service stopped (--shutdown-timeout ran out) or the connection went away"
                    logger.warning("export", metadata: metadata)
                } else {
                    logger.info("export", metadata: metadata)
                }
            })
        return Response(status: status, headers: headers, body: body)
    }
}

/// 416 with the `Content-Range: bytes */SIZE` a client needs to ask again.
struct RangeNotSatisfiable: HTTPResponseError {
    var size: UInt64
    var status: HTTPResponse.Status { .rangeNotSatisfiable }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        var response = try APIError(.rangeNotSatisfiable, "range_not_satisfiable", "the disk has \(size) bytes")
            .response(from: request, context: context)
        response.headers[.contentRange] = "bytes */\(size)"
        return response
    }
}

/// One `Range: bytes=` range (RFC 9110 §14.1.2); lists of ranges are answered whole.
enum ByteRange: Equatable {
    case whole
    case unsatisfiable
    case range(Range<UInt64>)

    static func parse(_ header: String, size: UInt64) -> ByteRange {
        guard header.hasPrefix("bytes="), !header.contains(",") else { return .whole }
        let spec = header.dropFirst(6).trimmingCharacters(in: .whitespaces)
        guard let dash = spec.firstIndex(of: "-") else { return .whole }
        let first = spec[..<dash]
        let last = spec[spec.index(after: dash)...]
        if first.isEmpty {
            // A suffix: the last N bytes.
            guard let count = UInt64(last), count > 0, size > 0 else { return .unsatisfiable }
            return .range((size - min(count, size))..<size)
        }
        guard let start = UInt64(first) else { return .whole }
        guard start < size else { return .unsatisfiable }
        if last.isEmpty { return .range(start..<size) }
        guard let end = UInt64(last), end >= start else { return .whole }
        return .range(start..<min(end, size - 1) + 1)
    }
}
