/// Runs of a VHD block's sector bitmap (VHD spec, "Block Format"): one bit per sector, sector 0 is the
/// most significant bit of byte 0. A set bit means the sector's data is in this block; a clear bit means
/// it is not (zeros in a dynamic disk, the parent's data in a differencing disk).
public enum VHDBitmap {
    /// A run of equal bits: `count` sectors from `first`, marked or not.
    public struct Run: Sendable, Equatable {
        public var first: Int
        public var count: Int
        public var marked: Bool
    }

    /// The maximal runs of equal bits among the first `sectors`, written into `runs` (cleared first).
    ///
    /// Words of 64 sectors are examined at a time, so all-set and all-clear stretches cost one compare.
    public static func runs(_ bitmap: UnsafeRawBufferPointer, sectors: Int, into runs: inout [Run]) {
        runs.removeAll(keepingCapacity: true)
        guard sectors > 0 else { return }
        var marked = bit(bitmap, 0)
        var runStart = 0
        var wordStart = 0
        while wordStart < sectors {
            let word = load64(bitmap, bitIndex: wordStart)
            // Bits equal to the current run's value read as 0 in `probe`; the first 1 is a transition.
            if word == (marked ? UInt64.max : 0) {
                wordStart += 64
                continue
            }
            var consumed = 0
            while consumed < 64 {
                let probe = (marked ? ~word : word) << UInt64(consumed)
                if probe == 0 { break }
                consumed += probe.leadingZeroBitCount
                let transition = wordStart + consumed
                if transition >= sectors { break }
                runs.append(Run(first: runStart, count: transition - runStart, marked: marked))
                runStart = transition
                marked.toggle()
            }
            wordStart += 64
        }
        runs.append(Run(first: runStart, count: sectors - runStart, marked: marked))
    }

    @inline(__always)
    static func bit(_ bitmap: UnsafeRawBufferPointer, _ index: Int) -> Bool {
        bitmap[index >> 3] & (0x80 >> UInt8(index & 7)) != 0
    }

    /// 64 bits starting at `bitIndex`, most significant first; bits past the buffer read as the opposite of
    /// nothing in particular (zero), which callers clip with `sectors`.
    @inline(__always)
    static func load64(_ bitmap: UnsafeRawBufferPointer, bitIndex: Int) -> UInt64 {
        let byteIndex = bitIndex >> 3
        let shift = UInt64(bitIndex & 7)
        if byteIndex + 9 <= bitmap.count {
            // Fast path: one unaligned 8-byte load, plus the next byte when not byte aligned.
            let word = UInt64(bigEndian: bitmap.loadUnaligned(fromByteOffset: byteIndex, as: UInt64.self))
            guard shift > 0 else { return word }
            return word << shift | UInt64(bitmap[byteIndex + 8]) >> (8 - shift)
        }
        var value: UInt64 = 0
        for offset in 0..<9 {
            let index = byteIndex + offset
            let byte: UInt64 = index < bitmap.count ? UInt64(bitmap[index]) : 0
            if offset < 8 {
                value = value << 8 | byte
            } else if shift > 0 {
                value = value << shift | byte >> (8 - shift)
                return value
            }
        }
        return value
    }
}
