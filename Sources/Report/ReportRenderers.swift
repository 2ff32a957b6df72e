import Foundation
import ImageIO

/// Human byte units, binary (KiB, MiB, ...), like `df -h` and `qemu-img info`.
public enum ByteUnits {
    public static func format(_ value: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        var amount = Double(value)
        var unit = 0
        while amount >= 1024 && unit < units.count - 1 {
            amount /= 1024
            unit += 1
        }
        if unit == 0 { return "\(value) B" }
        return String(format: amount >= 100 ? "%.0f %@" : "%.3g %@", amount, units[unit])
    }
}

extension Report {
    /// Aligned columns with human units, then per-directory and overall totals.
    public func table() -> String {
        let header = [
            "IMAGE", "FORMAT", "VIRTUAL", "ON DISK", "ALLOCATED", "ZERO", "CHAIN DATA", "USED", "EXTENTS", "LAYERS", "DELTA", "STATE",
        ]
        var rows: [[String]] = images.map { image in
            [
                image.path, image.format, ByteUnits.format(image.virtualSize), ByteUnits.format(image.diskUsage),
                ByteUnits.format(image.allocatedBytes), ByteUnits.format(image.zeroBytes), ByteUnits.format(image.chainAllocatedBytes),
                String(format: "%.1f%%", image.usedFraction * 100), "\(image.extentCount)", "\(image.chainLength)",
                image.deltaBytes.map(ByteUnits.format) ?? "-", image.state,
            ]
        }
        rows += failures.map { [$0.path, "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", $0.state] }
        // Per-directory totals when there are several directories; per-host ones when several hosts scanned.
        let totalRows = (totals.directories.count > 1 ? totals.directories : []) + (totals.hosts.count > 1 ? totals.hosts : [])
        for total in totalRows + [totals.overall] {
            rows.append([
                total.host.map { "total scanned by \($0)" } ?? total.directory.map { "total \($0)/" }
                    ?? "total (\(total.imageCount) \(total.imageCount == 1 ? "image" : "images"))", "",
                ByteUnits.format(total.virtualSize), ByteUnits.format(total.diskUsage), ByteUnits.format(total.allocatedBytes),
                ByteUnits.format(total.zeroBytes), ByteUnits.format(total.chainAllocatedBytes),
                String(format: "%.1f%%", total.usedFraction * 100),
                "\(total.extentCount)", "", ByteUnits.format(total.deltaBytes), total.staleCount > 0 ? "\(total.staleCount) stale" : "",
            ])
        }
        let all = [header] + rows
        let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
        let numeric = Set(2...10)
        return all.map { row in
            row.enumerated().map { column, cell in
                let pad = String(repeating: " ", count: widths[column] - cell.count)
                return numeric.contains(column) ? pad + cell : cell + pad
            }.joined(separator: "  ").trimmingCharacters(in: .whitespaces)
        }.joined(separator: "\n") + "\n" + errorLines() + historyTable()
    }

    /// One line per failed image, with its error (the table has no room for it).
    func errorLines() -> String {
        let failed = images.compactMap { image in image.error.map { (image.path, $0) } } + failures.map { ($0.path, $0.error ?? "") }
        return failed.map { "failed \($0.0): \($0.1)\n" }.joined()
    }

    /// With `--history`: every kept scan of each image, oldest first (scan id, time, own and chain data).
    func historyTable() -> String {
        let withHistory = images.filter { $0.history != nil }
        guard !withHistory.isEmpty else { return "" }
        var text = "\nHISTORY\n"
        for image in withHistory {
            text += image.path + "\n"
            for point in image.history ?? [] {
                text +=
                    "  scan #\(point.scanId)  \(point.scannedAt)  allocated \(ByteUnits.format(point.allocatedBytes))"
                    + "  chain data \(ByteUnits.format(point.chainAllocatedBytes))\n"
            }
        }
        return text
    }

    /// One row per image, raw numbers, RFC 4180 quoting; `directory` and `scanned_by` (the host that made the
    /// scan) are what a pool's report is grouped by.
    public func csv() -> String {
        let columns = [
            "path", "format", "virtual_size", "disk_usage", "allocated_bytes", "zero_bytes", "compressed_bytes",
            "chain_allocated_bytes", "extent_count", "data_extent_count", "mean_extent", "median_extent", "largest_extent",
            "used_fraction", "chain_length", "parent", "scan_id", "scanned_at", "stale", "export_bytes", "delta_bytes", "id", "state",
            "error", "directory", "scanned_by",
        ]
        func quote(_ text: String) -> String {
            text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" })
                ? "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : text
        }
        var lines = [columns.joined(separator: ",")]
        for image in images {
            let cells: [String] = [
                image.path, image.format, "\(image.virtualSize)", "\(image.diskUsage)", "\(image.allocatedBytes)",
                "\(image.zeroBytes)", "\(image.compressedBytes)", "\(image.chainAllocatedBytes)", "\(image.extentCount)",
                "\(image.dataExtentCount)", "\(image.meanExtent)", "\(image.medianExtent)", "\(image.largestExtent)",
                String(format: "%.6f", image.usedFraction), "\(image.chainLength)", image.parent ?? "", "\(image.scanId)",
                image.scannedAt, image.stale ? "true" : "false", "\(image.exportBytes)", image.deltaBytes.map { "\($0)" } ?? "",
                "\(image.id)", image.state, image.error ?? "", image.directory, image.scannedBy ?? "",
            ]
            lines.append(cells.map(quote).joined(separator: ","))
        }
        for failure in failures {
            var cells = [String](repeating: "", count: columns.count)
            cells[0] = failure.path
            cells[columns.firstIndex(of: "state") ?? 0] = failure.state
            cells[columns.firstIndex(of: "error") ?? 0] = failure.error ?? ""
            cells[columns.firstIndex(of: "directory") ?? 0] = PathResolver.directory(of: failure.path)
            lines.append(cells.map(quote).joined(separator: ","))
        }
        return lines.joined(separator: "\r\n") + "\r\n"
    }

    /// `{"images": [...], "totals": {...}}` with snake_case keys.
    public func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(self), as: UTF8.self) + "\n"
    }
}
