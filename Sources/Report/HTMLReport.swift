import AllocationIndex
import Foundation

/// One self-contained HTML page (inline CSS, SVG and script; nothing from the network): per image an
/// allocation strip across the virtual disk, a histogram of extent sizes and, with history, a line chart
/// of allocated bytes; a sortable table of images and totals. The markup is well-formed XML.
extension Report {
    public func html(store: any IndexStoring, title: String = "extentdb report") throws -> String {
        var page = """
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8"/>
            <title>\(escape(title))</title>
            <style>
            body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1d2430; }
            h1 { font-size: 20px; } h2 { font-size: 15px; margin: 22px 0 6px; word-break: break-all; }
            table { border-collapse: collapse; margin: 12px 0; }
            th, td { padding: 3px 8px; border-bottom: 1px solid #dde; text-align: right; white-space: nowrap; }
            th { cursor: pointer; background: #f2f4f8; } td.text, th.text { text-align: left; }
            tr.total td { font-weight: 600; background: #f8f8fb; }
            .legend span { display: inline-block; margin-right: 14px; }
            .swatch { display: inline-block; width: 12px; height: 12px; vertical-align: middle; margin-right: 4px; }
            .image { border: 1px solid #e3e6ee; border-radius: 6px; padding: 8px 14px; margin: 12px 0; }
            .facts { color: #555; }
            .stale, .missing, .failed { color: #b0401a; font-weight: 600; }
            td.path { text-align: left; white-space: normal; word-break: break-all; max-width: 340px; }
            table { max-width: 1060px; font-size: 13px; }
            #filter { font: inherit; padding: 4px 8px; width: 320px; margin: 6px 0; }
            .failures li { margin: 4px 0; }
            </style>
            </head>
            <body>
            <h1>\(escape(title))</h1>
            <p class="facts">Generated \(escape(Self.now())) UTC. \(totals.overall.imageCount) \(totals.overall.imageCount == 1 ? "image" : "images"), \(ByteUnits.format(totals.overall.virtualSize)) virtual, \
            \(ByteUnits.format(totals.overall.diskUsage)) on disk, \(ByteUnits.format(totals.overall.allocatedBytes)) allocated \
            (\(String(format: "%.1f", totals.overall.usedFraction * 100))% of virtual).</p>
            <p class="facts">\(stateSummary())</p>
            <p class="legend">\(legend())</p>
            <input id="filter" type="search" placeholder="filter images by path, format or state"/>

            """
        page += summaryTable()
        page += try failuresSection(store: store)
        for image in images {
            let rawDepths = Set(image.layerFormats.enumerated().filter { $0.element == "raw" }.map { UInt32($0.offset) })
            let strip = try AllocationStrip(store: store, scanID: image.scanId, virtualSize: image.virtualSize, rawDepths: rawDepths)
            let chain = image.chain.isEmpty ? "no backing file" : "chain: " + image.chain.map(escape).joined(separator: " → ")
            let snapshots = image.snapshots.isEmpty ? "" : "; snapshots: " + image.snapshots.map(escape).joined(separator: ", ")
            page += """
                <div class="image" data-filter="\(escape(image.path + " " + image.format + " " + image.state))">
                <h2>\(escape(image.path))</h2>
                <p class="facts">\(escape(image.format)), \(ByteUnits.format(image.virtualSize)) virtual, \
                \(ByteUnits.format(image.allocatedBytes)) allocated, \(ByteUnits.format(image.chainAllocatedBytes)) over the chain \
                (\(image.chainLength) \(image.chainLength == 1 ? "layer" : "layers")), \(image.extentCount) extents; \
                scanned \(escape(image.scannedAt)) (scan #\(image.scanId)); <span class="\(image.state)">\(image.state)</span>\
                \(image.staleReason.map { " (" + escape($0) + ")" } ?? "")<br/>\(chain)\(snapshots)</p>
                \(imageSVG(strip: strip, histogram: image.histogram, history: image.history))
                </div>

                """
        }
        page += """
            <script>
            //<![CDATA[
            document.getElementById("filter").addEventListener("input", function (event) {
              var needle = event.target.value.toLowerCase();
              document.querySelectorAll("[data-filter]").forEach(function (element) {
                element.style.display = element.dataset.filter.toLowerCase().indexOf(needle) >= 0 ? "" : "none";
              });
            });
            document.querySelectorAll("table.sortable th").forEach(function (header, column) {
              header.addEventListener("click", function () {
                var body = header.closest("table").tBodies[0];
                var rows = Array.prototype.slice.call(body.rows);
                var ascending = header.dataset.order !== "asc";
                header.dataset.order = ascending ? "asc" : "desc";
                rows.sort(function (a, b) {
                  var x = a.cells[column].dataset.value || a.cells[column].textContent;
                  var y = b.cells[column].dataset.value || b.cells[column].textContent;
                  var nx = parseFloat(x), ny = parseFloat(y);
                  var order = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
                  return ascending ? order : -order;
                });
                rows.forEach(function (row) { body.appendChild(row); });
              });
            });
            //]]>
            </script>
            </body>
            </html>

            """
        return page
    }

