import ArgumentParser
import Foundation
import ImageIO
import Logging
import NBDServer
import Server

struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the index over HTTP/JSON, keeping it fresh by watching the roots.",
        discussion: """
            Every /v1 request needs `Authorization: Bearer <token>` (the first line of --token-file). Without \
            --token-file the service refuses to start, unless --insecure-no-auth is given on a loopback address. Images must lie under a --root (symbolic links resolved). \
            A backing file, parent or data file must lie beneath the directory of the image that names it, as \
            on the command line: one tenant's image cannot name another's. Shared base images are opt-in with \
            --trust-root. SIGTERM/SIGINT stop it gracefully. See openapi.yaml for the API.

            Every limit below has a default that keeps one client, or a hostile image, from starving the \
            rest; /metrics counts each time one is hit (extentdb_limit_hits_total{limit=...}). The \
            descriptor limit is raised to its hard limit at start, and the connection caps are lowered if \
            they would not fit in it.

            With --nbd-socket or --nbd-listen, indexed images are also served read-only over NBD, as \
            `extentdb nbd` serves one: export names are paths relative to a root (nbdinfo --list shows \
            them), and an image that changed is rescanned when a client connects.

            Example:
              extentdb serve --root /srv/vms --nbd-socket /run/extentdb/nbd.sock
              nbdinfo --map 'nbd+unix:///vm1/disk.qcow2?socket=/run/extentdb/nbd.sock'
            """)

    @OptionGroup var index: IndexOptions

    @Option(
        help: ArgumentHelp(
            "Address and port to listen on, or unix:PATH for a Unix socket (0600, or 0660 with --socket-group; no token needed).",
            valueName: "host:port"))
    var listen: String = "127.0.0.1:8080"

    @Option(name: .customLong("root"), help: ArgumentHelp("A directory whose images the service serves (repeatable).", valueName: "dir"))
    var roots: [String] = []

    @Option(
        name: .customLong("trust-root"),
        help: ArgumentHelp(
            "A directory of shared base images that any image may name as its backing file, parent or data file (repeatable).",
            discussion: "Not served itself unless it is also a --root.", valueName: "dir"))
    var trustRoots: [String] = []

    @Option(
        help: ArgumentHelp(
            "Give the Unix sockets (NBD, and HTTP with --listen unix:PATH) this group and mode 0660, so that its members may connect.",
            valueName: "group"))
    var socketGroup: String?

    @Option(
        help: ArgumentHelp(
            "Seconds SIGTERM/SIGINT lets exports and scans under way finish before they are cut (set TimeoutStopSec above it).",
            valueName: "seconds"))
    var shutdownTimeout: Double = 30

    @Flag(help: "The watcher also indexes raw files it finds as raw disks (as scan DIR --include-raw); else only QCOW2/VHD.")
    var includeRaw = false

    @Option(
        help: ArgumentHelp(
            "Serve HTTPS: the server's certificate (PEM, then any intermediates); needs --tls-key.", valueName: "file"))
    var tlsCert: String?

    @Option(help: ArgumentHelp("The certificate's private key (PEM, unencrypted; keep it mode 0600).", valueName: "file"))
    var tlsKey: String?

    @Option(help: ArgumentHelp("File whose first line is the bearer token (at least 16 characters).", valueName: "file"))
    var tokenFile: String?

    @Flag(help: "Serve without --token-file, on a loopback address only: any local user can then read every disk.")
    var insecureNoAuth = false

    @Option(
        help: ArgumentHelp(
            "Seconds between stat sweeps of the roots (inotify reports changes sooner); 0 turns watching off.", valueName: "seconds"))
    var watchInterval: Double = 30

    @Option(help: ArgumentHelp("Seconds an image's writes must settle before it is rescanned.", valueName: "seconds"))
    var debounce: Double = 1

    @Option(
        help: ArgumentHelp(
            "Also serve every indexed image under the roots over NBD on this Unix socket (mode 0600), named by its path relative to its root.",
            valueName: "path"))
    var nbdSocket: String?

    @Option(
        help: ArgumentHelp(
            "Also serve them over NBD on TCP at this loopback HOST:PORT (NBD has no authentication).", valueName: "host:port"))
    var nbdListen: String?

    @Option(
        help: ArgumentHelp("How log lines are written: text, or json (one JSON object per line, for a log shipper).", valueName: "format"))
    var logFormat: LogFormat = .text

    enum LogFormat: String, ExpressibleByArgument, CaseIterable {
        case text, json
    }

    @Option(help: ArgumentHelp("HTTP connections open at once; past it new ones are closed at once.", valueName: "n"))
    var maxConnections = 512

    @Option(help: ArgumentHelp("HTTP connections open at once from one client address.", valueName: "n"))
    var maxConnectionsPerClient = 64

    @Option(
        help: ArgumentHelp("Seconds a client may take to send a request's headers, or stay idle between requests.", valueName: "seconds"))
    var idleTimeout: Double = 30

    @Option(
        help: ArgumentHelp("Seconds a response (an export) may make no progress before its connection is closed.", valueName: "seconds"))
    var writeTimeout: Double = 60

    @Option(help: ArgumentHelp("Exports streamed at once; past it an export answers 503.", valueName: "n"))
    var maxExports = 4

    @Option(help: ArgumentHelp("Exports streamed at once for one client address (its share); past it 503.", valueName: "n"))
    var maxExportsPerClient = 2

    @Option(help: ArgumentHelp("NBD sessions open at once on each NBD listener (as qemu-nbd --shared).", valueName: "n"))
    var nbdMaxSessions = 128

    @Option(help: ArgumentHelp("Seconds an NBD client may send nothing before it is disconnected.", valueName: "seconds"))
    var nbdIdleTimeout: Double = 300

    @Option(help: ArgumentHelp("Seconds one scan may run before it is stopped (and fails).", valueName: "seconds"))
    var scanTimeLimit: Double = 600

    @Option(help: ArgumentHelp("Scans queued or running at once; past it POST /v1/scans answers 503.", valueName: "n"))
    var maxQueuedScans = 1000

    @Option(
        help: ArgumentHelp("Extents one scan may map (about 170 bytes of memory each); a chain mapping more is refused.", valueName: "n"))
    var maxScanExtents = 8_000_000

    func validate() throws {
        if roots.isEmpty { throw ValidationError("at least one --root is needed") }
        if (tlsCert == nil) != (tlsKey == nil) { throw ValidationError("--tls-cert and --tls-key go together: give both, or neither") }
        guard shutdownTimeout >= 0, shutdownTimeout <= 86400 else { throw ValidationError("--shutdown-timeout must be 0 to 86400 seconds") }
    }

    func run() throws {
        let address: (host: String, port: Int)
        let token: String?
        let unixPath =
            listen.hasPrefix("unix:")
            ? PathResolver.absolute(String(listen.dropFirst(5)), relativeTo: PathResolver.currentDirectory()) : nil
        do {
            address = unixPath == nil ? try ServerConfiguration.parseListen(listen) : ("127.0.0.1", 0)
            token = try tokenFile.map { try ServerConfiguration.readToken(file: $0) }
        } catch {
            throw CommandFailure("\(error)")
        }
        var configuration = ServerConfiguration(
            host: address.host, port: address.port, roots: roots, token: token, databasePath: index.resolvedPath,
            watchInterval: watchInterval)
        configuration.debounce = debounce
        configuration.trustRoots = trustRoots
        configuration.includeRaw = includeRaw
        configuration.unixSocketPath = unixPath
        configuration.shutdownTimeout = shutdownTimeout
        configuration.socketGroup = try socketGroup.map(SocketGroup.id(named:))
        configuration.allowsNoAuthentication = insecureNoAuth
        if let tlsCert, let tlsKey {
            configuration.tls = ServerTLS(
                certificatePath: PathResolver.absolute(tlsCert, relativeTo: PathResolver.currentDirectory()),
                keyPath: PathResolver.absolute(tlsKey, relativeTo: PathResolver.currentDirectory()))
        }
        configuration.maximumConnections = maxConnections
        configuration.maximumConnectionsPerClient = maxConnectionsPerClient
        configuration.idleTimeout = idleTimeout
        configuration.writeStallTimeout = writeTimeout
        configuration.nbdMaximumSessions = nbdMaxSessions
        configuration.concurrentExports = maxExports
        configuration.exportsPerClient = maxExportsPerClient
        configuration.nbdIdleTimeout = nbdIdleTimeout
        configuration.scanTimeLimit = scanTimeLimit
        configuration.maximumQueuedScans = maxQueuedScans
        configuration.maximumScanExtents = maxScanExtents
        configuration.nbdSocket = nbdSocket
        configuration.nbdListen = nbdListen
        var logger = logFormat == .json ? Logger(label: "extentdb.serve") { JSONLogHandler(label: $0) } : Logger(label: "extentdb.serve")
        logger.logLevel = .info
        let app: any ApplicationRunner
        do {
            app = try makeServeRunner(configuration, logger: logger)
        } catch let error as ServerConfiguration.Invalid {
            throw CommandFailure("\(error)")
        }
        let result = RunResult()
        let done = DispatchSemaphore(value: 0)
        Task {
            do {
                try await app.runService()
            } catch let error as ListenError {
                result.error = "\(error)"
            } catch {
                result.error = "serve: \(error)"
            }
            done.signal()
        }
        done.wait()
        if let error = result.error { throw CommandFailure(error) }
    }
}

/// The outcome of the server task, read by the main thread after it ends.
private final class RunResult: @unchecked Sendable {
    var error: String?
}
