/// The container formats extentdb reads, detected by content, never by file name (each format's driver
/// probes for its magic: the scanner's `FormatRegistry`).
public enum ImageFormat: String, Sendable, Codable, CaseIterable {
    case raw
    case qcow2
    case vhd
}
