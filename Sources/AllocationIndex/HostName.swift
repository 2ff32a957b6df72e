#if canImport(Glibc)
    import Glibc
#endif

/// The name a scan records as the host that made it: `$EXTENTDB_HOST` when set (a pool's hosts may share
/// a kernel host name, and the pool simulation runs several "hosts" on one machine), else the kernel's.
public enum HostName {
    public static let current: String = {
        if let named = getenv("EXTENTDB_HOST").map({ String(cString: $0) }), !named.isEmpty { return named }
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }()
}
