import Foundation
import ImageIO
import Testing

@testable import Catalog
@testable import TestSupport

/// Root confinement, in process: the same answers HTTP gives as 400/403/404 and NBD as "no export".
@Suite struct RootPolicyTests {
    /// A root with an image, a link to it, a link out of the root, and a directory beside the root.
    static func layout() throws -> (root: String, outside: String, cleanup: () -> Void) {
        let scratch = try TemporaryDirectory(prefix: "extentdb-policy")
        let base = scratch.url.path
        let root = base + "/root"
        let outside = base + "/outside"
        for directory in [root + "/vmA", root + "/vmB", outside] {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        FileManager.default.createFile(atPath: root + "/vmA/disk.qcow2", contents: Data("a".utf8))
        FileManager.default.createFile(atPath: root + "/vmB/disk.qcow2", contents: Data("b".utf8))
        FileManager.default.createFile(atPath: outside + "/secret", contents: Data("s".utf8))
        try FileManager.default.createSymbolicLink(atPath: root + "/vmA/alias.qcow2", withDestinationPath: "disk.qcow2")
        try FileManager.default.createSymbolicLink(atPath: root + "/vmA/theirs.qcow2", withDestinationPath: "../vmB/disk.qcow2")
        try FileManager.default.createSymbolicLink(atPath: root + "/escape", withDestinationPath: "../outside/secret")
        let canonicalRoot = PathResolver.canonical(root) ?? root
        return (canonicalRoot, PathResolver.canonical(outside) ?? outside, scratch.cleanup)
    }

    @Test("isInside answers as its definition (the directory itself, or a path beneath it) for every pair of tricky paths")
    func isInsideByBytes() {
        let names = [
            "/", "/sr", "/sr/", "/sr0", "/sr/a", "/sr/a/", "/sra", "/sr//a", "/s", "", "sr", "/sr/é", "/sré", "/sr/a/b.qcow2",
            "/sr/\u{0}", "/srv/vm", "/srv/vm/disk", "/srv/vmA/disk",
        ]
        for path in names {
            for directory in names where directory.hasPrefix("/") {
                let defined =
                    directory == "/"
                    ? path.utf8.first == UInt8(ascii: "/")
                    : path.utf8.elementsEqual(directory.utf8) || PathResolver.beneath(path, directory: directory) != nil
                #expect(PathResolver.isInside(path, directory: directory) == defined, "\(path) in \(directory)")
            }
        }
    }

    @Test("inside: resolved; a link in the same directory is followed")
    func inside() throws {
        let (root, _, cleanup) = try Self.layout()
        defer { cleanup() }
        let policy = RootPolicy(roots: [root])
        #expect(try policy.resolve(root + "/vmA/disk.qcow2") == root + "/vmA/disk.qcow2")
        #expect(try policy.resolve(root + "/vmA/alias.qcow2") == root + "/vmA/disk.qcow2")
        #expect(policy.relativePath(of: root + "/vmA/disk.qcow2") == "vmA/disk.qcow2")
    }

    @Test("relative is a bad request; outside, through .., through a link, or into another directory is refused; absent is not found")
    func refusals() throws {
        let (root, outside, cleanup) = try Self.layout()
        defer { cleanup() }
        let policy = RootPolicy(roots: [root])
        func code(_ path: String) -> CatalogError.Code? {
            do {
                _ = try policy.resolve(path)
                return nil
            } catch {
                return error.code
            }
        }
        #expect(code("vmA/disk.qcow2") == .invalidArgument)
        #expect(code(outside + "/secret") == .refused)
        #expect(code(root + "/../outside/secret") == .refused)
        #expect(code(root + "/escape") == .refused)
        #expect(code(root + "/vmA/theirs.qcow2") == .refused)
        #expect(code(root + "/vmA/none.qcow2") == .notFound)
        #expect(code(root + "/vmA/disk.qcow2\u{0}x") == .invalidArgument)
    }
}
