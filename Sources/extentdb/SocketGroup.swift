import ArgumentParser
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// `--socket-group GROUP`: a group name (or numeric id) as the system knows it.
enum SocketGroup {
    static func id(named name: String) throws -> gid_t {
        if let numeric = gid_t(name) { return numeric }
        guard let entry = getgrnam(name) else { throw ValidationError("--socket-group \(name): no such group") }
        return entry.pointee.gr_gid
    }
}
