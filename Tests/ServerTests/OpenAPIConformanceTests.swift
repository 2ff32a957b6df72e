import Foundation
import Hummingbird
import HummingbirdTesting
import Server
import Testing

@testable import TestSupport

/// The parts of `openapi.yaml` a conformance check needs, read line by line (the file keeps one shape:
/// paths at indent 2, methods at 4, statuses at 8 with their schema reference on the same line; schemas at
/// indent 4 under components/schemas with a `required:` list).
struct OpenAPIDocument {
    /// "GET /v1/images/{id}" -> status -> schema name (nil for non-JSON bodies).
    var operations: [String: [Int: String?]] = [:]
    var required: [String: [String]] = [:]
    var allOf: [String: [String]] = [:]

    init(text: String) {
        var path = ""
        var method = ""
        var section = ""
        var schema = ""
        var responseRefs: [String: String] = [:]
        for line in text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            let indent = line.prefix { $0 == " " }.count
            let content = line.trimmingCharacters(in: .whitespaces)
            if indent == 0 { section = content }
            if section == "paths:" {
                if indent == 2, content.hasSuffix(":") { path = String(content.dropLast()) }
                if indent == 4, ["get:", "post:", "delete:"].contains(content) {
                    method = content.dropLast().uppercased()
                    operations["\(method) \(path)", default: [:]] = [:]
                }
                if indent == 8, content.hasPrefix("\""), let status = Int(content.dropFirst().prefix(3)) {
                    let reference = content.range(of: "#/components/(schemas|responses)/[A-Za-z]+", options: .regularExpression)
                        .map { String(content[$0].split(separator: "/").last ?? "") }
                    operations["\(method) \(path)", default: [:]][status] = reference
                }
            } else if section == "components:" {
                if indent == 4, content.hasSuffix(":") { schema = String(content.dropLast()) }
                if content.hasPrefix("required: [") && indent <= 10 && required[schema] == nil {
                    required[schema] = content.dropFirst(11).dropLast().split(separator: ",").map {
                        $0.trimmingCharacters(in: .whitespaces)
                    }
                }
                if content.hasPrefix("- {$ref: \"#/components/schemas/") {
                    allOf[schema, default: []].append(String(content.split(separator: "/").last?.prefix { $0 != "\"" } ?? ""))
                }
                if content.hasPrefix("content: {application/json: {schema: {$ref: \"#/components/schemas/") {
                    responseRefs[schema] = String(content.split(separator: "/").last?.prefix { $0 != "\"" } ?? "")
                }
            }
        }
        // A status that references a shared response takes that response's schema.
        for (operation, statuses) in operations {
            for (status, reference) in statuses {
                if let reference, let resolved = responseRefs[reference] { operations[operation]?[status] = resolved }
            }
        }
    }

    /// Every key a body of `schema` must have (through allOf).
    func requiredKeys(_ schema: String) -> [String] {
        (required[schema] ?? []) + (allOf[schema] ?? []).flatMap(requiredKeys)
    }

    static func load() throws -> OpenAPIDocument {
        var directory = URL(fileURLWithPath: #filePath)
        while directory.path != "/" {
            directory.deleteLastPathComponent()
            let candidate = directory.appendingPathComponent("openapi.yaml")
            if let text = try? String(contentsOf: candidate, encoding: .utf8) { return OpenAPIDocument(text: text) }
        }
        throw CocoaError(.fileNoSuchFile)
    }
}

