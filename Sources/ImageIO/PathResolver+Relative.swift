extension PathResolver {
    /// The path that leads from `directory` to `target`, both absolute, with `..` where it must climb:
    /// `relative("/srv/base/parent.vhd", from: "/srv/out")` is `../base/parent.vhd`.
    ///
    /// Both are normalised first (`.` and `..` removed, without touching the disk), so pass canonical
    /// paths when symbolic links matter. This is the name a delta records for its base, so that the pair
    /// keeps working when moved together (qemu and the VHD readers resolve a relative name against the
    /// directory of the image that holds it).
    ///
    /// - Returns: a relative path; `.` when `target` is `directory` itself.
    public static func relative(_ target: String, from directory: String) -> String {
        let to = absolute(target, relativeTo: "/").split(separator: "/")
        let from = absolute(directory, relativeTo: "/").split(separator: "/")
        var common = 0
        while common < to.count, common < from.count, to[common] == from[common] { common += 1 }
        let parts = Array(repeating: "..", count: from.count - common) + to[common...].map(String.init)
        return parts.isEmpty ? "." : parts.joined(separator: "/")
    }
}
