import AllocationIndex
import Foundation
import ImageIO
import Testing

#if canImport(FoundationXML)
    import FoundationXML
#endif

@testable import Report
@testable import Scanner
@testable import TestSupport

/// An element of a parsed page: name, attributes, children and the text directly inside it.
final class Node {
    let name: String
    let attributes: [String: String]
    var children: [Node] = []
    var text = ""

    init(name: String, attributes: [String: String]) {
        self.name = name
        self.attributes = attributes
    }

    /// Every element below this one (depth first), this one excluded.
    var descendants: [Node] { children.flatMap { [$0] + $0.descendants } }

    /// The text of this element and everything inside it, in document order.
    var allText: String { text + children.map(\.allText).joined() }

    func all(_ name: String) -> [Node] { descendants.filter { $0.name == name } }
}

/// Builds a ``Node`` tree from well-formed markup.
final class TreeBuilder: NSObject, XMLParserDelegate {
    let root = Node(name: "#document", attributes: [:])
    private var stack: [Node] = []

    static func parse(_ markup: String) throws -> Node {
        let builder = TreeBuilder()
        builder.stack = [builder.root]
        let parser = XMLParser(data: Data(markup.utf8))
        parser.delegate = builder
        guard parser.parse() else {
            throw CommandFailed(command: "XMLParser", status: 1, stderr: "\(String(describing: parser.parserError))")
        }
        return builder.root
    }

    func parser(
        _ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?, attributes: [String: String] = [:]
    ) {
        let node = Node(name: name, attributes: attributes)
        stack.last?.children.append(node)
        stack.append(node)
    }

    func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
        stack.removeLast()
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) {
        guard let node = stack.last else { return }
        // Text after a child element (a path after its <wbr/>) belongs to the parent: keep it in order.
        if let last = node.children.last {
            let tail = Node(name: "#text", attributes: [:])
            tail.text = string
            if last.name == "#text" { last.text += string } else { node.children.append(tail) }
        } else {
            node.text += string
        }
    }
}

@Suite struct HTMLLayoutTests {
    /// Three qcow2 images deep under long directory names, each over a raw base with more data than the
    /// image's own, scanned three times as the image's own data grows and then shrinks (a zeroed range).
    static func deepImages(in work: TemporaryDirectory) throws -> (store: IndexStore, paths: [String], root: String) {
        let root = work.path("an-unusually-long-directory-name-for-virtual-machine-images")
        var paths: [String] = []
        for (index, tenant) in ["tenant-with-a-long-name-alpha", "tenant-with-a-long-name-beta/nested-project-directory"].enumerated() {
            let directory = root + "/" + tenant + "/disks-of-the-production-cluster"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            for name in ["database-server-primary-volume-\(index).qcow2", "web-frontend-\(index).qcow2"] where paths.count < 3 {
                let base = directory + "/" + name + ".base.raw"
                try run("qemu-img", ["create", "-q", "-f", "raw", base, "64M"])
                try run("qemu-io", ["-f", "raw", "-c", "write -P 1 0 8M", base])
                let image = directory + "/" + name
                try run("qemu-img", ["create", "-q", "-f", "qcow2", "-b", base, "-F", "raw", image])
                paths.append(image)
            }
        }
        let store = try IndexStore()
        let indexer = ImageIndexer(store: store)
        for writes in [["write -P 2 0 64k"], ["write -P 3 1M 512k"], ["write -z 1M 512k"]] {
            for path in paths {
                try run("qemu-io", ["-f", "qcow2"] + writes.flatMap { ["-c", $0] } + [path])
                _ = try indexer.ensureIndexed(path: path, force: true)
            }
        }
        return (store, paths.map { PathResolver.canonical($0) ?? $0 }, PathResolver.canonical(root) ?? root)
    }

