import AllocationIndex
import Export
import Foundation
import Hummingbird
import ImageFormats
import Scanner

/// An error as the API answers it: a status and `{"error": ..., "detail": ...}`.
///
/// `error` is a short stable word a client can switch on; `detail` is for people. No stack trace or
/// internal type name is ever sent.
public struct APIError: HTTPResponseError, Sendable {
    public var status: HTTPResponse.Status
    public var error: String
    public var detail: String
    /// Headers the answer carries besides the body (`Allow` on a 405).
    public var headers: HTTPFields = [:]

    public init(_ status: HTTPResponse.Status, _ error: String, _ detail: String) {
        self.status = status
        self.error = error
        self.detail = detail
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var response = Response.json(["error": error, "detail": detail], status: status)
        for field in headers { response.headers.append(field) }
        return response
    }

    static func badRequest(_ detail: String) -> APIError { APIError(.badRequest, "bad_request", detail) }
    static func notFound(_ detail: String) -> APIError { APIError(.notFound, "not_found", detail) }
    static func forbidden(_ detail: String) -> APIError { APIError(.forbidden, "forbidden", detail) }

    /// The status a library error maps to: the one place errors become HTTP statuses.
    static func from(_ error: any Error) -> APIError {
        switch error {
        case let error as APIError:
            return error
        case let error as ImageIndexer.LookupError:
            switch error {
            case .notIndexed: return APIError(.notFound, "not_indexed", error.description)
            case .stale: return APIError(.conflict, "stale", error.description)
            }
        case let error as ImageError:
            switch error.reason {
            case .replaced: return APIError(.conflict, "replaced", error.description)
            case .refused: return APIError(.forbidden, "forbidden", error.description)
            default: break
            }
            return APIError(.unprocessableContent, "image_error", error.description)
        case let error as ExportError:
            if case .plan = error { return APIError(.badRequest, "bad_export", error.description) }
            return APIError(.internalServerError, "export_failed", error.description)
        case let error as StoreError:
            return APIError(.serviceUnavailable, "index_unavailable", "\(error)")
        case let error as any HTTPResponseError:
            return APIError(error.status, error.status.code == 404 ? "not_found" : "http_error", error.status.reasonPhrase)
        default:
            return APIError(.internalServerError, "internal", IndexStore.describe(error) ?? "the request failed")
        }
    }
}

extension Response {
    /// A JSON response from an encodable value (snake_case keys as written, sorted for stable output).
    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return Response(
            status: status, headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// Turns every error thrown below it into the API's JSON error shape.
struct JSONErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as RangeNotSatisfiable {
            // Its own response carries `Content-Range: bytes */SIZE`, which a client needs to ask again.
            return try error.response(from: request, context: context)
        } catch {
            let api = APIError.from(error)
            if api.status.code >= 500 {
                context.logger.error("request failed", metadata: ["path": "\(request.uri.path)", "error": "\(api.detail)"])
            }
            return try api.response(from: request, context: context)
        }
    }
}
