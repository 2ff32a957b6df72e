import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Server
import Testing

@testable import TestSupport

/// A root with a small qcow2 over a raw base, a symbolic link that points out of the root, and an index.
struct ServerWorkspace {
    let directory: TemporaryDirectory
    var root: String { directory.path("root") }
    var database: String { directory.path("index.sqlite") }
    static let token = "test-token-0123456789abcdef"

    init() throws {
        directory = try TemporaryDirectory(
            setup: """
                set -e
                mkdir root outside
                truncate -s 8M root/base.raw
                qemu-io -f raw -c 'write -P 1 0 1M' root/base.raw >/dev/null
                qemu-img create -q -f qcow2 -b base.raw -F raw root/top.qcow2
                qemu-io -f qcow2 -c 'write -P 2 2M 64k' root/top.qcow2 >/dev/null
                head -c 65536 /dev/zero > outside/secret.raw
                ln -s ../outside/secret.raw root/escape.raw
                """)
    }

    func configuration(token: String? = Self.token) -> ServerConfiguration {
        var configuration = ServerConfiguration(
            host: "127.0.0.1", port: 0, roots: [root], token: token, databasePath: database, watchInterval: 0)
        configuration.debounce = 0.2
        return configuration
    }
}

extension TestClientProtocol {
    /// A request with the workspace's bearer token.
    func authorized(_ uri: String, method: HTTPRequest.Method = .get, body: String? = nil, headers: HTTPFields = [:]) async throws
        -> TestResponse
    {
        var fields = headers
        fields[.authorization] = "Bearer \(ServerWorkspace.token)"
        return try await execute(uri: uri, method: method, headers: fields, body: body.map { ByteBuffer(string: $0) })
    }

    /// Queues a scan and waits (bounded) until it finished; returns the job's JSON.
    func scan(_ path: String) async throws -> [String: Any] {
        let queued = try await authorized("/v1/scans", method: .post, body: #"{"path": "\#(path)"}"#)
        #expect(queued.status == .accepted)
        let id = try #require(try json(queued)["id"] as? String)
        for _ in 0..<200 {
            let job = try json(try await authorized("/v1/scans/\(id)"))
            if let state = job["state"] as? String, state != "queued", state != "running" { return job }
            try await Task.sleep(for: .milliseconds(25))
        }
        Issue.record("scan \(id) did not finish in 5 s")
        return [:]
    }
}

func json(_ response: TestResponse) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any])
}

@Suite(.serialized) struct ServerRouterTests {
    @Test("healthz needs no token; /v1 answers 401 JSON without or with a wrong token, 200 with the right one")
    func auth() async throws {
        let workspace = try ServerWorkspace()
        defer { workspace.directory.cleanup() }
        let app = try buildApplication(workspace.configuration())
        try await app.test(.router) { client in
            #expect(try await client.execute(uri: "/healthz", method: .get).status == .ok)
            let none = try await client.execute(uri: "/v1/images", method: .get)
            #expect(none.status == .unauthorized)
            #expect(try json(none)["error"] as? String == "unauthorized")
            let wrong = try await client.execute(uri: "/v1/images", method: .get, headers: [.authorization: "Bearer nope-nope-nope-nope"])
            #expect(wrong.status == .unauthorized)
            #expect(try await client.authorized("/v1/images").status == .ok)
        }
    }

    @Test("a non-loopback bind without a token is refused at start-up")
    func nonLoopbackNeedsToken() throws {
        let workspace = try ServerWorkspace()
        defer { workspace.directory.cleanup() }
        var configuration = workspace.configuration(token: nil)
        configuration.host = "0.0.0.0"
        #expect(throws: ServerConfiguration.Invalid.self) { _ = try buildApplication(configuration) }
    }