    @Test("the HTML report fits 1,280 px: bounded widths, relative paths wrapped at /, labelled axes, history scaled to its data")
    func fitsAndLabels() throws {
        let work = try TemporaryDirectory()
        defer { work.cleanup() }
        let (store, paths, root) = try Self.deepImages(in: work)
        let report = try Report(store: store, history: true)
        let page = try TreeBuilder.parse(try report.html(store: store))

        // Widths: the body's content box plus its margins fit 1,280 px; pictures no wider and shrinkable.
        let style = try #require(page.all("style").first?.allText)
        let body = try #require(style.range(of: #"body \{[^}]*\}"#, options: .regularExpression).map { String(style[$0]) })
        let maxWidthMatch = try #require(body.firstMatch(of: /max-width: (\d+)px/))
        let marginMatch = try #require(body.firstMatch(of: /margin: (\d+)px/))
        let maxWidth = try #require(Int(maxWidthMatch.1))
        let margin = try #require(Int(marginMatch.1))
        #expect(maxWidth + 2 * margin <= 1280)
        #expect(style.contains("svg { max-width: 100%"))
        #expect(style.range(of: #"td\.path \{[^}]*overflow-wrap: anywhere"#, options: .regularExpression) != nil)
        #expect(style.range(of: #"h2 \{[^}]*overflow-wrap: anywhere"#, options: .regularExpression) != nil)
        #expect(!style.contains("break-all"), "paths wrap between names, not inside them")
        let svgs = page.all("svg")
        #expect(svgs.count == paths.count)
        for svg in svgs {
            let width = try #require(Int(svg.attributes["width"] ?? ""))
            #expect(width <= maxWidth)
            #expect(svg.attributes["viewBox"]?.hasPrefix("0 0 \(width) ") == true, "scales down with the window")
        }

        // Paths: relative to the common root, which the page names; a line break allowed after each slash.
        let rootLine = try #require(page.descendants.first { $0.attributes["id"] == "root" })
        #expect(rootLine.allText.contains(root + "/"))
        let headings = page.all("h2").filter { $0.children.contains { $0.name == "wbr" } }
        let relative = paths.map { String($0.dropFirst(root.count + 1)) }
        #expect(Set(headings.map(\.allText)) == Set(relative))
        for heading in headings {
            #expect(heading.children.filter { $0.name == "wbr" }.count == heading.allText.filter { $0 == "/" }.count)
        }
        let cells = page.all("td").filter { $0.attributes["class"] == "path" }.map(\.allText)
        #expect(relative.allSatisfy(cells.contains))
        #expect(!cells.contains { $0.hasPrefix(root) })

        // Axes: every chart labels the figure along each of its axes.
        let charts = page.all("g").filter { $0.attributes["data-chart"] != nil }
        for (chart, axes) in [("strip", ["x"]), ("histogram", ["x", "y"]), ("history", ["x", "y"])] {
            let drawn = charts.filter { $0.attributes["data-chart"] == chart }
            #expect(drawn.count == paths.count, "\(chart)")
            for group in drawn {
                let labels = group.all("text").filter { $0.attributes["class"] == "axis" }
                #expect(Set(labels.compactMap { $0.attributes["data-axis"] }) == Set(axes), "\(chart)")
                #expect(labels.allSatisfy { $0.allText.count >= 5 }, "\(chart): \(labels.map(\.allText))")
            }
        }

        // History: the y axis runs to the largest value plotted (own data), whose point touches the top.
        let histories = charts.filter { $0.attributes["data-chart"] == "history" }
        for (image, group) in zip(report.images, histories) {
            let history = try #require(image.history)
            #expect(history.count == 3)
            let own = history.map(\.allocatedBytes)
            #expect(history.map(\.chainAllocatedBytes).max() ?? 0 > own.max() ?? 0, "the chain has more data than the image")
            let ticks = group.all("text").filter { $0.attributes["class"] == "tick" }.compactMap {
                UInt64($0.attributes["data-value"] ?? "")
            }
            #expect(ticks.max() == own.max())
            #expect(ticks.min() == 0)
            let label = try #require(group.all("text").first { $0.attributes["data-axis"] == "y" && $0.attributes["class"] == "axis" })
            #expect(label.allText.contains("allocated"))
            let points = try #require(group.all("polyline").first?.attributes["points"]).split(separator: " ").compactMap {
                Double($0.split(separator: ",")[1])
            }
            let rect = try #require(group.all("rect").first)
            let top = try #require(Double(rect.attributes["y"] ?? ""))
            let height = try #require(Double(rect.attributes["height"] ?? ""))
            #expect(points.count == own.count)
            // The highest point (smallest y) is the largest value, at the top margin of the plot.
            let highest = try #require(points.min())
            #expect(abs(highest - (top + 5)) < 0.2, "\(points) in \(top)...\(top + height)")
            #expect(points.firstIndex(of: highest) == own.firstIndex(of: own.max() ?? 0))
        }
    }
}
