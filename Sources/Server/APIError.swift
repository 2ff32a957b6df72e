import AllocationIndex
import Catalog
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

    /// The status a library error maps to: the one place errors become HTTP statuses. The library
    /// classifies (``CatalogError``); this maps its code, once.
    static func from(_ error: any Error) -> APIError {
        switch error {
        case let error as APIError:
            return error
        case let error as any HTTPResponseError:
            return APIError(error.status, error.status.code == 404 ? "not_found" : "http_error", error.status.reasonPhrase)
        default:
            let classified = CatalogError(classifying: error)
            let detail = classified.message + (classified.remedy.flatMap(hint).map { "; " + $0 } ?? "")
            return APIError(status(of: classified.code), classified.code.rawValue, detail)
        }
    }

    /// The HTTP status of each error code.
    static func status(of code: CatalogError.Code) -> HTTPResponse.Status {
        switch code {
        case .invalidArgument, .invalidExport: return .badRequest
        case .notFound, .notIndexed: return .notFound
        case .refused: return .forbidden
        case .stale, .replaced: return .conflict
        case .missing: return .gone
        case .invalidImage: return .unprocessableContent
        case .busy, .indexUnavailable, .indexReadOnly: return .serviceUnavailable
        case .ioFailed, .internalError: return .internalServerError
        }
    }

    /// A library ``Remedy`` in the API's words, or nil when a client has nothing to do about it (the
    /// service's trust and formats are the operator's choice).
    static func hint(_ remedy: Remedy) -> String? {
        switch remedy {
        case .scanFirst: return "scan it first: POST /v1/scans"
        case .digestScanFirst: return "make its digests first: POST /v1/scans with \"digests\": true"
        case .pinFormat, .trustDirectory, .readAsRaw, .outputFile, .clusterSize: return nil
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