    @Test("paths outside the roots are 403: absolute, through .., through a symbolic link; relative 400; absent 404")
    func confinement() async throws {
        let workspace = try ServerWorkspace()
        defer { workspace.directory.cleanup() }
        let app = try buildApplication(workspace.configuration())
        try await app.test(.router) { client in
            for path in ["/etc/passwd", workspace.root + "/../outside/secret.raw", workspace.root + "/escape.raw"] {
                let response = try await client.authorized("/v1/scans", method: .post, body: #"{"path": "\#(path)"}"#)
                #expect(response.status == .forbidden, "\(path)")
                #expect(try json(response)["error"] as? String == "forbidden")
            }
            #expect(try await client.authorized("/v1/scans", method: .post, body: #"{"path": "root/top.qcow2"}"#).status == .badRequest)
            #expect(
                try await client.authorized("/v1/scans", method: .post, body: #"{"path": "\#(workspace.root)/absent.vhd"}"#).status
                    == .notFound)
            #expect(try await client.authorized("/v1/images?path=/etc/passwd").status == .forbidden)
            #expect(try await client.authorized("/v1/scans", method: .post, body: "not json").status == .badRequest)
            let big = String(repeating: "x", count: 70_000)
            #expect(try await client.authorized("/v1/scans", method: .post, body: big).status == .contentTooLarge)
        }
    }

    @Test("scan, list, get, extents as qemu-img map prints them, legacy read-headers, delete")
    func imagesAndExtents() async throws {
        let workspace = try ServerWorkspace()
        defer { workspace.directory.cleanup() }
        let app = try buildApplication(workspace.configuration())
        try await app.test(.router) { client in
            let job = try await client.scan(workspace.root + "/top.qcow2")
            #expect(job["state"] as? String == "succeeded")
            let id = try #require(job["image_id"] as? Int)
            let list = try json(try await client.authorized("/v1/images"))
            let images = try #require(list["images"] as? [[String: Any]])
            #expect(images.count == 1)
            #expect(images.first?["state"] as? String == "fresh")
            #expect(images.first?["virtual_size"] as? Int == 8 << 20)
            let detail = try json(try await client.authorized("/v1/images/\(id)"))
            #expect((detail["chain"] as? [Any])?.count == 2)
            let extents = try await client.authorized("/v1/images/\(id)/extents")
            #expect(extents.status == .ok)
            let qemu = try run("/usr/bin/qemu-img", ["map", "--output=json", workspace.root + "/top.qcow2"])
            let ours = try qemuExtents(Data(extents.body.readableBytesView)).map { [$0.start, $0.length, UInt64($0.depth)] }
            let theirs = try qemuExtents(Data(qemu.utf8)).map { [$0.start, $0.length, UInt64($0.depth)] }
            #expect(ours == theirs)
            let window = try await client.authorized("/v1/images/\(id)/extents?offset=2097152&length=65536")
            #expect(String(buffer: window.body).hasPrefix(#"[{ "start": 2097152, "length": 65536, "depth": 0"#))
            let legacy = try json(try await client.authorized("/v1/images/\(id)/extents?format=legacy"))
            #expect(legacy["cluster_bits"] as? Int == 16)
            #expect(try await client.authorized("/v1/images/\(id)/extents?format=bogus").status == .badRequest)
            #expect(try await client.authorized("/v1/images/999").status == .notFound)
            #expect(try await client.authorized("/v1/images/abc").status == .badRequest)
            #expect(try await client.authorized("/v1/images/\(id)", method: .delete).status == .ok)
            #expect(try await client.authorized("/v1/images/\(id)").status == .notFound)
            let missing = try await client.authorized("/v1/nothing-here")
            #expect(missing.status == .notFound)
            #expect(try json(missing)["error"] != nil)
        }
    }

    @Test("raw export streams the guest disk; Range reads answer 206 with the slice; 416 past the end")
    func exportAndRange() async throws {
        let workspace = try ServerWorkspace()
        defer { workspace.directory.cleanup() }
        let app = try buildApplication(workspace.configuration())
        try await app.test(.router) { client in
            let job = try await client.scan(workspace.root + "/top.qcow2")
            let id = try #require(job["image_id"] as? Int)
            let whole = try await client.authorized("/v1/images/\(id)/export?format=raw")
            #expect(whole.status == .ok)
            #expect(whole.body.readableBytes == 8 << 20)
            let out = workspace.directory.path("out.raw")
            try Data(whole.body.readableBytesView).write(to: URL(fileURLWithPath: out))
            _ = try run("/usr/bin/qemu-img", ["compare", "-f", "raw", "-F", "qcow2", out, workspace.root + "/top.qcow2"])
            let slice = try await client.authorized("/v1/images/\(id)/export?format=raw", headers: [.range: "bytes=2097150-2097153"])
            #expect(slice.status == .partialContent)
            #expect(Array(slice.body.readableBytesView) == [0, 0, 2, 2])
            #expect(slice.headers[.contentRange] == "bytes 2097150-2097153/8388608")
            let past = try await client.authorized("/v1/images/\(id)/export?format=raw", headers: [.range: "bytes=9999999-"])
            #expect(past.status == .rangeNotSatisfiable)
            #expect(try await client.authorized("/v1/images/\(id)/export?format=zip").status == .badRequest)
            // A differencing VHD needs a VHD parent: refused before the body starts (found by api-fuzz.sh).
            let base = try #require(try await client.scan(workspace.root + "/base.raw")["image_id"] as? Int)
            let vhd = try await client.authorized("/v1/images/\(id)/export?format=vhd&base=\(base)")
            #expect(vhd.status == .badRequest)
            #expect(try json(vhd)["error"] as? String == "bad_export")
            let qcow2 = try await client.authorized("/v1/images/\(id)/export?format=qcow2")
            #expect(qcow2.status == .ok)
            #expect(Array(qcow2.body.readableBytesView.prefix(4)) == [0x51, 0x46, 0x49, 0xFB])
        }
    }

    @Test("report and metrics answer")
    func reportAndMetrics() async throws {
        let workspace = try ServerWorkspace()
        defer { workspace.directory.cleanup() }
        let app = try buildApplication(workspace.configuration())
        try await app.test(.router) { client in
            _ = try await client.scan(workspace.root + "/top.qcow2")
            let report = try await client.authorized("/v1/report")
            #expect(report.status == .ok)
            #expect(String(buffer: report.body).contains("top.qcow2"))
            let metrics = try await client.execute(uri: "/metrics", method: .get)
            #expect(String(buffer: metrics.body).contains("extentdb_scans_total"))
        }
    }
}
