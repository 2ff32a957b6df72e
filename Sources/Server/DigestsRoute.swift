import Catalog
import Foundation
import Hummingbird

/// `GET /v1/images/{id}/digests`: what `extentdb digests --output json` prints, from the index alone: the
/// digests a digest scan recorded for the image's latest scan (`POST /v1/scans` with `"digests": true`
/// makes them; 404 `not_indexed` until then).
struct DigestsRoute {
    let service: IndexService

    func register(on group: RouterGroup<ServiceRequestContext>) {
        group.get("images/:id/digests", use: digests)
    }

    @Sendable func digests(_ request: Request, context: ServiceRequestContext) async throws -> Response {
        let image = try await service.freshImage(id: try imageID(context), checkHeaders: true)
        let outcome = try service.catalog.digests(of: image, make: false)
        let text = outcome.digests.listJSON + "\n"
        return Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }
}
