import Foundation

/// Help text as written in the source, made to flow: lines of one paragraph are joined with spaces so the
/// parser wraps them at the terminal's width instead of breaking mid-sentence; blank lines separate
/// paragraphs, and lines that start with two spaces or more (tables, examples) are kept as they are.
enum Help {
    static func reflow(_ text: String) -> String {
        var paragraphs: [String] = []
        var current = ""
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.trimmingCharacters(in: .whitespaces).isEmpty {
                if !current.isEmpty { paragraphs.append(current) }
                paragraphs.append("")
                current = ""
            } else if line.hasPrefix("  ") || isTableRow(line) {
                if !current.isEmpty { paragraphs.append(current) }
                paragraphs.append(String(line))
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
}
