import AllocationIndex
import ImageIO

extension FileIdentity {
    /// True when this `stat`/`fstat` identity is the one the index recorded: same device, inode, size and
    /// mtime (allocation on disk aside), i.e. the same file in the same state.
    public func matches(_ stored: StoredFileIdentity) -> Bool {
        device == stored.device && inode == stored.inode && size == stored.size && modificationTimeNanoseconds == stored.mtimeNanoseconds
    }
}
