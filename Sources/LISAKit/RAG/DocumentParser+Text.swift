import Foundation

/// The text extractors that work on text alone: pure, linear, fuzzed (`Fuzz/`).
extension DocumentParser {
    /// Visible text of an HTML page: scripts, styles, the head and comments dropped, block
    /// elements become line breaks, entities decoded. One pass over the characters.
    static func html(_ source: String) -> String {
        let blockTags: Set<String> = ["br", "/p", "/div", "/h1", "/h2", "/h3", "/h4", "/h5", "/h6", "/li", "/tr", "/section", "/article", "/title"]
        let skippedElements: Set<String> = ["script", "style", "head"]
        let scalars = Array(source.unicodeScalars)
        var output = String.UnicodeScalarView()
        var index = 0
        /// The first index at or after `from` where `needle` (lowercase ASCII) starts, ignoring case.
        func find(_ needle: [Unicode.Scalar], from: Int) -> Int? {
            guard !needle.isEmpty, from + needle.count <= scalars.count else { return nil }
            var position = from
            while position + needle.count <= scalars.count {
                if let first = scalars[position...].firstIndex(where: { lower($0) == needle[0] }) {
                    guard first + needle.count <= scalars.count else { return nil }
                    var matched = true
                    for offset in 1..<needle.count where lower(scalars[first + offset]) != needle[offset] {
                        matched = false
                        break
                    }
                    if matched { return first }
                    position = first + 1
                } else {
                    return nil
                }
            }
            return nil
        }
        while index < scalars.count {
            let scalar = scalars[index]
            guard scalar == "<" else {
                output.append(scalar)
                index += 1
                continue
            }
            if index + 3 < scalars.count, scalars[index + 1] == "!", scalars[index + 2] == "-", scalars[index + 3] == "-" {
                // A comment: to the next "-->", or to the end of the page when it never closes.
                index = find(Array("-->".unicodeScalars), from: index + 4).map { $0 + 3 } ?? scalars.count
                output.append(" ")
                continue
            }
            if index + 1 < scalars.count, scalars[index + 1] == "!" || scalars[index + 1] == "?" {
                // A declaration (<!doctype …>) or processing instruction: to its '>'.
                index = scalars[(index + 1)...].firstIndex(of: ">").map { $0 + 1 } ?? scalars.count
                continue
            }
            // The tag's name: letters, digits and a leading '/'.
            var nameEnd = index + 1
            if nameEnd < scalars.count, scalars[nameEnd] == "/" { nameEnd += 1 }
            while nameEnd < scalars.count, scalars[nameEnd].properties.isAlphabetic || ("0"..."9").contains(scalars[nameEnd]) { nameEnd += 1 }
            let name = String(String.UnicodeScalarView(scalars[(index + 1)..<nameEnd].map(lower)))
            guard name.count > (name.hasPrefix("/") ? 1 : 0) else {
                // A '<' that starts no tag is text.
                output.append(scalar)
                index += 1
                continue
            }
            // The tag ends at the next '>'; a tag that never closes ends the page.
            guard let close = scalars[nameEnd...].firstIndex(of: ">") else { break }
            index = close + 1
            if skippedElements.contains(name) {
                // Skip to the matching end tag; an element that never ends runs to the end.
                let endTag = Array("</\(name)".unicodeScalars)
                if let end = find(endTag, from: index) {
                    index = scalars[(end + endTag.count)...].firstIndex(of: ">").map { $0 + 1 } ?? scalars.count
                } else {
                    index = scalars.count
                }
                output.append(" ")
            } else {
                output.append(blockTags.contains(name) ? "\n" : " ")
            }
        }
        let text = decodeEntities(String(output))
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\u{00A0}" }).joined(separator: " ")
        }
        return lines.filter { !$0.isEmpty }.joined(separator: "\n")
    }

    private static func lower(_ scalar: Unicode.Scalar) -> Unicode.Scalar {
        ("A"..."Z").contains(scalar) ? Unicode.Scalar(scalar.value + 32)! : scalar
    }

    static let namedEntities: [String: String] = [
        "nbsp": " ", "lt": "<", "gt": ">", "quot": "\"", "apos": "'", "amp": "&", "eacute": "é", "egrave": "è",
        "auml": "ä", "ouml": "ö", "uuml": "ü", "szlig": "ß", "copy": "©", "mdash": "—", "ndash": "–",
        "hellip": "…", "lsquo": "‘", "rsquo": "’", "ldquo": "“", "rdquo": "”",
    ]

    /// Decodes named (the common ones) and numeric character references, in one pass.
    static func decodeEntities(_ text: String) -> String {
        guard text.contains("&") else { return text }
        let scalars = Array(text.unicodeScalars)
        var output = String.UnicodeScalarView()
        var index = 0
        while index < scalars.count {
            let scalar = scalars[index]
            guard scalar == "&" else {
                output.append(scalar)
                index += 1
                continue
            }
            // A reference is at most 10 characters up to its ';'.
            var end = index + 1
            while end < scalars.count, end - index <= 10, scalars[end] != ";", scalars[end] != "&" { end += 1 }
            guard end < scalars.count, scalars[end] == ";" else {
                output.append(scalar)
                index += 1
                continue
            }
            let body = String(String.UnicodeScalarView(scalars[(index + 1)..<end]))
            var replacement: String?
            if body.hasPrefix("#") {
                let digits = body.dropFirst()
                let isHex = digits.first == "x" || digits.first == "X"
                if let code = UInt32(isHex ? digits.dropFirst() : digits, radix: isHex ? 16 : 10), let decoded = Unicode.Scalar(code) {
                    replacement = String(Character(decoded))
                }
            } else {
                replacement = namedEntities[body]
            }
            if let replacement {
                output.append(contentsOf: replacement.unicodeScalars)
                index = end + 1
            } else {
                output.append(scalar)
                index += 1
            }
        }
        return String(output)
    }

    /// JSON as `path: value` lines, so keys give the values their meaning.
    static func json(_ source: String, filename: String) throws(LISAError) -> String {
        let value: JSONValue
        do {
            value = try JSONDecoder().decode(JSONValue.self, from: Data(source.utf8))
        } catch {
            throw .invalidRequest("'\(filename)' is not valid JSON.", param: "file")
        }
        var lines: [String] = []
        func walk(_ value: JSONValue, _ path: String) {
            switch value {
            case .object(let members):
                for key in members.keys.sorted() { walk(members[key]!, path.isEmpty ? key : "\(path).\(key)") }
            case .array(let items):
                for (index, item) in items.enumerated() { walk(item, "\(path)[\(index)]") }
            case .string(let text): lines.append(path.isEmpty ? text : "\(path): \(text)")
            case .integer(let number): lines.append("\(path): \(number)")
            case .number(let number): lines.append("\(path): \(number)")
            case .bool(let flag): lines.append("\(path): \(flag)")
            case .null: break
            }
        }
        walk(value, "")
        return lines.joined(separator: "\n")
    }

    /// CSV rows as `header: value` lines (RFC 4180 quoting), one blank line between rows.
    static func csv(_ source: String) -> String {
        var rows: [[String]] = []
        var row: [String] = []
        var field = ""
        var quoted = false
        var iterator = Array(source).makeIterator()
        var pending: Character? = nil
        while let character = pending ?? iterator.next() {
            pending = nil
            if quoted {
                if character == "\"" {
                    if let next = iterator.next() {
                        if next == "\"" { field.append("\"") } else { quoted = false; pending = next }
                    } else {
                        quoted = false
                    }
                } else {
                    field.append(character)
                }
                continue
            }
            switch character {
            case "\"": quoted = true
            case ",": row.append(field); field = ""
            case "\n", "\r\n":
                row.append(field); field = ""
                rows.append(row); row = []
            case "\r": break
            default: field.append(character)
            }
        }
        if !field.isEmpty || !row.isEmpty { row.append(field); rows.append(row) }
        guard let header = rows.first else { return "" }
        return rows.dropFirst().filter { !$0.allSatisfy(\.isEmpty) }.map { values in
            zip(header, values).map { "\($0.0): \($0.1)" }.joined(separator: "\n")
        }.joined(separator: "\n\n")
    }

    /// The text of WordprocessingML: paragraphs and breaks become line breaks, tabs tabs,
    /// every other tag nothing. One pass.
    static func wordText(_ xml: String) -> String {
        var text = String.UnicodeScalarView()
        var iterator = xml.unicodeScalars.makeIterator()
        var tag = String.UnicodeScalarView()
        var inTag = false
        while let scalar = iterator.next() {
            if inTag {
                if scalar == ">" {
                    inTag = false
                    let name = String(tag)
                    if name == "/w:p" || name == "w:br/" || name.hasPrefix("w:br ") {
                        text.append("\n")
                    } else if name == "w:tab/" {
                        text.append("\t")
                    }
                    tag = String.UnicodeScalarView()
                } else if tag.count < 16 {
                    tag.append(scalar)
                }
            } else if scalar == "<" {
                inTag = true
            } else {
                text.append(scalar)
            }
        }
        // The XML's own line breaks between elements are not text: keep non-empty lines.
        return decodeEntities(String(text)).split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }.joined(separator: "\n")
    }
}
