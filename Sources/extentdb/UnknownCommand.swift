/// The command line's first word when it names no subcommand: `extentdb mpa x` is a typo of `map`, and says
/// so, rather than the parser's "2 unexpected arguments".
enum UnknownCommand {
    /// The first word that is not an option (`--db PATH` may come before the subcommand), when it is neither
    /// a subcommand nor `help`; nil otherwise, and when an option comes first (the parser answers those).
    static func word(in arguments: [String], subcommands: Set<String>) -> String? {
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            if argument == "--db" {
                index += 2
            } else if argument.hasPrefix("--db=") {
                index += 1
            } else if argument.hasPrefix("-") {
                return nil
            } else {
                return subcommands.contains(argument) || argument == "help" ? nil : argument
            }
        }
        return nil
    }

    /// `unknown command 'mpa'; did you mean 'map'?`, the suggestion only when one subcommand is close.
    static func message(for word: String, subcommands: Set<String>) -> String {
        let shown = word.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value != 0x7F } ? word : word.debugDescription
        guard let nearest = nearest(to: word, among: subcommands) else {
            return "unknown command '\(shown)' (see 'extentdb --help')"
        }
        return "unknown command '\(shown)'; did you mean '\(nearest)'?"
    }

    /// The subcommand nearest to `word` by edit distance (a swap of two neighbours counts as one edit), when
    /// it is within two edits and within half the word's length. On a tie, a name as long as the word wins
    /// (`ndb` is `nbd` with two letters swapped, more likely than `db` with one added), then name order.
    static func nearest(to word: String, among names: Set<String>) -> String? {
        let limit = min(2, word.count / 2)
        guard limit > 0 else { return nil }
        let scored = names.map {
            (name: $0, distance: distance(Array(word.lowercased()), Array($0)), lengthGap: abs($0.count - word.count))
        }
        let best = scored.filter { $0.distance <= limit }.min {
            ($0.distance, $0.lengthGap, $0.name) < ($1.distance, $1.lengthGap, $1.name)
        }
        guard let best else {
            return nil
        }
        return best.name
    }

    /// Optimal string alignment distance: insertions, deletions, substitutions and adjacent transpositions.
    static func distance(_ a: [Character], _ b: [Character]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var table = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in 0...a.count { table[i][0] = i }
        for j in 0...b.count { table[0][j] = j }
        for i in 1...a.count {
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                var best = min(table[i - 1][j] + 1, table[i][j - 1] + 1, table[i - 1][j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    best = min(best, table[i - 2][j - 2] + 1)
                }
                table[i][j] = best
            }
        }
        return table[a.count][b.count]
    }
}
