import AllocationIndex
import Catalog
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import Report

/// The image list's summaries kept between requests, as the JSON a page of `GET /v1/images?limit=` carries,
/// so a page costs one light query of keys (``ImageCatalog/pageKeys(after:limit:under:)``) and copies, not a
/// `stat`, a record decode and an encoding for each image on every request.
///
/// An entry answers while the index still gives its path the same ``ListedImageKey`` (a rescan by any
/// process or host, a failed scan, a forget and retention all move it), the watcher's missing mark is
/// unchanged, and the watcher has not seen the file or a layer of its chain change since (``forget(path:)``).
/// Freshness is the watcher's: with it on, each image is compared with the disk by its sweep and inotify,
/// not on each listing; with it off (`--watch-interval 0`), an entry is trusted for ``unwatchedLifetime``.
final class ListingCache: Sendable {
    /// Seconds an entry answers when no watcher keeps the roots.
    static let unwatchedLifetime = 1.0
    /// Entries kept at most (about 600 bytes each); past it, the cache starts again empty.
    static let capacity = 250_000

    /// One image's summary as JSON with `sortedKeys`, cut where `last_checked` goes: right before `"path"`,
    /// the key that follows it in that order and that every summary has.
    final class Entry: Sendable {
        let key: ListedImageKey
        let markedMissing: Bool
        let builtAt: Double
        let head: [UInt8]
        let tail: [UInt8]

        init(key: ListedImageKey, markedMissing: Bool, builtAt: Double, head: [UInt8], tail: [UInt8]) {
            self.key = key
            self.markedMissing = markedMissing
            self.builtAt = builtAt
            self.head = head
            self.tail = tail
        }
    }

    private struct State {
        var entries: [PathKey: Entry] = [:]
        /// Images of more than one layer, by each of their layers' paths: a change to a backing file can
        /// make the image on top stale.
        var chained: [String: Set<String>] = [:]
    }

    private let state = NIOLockedValueBox(State())
    let lifetime: Double

    init(watched: Bool) {
        lifetime = watched ? .infinity : Self.unwatchedLifetime
    }

    /// The entries still true for `keys`, in order; nil where one must be built. `markedMissing` holds the
    /// watcher's missing mark of each key's path.
    func entries(for keys: [ListedImageKey], markedMissing: [Bool]) -> [Entry?] {
        let now = WatchState.now()
        let paths = keys.map { PathKey($0.path) }
        let found = state.withLockedValue { state in paths.map { state.entries[$0] } }
        return keys.indices.map { index in
            guard let entry = found[index], entry.key == keys[index], now - entry.builtAt < lifetime,
                entry.markedMissing == markedMissing[index]
            else { return nil }
            return entry
        }
    }

    /// Encodes and keeps freshly built summaries; returns their entries by path.
    func remember(_ built: [ListedSummary], isMarkedMissing: (String) -> Bool) -> [String: Entry] {
        let now = WatchState.now()
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var made: [String: Entry] = [:]
        for item in built {
            var summary = item.summary
            summary.lastChecked = nil
            guard let json = try? encoder.encode(summary) else { continue }
            let bytes = Array(json)
            guard let cut = Self.pathKeyOffset(in: bytes) else { continue }
            made[item.key.path] = Entry(
                key: item.key, markedMissing: isMarkedMissing(item.key.path), builtAt: now, head: Array(bytes[..<cut]),
                tail: Array(bytes[cut...]))
        }
        state.withLockedValue { state in
            if state.entries.count + made.count > Self.capacity { state = State() }
            for item in built where made[item.key.path] != nil {
                state.entries[PathKey(item.key.path)] = made[item.key.path]
                for layer in item.layerPaths.dropFirst() { state.chained[layer, default: []].insert(item.key.path) }
            }
        }
        return made
    }

    /// Drops the entry of `path`, and of every image whose chain has `path` as a layer: the watcher saw it
    /// change.
    func forget(path: String) {
        state.withLockedValue { state in
            state.entries.removeValue(forKey: PathKey(path))
            for image in state.chained.removeValue(forKey: path) ?? [] { state.entries.removeValue(forKey: PathKey(image)) }
        }
    }

    /// The offset of the `"path"` key in a summary's compact JSON object: the first `"path":` right after
    /// `{` or `,`, which no string value can hold (a quote inside a string is always escaped).
    static func pathKeyOffset(in json: [UInt8]) -> Int? {
        let key = Array(#""path":"#.utf8)
        var index = 1
        while index + key.count <= json.count {
            if json[index] == UInt8(ascii: "\""), json[index - 1] == UInt8(ascii: "{") || json[index - 1] == UInt8(ascii: ",") {
                if json[index..<(index + key.count)].elementsEqual(key) { return index }
            }
            index += 1
        }
        return nil
    }

    /// The body of a page, byte for byte what `Response.json` makes of `{images, next}` with each summary's
    /// `last_checked` set from `lastChecked` (each entry's time in seconds since 1970, or nil).
    static func page(_ entries: [Entry], next: String?, lastChecked: [Double?]) -> ByteBuffer {
        var body = ByteBuffer()
        body.reserveCapacity(entries.reduce(64) { $0 + $1.head.count + $1.tail.count + 40 })
        body.writeString(#"{"images":["#)
        // The watcher checks images in bursts: many share a second, whose text is made once.
        var second: (number: Int64, field: [UInt8])?
        for (index, entry) in entries.enumerated() {
            if index > 0 { body.writeInteger(UInt8(ascii: ",")) }
            body.writeBytes(entry.head)
            if let checked = lastChecked[index] {
                let nanoseconds = Int64(checked * 1e9)
                let number = ImageReport.timestampSecond(nanoseconds)
                let field: [UInt8]
                if let second, second.number == number {
                    field = second.field
                } else {
                    field = Array((#""last_checked":""# + ImageReport.timestamp(nanoseconds) + #"","#).utf8)
                    second = (number, field)
                }
                body.writeBytes(field)
            }
            body.writeBytes(entry.tail)
        }
        body.writeString("]")
        if let next {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.withoutEscapingSlashes]
            body.writeString(#","next":"#)
            body.writeBytes((try? encoder.encode(next)) ?? Data("\"\"".utf8))
        }
        body.writeString("}")
        return body
    }
}
