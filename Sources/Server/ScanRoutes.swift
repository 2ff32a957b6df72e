import Catalog
import Foundation
import Hummingbird
import NIOCore

/// `/v1/scans`: queue a background scan, read its state.
struct ScanRoutes {
    let service: IndexService

    struct ScanRequest: Decodable {
        var path: String
        var force: Bool?
        /// Also make the chunk digests (`scan --digests`).
        var digests: Bool?
    }

    func register(on group: RouterGroup<ServiceRequestContext>) {
        group.post("scans", use: submit)
        group.get("scans/:id", use: get)
        group.delete("scans/:id", use: cancel)
    }

    /// `DELETE /v1/scans/{id}`: cancels a queued or running scan; answers the job as it stands.
    @Sendable func cancel(_ request: Request, context: ServiceRequestContext) async throws -> Response {
        guard let id = context.parameters.get("id"), let job = service.scans.cancel(id: id) else {
            throw APIError.notFound("no such scan job")
        }
        return Response.json(job)
    }

    /// `POST /v1/scans {"path": "...", "force": false, "digests": false}` → 202 with the queued job.
    @Sendable func submit(_ request: Request, context: ServiceRequestContext) async throws -> Response {
        let buffer = try await request.body.collect(upTo: service.configuration.maximumBodySize)
        let asked: ScanRequest
        do {
            asked = try JSONDecoder().decode(ScanRequest.self, from: Data(buffer.readableBytesView))
        } catch {
            throw APIError.badRequest("expected a JSON object {\"path\": \"/absolute/image\"}")
        }
        guard !service.store.isReadOnly else { throw APIError(.serviceUnavailable, "read_only", "the index is read-only for this service") }
        let path = try service.policy.resolve(asked.path)
        let job = try service.scans.submit(path: path, force: asked.force ?? false, digests: asked.digests ?? false)
        var response = Response.json(job, status: .accepted)
        response.headers[.location] = "/v1/scans/\(job.id)"
        return response
    }

    /// `GET /v1/scans/{id}`.
    @Sendable func get(_ request: Request, context: ServiceRequestContext) async throws -> Response {
        guard let id = context.parameters.get("id"), let job = service.scans.job(id: id) else {
            throw APIError.notFound("no such scan job")
        }
        return Response.json(job)
    }
}
