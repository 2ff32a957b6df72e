import Foundation

/// Help text as written in the source, made to flow: lines of one paragraph are joined with spaces so the
/// parser wraps them at the terminal's width instead of breaking mid-sentence; blank lines separate
/// paragraphs, and lines that start with two spaces or more (tables, examples) are kept as they are.
///
/// A usage form (a line starting with `extentdb `) and a table row (a word, then a run of spaces) stay on
/// lines of their own. Such a line longer than ``width`` is wrapped here, its continuation indented under
/// its second column, because the parser would start the continuation at the left margin, where it reads
/// as a new usage form or a new row.
enum Help {
    /// The longest line the parser leaves whole when standard output is not a terminal (it wraps at 80
    /// columns, counting the line's newline).
    static let width = 79

    static func reflow(_ text: String) -> String {
        var paragraphs: [String] = []
        var current = ""
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.trimmingCharacters(in: .whitespaces).isEmpty {
                if !current.isEmpty { paragraphs.append(current) }
                paragraphs.append("")
                current = ""
            } else if line.hasPrefix("  ") || isTableRow(line) || isUsageForm(line) {
                if !current.isEmpty { paragraphs.append(current) }
                paragraphs.append(line.hasPrefix("  ") ? String(line) : hanging(line))
                current = ""
            } else {
                current += current.isEmpty ? String(line) : " " + line
            }
        }
        if !current.isEmpty { paragraphs.append(current) }
        return paragraphs.joined(separator: "\n")
    }

    /// A line laid out in columns (a word, then a run of spaces): `raw   sparse file with --to ...`.
    static func isTableRow(_ line: Substring) -> Bool {
        guard let firstSpace = line.firstIndex(of: " ") else { return false }
        return line[firstSpace...].hasPrefix("  ") && !line.hasPrefix("-")
    }

    /// A command line shown as a form of use: `extentdb diff IMAGE --scan N`.
    static func isUsageForm(_ line: Substring) -> Bool {
        line.hasPrefix("extentdb ")
    }

    /// The line wrapped at ``width``, continuations indented to its second column (the text after its first
    /// run of two or more spaces), or by four spaces when it has none.
    static func hanging(_ line: Substring) -> String {
        guard line.count > width else { return String(line) }
        var indent = 4
        if let gap = line.range(of: "  "), let column = line[gap.lowerBound...].firstIndex(where: { $0 != " " }) {
            indent = line.distance(from: line.startIndex, to: column)
        }
        if indent >= width / 2 { indent = 4 }
        var lines: [String] = []
        var current = ""
        var rest = Substring(line)
        // The leading column (and its spacing) is kept as written: only the remainder is wrapped.
        if indent > 4, let column = line.index(line.startIndex, offsetBy: indent, limitedBy: line.endIndex) {
            current = String(line[..<column])
            rest = line[column...]
        }
        for word in rest.split(separator: " ") {
            let pad = current.isEmpty || current.hasSuffix(" ") ? "" : " "
            if !current.trimmingCharacters(in: .whitespaces).isEmpty, current.count + pad.count + word.count > width {
                lines.append(current)
                current = String(repeating: " ", count: indent) + word
            } else {
                current += pad + word
            }
        }
        lines.append(current)
        return lines.joined(separator: "\n")
    }
}
