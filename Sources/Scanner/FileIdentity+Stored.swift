import AllocationIndex
import ImageIO

extension FileIdentity {
    /// True when this `stat`/`fstat` identity is the one the index recorded: same device, inode, size,
    /// mtime and ctime (allocation on disk aside), i.e. the same file in the same state. An identity
    /// recorded without a ctime (before schema version 5) matches nothing.
    public func matches(_ stored: StoredFileIdentity) -> Bool {
        device == stored.device && inode == stored.inode && size == stored.size && modificationTimeNanoseconds == stored.mtimeNanoseconds
            && stored.ctimeNanoseconds == changeTimeNanoseconds
    }
}
