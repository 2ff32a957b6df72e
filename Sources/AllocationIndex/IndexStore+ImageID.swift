internal import GRDB

extension IndexStore {
    /// The image row with this id, scanned or not (the HTTP service names images by id).
    public func image(id: Int64) throws -> ImageRecord? {
        try writer.read { db in try Self.imageRow(id: id, db) }
    }

    /// The latest scan of the image with this id, if it has one.
    public func latestScan(imageID: Int64) throws -> IndexedScan? {
        try writer.read { db in
            guard let image = try Self.imageRow(id: imageID, db), let scanID = image.latestScanId else { return nil }
            return try Self.indexedScan(scanID: scanID, db)
        }
    }
}
