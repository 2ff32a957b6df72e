import Catalog
import Foundation
import Hummingbird

/// `GET /v1/images/{id}/changes?(base={id}|bitmap=NAME)[&format=json|imageio|xapi-cbt|vmware]`: what `extentdb changes`
/// prints, decided from the index alone.
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
        if let bitmap = query.get("bitmap") {
            guard query.get("base") == nil else { throw APIError.badRequest("give base or bitmap, not both") }
            changes = try service.catalog.changes(of: image, bitmap: bitmap)
        } else {
            guard let baseText = query.get("base") else {
                throw APIError.badRequest("base (the id of a related image) or bitmap (a qcow2 dirty bitmap's name) is required")
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
