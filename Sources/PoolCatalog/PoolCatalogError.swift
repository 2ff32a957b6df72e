/// A `postgres://` location that cannot be used as it is written.
public enum PoolCatalogError: Error, Sendable, CustomStringConvertible {
    /// The URL (password-free) and what is wrong with it.
    case badLocation(String, String)

    public var description: String {
        switch self {
        case let .badLocation(url, problem): return "bad catalog location \(url): \(problem)"
        }
    }
}
