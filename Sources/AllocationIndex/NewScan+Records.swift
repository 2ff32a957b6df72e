import Foundation

extension NewScan {
    /// The scan's row as every store records it (`id` nil until the store gives one): its figures come from
    /// the packed chunks' `totals` and the data extents' statistics.
    public func scanRecord(imageID: Int64, totals: ExtentTotals) throws -> ScanRecord {
        let statistics = DataExtentStatistics(extents)
        return ScanRecord(
            id: nil, imageId: imageID, scannedAtNs: scannedAtNanoseconds, durationNs: Int64(durationNanoseconds),
            toolVersion: toolVersion, virtualSize: Int64(layers[0].virtualSize), chainDepth: Int64(layers.count),
            extentCount: Int64(ScanCounts.displayRows(extents)), dataBytes: Int64(totals.data), ownDataBytes: Int64(totals.ownData),
            zeroBytes: Int64(totals.zero), compressedBytes: Int64(totals.compressed), ownZeroBytes: Int64(totals.ownZero),
            dataExtentCount: Int64(statistics.count), dataExtentLargest: Int64(statistics.largest),
            dataExtentMedian: Int64(statistics.median),
            dataExtentHistogram: String(decoding: try JSONEncoder().encode(statistics.histogram), as: UTF8.self),
            warningsJson: String(decoding: try JSONEncoder().encode(warnings), as: UTF8.self),
            trustJson: trust.json, host: host)
    }

    /// The rows of the chain's layers for scan `scanID`, depth 0 (the image) first.
    public func layerRecords(scanID: Int64) -> [ScanLayerRecord] {
        layers.enumerated().map { depth, layer in
            ScanLayerRecord(
                scanId: scanID, depth: Int64(depth), path: layer.path, format: layer.format,
                device: Int64(bitPattern: layer.device), inode: Int64(bitPattern: layer.inode),
                fileSize: Int64(layer.fileSize), mtimeNs: layer.mtimeNanoseconds, ctimeNs: layer.ctimeNanoseconds,
                headerChecksum: layer.headerChecksum, clusterSize: layer.clusterSize.map { Int64($0) }, dataPath: layer.dataPath,
                dataDevice: layer.dataIdentity.map { Int64(bitPattern: $0.device) },
                dataInode: layer.dataIdentity.map { Int64(bitPattern: $0.inode) },
                dataFileSize: layer.dataIdentity.map { Int64($0.size) }, dataMtimeNs: layer.dataIdentity?.mtimeNanoseconds,
                dataCtimeNs: layer.dataIdentity?.ctimeNanoseconds)
        }
    }

    /// What reading the scan back right after saving it gives, built from what was written: the image row
    /// of layer 0 as the save upserted it (`imageIDs` by depth, the scan made its latest), `scan` with its
    /// id and the owner of its extents (nil: its own chunks), and the layers. Only valid when retention
    /// deleted nothing in the same save: deleting the owner of shared chunks hands them to this scan.
    public func savedRecords(imageIDs: [Int64], scan row: ScanRecord, scanID: Int64, extentsScanID: Int64?) -> IndexedScan {
        let top = layers[0]
        let image = ImageRecord(
            id: imageIDs[0], path: top.path, format: top.format, virtualSize: Int64(top.virtualSize),
            clusterSize: top.clusterSize.map { Int64($0) }, backingPath: top.backingPath,
            backingImageId: imageIDs.count > 1 ? imageIDs[1] : nil, metadataJson: top.metadataJSON, latestScanId: scanID,
            allowsOutsideBacking: allowsOutsideBacking)
        var scan = row
        scan.id = scanID
        scan.extentsScanId = extentsScanID
        return IndexedScan(image: image, scan: scan, layers: layerRecords(scanID: scanID))
    }
}
