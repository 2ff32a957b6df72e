import Foundation
import NIOSSL
import ImageIO
import NBDServer

/// What `extentdb serve` was started with, checked and made canonical.
public struct ServerConfiguration: Sendable {
    /// Address to bind (an IPv4/IPv6 literal or `localhost`).
    public var host: String
    /// TCP port; 0 picks a free one (tests).
    public var port: Int
    /// Canonical directories the service may read images under.
    public var roots: [String]
    /// Canonical directories of shared images that any image under the roots may name as its backing file,
    /// parent or data file (`--trust-root`); every other such file must lie beneath the naming image's own
    /// directory.
    public var trustRoots: [String] = []
    /// The watcher indexes raw files it finds as raw disks (`--include-raw`), as `scan DIR --include-raw`
    /// does; otherwise only files whose content is qcow2 or VHD (``ImageDiscovery``).
    public var includeRaw = false
    /// The group NBD Unix sockets are given, mode 0660 (`--socket-group`): its members connect; nil keeps
    /// them 0600.
    public var socketGroup: gid_t?
    /// Seconds SIGTERM/SIGINT waits for exports and scans under way before they are cut (`--shutdown-timeout`);
    /// a unit's `TimeoutStopSec` should leave a margin above it.
    public var shutdownTimeout: Double = 30
    /// Serve `/v1` without a token (`--insecure-no-auth`), on a loopback address only: any local user can
    /// then read every disk under the roots.
    public var allowsNoAuthentication = false
    /// The bearer token every `/v1` request must carry; nil only on a loopback address.
    public var token: String?
    /// Index database file.
    public var databasePath: String
    /// Seconds between stat sweeps of the roots (the watcher's fallback to inotify); 0 turns the watcher off.
    public var watchInterval: Double
    /// How long writes to an image must have settled before the watcher rescans it.
    public var debounce: Double = 1.0
    /// Largest request body accepted (bytes).
    public var maximumBodySize = 64 * 1024
    /// Scans run at once; more wait in the queue.
    public var concurrentScans = 2
    /// Exports streamed at once; more are refused with 503.
    public var concurrentExports = 4
    /// Exports streamed at once for one client address; more are refused with 503 (its share of the slots).
    public var exportsPerClient = 2
    /// Largest extents response built in memory (bytes); larger windows are refused with 413.
    public var maximumExtentsResponse = 128 << 20
    /// HTTP connections open at once, from all clients; past it a new connection is closed at once.
    public var maximumConnections = 512
    /// HTTP connections open at once from one client address.
    public var maximumConnectionsPerClient = 64
    /// Seconds a client may take to send a request's headers, or stay idle between requests (a half-sent
    /// request holds a descriptor no longer than this).
    public var idleTimeout: Double = 30
    /// Seconds a response's writes may make no progress (a client that stopped reading an export).
    public var writeStallTimeout: Double = 60
    /// NBD sessions open at once on each NBD listener (qemu-nbd's `--shared`).
    public var nbdMaximumSessions = 128
    /// Seconds an NBD client may send nothing before it is disconnected.
    public var nbdIdleTimeout: Double = 300
    /// Seconds one scan may run before it is stopped.
    public var scanTimeLimit: Double = 600
    /// Scans queued or running at once; past it `POST /v1/scans` answers 503.
    public var maximumQueuedScans = 1000
    /// Extents one scan may hold in memory (about 170 bytes each while the chain is composed); a chain
    /// mapping more is refused, so a hostile table cannot make the service allocate gigabytes.
    public var maximumScanExtents = 8_000_000
    /// Serve HTTP on this Unix socket instead of TCP (`--listen unix:PATH`): mode 0600, or 0660 with
    /// ``socketGroup``; its permissions are then the authentication, so a token is optional.
    public var unixSocketPath: String?
    /// Serve every indexed image under the roots over NBD on this Unix socket (created mode 0600).
    public var nbdSocket: String?
    /// Serve them over NBD on this TCP address too: loopback only, since NBD has no authentication.
    public var nbdListen: String?
    /// HTTPS instead of HTTP on the TCP listener (`--tls-cert`, `--tls-key`).
    public var tls: ServerTLS?
    /// The TLS configuration ``validate()`` loaded from ``tls``'s files.
    public private(set) var tlsConfiguration: TLSConfiguration?
    /// Where the NBD server listens: `nbdSocket` and `nbdListen` as ``validate()`` parsed them.
    public private(set) var nbdAddresses: [NBDListenAddress] = []