    static let colors: [AllocationStrip.Kind: String] = [
        .data: "#2f6fde", .parent: "#8fb3ef", .zero: "#f0b34a", .unallocated: "#e9ecf2",
    ]

    func legend() -> String {
        let names: [(AllocationStrip.Kind, String)] = [
            (.data, "data (this image)"), (.parent, "data from a parent"), (.zero, "zero"), (.unallocated, "unallocated"),
        ]
        return names.map { kind, name in
            "<span><span class=\"swatch\" style=\"background:\(Self.colors[kind] ?? "#000")\"></span>\(name)</span>"
        }.joined()
    }

    func summaryTable() -> String {
        var html = """
            <table class="sortable">
            <thead><tr><th class="text">image</th><th class="text">format</th><th>virtual</th><th>on disk</th>\
            <th>allocated</th><th>zero</th><th>chain data</th><th>used</th><th>extents</th><th>layers</th><th>delta</th>\
            <th class="text">state</th><th class="text">scanned (UTC)</th></tr></thead>
            <tbody>

            """
        func cell(_ value: UInt64) -> String { "<td data-value=\"\(value)\">\(ByteUnits.format(value))</td>" }
        for image in images {
            html +=
                "<tr data-filter=\"\(escape(image.path + " " + image.format + " " + image.state))\"><td class=\"path\">\(escape(image.path))</td>"
                + "<td class=\"text\">\(escape(image.format))</td>"
                + cell(image.virtualSize) + cell(image.diskUsage) + cell(image.allocatedBytes) + cell(image.zeroBytes)
                + cell(image.chainAllocatedBytes)
                + "<td data-value=\"\(image.usedFraction)\">\(String(format: "%.1f%%", image.usedFraction * 100))</td>"
                + "<td>\(image.extentCount)</td><td>\(image.chainLength)</td>"
                + (image.deltaBytes.map(cell) ?? "<td data-value=\"0\">-</td>")
                + "<td class=\"text \(image.state)\">\(image.state)</td><td class=\"text\">\(escape(image.scannedAt))</td></tr>\n"
        }
        html += "</tbody>\n<tfoot>\n"
        for total in (totals.directories.count > 1 ? totals.directories : []) + [totals.overall] {
            html +=
                "<tr class=\"total\"><td class=\"text\">\(escape(total.directory.map { "total \($0)/" } ?? "total"))</td>"
                + "<td class=\"text\">\(total.imageCount) \(total.imageCount == 1 ? "image" : "images")</td>"
                + cell(total.virtualSize) + cell(total.diskUsage) + cell(total.allocatedBytes) + cell(total.zeroBytes)
                + cell(total.chainAllocatedBytes) + "<td>\(String(format: "%.1f%%", total.usedFraction * 100))</td>"
                + "<td>\(total.extentCount)</td><td></td>" + cell(total.deltaBytes)
                + "<td class=\"text\">\(total.staleCount > 0 ? "\(total.staleCount) stale" : "")</td><td></td></tr>\n"
        }
        return html + "</tfoot>\n</table>\n"
    }

