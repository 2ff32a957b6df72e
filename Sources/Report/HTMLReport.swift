import AllocationIndex
import Foundation

/// One self-contained HTML page (inline CSS, SVG and script; nothing from the network): per image an
/// allocation strip across the virtual disk, a histogram of extent sizes and, with history, a line chart
/// of allocated bytes; a sortable table of images and totals. The markup is well-formed XML.
extension Report {
    public func html(store: IndexStore, title: String = "extentdb report") throws -> String {
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
            .stale { color: #b0401a; font-weight: 600; }
            </style>
            </head>
            <body>
            <h1>\(escape(title))</h1>
            <p class="facts">\(totals.overall.imageCount) images, \(ByteUnits.format(totals.overall.virtualSize)) virtual, \
            \(ByteUnits.format(totals.overall.fileSize)) on disk, \(ByteUnits.format(totals.overall.allocatedBytes)) allocated \
            (\(String(format: "%.1f", totals.overall.sparseness * 100))% of virtual).</p>
            <p class="legend">\(legend())</p>

            """
        page += summaryTable()
        for image in images {
            let strip = try AllocationStrip(store: store, scanID: image.scanId, virtualSize: image.virtualSize)
            page += """
                <div class="image">
                <h2>\(escape(image.path))</h2>
                <p class="facts">\(escape(image.format)), \(ByteUnits.format(image.virtualSize)) virtual, \
                \(ByteUnits.format(image.allocatedBytes)) allocated, \(ByteUnits.format(image.chainAllocatedBytes)) over the chain \
                (depth \(image.chainDepth)), \(image.extentCount) extents\(image.stale ? " <span class=\"stale\">stale</span>" : "")</p>
                \(imageSVG(strip: strip, histogram: image.histogram, history: image.history))
                </div>

                """
        }
        page += """
            <script>
            //<![CDATA[
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
            <th>allocated</th><th>zero</th><th>chain data</th><th>used</th><th>extents</th><th>depth</th><th>delta</th></tr></thead>
            <tbody>

            """
        func cell(_ value: UInt64) -> String { "<td data-value=\"\(value)\">\(ByteUnits.format(value))</td>" }
        for image in images {
            html += "<tr><td class=\"text\">\(escape(image.path))</td><td class=\"text\">\(escape(image.format))</td>"
                + cell(image.virtualSize) + cell(image.fileSize) + cell(image.allocatedBytes) + cell(image.zeroBytes)
                + cell(image.chainAllocatedBytes)
                + "<td data-value=\"\(image.sparseness)\">\(String(format: "%.1f%%", image.sparseness * 100))</td>"
                + "<td>\(image.extentCount)</td><td>\(image.chainDepth)</td>"
                + (image.deltaBytes.map(cell) ?? "<td data-value=\"0\">-</td>") + "</tr>\n"
        }
        html += "</tbody>\n<tfoot>\n"
        for total in (totals.directories.count > 1 ? totals.directories : []) + [totals.overall] {
            html += "<tr class=\"total\"><td class=\"text\">\(escape(total.directory.map { "total \($0)/" } ?? "total"))</td>"
                + "<td class=\"text\">\(total.imageCount) images</td>"
                + cell(total.virtualSize) + cell(total.fileSize) + cell(total.allocatedBytes) + cell(total.zeroBytes)
                + cell(total.chainAllocatedBytes) + "<td>\(String(format: "%.1f%%", total.sparseness * 100))</td>"
                + "<td>\(total.extentCount)</td><td></td>" + cell(total.deltaBytes) + "</tr>\n"
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

    /// The allocation map as one strip: equal bins merged into rectangles.
    func stripSVG(_ strip: AllocationStrip) -> (String, Int) {
        let width = 960.0
        let height = 28.0
        let binWidth = width / Double(strip.bins.count)
        var svg = "<title>allocation map</title>"
        var start = 0
        for index in 1...strip.bins.count where index == strip.bins.count || strip.bins[index] != strip.bins[start] {
            let kind = strip.bins[start]
            svg += String(
                format: "<rect x=\"%.2f\" y=\"0\" width=\"%.2f\" height=\"%.0f\" fill=\"%@\"/>", Double(start) * binWidth,
                Double(index - start) * binWidth, height, Self.colors[kind] ?? "#000")
            start = index
        }
        svg += "<text x=\"0\" y=\"\(Int(height) + 13)\" font-size=\"11\">0</text>"
        svg += "<text x=\"\(Int(width))\" y=\"\(Int(height) + 13)\" font-size=\"11\" text-anchor=\"end\">end of disk</text>"
        return (svg, Int(height) + 16)
    }

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
            svg += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#2f6fde\"><title>%@: %llu extents</title></rect>",
                x + 2, height - barHeight, barWidth - 4, barHeight, ByteUnits.format(UInt64(1) << UInt64(first + offset)), count)
            if offset % 2 == 0 {
                svg += String(format: "<text x=\"%.1f\" y=\"%.0f\" font-size=\"9\">%@</text>", x, height + 12, ByteUnits.format(UInt64(1) << UInt64(first + offset)).replacingOccurrences(of: " ", with: ""))
            }
        }
        return (svg + "<text x=\"0\" y=\"\(Int(height) + 26)\" font-size=\"10\">data extents by size (bar height: log of the count)</text>", Int(height) + 30)
    }

    /// Allocated bytes across scans.
    func historySVG(_ points: [ImageReport.HistoryPoint]) -> (String, Int) {
        guard points.count >= 2 else { return ("", 0) }
        let width = 320.0
        let height = 70.0
        let peak = Double(max(points.map(\.chainAllocatedBytes).max() ?? 1, 1))
        let coordinates = points.enumerated().map { index, point in
            String(format: "%.1f,%.1f", Double(index) / Double(points.count - 1) * (width - 10) + 5, height - Double(point.allocatedBytes) / peak * (height - 10) - 5)
        }.joined(separator: " ")
        let svg = "<title>allocated bytes per scan</title>"
            + "<rect x=\"0\" y=\"0\" width=\"\(Int(width))\" height=\"\(Int(height))\" fill=\"#f6f7fb\"/>"
            + "<polyline fill=\"none\" stroke=\"#2f6fde\" stroke-width=\"2\" points=\"\(coordinates)\"/>"
            + "<text x=\"0\" y=\"\(Int(height) + 12)\" font-size=\"10\">allocated bytes over \(points.count) scans (last \(ByteUnits.format(points.last?.allocatedBytes ?? 0)))</text>"
        return (svg, Int(height) + 14)
    }

    func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
