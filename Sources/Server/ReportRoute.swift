import Catalog
import Foundation
import Hummingbird
import ImageIO
import Report

/// `GET /v1/report[?path=]`: the report JSON `extentdb report --output json` prints, for the images under
/// the roots (or under `path`).
struct ReportRoute {
    let service: IndexService

    func register(on group: RouterGroup<ServiceRequestContext>) {
        group.get("report", use: report)
    }

    @Sendable func report(_ request: Request, context: ServiceRequestContext) async throws -> Response {
        var files: [String] = []
        var directories: [String] = []
        if let path = request.uri.queryParameters.get("path") {
            let canonical = try service.policy.resolve(path)
            if (try? FileIdentity(path: canonical))?.kind == .directory { directories.append(canonical) } else { files.append(canonical) }
        } else {
            directories = service.policy.roots
        }
        let report = try Report(store: service.store, paths: files, directories: directories, sort: "path", top: nil, history: false)
        let text = CompactJSON.compacted(try report.json())
        return Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }
}
