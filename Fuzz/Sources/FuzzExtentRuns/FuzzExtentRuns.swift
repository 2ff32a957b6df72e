import AllocationIndex
import Foundation
import ImageFormats

/// libFuzzer entry point: the extent-run codec that decodes the `extent_chunks` blobs of the index.
///
/// Input: u16 big-endian extent count, u64 big-endian chunk start, then the blob. Decoding a damaged blob
/// must throw, never trap; whatever decodes must survive an encode/decode round trip unchanged.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzExtentRuns(_ data: UnsafeRawPointer?, _ size: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size)
    guard input.count >= 10 else { return 0 }
    let count = Int(input[0]) << 8 | Int(input[1])
    var start: UInt64 = 0
    for index in 2..<10 { start = start << 8 | UInt64(input[index]) }
    let blob = Data(input[10...])
    var decoded: [Extent] = []
    do {
        try ExtentRunCodec.decode(blob, start: start, count: count) { decoded.append($0) }
    } catch {
        return 0
    }
    let again = ExtentRunCodec.encode(decoded[...])
    var roundTrip: [Extent] = []
    do {
        try ExtentRunCodec.decode(again, start: start, count: decoded.count) { roundTrip.append($0) }
    } catch {
        fatalError("re-encoded extents do not decode: \(error)")
    }
    precondition(roundTrip == decoded, "encode/decode round trip changed the extents")
    return 0
}