    /// `HOST:PORT` as `--listen` takes it (`[V6]:PORT` for IPv6).
    public var listenAddress: String {
        if let unixSocketPath { return "unix:\(unixSocketPath)" }
        return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    public init(host: String, port: Int, roots: [String], token: String?, databasePath: String, watchInterval: Double = 30) {
        self.host = host
        self.port = port
        self.roots = roots
        self.token = token
        self.databasePath = databasePath
        self.watchInterval = watchInterval
    }

    /// Why the service refuses to start.
    public struct Invalid: Error, Sendable, CustomStringConvertible {
        public var description: String
        init(_ description: String) { self.description = description }
    }

    /// Parses `HOST:PORT` (`[::1]:8080` for IPv6).
    public static func parseListen(_ text: String, option: String = "--listen") throws(Invalid) -> (host: String, port: Int) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            throw Invalid("\(option) \(text): expected HOST:PORT, e.g. 127.0.0.1:8080")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw Invalid("\(option) \(text): no host") }
        return (host, port)
    }

    /// Reads the token from its file: the first line, surrounding white space removed; it must be at least
    /// 16 characters.
    public static func readToken(file path: String) throws(Invalid) -> String {
        guard let data = FileManager.default.contents(atPath: path) else { throw Invalid("--token-file \(path): cannot read it") }
        let token =
            String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline).first.map(String.init)?
            .trimmingCharacters(in: .whitespaces) ?? ""
        guard token.count >= 16 else { throw Invalid("--token-file \(path): the token must be at least 16 characters") }
        return token
    }

    /// True for an IPv4 literal in 127.0.0.0/8, the IPv6 literal ::1 (or ::ffff:127.x.y.z), and the name
    /// `localhost`, which ``validate()`` binds as 127.0.0.1.
    ///
    /// Only literals count: a name such as `127.internal.example` may resolve to any address (0.0.0.0
    /// listens on every interface), so it is no evidence of loopback.
    public static func isLoopback(_ host: String) -> Bool {
        if host == "localhost" { return true }
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 { return UInt32(bigEndian: v4.s_addr) >> 24 == 127 }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, host, &v6) == 1 else { return false }
        let bytes = withUnsafeBytes(of: v6) { Array($0) }
        if bytes == [UInt8](repeating: 0, count: 15) + [1] { return true }
        return bytes.prefix(12).elementsEqual([UInt8](repeating: 0, count: 10) + [0xFF, 0xFF]) && bytes[12] == 127
    }

    /// Each directory made absolute and canonical (symbolic links resolved).
    static func canonicalDirectories(_ directories: [String], option: String) throws(Invalid) -> [String] {
        var canonical: [String] = []
        for directory in directories {
            let absolute = PathResolver.absolute(directory, relativeTo: PathResolver.currentDirectory())
            guard let resolved = PathResolver.canonical(absolute), (try? FileIdentity(path: resolved))?.kind == .directory else {
                throw Invalid("\(option) \(directory): not a directory")
            }
            canonical.append(resolved)
        }
        return canonical
    }

    /// Makes the roots canonical and refuses a non-loopback address without a token.
    public mutating func validate() throws(Invalid) {
        if host == "localhost" { host = "127.0.0.1" }
        if token == nil && unixSocketPath == nil {
            guard allowsNoAuthentication else {
                throw Invalid(
                    "refusing to serve without --token-file: every /v1 request would be unauthenticated, and any local user could "
                        + "download every disk; give --token-file FILE (or, on a loopback address, --insecure-no-auth to accept that)")
            }
            guard Self.isLoopback(host) else {
                throw Invalid("refusing to listen on \(host) without --token-file: only a loopback address may go without a token")
            }
        }
        guard !roots.isEmpty else { throw Invalid("at least one --root is needed") }
        if let tls {
            guard unixSocketPath == nil else {
                throw Invalid("--tls-cert and --tls-key serve HTTPS on TCP; a Unix socket (--listen unix:PATH) is local and takes no TLS")
            }
            tlsConfiguration = try tls.configuration()
        }
        roots = try Self.canonicalDirectories(roots, option: "--root")
        trustRoots = try Self.canonicalDirectories(trustRoots, option: "--trust-root")
        nbdAddresses = nbdSocket.map { [.unix(path: $0)] } ?? []
        if let nbdListen {
            var (host, port) = try Self.parseListen(nbdListen, option: "--nbd-listen")
            if host == "localhost" { host = "127.0.0.1" }
            guard Self.isLoopback(host) else {
                throw Invalid(
                    "refusing --nbd-listen \(nbdListen): NBD has no authentication, so only a loopback address is allowed; "
                        + "use --nbd-socket (its permissions decide who connects) or a tunnel")
            }
            nbdAddresses.append(.tcp(host: host, port: port))
        }
        guard watchInterval >= 0 else { throw Invalid("--watch-interval must be 0 (off) or more seconds") }
        for (value, flag) in [
            (idleTimeout, "--idle-timeout"), (writeStallTimeout, "--write-timeout"), (nbdIdleTimeout, "--nbd-idle-timeout"),
            (scanTimeLimit, "--scan-time-limit"),
        ] where !(value > 0) {
            throw Invalid("\(flag) must be more than 0 seconds")
        }
        for (value, flag) in [
            (maximumConnections, "--max-connections"), (maximumConnectionsPerClient, "--max-connections-per-client"),
            (nbdMaximumSessions, "--nbd-max-sessions"), (concurrentExports, "--max-exports"),
            (exportsPerClient, "--max-exports-per-client"), (maximumQueuedScans, "--max-queued-scans"),
            (maximumScanExtents, "--max-scan-extents"),
        ] where value < 1 {
            throw Invalid("\(flag) must be at least 1")
        }
    }
}