@Suite(.serialized) struct OpenAPIConformanceTests {
    @Test("every route answers only statuses openapi.yaml lists for it, with the keys its schema requires")
    func conformance() async throws {
        let document = try OpenAPIDocument.load()
        let workspace = try ServerWorkspace()
        defer { workspace.directory.cleanup() }
        let app = try buildApplication(workspace.configuration())
        let covered = try await app.test(.router) { client -> Set<String> in
            var covered = Set<String>()
            let top = workspace.root + "/top.qcow2"
            let scan = try await client.scan(top)
            let id = try #require(scan["image_id"] as? Int)
            let jobID = try #require(scan["id"] as? String)
            // (operation in the document, method, uri, body, authorized)
            let calls: [(String, HTTPRequest.Method, String, String?, Bool)] = [
                ("GET /healthz", .get, "/healthz", nil, false),
                ("GET /metrics", .get, "/metrics", nil, false),
                ("GET /v1/images", .get, "/v1/images", nil, true),
                ("GET /v1/images", .get, "/v1/images", nil, false),
                ("GET /v1/images", .get, "/v1/images?path=/etc/passwd", nil, true),
                ("GET /v1/images", .get, "/v1/images?path=\(top)", nil, true),
                ("GET /v1/images/{id}", .get, "/v1/images/\(id)", nil, true),
                ("GET /v1/images/{id}", .get, "/v1/images/4242", nil, true),
                ("GET /v1/images/{id}", .get, "/v1/images/x", nil, true),
                ("GET /v1/images/{id}/extents", .get, "/v1/images/\(id)/extents", nil, true),
                ("GET /v1/images/{id}/extents", .get, "/v1/images/\(id)/extents?format=legacy", nil, true),
                ("GET /v1/images/{id}/extents", .get, "/v1/images/\(id)/extents?offset=-1", nil, true),
                ("GET /v1/images/{id}/export", .get, "/v1/images/\(id)/export?format=raw", nil, true),
                ("GET /v1/images/{id}/export", .get, "/v1/images/\(id)/export", nil, true),
                ("GET /v1/images/{id}/export", .get, "/v1/images/\(id)/export?format=raw&base=\(id)", nil, true),
                ("GET /v1/images/{id}/changes", .get, "/v1/images/\(id)/changes?base=\(id)", nil, true),
                ("GET /v1/images/{id}/changes", .get, "/v1/images/\(id)/changes?base=\(id)&format=xapi-cbt", nil, true),
                ("GET /v1/images/{id}/changes", .get, "/v1/images/\(id)/changes", nil, true),
                ("GET /v1/images/{id}/changes", .get, "/v1/images/4242/changes?base=\(id)", nil, true),
                ("GET /v1/images/{id}/changes", .get, "/v1/images/\(id)/changes?since_scan=1", nil, true),
                // No digest scan yet: 404 not_indexed (DigestsServeTests covers the 200).
                ("GET /v1/images/{id}/digests", .get, "/v1/images/\(id)/digests", nil, true),
                ("GET /v1/images/{id}/digests", .get, "/v1/images/4242/digests", nil, true),
                ("POST /v1/scans", .post, "/v1/scans", #"{"path": "\#(top)"}"#, true),
                ("POST /v1/scans", .post, "/v1/scans", #"{"path": "/etc/passwd"}"#, true),
                ("POST /v1/scans", .post, "/v1/scans", "{}", true),
                ("GET /v1/scans/{id}", .get, "/v1/scans/\(jobID)", nil, true),
                ("GET /v1/scans/{id}", .get, "/v1/scans/none", nil, true),
                ("DELETE /v1/scans/{id}", .delete, "/v1/scans/\(jobID)", nil, true),
                ("DELETE /v1/scans/{id}", .delete, "/v1/scans/none", nil, true),
                ("GET /v1/report", .get, "/v1/report", nil, true),
                ("GET /v1/report", .get, "/v1/report?path=/etc", nil, true),
                ("DELETE /v1/images/{id}", .delete, "/v1/images/\(id)", nil, true),
                ("DELETE /v1/images/{id}", .delete, "/v1/images/\(id)", nil, true),
            ]
            for (operation, method, uri, body, authorized) in calls {
                covered.insert(operation)
                let response =
                    authorized
                    ? try await client.authorized(uri, method: method, body: body)
                    : try await client.execute(uri: uri, method: method, body: body.map { ByteBuffer(string: $0) })
                let statuses = try #require(document.operations[operation], "\(operation) is not in openapi.yaml")
                let code = Int(response.status.code)
                #expect(statuses.keys.contains(code), "\(operation) \(uri) answered \(code), not in openapi.yaml")
                guard let schema = statuses[code] ?? nil, response.headers[.contentType] == "application/json" else { continue }
                let value = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView))
                if let object = value as? [String: Any] {
                    for key in document.requiredKeys(schema) {
                        #expect(object[key] != nil, "\(operation) \(uri) \(code): no \(key) (schema \(schema))")
                    }
                    if schema == "ImageList", let images = object["images"] as? [[String: Any]] {
                        for image in images {
                            for key in document.requiredKeys("Image") { #expect(image[key] != nil, "image without \(key)") }
                        }
                    }
                } else if let list = value as? [[String: Any]] {
                    for extent in list {
                        for key in document.requiredKeys("Extent") { #expect(extent[key] != nil, "extent without \(key)") }
                    }
                }
            }
            return covered
        }
        #expect(
            covered == Set(document.operations.keys),
            "routes in openapi.yaml without a check: \(Set(document.operations.keys).subtracting(covered))")
    }
}
