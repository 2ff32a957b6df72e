import AllocationIndex
import ArgumentParser
import Catalog
import CExtentShims
import Export
import Foundation
import Logging
import NBDServer
import Scanner
import Server

struct NBDCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nbd",
        abstract: "Serve an image read-only over NBD, in the foreground (like qemu-nbd -r).",
        discussion: """
            Block status (base:allocation, qemu:allocation-depth) is answered from the index; reads send \
            data extents only, and zero or unallocated ranges as holes. The image is indexed first when it \
            is not, or is stale. Each new client's connection checks the image again (stat and header \
            checksum) and rescans it if it changed; connections already open then fail their reads with EIO, \
            never mixing old and new data.

            Example:
              extentdb nbd disk.qcow2 --socket /tmp/disk.sock
              nbdinfo --map 'nbd+unix:///?socket=/tmp/disk.sock'
            """)

    @OptionGroup var index: IndexOptions
    @OptionGroup var chain: ChainOptions

    @Argument(help: ArgumentHelp("The image.", valueName: "image"))
    var image: String

    @Option(help: ArgumentHelp("Listen on a Unix domain socket at this path.", valueName: "path"))
    var socket: String?

    @Option(help: ArgumentHelp("Listen on TCP at HOST:PORT ([::1]:PORT for IPv6; port 0 picks one).", valueName: "host:port"))
    var listen: String?

    @Option(help: "The export name clients ask for (default: the empty string, as qemu-nbd).")
    var exportName: String = ""

    @Option(
        help: ArgumentHelp("Give the --socket this group and mode 0660, so that its members may connect.", valueName: "group"))
    var socketGroup: String?

    @Option(
        name: [.customShort("B"), .customLong("bitmap")],
        help: ArgumentHelp(
            "Serve this qcow2 persistent dirty bitmap as the qemu:dirty-bitmap:NAME context (repeatable; as qemu-nbd -B).",
            valueName: "name"))
    var bitmaps: [String] = []

    func validate() throws {
        guard (socket == nil) != (listen == nil) else { throw ValidationError("give exactly one of --socket or --listen") }
        if socketGroup != nil && socket == nil { throw ValidationError("--socket-group goes with --socket") }
        if let listen { _ = try Self.tcpAddress(listen) }
    }

    /// `HOST:PORT` (or `[V6]:PORT`), parsed as `serve --listen` parses it.
    static func tcpAddress(_ text: String) throws -> NBDListenAddress {
        do {
            let (host, port) = try ServerConfiguration.parseListen(text)
            return .tcp(host: host, port: port)
        } catch {
            throw ValidationError(error.description)
        }
    }

    /// The bitmaps asked for with -B, from the image's latest scan: one it does not have, or one flagged in
    /// use, is refused by name (as qemu-nbd does).
    static func servedBitmaps(_ names: [String], of indexed: IndexedScan, store: any IndexStoring) throws -> [DirtyBitmap] {
        guard !names.isEmpty else { return [] }
        let catalog = ImageCatalog(indexer: ImageIndexer(store: store))
        // The same refusals as `changes --bitmap`: an unknown name, a bitmap in use.
        return try names.map { name in try catalog.bitmap(of: indexed, named: name) }
    }

    static func logger() -> Logger {
        var logger = Logger(label: "extentdb.nbd", factory: { label in StreamLogHandler.standardError(label: label) })
        logger.logLevel = .notice
        return logger
    }

    func run() throws {
        let store = try index.openStore()
        let indexed = try IndexedImage.load(image, store: store, chain: chain, rescan: true, checkHeaders: true)
        let (image, chain, name, asked) = (self.image, self.chain, exportName, bitmaps)
        let export = try ImageExport(
            store: store, indexed: indexed, name: name, bitmaps: try Self.servedBitmaps(asked, of: indexed, store: store))
        let catalog = SingleImageCatalog(export) {
            let rescanned = try IndexedImage.load(image, store: store, chain: chain, rescan: true, checkHeaders: true)
            return try ImageExport(
                store: store, indexed: rescanned, name: name, bitmaps: try Self.servedBitmaps(asked, of: rescanned, store: store))
        }
        let logger = Self.logger()
        let address: NBDListenAddress
        if let socket {
            address = .unix(path: socket)
            // SIGINT/SIGTERM remove the socket, as qemu-nbd does.
            _ = extentdb_set_cleanup_path(socket)
        } else if let listen {
            address = try Self.tcpAddress(listen)
        } else {
            throw ValidationError("give exactly one of --socket or --listen")
        }
        let size = export.plan.virtualSize
        var server = NBDImageServer(catalog: catalog, logger: logger)
        if let socketGroup {
            server.socketMode = 0o660
            server.socketGroup = try SocketGroup.id(named: socketGroup)
        }
        // Stopping a server is its normal end: exit 0, as qemu-nbd does and as systemd counts success.
        extentdb_set_signal_stops_cleanly(1)
        do {
            try server.serve(on: address) { bound in
                logger.notice("serving \(indexed.image.path) (\(size) bytes, read-only) on \(bound)")
            }
        } catch let error as ListenError {
            throw CommandFailure("\(error)")
        } catch {
            throw CommandFailure("nbd: \(address): \(error)")
        }
    }
}
