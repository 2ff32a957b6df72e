import AllocationIndex
import Content
import Export
import Scanner
import Foundation
import ImageFormats

/// A digest scan's outcome: the digests, and whether this call made them (or found them recorded).
public struct DigestOutcome: Sendable {
    public var digests: ScanDigests
    public var made: Bool
}

extension ImageCatalog {
    /// The chunk digests of the scan `indexed`: the recorded ones, or, when none were recorded and `make`
    /// allows, made now (keeping every chunk an earlier digest scan of the image saw unchanged) and
    /// recorded with the scan.
    ///
    /// - Throws: `not_indexed` with the remedy "digest scan first" when none are recorded and `make` is false.
    /// - Parameter stop: the scan job's cancellation and time limit, checked between chunks.
    public func digests(
        of indexed: IndexedScan, make: Bool, progress: ((UInt64, UInt64) -> Void)? = nil, stop: ScanProgress? = nil
    ) throws(CatalogError) -> DigestOutcome {
        try classified {
            if let recorded = try store.digests(scanID: indexed.scan.id ?? -1) { return DigestOutcome(digests: recorded, made: false) }
            guard make else {
                throw CatalogError(
                    .notIndexed, "\(indexed.image.path) has no digests for its latest scan (#\(indexed.scan.id ?? 0))",
                    path: indexed.image.path, remedy: .digestScanFirst)
            }
            guard !store.isReadOnly else { throw StoreError.readOnly(store.path ?? "the index") }
            var scanner = DigestScanner(store: store)
            scanner.progress = progress
            scanner.stop = stop
            let made = try scanner.digest(indexed, keepingFrom: try store.latestDigests(path: indexed.image.path))
            try store.saveDigests(made)
            return DigestOutcome(digests: made, made: true)
        }
    }

    /// The digests recorded for scan `scanID` of the image at `path` (`--since-scan N`).
    /// - Throws: `not_found` when the scan is not one of the image's, or was removed; `not_indexed` when no
    ///   digest scan was made of it.
    public func recordedDigests(path: String, scanID: Int64) throws(CatalogError) -> ScanDigests {
        try classified {
            guard let scan = try store.indexedScan(id: scanID), scan.image.path == path else {
                // One answer whether the id was never this image's, another image's, or removed: a tenant
                // learns nothing about other images' scans.
                throw CatalogError(.notFound, "\(path) has no scan #\(scanID) (kept scans: info lists them)", path: path)
            }
            guard let digests = try store.digests(scanID: scanID) else {
                throw CatalogError(.notIndexed, "scan #\(scanID) of \(path) has no digests", path: path, remedy: .digestScanFirst)
            }
            return digests
        }
    }
}

/// What `verify` found: the chunks whose content no longer has the digest recorded for it.
public struct VerifyReport: Sendable {
    public struct Mismatch: Sendable {
        public var chunk: Int
        public var range: Range<UInt64>
        public var expected: String
        /// Nil for a chunk the copy does not have (it is shorter).
        public var actual: String?
    }

    public var path: String
    /// The file checked: the image itself, or a copy of it.
    public var checked: String
    public var chunkSize: UInt64
    public var chunkCount: Int
    public var virtualSize: UInt64
    /// The copy's size, when it differs from the image's.
    public var copySize: UInt64?
    public var mismatches: [Mismatch]
    public var bytesRead: UInt64

    public var matches: Bool { mismatches.isEmpty && copySize == nil }
}