    /// One picture per image: the allocation strip, the extent-size histogram and (with history) the
    /// allocated-bytes line, stacked.
    func imageSVG(strip: AllocationStrip, histogram: [UInt64], history: [ImageReport.HistoryPoint]?) -> String {
        var body = ""
        var y = 0
        for (part, height) in [stripSVG(strip), histogramSVG(histogram), history.map(historySVG) ?? ("", 0)] where height > 0 {
            body += "<g transform=\"translate(0,\(y))\">\(part)</g>"
            y += height + 10
        }
        return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"960\" height=\"\(max(y, 1))\" role=\"img\">\(body)</svg>"
    }

    /// The allocation map as one strip: equal bins merged into rectangles, each with a hover title (kind
    /// and byte range), and offset ticks at every quarter of the disk.
    func stripSVG(_ strip: AllocationStrip) -> (String, Int) {
        let width = 960.0
        let height = 28.0
        let binWidth = width / Double(strip.bins.count)
        let binBytes = Double(strip.virtualSize) / Double(strip.bins.count)
        var svg = "<title>allocation map</title>"
        var start = 0
        for index in 1...strip.bins.count where index == strip.bins.count || strip.bins[index] != strip.bins[start] {
            let kind = strip.bins[start]
            let from = UInt64(Double(start) * binBytes)
            let to = index == strip.bins.count ? strip.virtualSize : UInt64(Double(index) * binBytes)
            svg += String(
                format: "<rect x=\"%.2f\" y=\"0\" width=\"%.2f\" height=\"%.0f\" fill=\"%@\"><title>%@: %@ to %@</title></rect>",
                Double(start) * binWidth, Double(index - start) * binWidth, height, Self.colors[kind] ?? "#000",
                Self.kindNames[kind] ?? kind.rawValue, ByteUnits.format(from), ByteUnits.format(to))
            start = index
        }
        for quarter in 0...4 {
            let x = width * Double(quarter) / 4
            let anchor = quarter == 0 ? "start" : quarter == 4 ? "end" : "middle"
            svg += String(format: "<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.0f\" stroke=\"#667\"/>", x, height, x, height + 4)
            svg +=
                "<text x=\"\(Int(x))\" y=\"\(Int(height) + 15)\" font-size=\"11\" text-anchor=\"\(anchor)\">"
                + "\(ByteUnits.format(strip.virtualSize / 4 * UInt64(quarter) + (quarter == 4 ? strip.virtualSize % 4 : 0)))</text>"
        }
        return (svg, Int(height) + 18)
    }

    static let kindNames: [AllocationStrip.Kind: String] = [
        .data: "data (this image)", .parent: "data from a parent", .zero: "zero", .unallocated: "unallocated",
    ]

    /// Data extents by size class (powers of two).
    func histogramSVG(_ histogram: [UInt64]) -> (String, Int) {
        guard let peak = histogram.max(), peak > 0 else { return ("<text x=\"0\" y=\"12\" font-size=\"11\">no data extents</text>", 16) }
        let first = histogram.firstIndex { $0 > 0 } ?? 0
        let buckets = Array(histogram[first...])
        let barWidth = 26.0
        let height = 80.0
        var svg = "<title>data extent sizes</title>"
        for (offset, count) in buckets.enumerated() {
            let barHeight = count == 0 ? 0 : max(1, height * log2(Double(count) + 1) / log2(Double(peak) + 1))
            let x = Double(offset) * barWidth
            svg += String(
                format:
                    "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#2f6fde\"><title>%@: %llu extents</title></rect>",
                x + 2, height - barHeight, barWidth - 4, barHeight, ByteUnits.format(UInt64(1) << UInt64(first + offset)), count)
            if count > 0 {
                svg += String(
                    format: "<text x=\"%.1f\" y=\"%.1f\" font-size=\"9\" text-anchor=\"middle\">%llu</text>", x + barWidth / 2,
                    max(9, height - barHeight - 2), count)
            }
            if offset % 2 == 0 {
                svg += String(
                    format: "<text x=\"%.1f\" y=\"%.0f\" font-size=\"9\">%@</text>", x, height + 12,
                    ByteUnits.format(UInt64(1) << UInt64(first + offset)).replacingOccurrences(of: " ", with: ""))
            }
        }
        return (
            svg + "<text x=\"0\" y=\"\(Int(height) + 26)\" font-size=\"10\">data extents by size (bar height: log of the count)</text>",
            Int(height) + 30
        )
    }

