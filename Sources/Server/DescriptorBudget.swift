#if canImport(Glibc)
    import Glibc
#endif

/// The process's descriptor limit, raised to its hard limit at start (systemd gives services a soft 1,024
/// and a hard 524,288), with descriptors held back for the index, images, pipes and the listeners.
///
/// The connection caps must fit in what remains: a service that runs out of descriptors cannot open its
/// index or an image (and libdispatch traps when it cannot get one), so connections are refused first.
enum DescriptorBudget {
    /// Descriptors kept for everything that is not a client connection.
    static let reserved = 256

    /// Raises the soft limit to the hard one and returns the descriptors left for connections.
    static func raise() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 - reserved }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        let soft = Int(clamping: min(limit.rlim_cur, 1 << 20))
        return max(soft - reserved, 16)
    }
}
