import Foundation
import Testing

@testable import TestSupport

/// The deployment files: the systemd unit as systemd judges it, and the install and packaging scripts as far
/// as they can be run without a release build (scripts/install.sh and scripts/package-deb.sh are run by hand:
/// see the README's "Install").
@Suite struct DeployScriptsTests {
    /// contrib/extentdb.service with ExecStart naming the debug binary, as install.sh substitutes the prefix.
    private func unitWithBuiltBinary(in directory: URL) throws -> URL {
        let unit = try String(contentsOf: packageRoot.appendingPathComponent("contrib/extentdb.service"), encoding: .utf8)
        let binary = productsDirectory.appendingPathComponent("extentdb").path
        let substituted = unit.replacingOccurrences(of: "ExecStart=/usr/local/bin/extentdb ", with: "ExecStart=\(binary) ")
        #expect(substituted != unit, "ExecStart no longer names /usr/local/bin/extentdb")
        let url = directory.appendingPathComponent("extentdb.service")
        try substituted.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    @Test("systemd-analyze verify accepts the unit")
    func unitVerifies() throws {
        let directory = try TemporaryDirectory(prefix: "extentdb-unit")
        defer { directory.cleanup() }
        let unit = try unitWithBuiltBinary(in: directory.url)
        let result = try runProcess(
            URL(fileURLWithPath: "/usr/bin/env"), ["systemd-analyze", "verify", "--man=no", unit.path], in: directory.url, timeout: 60)
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stderr.isEmpty, "\(result.stderr)")
    }

    @Test("systemd-analyze verify accepts the unit with the pool drop-in (contrib/extentdb-pool.conf)")
    func poolDropInVerifies() throws {
        let directory = try TemporaryDirectory(prefix: "extentdb-unit")
        defer { directory.cleanup() }
        let unit = try unitWithBuiltBinary(in: directory.url)
        let dropIns = directory.url.appendingPathComponent("extentdb.service.d")
        try FileManager.default.createDirectory(at: dropIns, withIntermediateDirectories: true)
        let dropIn = try String(contentsOf: packageRoot.appendingPathComponent("contrib/extentdb-pool.conf"), encoding: .utf8)
        let binary = productsDirectory.appendingPathComponent("extentdb").path
        try dropIn.replacingOccurrences(of: "ExecStart=/usr/local/bin/extentdb ", with: "ExecStart=\(binary) ")
            .write(to: dropIns.appendingPathComponent("pool.conf"), atomically: true, encoding: .utf8)
        let result = try runProcess(
            URL(fileURLWithPath: "/usr/bin/env"), ["systemd-analyze", "verify", "--man=no", unit.path], in: directory.url, timeout: 60)
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stderr.isEmpty, "\(result.stderr)")
        // The URL carries no password; the catalog's is a credential.
        #expect(dropIn.contains("--db postgres://extentdb@db.pool.example:5432/extentdb"))
        #expect(dropIn.contains("LoadCredential=pgpass:"))
        #expect(!dropIn.contains("PGPASSWORD"))
    }

    @Test("systemd-analyze security rates the unit 4.5 or lower, running as its own user with one capability")
    func unitExposure() throws {
        let directory = try TemporaryDirectory(prefix: "extentdb-unit")
        defer { directory.cleanup() }
        let unit = try unitWithBuiltBinary(in: directory.url)
        let result = try runProcess(
            URL(fileURLWithPath: "/usr/bin/env"), ["systemd-analyze", "security", "--offline=true", "--no-pager", unit.path],
            in: directory.url, timeout: 60)
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        // "→ Overall exposure level for extentdb.service: 1.8 OK 🙂"
        let line = result.stdout.split(separator: "\n").first { $0.contains("Overall exposure level") }
        let score = line.flatMap { $0.split(separator: ":").last?.split(separator: " ").first }.flatMap { Double($0) }
        #expect(score != nil, "\(result.stdout)")
        #expect((score ?? 10) <= 4.5, "\(line ?? "")")
        // The root-owned 0600 images are read through one capability, not as root.
        #expect(result.stdout.contains("✓ User=/DynamicUser="), "\(result.stdout)")
        let text = try String(contentsOf: unit, encoding: .utf8)
        for setting in [
            "User=extentdb", "AmbientCapabilities=CAP_DAC_READ_SEARCH\n", "CapabilityBoundingSet=CAP_DAC_READ_SEARCH\n",
            "ProtectSystem=strict", "PrivateDevices=yes", "NoNewPrivileges=yes", "SystemCallFilter=@system-service",
            "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6\n", "StateDirectory=extentdb",
        ] {
            #expect(text.contains(setting), "no \(setting)")
        }
    }

    @Test("the deployment scripts parse, and install.sh --help names its options")
    func scriptsParse() throws {
        let directory = try TemporaryDirectory(prefix: "extentdb-scripts")
        defer { directory.cleanup() }
        for name in ["install.sh", "package-deb.sh", "generate-manual.sh"] {
            let path = packageRoot.appendingPathComponent("scripts/\(name)").path
            let result = try runProcess(URL(fileURLWithPath: "/bin/bash"), ["-n", path], in: directory.url)
            #expect(result.status == 0, "\(name): \(result.stderr)")
        }
        let help = try runProcess(
            URL(fileURLWithPath: "/bin/bash"), [packageRoot.appendingPathComponent("scripts/install.sh").path, "--help"], in: directory.url)
        #expect(help.status == 0, "\(help.stderr)")
        for word in ["--prefix DIR", "/usr/local", "DESTDIR", "--binary FILE"] {
            #expect(help.stdout.contains(word), "install.sh --help: no \(word)\n\(help.stdout)")
        }
    }

    @Test("install.sh refuses a binary that loads the Swift runtime from the toolchain, and installs nothing")
    func installRefusesToolchainBinary() throws {
        let directory = try TemporaryDirectory(prefix: "extentdb-install")
        defer { directory.cleanup() }
        let stage = directory.url.appendingPathComponent("stage")
        var environment = ProcessInfo.processInfo.environment
        environment["DESTDIR"] = stage.path
        // The debug build links libswiftCore.so from the toolchain: exactly what a host without Swift lacks.
        let result = try runProcess(
            URL(fileURLWithPath: "/bin/bash"),
            [
                packageRoot.appendingPathComponent("scripts/install.sh").path, "--prefix", "/usr",
                "--binary", productsDirectory.appendingPathComponent("extentdb").path,
            ],
            environment: environment, in: directory.url, timeout: 60)
        #expect(result.status == 1, "\(result.stdout)\(result.stderr)")
        #expect(result.stderr.contains("libswiftCore.so"), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: stage.path))
    }
}
