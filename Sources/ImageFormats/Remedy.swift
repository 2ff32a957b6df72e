/// What a person can do about an error, named without any front end's spelling.
///
/// Library messages say what is wrong; each front end renders the remedy in its own words (the CLI as a
/// flag, HTTP as a request) or leaves it out, so no library message names a CLI flag.
public enum Remedy: Sendable, Equatable {
    /// Scan the image: the caller ruled scanning out, or the index cannot be written here.
    case scanFirst
    /// Say which format the file is, one of these (a guest can write any header into a raw disk).
    case pinFormat([String])
    /// Trust the directory of shared images that holds the file, or every file.
    case trustDirectory
    /// Read the file's bytes as a raw disk.
    case readAsRaw
    /// Write to a regular file: the output needs holes, which a pipe cannot have.
    case outputFile
    /// Use this cluster size, the smallest that fits.
    case clusterSize(UInt64)
    /// Make a digest scan of the image (`scan --digests`): the request needs its chunk digests.
    case digestScanFirst
}
