import AllocationIndex
import Catalog
import Foundation
import Report
import Scanner

extension IndexService {
    /// The summary of an indexed image in the shared vocabulary (``ImageSummary``), its state from a `stat` of
    /// each layer and what the watcher saw, plus when the service last compared it with the disk.
    func summary(of indexed: IndexedScan) throws -> ImageSummary {
        var summary = try catalog.summary(of: indexed, knownMissing: isMarkedMissing(indexed.image.path))
        summary.lastChecked = lastChecked(indexed.image.path).map { ImageReport.timestamp(Int64($0 * 1e9)) }
        return summary
    }

    /// `GET /v1/images/{id}`: what `info --output json` prints for the image, from the index as it stands.
    func detail(of indexed: IndexedScan) throws -> ImageInfo {
        let summary = try summary(of: indexed)
        return ImageInfo(indexed, summary: summary, index: ImageInfo.Lookup(indexed: true, staleReason: summary.staleReason))
    }
}
