import AllocationIndex
import Catalog
import Foundation
import Hummingbird
import ImageIO
import Operations
import Report
import Scanner

/// `/v1/images`: list, one image, forget, extents.
struct ImageRoutes {
    let service: IndexService

    func register(on group: RouterGroup<ServiceRequestContext>) {
        group.get("images", use: list)
        group.get("images/:id", use: get)
        group.delete("images/:id", use: forget)
        group.get("images/:id/extents", use: extents)
    }

    /// Largest page `GET /v1/images?limit=` gives.
    static let largestPage = 10_000

    /// `GET /v1/images[?path=P][&limit=N[&after=PATH]]`: every image under the roots, or the image at P, or
    /// those below directory P; failed images included, with their error. With `limit`, one page in byte
    /// order of the paths, read from the index a page at a time; `next` (when the page is full) is the
    /// `after` of the next page.
    @Sendable func list(_ request: Request, context: ServiceRequestContext) async throws -> Response {
        let policy = service.policy
        var matches: @Sendable (String) -> Bool = { policy.contains($0) }
        var directories = policy.roots
        var single = false
        if let path = request.uri.queryParameters.get("path") {
            let canonical = try policy.resolve(path)
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: canonical, isDirectory: &isDirectory), isDirectory.boolValue {
                matches = { PathResolver.isInside($0, directory: canonical) && policy.contains($0) }
                directories = [canonical]
            } else {
                matches = { $0.utf8.elementsEqual(canonical.utf8) }
                single = true
            }
        }
        let service = service
        let stamp = { (summary: ImageSummary) -> ImageSummary in
            var summary = summary
            summary.lastChecked = service.lastChecked(summary.path).map { ImageReport.timestamp(Int64($0 * 1e9)) }
            return summary
        }
        if let limitText = request.uri.queryParameters.get("limit"), !single {
            guard let limit = Int(limitText), (1...Self.largestPage).contains(limit) else {
                throw APIError.badRequest("limit must be a number from 1 to \(Self.largestPage)")
            }
            let after = request.uri.queryParameters.get("after").map { String($0) }
            // On the blocking pool: a catalog's answer is waited for there, not on the few threads every
            // request's task runs on, so several pages are read at once.
            let (routes, roots, selects) = (self, directories, matches)
            let body = try await service.blockingPool.runIfActive {
                try routes.page(after: after, limit: limit, under: roots, matching: selects)
            }
            return Self.jsonResponse(body)
        }
        if request.uri.queryParameters.get("after") != nil && request.uri.queryParameters.get("limit") == nil {
            throw APIError.badRequest("after needs limit (GET /v1/images?limit=N&after=PATH)")
        }
        let summaries = try service.catalog.summaries(matching: matches, knownMissing: service.isMarkedMissing).map(stamp)
        return Response.json(["images": summaries])
    }

    /// A page of the image list from the ``ListingCache``: the page's keys from the index, then summaries
    /// built only for the rows whose entry is gone or no longer true.
    func page(after: String?, limit: Int, under directories: [String], matching matches: (String) -> Bool) throws -> ByteBuffer {
        let keys = try service.catalog.pageKeys(after: after, limit: limit, under: directories)
        let listed = keys.filter { matches($0.path) }
        // The watcher's missing marks, read once: an entry is built and kept under the mark it was built with.
        let marks = service.areMarkedMissing(listed.map(\.path))
        var entries = service.listing.entries(for: listed, markedMissing: marks)
        let misses = zip(listed, entries).compactMap { key, entry in entry == nil ? key.path : nil }
        if !misses.isEmpty {
            let marked = Set(zip(listed, marks).compactMap { key, mark in mark ? key.path : nil })
            let built = service.listing.remember(
                try service.catalog.listedSummaries(paths: misses, knownMissing: marked.contains), isMarkedMissing: marked.contains)
            for index in entries.indices where entries[index] == nil { entries[index] = built[listed[index].path] }
        }
        // A row forgotten between the two reads is left out, as a later page would.
        let answered = entries.compactMap { $0 }
        return ListingCache.page(
            answered, next: keys.count == limit ? keys.last?.path : nil, lastChecked: service.lastChecked(answered.map(\.key.path)))
    }

    /// A page of the image list (the shape ``page(after:limit:under:matching:)`` renders).
    struct ImagePage: Encodable {
        var images: [ImageSummary]
        /// The `after` of the next page; absent on the last page.
        var next: String?
    }

    /// `GET /v1/images/{id}`.
    @Sendable func get(_ request: Request, context: ServiceRequestContext) async throws -> Response {
        let indexed = try service.indexedImage(id: try imageID(context))
        return Response.json(try service.detail(of: indexed))
    }

    /// `DELETE /v1/images/{id}`: forgets the image and its scans (the file is not touched).
    @Sendable func forget(_ request: Request, context: ServiceRequestContext) async throws -> Response {
        let indexed = try service.indexedImage(id: try imageID(context))
        let forgotten = try service.store.forget(paths: [indexed.image.path])
        service.cache.forget(imageID: try imageID(context))
        return Response.json(["forgotten": forgotten])
    }

    /// `GET /v1/images/{id}/extents[?offset=&length=][&format=legacy|interval]`: `map --output json`'s list,
    /// or xapi's read-headers JSON.
    @Sendable func extents(_ request: Request, context: ServiceRequestContext) async throws -> Response {
        let query = request.uri.queryParameters
        let offset = try number(query.get("offset"), name: "offset") ?? 0
        let length = try number(query.get("length"), name: "length")
        var style: ReadHeadersStyle?
        if let format = query.get("format") {
            guard let chosen = ReadHeadersStyle(rawValue: format) else {
                throw APIError.badRequest("format must be legacy or interval (omit it for the map list)")
            }
            style = chosen
        }
        let indexed = try await service.freshImage(id: try imageID(context))
        let window = GuestWindow(offset: offset, length: length, virtualSize: UInt64(indexed.scan.virtualSize))
        // The scan time too: an index from before migration 0004 can reuse a row id after a forget.
        let key = "\(indexed.scan.id ?? -1):\(indexed.scan.scannedAtNs):\(style?.rawValue ?? "map"):\(window.lower):\(window.upper)"
        if let cached = service.cache.answer(key) { return Self.jsonResponse(cached) }
        let store = service.store
        let limit = service.configuration.maximumExtentsResponse
        var pieces: [ByteBuffer] = []
        var total = 0
        var sink = ByteSink { bytes in
            total += bytes.count
            guard total <= limit else {
                throw APIError(.contentTooLarge, "too_large", "the answer exceeds \(limit) bytes; ask for a window with offset and length")
            }
            pieces.append(ByteBuffer(bytes: bytes))
        }
        defer { sink.deallocate() }
        if let style {
            let bits = ReadHeadersJSONWriter.clusterBits(of: indexed, override: nil)
            try ReadHeadersJSONWriter.write(store: store, indexed: indexed, style: style, clusterBits: bits, sink: &sink)
        } else if let packed = try service.packedExtents(of: indexed) {
            try MapJSONWriter.write(extents: packed, from: window.lower, to: window.upper, sink: &sink)
        } else {
            try MapJSONWriter.write(store: store, scanID: indexed.scan.id ?? -1, from: window.lower, to: window.upper, sink: &sink)
        }
        var body = pieces.count == 1 ? pieces[0] : ByteBuffer()
        if pieces.count > 1 {
            body.reserveCapacity(total)
            for var piece in pieces { body.writeBuffer(&piece) }
        }
        service.cache.remember(answer: body, for: key)
        return Self.jsonResponse(body)
    }

    static func jsonResponse(_ body: ByteBuffer) -> Response {
        Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: body))
    }
}

/// The `{id}` path parameter.
func imageID(_ context: ServiceRequestContext) throws -> Int64 {
    guard let text = context.parameters.get("id"), let id = Int64(text), id > 0 else {
        throw APIError.badRequest("the image id must be a positive integer")
    }
    return id
}

/// A non-negative integer query parameter, if present.
func number(_ text: String?, name: String) throws -> UInt64? {
    guard let text else { return nil }
    guard let value = UInt64(text) else { throw APIError.badRequest("\(name) must be a non-negative integer number of bytes") }
    return value
}
