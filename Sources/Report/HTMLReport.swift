import AllocationIndex
import Foundation

/// One self-contained HTML page (inline CSS, SVG and script; nothing from the network): per image an
/// allocation strip across the virtual disk, a histogram of extent sizes and, with history, a line chart
/// of allocated bytes; a sortable table of images and totals. The markup is well-formed XML.
extension Report {
    public func html(store: any IndexStoring, title: String = "extentdb report") throws -> String {
        let root = Self.commonRoot(of: images.map(\.path))
        var page = """
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8"/>
            <title>\(escape(title))</title>
            <style>
            body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1d2430; max-width: \(Self.contentWidth)px; }
            h1 { font-size: 20px; } h2 { font-size: 15px; margin: 22px 0 6px; overflow-wrap: anywhere; }
            table { border-collapse: collapse; margin: 12px 0; width: 100%; font-size: 13px; }
            th, td { padding: 3px 6px; border-bottom: 1px solid #dde; text-align: right; white-space: nowrap; }
            th { cursor: pointer; background: #f2f4f8; } td.text, th.text { text-align: left; }
            tr.total td { font-weight: 600; background: #f8f8fb; }
            .legend span { display: inline-block; margin-right: 14px; }
            .swatch { display: inline-block; width: 12px; height: 12px; vertical-align: middle; margin-right: 4px; }
            .image { border: 1px solid #e3e6ee; border-radius: 6px; padding: 8px 14px; margin: 12px 0; }
            .facts { color: #555; overflow-wrap: anywhere; }
            .stale, .missing, .failed { color: #b0401a; font-weight: 600; }
            td.path { text-align: left; white-space: normal; overflow-wrap: anywhere; min-width: 120px; max-width: \(Self.pathColumnWidth)px; }
            svg { max-width: 100%; height: auto; }
            #filter { font: inherit; padding: 4px 8px; width: 320px; margin: 6px 0; }
            .failures li { margin: 4px 0; overflow-wrap: anywhere; }
            </style>
            </head>
            <body>
            <h1>\(escape(title))</h1>
            <p class="facts">Generated \(escape(Self.now())) UTC. \(totals.overall.imageCount) \(totals.overall.imageCount == 1 ? "image" : "images"), \(ByteUnits.format(totals.overall.virtualSize)) virtual, \
            \(ByteUnits.format(totals.overall.diskUsage)) on disk, \(ByteUnits.format(totals.overall.allocatedBytes)) allocated \
            (\(String(format: "%.1f", totals.overall.usedFraction * 100))% of virtual).</p>
            <p class="facts">\(stateSummary())</p>
            \(root.isEmpty ? "" : "<p class=\"facts\" id=\"root\">Paths are relative to <b>\(display(root.hasSuffix("/") ? root : root + "/", under: ""))</b>.</p>")
            <p class="legend">\(legend())</p>
            <input id="filter" type="search" placeholder="filter images by path, format or state"/>

            """
        page += summaryTable(root: root)
        page += try failuresSection(store: store, root: root)
        for image in images {
            // Holes of layers stored in place (raw files, fixed VHDs) are drawn unallocated, not zero.
            let layers = try store.indexedScan(id: image.scanId)?.layers ?? []
            let rawDepths = Set(layers.filter(ImageReport.storesBlocksInPlace).map { UInt32($0.depth) })
            let strip = try AllocationStrip(store: store, scanID: image.scanId, virtualSize: image.virtualSize, rawDepths: rawDepths)
            let chain =
                image.chain.isEmpty ? "no backing file" : "chain: " + image.chain.map { display($0, under: root) }.joined(separator: " → ")
            let snapshots = image.snapshots.isEmpty ? "" : "; snapshots: " + image.snapshots.map(escape).joined(separator: ", ")
            page += """
                <div class="image" data-filter="\(escape(image.path + " " + image.format + " " + image.state))">
                <h2>\(display(image.path, under: root))</h2>
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

    func summaryTable(root: String) -> String {
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
                "<tr data-filter=\"\(escape(image.path + " " + image.format + " " + image.state))\"><td class=\"path\">\(display(image.path, under: root))</td>"
                + "<td class=\"text\">\(escape(image.format))</td>"
                + cell(image.virtualSize) + cell(image.diskUsage) + cell(image.allocatedBytes) + cell(image.zeroBytes)
                + cell(image.chainAllocatedBytes)
                + "<td data-value=\"\(image.usedFraction)\">\(String(format: "%.1f%%", image.usedFraction * 100))</td>"
                + "<td>\(image.extentCount)</td><td>\(image.chainLength)</td>"
                + (image.deltaBytes.map(cell) ?? "<td data-value=\"0\">-</td>")
                + "<td class=\"text \(image.state)\">\(image.state)</td><td class=\"text\">\(escape(image.scannedAt))</td></tr>\n"
        }
        html += "</tbody>\n<tfoot>\n"
        // As the table: per directory when there are several, per host when several hosts scanned (a pool).
        let totalRows = (totals.directories.count > 1 ? totals.directories : []) + (totals.hosts.count > 1 ? totals.hosts : [])
        for total in totalRows + [totals.overall] {
            let name =
                total.host.map { "total scanned by " + escape($0) } ?? total.directory.map { "total " + display($0 + "/", under: root) }
                ?? "total"
            html +=
                "<tr class=\"total\"><td class=\"path\">\(name)</td>"
                + "<td class=\"text\">\(total.imageCount) \(total.imageCount == 1 ? "image" : "images")</td>"
                + cell(total.virtualSize) + cell(total.diskUsage) + cell(total.allocatedBytes) + cell(total.zeroBytes)
                + cell(total.chainAllocatedBytes) + "<td>\(String(format: "%.1f%%", total.usedFraction * 100))</td>"
                + "<td>\(total.extentCount)</td><td></td>" + cell(total.deltaBytes)
                + "<td class=\"text\">\(total.staleCount > 0 ? "\(total.staleCount) stale" : "")</td><td></td></tr>\n"
        }
        return html + "</tfoot>\n</table>\n"
    }

    /// The page fits a 1,280 px window: the body's content box plus its two 24 px margins.
    static let contentWidth = 1232
    /// The widest the path column of the table grows before paths wrap at their slashes.
    static let pathColumnWidth = 300
    /// The drawing width of each image's picture (it also shrinks with the window: `max-width: 100%`).
    static let chartWidth = 960

    /// One picture per image: the allocation strip, the extent-size histogram and (with history) the
    /// allocated-bytes line, stacked. Each part is a `<g data-chart="...">` whose axes are `<text
    /// class="axis" data-axis="x|y">` labels naming the figure plotted along them.
    func imageSVG(strip: AllocationStrip, histogram: [UInt64], history: [ImageReport.HistoryPoint]?) -> String {
        var body = ""
        var y = 0
        let parts = [("strip", stripSVG(strip)), ("histogram", histogramSVG(histogram)), ("history", history.map(historySVG) ?? ("", 0))]
        for (name, (part, height)) in parts where height > 0 {
            body += "<g data-chart=\"\(name)\" transform=\"translate(0,\(y))\">\(part)</g>"
            y += height + 10
        }
        let height = max(y, 1)
        return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Self.chartWidth)\" height=\"\(height)\" "
            + "viewBox=\"0 0 \(Self.chartWidth) \(height)\" role=\"img\">\(body)</svg>"
    }

    /// An axis label: what the figure along that axis is.
    func axisLabel(_ axis: String, _ text: String, x: Double, y: Double, rotated: Bool = false) -> String {
        String(
            format: "<text class=\"axis\" data-axis=\"%@\" x=\"%.1f\" y=\"%.1f\" font-size=\"10\" fill=\"#445\"%@>%@</text>", axis, x, y,
            rotated ? String(format: " transform=\"rotate(-90 %.1f %.1f)\" text-anchor=\"end\"", x, y) : "", escape(text))
    }

    /// The allocation map as one strip: equal bins merged into rectangles, each with a hover title (kind
    /// and byte range), and offset ticks at every quarter of the disk.
    func stripSVG(_ strip: AllocationStrip) -> (String, Int) {
        let width = Double(Self.chartWidth)
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
        svg += axisLabel("x", "guest offset (bytes into the virtual disk)", x: width / 2 - 110, y: height + 28)
        return (svg, Int(height) + 32)
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
        let left = 18.0  // room for the rotated y-axis label
        var svg = "<title>data extent sizes</title>"
        for (offset, count) in buckets.enumerated() {
            let barHeight = count == 0 ? 0 : max(1, height * log2(Double(count) + 1) / log2(Double(peak) + 1))
            let x = left + Double(offset) * barWidth
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
        svg += axisLabel("y", "extents (log)", x: 10, y: 0, rotated: true)
        svg += axisLabel("x", "data extent size (each bar: sizes from its label to twice it)", x: left, y: height + 26)
        return (svg, Int(height) + 30)
    }

    /// The image's own allocated bytes across scans: the y axis runs from 0 to the largest value plotted.
    func historySVG(_ points: [ImageReport.HistoryPoint]) -> (String, Int) {
        guard points.count >= 2 else { return ("", 0) }
        let left = 18.0  // room for the rotated y-axis label
        let width = 320.0
        let height = 70.0
        let peak = max(points.map(\.allocatedBytes).max() ?? 1, 1)
        let coordinates = points.enumerated().map { index, point in
            String(
                format: "%.1f,%.1f", left + Double(index) / Double(points.count - 1) * (width - 10) + 5,
                height - Double(point.allocatedBytes) / Double(peak) * (height - 10) - 5)
        }.joined(separator: " ")
        let right = Int(left + width)
        let svg =
            "<title>allocated bytes (this image) per scan</title>"
            + "<rect x=\"\(Int(left))\" y=\"0\" width=\"\(Int(width))\" height=\"\(Int(height))\" fill=\"#f6f7fb\"/>"
            + "<polyline fill=\"none\" stroke=\"#2f6fde\" stroke-width=\"2\" points=\"\(coordinates)\"/>"
            + "<text class=\"tick\" data-axis=\"y\" data-value=\"\(peak)\" x=\"\(right + 4)\" y=\"10\" font-size=\"10\">\(ByteUnits.format(peak))</text>"
            + "<text class=\"tick\" data-axis=\"y\" data-value=\"0\" x=\"\(right + 4)\" y=\"\(Int(height))\" font-size=\"10\">0 B</text>"
            + "<text x=\"\(Int(left))\" y=\"\(Int(height) + 12)\" font-size=\"10\">\(escape(String(points.first?.scannedAt.prefix(10) ?? "")))</text>"
            + "<text x=\"\(right)\" y=\"\(Int(height) + 12)\" font-size=\"10\" text-anchor=\"end\">\(escape(String(points.last?.scannedAt.prefix(10) ?? "")))</text>"
            + axisLabel("y", "allocated", x: 10, y: 0, rotated: true)
            + axisLabel(
                "x",
                "scan date: allocated bytes of this image over \(points.count) scans (last \(ByteUnits.format(points.last?.allocatedBytes ?? 0)))",
                x: left, y: height + 25)
        return (svg, Int(height) + 28)
    }

    /// "12 images: 10 fresh, 1 stale, 1 missing".
    func stateSummary() -> String {
        let counts = Dictionary(grouping: images, by: \.state).mapValues(\.count)
        let parts = ["fresh", "stale", "missing", "failed"].compactMap { state in counts[state].map { "\($0) \(state)" } }
        return "\(images.count) \(images.count == 1 ? "image" : "images"): " + (parts.isEmpty ? "none" : parts.joined(separator: ", "))
    }

    /// Images whose last scan failed, with their errors (from the index's failure records).
    func failuresSection(store: any IndexStoring, root: String) throws -> String {
        let failures = try store.failures().values.sorted { $0.path < $1.path }
        guard !failures.isEmpty else { return "" }
        var html = "<h2>Failed scans (\(failures.count))</h2>\n<ul class=\"failures\">\n"
        for failure in failures {
            html +=
                "<li data-filter=\"\(escape(failure.path + " failed"))\"><span class=\"failed\">failed</span> "
                + "\(display(failure.path, under: root)) at \(escape(ImageReport.timestamp(failure.failedAtNanoseconds))): \(escape(failure.message))</li>\n"
        }
        return html + "</ul>\n"
    }

    /// The deepest directory holding every path: "/" at worst, "" without paths.
    static func commonRoot(of paths: [String]) -> String {
        guard let first = paths.first else { return "" }
        var common = Array(first.split(separator: "/", omittingEmptySubsequences: false).dropLast())
        for path in paths.dropFirst() {
            let directory = Array(path.split(separator: "/", omittingEmptySubsequences: false).dropLast())
            var length = 0
            while length < min(common.count, directory.count) && common[length] == directory[length] { length += 1 }
            common.removeLast(common.count - length)
        }
        let root = common.joined(separator: "/")
        return root.isEmpty ? "/" : root
    }

    /// `path` as the page shows it: relative to `root` when inside it, escaped, with a line-break
    /// opportunity (`<wbr/>`) after each `/` so long paths wrap between names.
    func display(_ path: String, under root: String) -> String {
        var shown = path
        let prefix = root.hasSuffix("/") ? root : root + "/"
        if !root.isEmpty && path.hasPrefix(prefix) {
            shown = String(path.dropFirst(prefix.count))
            if shown.isEmpty { shown = "./" }
        } else if !root.isEmpty && path == root {
            shown = "."
        }
        return escape(shown).replacingOccurrences(of: "/", with: "/<wbr/>")
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
