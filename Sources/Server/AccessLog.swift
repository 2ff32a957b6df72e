import Foundation
import Hummingbird
import Logging

/// One structured line per `/v1` request on the service's log (standard error; journald under systemd):
/// who asked what, the answer's status and size, and how long it took. Streamed exports add a line of their
/// own when they end, with the bytes actually sent (``ExportRoute``).
struct AccessLogMiddleware: RouterMiddleware {
    typealias Context = ServiceRequestContext
    let logger: Logger

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        do {
            let response = try await next(request, context)
            log(request, context, status: Int(response.status.code), bytes: response.headers[.contentLength], since: started)
            return response
        } catch {
            log(request, context, status: Int(APIError.from(error).status.code), bytes: nil, since: started)
            throw error
        }
    }

    private func log(_ request: Request, _ context: Context, status: Int, bytes: String?, since started: ContinuousClock.Instant) {
        var metadata: Logger.Metadata = [
            "client": "\(context.clientKey)", "method": "\(request.method.rawValue)", "uri": "\(request.uri.description)",
            "status": "\(status)", "seconds": "\(AccessLogMiddleware.seconds(since: started))",
        ]
        if let bytes { metadata["bytes"] = "\(bytes)" }
        logger.info("access", metadata: metadata)
    }

    /// Seconds since `started`, to the millisecond ("0.004"), formatted with integers: `String(format:)`
    /// cost more than the rest of the line.
    static func seconds(since started: ContinuousClock.Instant) -> String {
        let (seconds, attoseconds) = (ContinuousClock.now - started).components
        let milliseconds = max(seconds, 0) * 1000 + (max(attoseconds, 0) + 500_000_000_000_000) / 1_000_000_000_000_000
        let fraction = milliseconds % 1000
        return "\(milliseconds / 1000)." + (fraction < 10 ? "00" : fraction < 100 ? "0" : "") + "\(fraction)"
    }
}
