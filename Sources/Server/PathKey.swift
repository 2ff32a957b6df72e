/// A path as a dictionary key that carries its hash inline: a lookup among a hundred thousand paths that
/// share a long prefix (and often a length) compares the stored hashes of the buckets it probes, and reads
/// a path's bytes only on a hash match, instead of following each probed key to its heap storage and
/// comparing it byte for byte. The service's per-path tables (listing cache, check times) use it.
struct PathKey: Hashable, Sendable {
    let path: String
    private let hash: Int

    init(_ path: String) {
        self.path = path
        hash = path.hashValue
    }

    static func == (left: PathKey, right: PathKey) -> Bool {
        left.hash == right.hash && left.path == right.path
    }

    func hash(into hasher: inout Hasher) {
        hasher.combine(hash)
    }
}
