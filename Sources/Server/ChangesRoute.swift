import Catalog
import Foundation
import Hummingbird

/// `GET /v1/images/{id}/changes?(base={id}|bitmap=NAME|since_scan=N)[&format=json|imageio|xapi-cbt|vmware]`: what
/// `extentdb changes` prints, decided from the index alone (since_scan: from digests recorded by digest scans).
struct ChangesRoute {
    let service: IndexService

    func register(on group: RouterGroup<ServiceRequestContext>) {
        group.get("images/:id/changes", use: changes)
    }

    @Sendable func changes(_ request: Request, context: ServiceRequestContext) async throws -> Response {
        let query = request.uri.queryParameters
        var format = ChangeList.Format.json
        if let name = query.get("format") {
            guard let chosen = ChangeList.Format(rawValue: name) else {
                throw APIError.badRequest("format must be json, imageio, xapi-cbt or vmware")
            }
            format = chosen
        }
        let image = try await service.freshImage(id: try imageID(context), checkHeaders: true)
        let changes: ChangeList
        let asked = ["base", "bitmap", "since_scan"].filter { query.get($0) != nil }
        guard asked.count <= 1 else { throw APIError.badRequest("give one of base, bitmap and since_scan") }
        if let bitmap = query.get("bitmap") {
            changes = try service.catalog.changes(of: image, bitmap: bitmap)
        } else if let since = query.get("since_scan") {
            guard let scanID = Int64(since), scanID > 0 else { throw APIError.badRequest("since_scan must be a scan id") }
            // From recorded digests only: the service does not read a disk to answer a GET.
            changes = try service.catalog.changes(of: image, sinceScan: scanID, make: false)
        } else {
            guard let baseText = query.get("base") else {
                throw APIError.badRequest(
                    "base (the id of a related image), bitmap (a qcow2 dirty bitmap's name) or since_scan (a digest scan's id) is required")
            }
            guard let baseID = Int64(baseText), baseID > 0 else { throw APIError.badRequest("base must be an image id") }
            // Both made fresh first (stat and header checksum), as for an export.
            let base = try await service.freshImage(id: baseID, checkHeaders: true)
            changes = try service.catalog.changes(of: image, base: base.image.path)
        }
        // One line, as the CLI prints it.
        let text = changes.rendered(format) + "\n"
        let type = format == .xapiCBT ? "text/plain; charset=utf-8" : "application/json"
        return Response(status: .ok, headers: [.contentType: type], body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }
}