extension ImageCatalog {
    /// Reads the image of `indexed` again, or `copy` (raw, qcow2 or VHD, read through extentdb's own
    /// readers), and checks every chunk against the digests recorded for `indexed`: nothing is kept from
    /// earlier digest scans, every stored byte is read.
    ///
    /// - Throws: `not_indexed` (digest scan first) without recorded digests.
    public func verify(_ indexed: IndexedScan, copy: String?, progress: ((UInt64, UInt64) -> Void)? = nil) throws(CatalogError)
        -> VerifyReport
    {
        let expected = try digests(of: indexed, make: false)
        return try classified {
            let recorded = expected.digests
            let size = UInt64(indexed.scan.virtualSize)
            // The image itself, read as it is now; or the copy, read as an image of its own and indexed in
            // memory only (the index is not touched).
            var checked = (store: store, scan: indexed)
            if let copy {
                let scratch = try IndexStore()
                checked = (
                    scratch, try ImageIndexer(store: scratch, options: indexer.options, keepScans: 1).ensureIndexed(path: copy).indexed
                )
            }
            var scanner = DigestScanner(store: checked.store)
            scanner.chunkSize = recorded.chunkSize
            scanner.progress = progress
            scanner.readsChangedFiles = copy == nil
            let actual = try scanner.digest(checked.scan, keepingFrom: nil)
            let checkedSize = UInt64(checked.scan.scan.virtualSize)
            let copySize: UInt64? = checkedSize != size ? checkedSize : nil
            var mismatches: [VerifyReport.Mismatch] = []
            for chunk in 0..<recorded.chunkCount {
                let start = UInt64(chunk) * recorded.chunkSize
                let range = start..<min(start + recorded.chunkSize, size)
                let theirs = chunk < actual.chunkCount ? actual.hexDigest(chunk) : nil
                if theirs != recorded.hexDigest(chunk) {
                    mismatches.append(.init(chunk: chunk, range: range, expected: recorded.hexDigest(chunk), actual: theirs))
                }
            }
            return VerifyReport(
                path: indexed.image.path, checked: copy ?? indexed.image.path, chunkSize: recorded.chunkSize,
                chunkCount: recorded.chunkCount, virtualSize: size, copySize: copySize, mismatches: mismatches,
                bytesRead: actual.bytesRead)
        }
    }

    /// The guest ranges whose chunk digests differ between scan `sinceScan` of the image and its scan
    /// `indexed` (whose digests are made first when missing): what changed by content, whatever the
    /// metadata says (an in-place rewrite included).
    /// - Parameter make: make the latest scan's digests when missing (the CLI); false answers from the index
    ///   alone (the service).
    public func changedRanges(
        of indexed: IndexedScan, sinceScan: Int64, make: Bool = true, progress: ((UInt64, UInt64) -> Void)? = nil
    ) throws(CatalogError) -> [Range<UInt64>] {
        let old = try recordedDigests(path: indexed.image.path, scanID: sinceScan)
        let new = try digests(of: indexed, make: make, progress: progress).digests
        guard old.chunkSize == new.chunkSize else {
            throw CatalogError(
                .invalidArgument, "scan #\(sinceScan) has \(old.chunkSize)-byte chunks, the latest \(new.chunkSize)-byte ones",
                path: indexed.image.path)
        }
        let size = UInt64(indexed.scan.virtualSize)
        var ranges: [Range<UInt64>] = []
        for chunk in 0..<new.chunkCount where chunk >= old.chunkCount || old.digest(chunk) != new.digest(chunk) {
            let start = UInt64(chunk) * new.chunkSize
            let range = start..<min(start + new.chunkSize, size)
            if let last = ranges.last, last.upperBound == range.lowerBound {
                ranges[ranges.count - 1] = last.lowerBound..<range.upperBound
            } else {
                ranges.append(range)
            }
        }
        return ranges
    }

    /// What changed by content since digest scan `sinceScan` (``changedRanges(of:sinceScan:progress:)``),
    /// as a change list.
    public func changes(
        of indexed: IndexedScan, sinceScan: Int64, make: Bool = true, progress: ((UInt64, UInt64) -> Void)? = nil
    ) throws(CatalogError) -> ChangeList {
        let ranges = try changedRanges(of: indexed, sinceScan: sinceScan, make: make, progress: progress)
        return try classified {
            var plan = try ExportPlan(store: store, indexed: indexed, basePath: nil)
            plan.restrict(toDirty: ranges)
            return try ChangeList(plan: plan)
        }
    }
}

extension ScanDigests {
    /// `{"chunk_size": 4194304, "sha256": ["<hex>", ...]}`: one entry per chunk, in order (`digests --output
    /// json`, `GET /v1/images/{id}/digests`).
    public var listJSON: String {
        var text = "{\"chunk_size\": \(chunkSize), \"sha256\": ["
        text.reserveCapacity(40 + chunkCount * 68)
        for chunk in 0..<chunkCount { text += (chunk == 0 ? "\"" : ", \"") + hexDigest(chunk) + "\"" }
        return text + "]}"
    }
}
