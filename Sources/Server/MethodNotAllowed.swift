import Hummingbird

/// The methods each route serves, by path pattern (`/v1/images/{id}`), read from the router once every
/// route is registered.
struct RouteMethods: Sendable {
    private let routes: [(segments: [Substring], methods: [HTTPRequest.Method])]

    init(_ described: [(path: String, method: HTTPRequest.Method)]) {
        var byPath: [String: [HTTPRequest.Method]] = [:]
        for route in described { byPath[route.path, default: []].append(route.method) }
        routes = byPath.sorted { $0.key < $1.key }.map { path, methods in
            (path.split(separator: "/"), methods.sorted { $0.rawValue < $1.rawValue })
        }
    }

    /// The methods served at `path`, the union over every pattern it matches (a `{name}` segment matches
    /// any one segment); empty when no route has this path.
    func methods(at path: String) -> [HTTPRequest.Method] {
        let asked = path.split(separator: "/")
        var found: [HTTPRequest.Method] = []
        for route in routes where route.segments.count == asked.count {
            let matches = zip(route.segments, asked).allSatisfy { pattern, segment in
                pattern.hasPrefix("{") || pattern == segment
            }
            if matches { found += route.methods.filter { !found.contains($0) } }
        }
        return found
    }
}

/// A known path asked with a method it does not serve: 405 with `Allow` (RFC 9110 §15.5.6) and the API's
/// error body, instead of the router's 404. Added after the routes, so it wraps only the router's "not
/// found" answer.
struct MethodNotAllowedMiddleware<Context: RequestContext>: RouterMiddleware {
    let routes: RouteMethods

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound {
            let allowed = routes.methods(at: request.uri.path)
            guard !allowed.isEmpty else { throw error }
            let list = allowed.map(\.rawValue).joined(separator: ", ")
            var refusal = APIError(
                .methodNotAllowed, "method_not_allowed",
                "\(request.method.rawValue) is not allowed on \(request.uri.path); allowed: \(list)")
            refusal.headers[.allow] = list
            throw refusal
        }
    }
}
