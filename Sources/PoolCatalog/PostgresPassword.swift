import Foundation

/// The password for a pool catalog, looked up as libpq does ("The Password File", PostgreSQL manual §34.16):
/// `PGPASSWORD` first, then the file `PGPASSFILE` names (default `~/.pgpass`), whose lines read
/// `hostname:port:database:username:password`; `*` matches anything, `\:` and `\\` escape, the first
/// matching line wins. A Unix-socket connection matches `localhost` or its socket directory.
///
/// Like libpq, a password file that its group or others may read is not used: a warning names it.
public enum PostgresPassword {
    /// The password for `location`, or nil when none is given (trust or peer authentication).
    ///
    /// - Parameter warn: told about a password file that is ignored, and why.
    public static func lookup(
        for location: PostgresLocation, environment: [String: String] = ProcessInfo.processInfo.environment,
        warn: (String) -> Void = { _ in }
    ) -> String? {
        if let password = environment["PGPASSWORD"], !password.isEmpty { return password }
        let file: String
        if let named = environment["PGPASSFILE"], !named.isEmpty {
            file = named
        } else if let home = environment["HOME"], !home.isEmpty {
            file = home + "/.pgpass"
        } else {
            return nil
        }
        var info = stat()
        guard stat(file, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { return nil }
        if info.st_mode & 0o077 != 0 {
            warn(
                "password file \(file) is readable by group or others (mode \(String(info.st_mode & 0o777, radix: 8))); not used: chmod 0600 it"
            )
            return nil
        }
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { return nil }
        return match(text, location: location)
    }

    /// The password of the first line of a password file that matches `location`.
    static func match(_ text: String, location: PostgresLocation) -> String? {
        let hosts: [String]
        let port: Int
        switch location.endpoint {
        case let .tcp(host, number):
            hosts = [host]
            port = number
        case let .unixSocket(directory, number):
            hosts = ["localhost", directory]
            port = number
        }
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) where !line.hasPrefix("#") {
            let fields = split(line)
            guard fields.count == 5 else { continue }
            let matches =
                (fields[0] == "*" || hosts.contains(fields[0])) && (fields[1] == "*" || fields[1] == String(port))
                && (fields[2] == "*" || fields[2] == location.database) && (fields[3] == "*" || fields[3] == location.user)
            if matches { return fields[4] }
        }
        return nil
    }

    /// Splits a line at unescaped colons, undoing `\:` and `\\`.
    static func split(_ line: Substring) -> [String] {
        var fields: [String] = []
        var current = ""
        var escaped = false
        for character in line {
            if escaped {
                current.append(character)
                escaped = false
            } else if character == "\\" {
                escaped = true
            } else if character == ":" && fields.count < 4 {
                fields.append(current)
                current = ""
            } else {
                current.append(character)
            }
        }
        fields.append(current)
        return fields
    }
}