    /// Allocated bytes across scans.
    func historySVG(_ points: [ImageReport.HistoryPoint]) -> (String, Int) {
        guard points.count >= 2 else { return ("", 0) }
        let width = 320.0
        let height = 70.0
        let peak = Double(max(points.map(\.chainAllocatedBytes).max() ?? 1, 1))
        let coordinates = points.enumerated().map { index, point in
            String(
                format: "%.1f,%.1f", Double(index) / Double(points.count - 1) * (width - 10) + 5,
                height - Double(point.allocatedBytes) / peak * (height - 10) - 5)
        }.joined(separator: " ")
        let svg =
            "<title>allocated bytes per scan</title>"
            + "<rect x=\"0\" y=\"0\" width=\"\(Int(width))\" height=\"\(Int(height))\" fill=\"#f6f7fb\"/>"
            + "<polyline fill=\"none\" stroke=\"#2f6fde\" stroke-width=\"2\" points=\"\(coordinates)\"/>"
            + "<text x=\"\(Int(width) + 4)\" y=\"10\" font-size=\"10\">\(ByteUnits.format(UInt64(peak)))</text>"
            + "<text x=\"\(Int(width) + 4)\" y=\"\(Int(height))\" font-size=\"10\">0 B</text>"
            + "<text x=\"0\" y=\"\(Int(height) + 12)\" font-size=\"10\">\(escape(String(points.first?.scannedAt.prefix(10) ?? "")))</text>"
            + "<text x=\"\(Int(width))\" y=\"\(Int(height) + 12)\" font-size=\"10\" text-anchor=\"end\">\(escape(String(points.last?.scannedAt.prefix(10) ?? "")))</text>"
            + "<text x=\"0\" y=\"\(Int(height) + 25)\" font-size=\"10\">allocated bytes over \(points.count) scans (last \(ByteUnits.format(points.last?.allocatedBytes ?? 0)))</text>"
        return (svg, Int(height) + 28)
    }

    /// "12 images: 10 fresh, 1 stale, 1 missing".
    func stateSummary() -> String {
        let counts = Dictionary(grouping: images, by: \.state).mapValues(\.count)
        let parts = ["fresh", "stale", "missing", "failed"].compactMap { state in counts[state].map { "\($0) \(state)" } }
        return "\(images.count) \(images.count == 1 ? "image" : "images"): " + (parts.isEmpty ? "none" : parts.joined(separator: ", "))
    }

    /// Images whose last scan failed, with their errors (from the index's failure records).
    func failuresSection(store: any IndexStoring) throws -> String {
        let failures = try store.failures().values.sorted { $0.path < $1.path }
        guard !failures.isEmpty else { return "" }
        var html = "<h2>Failed scans (\(failures.count))</h2>\n<ul class=\"failures\">\n"
        for failure in failures {
            html +=
                "<li data-filter=\"\(escape(failure.path + " failed"))\"><span class=\"failed\">failed</span> "
                + "\(escape(failure.path)) at \(escape(ImageReport.timestamp(failure.failedAtNanoseconds))): \(escape(failure.message))</li>\n"
        }
        return html + "</ul>\n"
    }

    static func now() -> String {
        let formatter = ISO8601DateFormatter()
        return formatter.string(from: Date())
    }

    /// HTML text: markup characters escaped, and control characters made visible (XML forbids them, and
    /// a name chosen by an image's author may hold them).
    func escape(_ text: String) -> String {
        TerminalText.name(text).replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
