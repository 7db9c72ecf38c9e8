import Foundation

/// Turns an uploaded file into text, by its extension: plain text, Markdown, HTML, JSON,
/// CSV, PDF (poppler's `pdftotext`, from Debian's `poppler-utils`) and DOCX (the ZIP's
/// `word/document.xml`, read with `unzip`).
public enum DocumentParser {
    public static let supportedExtensions = ["txt", "text", "md", "markdown", "html", "htm", "json", "csv", "pdf", "docx"]

    /// The text of `data`, named `filename`. Unsupported types, empty files and files
    /// without text are 400s naming the file.
    public static func text(of data: Data, filename: String) async throws(LISAError) -> String {
        let ext = (filename as NSString).pathExtension.lowercased()
        guard supportedExtensions.contains(ext) else {
            throw .unsupportedFileType(
                "'\(filename)': unsupported file type; LISA ingests \(supportedExtensions.map { ".\($0)" }.joined(separator: ", "))"
            )
        }
        guard !data.isEmpty else { throw .invalidRequest("'\(filename)' is empty.", param: "file") }
        let text: String
        switch ext {
        case "pdf": text = try await pdf(data, filename: filename)
        case "docx": text = try await docx(data, filename: filename)
        default:
            guard let decoded = String(data: data, encoding: .utf8) else {
                throw .invalidRequest("'\(filename)' is not UTF-8 text.", param: "file")
            }
            switch ext {
            case "html", "htm": text = html(decoded)
            case "json": text = try json(decoded, filename: filename)
            case "csv": text = csv(decoded)
            default: text = decoded
            }
        }
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { throw .invalidRequest("'\(filename)' has no text to ingest.", param: "file") }
        return trimmed
    }

    /// Visible text of an HTML page: scripts, styles and comments dropped, block elements
    /// become line breaks, entities decoded.
    static func html(_ source: String) -> String {
        var text = source
        for pattern in ["(?is)<script\\b.*?</script>", "(?is)<style\\b.*?</style>", "(?s)<!--.*?-->", "(?is)<head\\b.*?</head>"] {
            text = text.replacingOccurrences(of: pattern, with: " ", options: .regularExpression)
        }
        text = text.replacingOccurrences(
            of: "(?i)<(br|/p|/div|/h[1-6]|/li|/tr|/section|/article|/title)\\b[^>]*>", with: "\n", options: .regularExpression
        )
        text = text.replacingOccurrences(of: "<[^>]+>", with: " ", options: .regularExpression)
        text = decodeEntities(text)
        let lines = text.components(separatedBy: "\n").map {
            $0.replacingOccurrences(of: "[ \t\u{00A0}]+", with: " ", options: .regularExpression).trimmingCharacters(in: .whitespaces)
        }
        return lines.filter { !$0.isEmpty }.joined(separator: "\n")
    }

    static func decodeEntities(_ text: String) -> String {
        var result = text
        let named = [
            "&nbsp;": " ", "&lt;": "<", "&gt;": ">", "&quot;": "\"", "&#39;": "'", "&apos;": "'", "&eacute;": "é", "&egrave;": "è",
            "&auml;": "ä", "&ouml;": "ö", "&uuml;": "ü", "&szlig;": "ß", "&copy;": "©", "&mdash;": "—", "&ndash;": "–",
            "&hellip;": "…", "&lsquo;": "‘", "&rsquo;": "’", "&ldquo;": "“", "&rdquo;": "”",
        ]
        for (entity, value) in named { result = result.replacingOccurrences(of: entity, with: value) }
        if let regex = try? NSRegularExpression(pattern: "&#(x?)([0-9a-fA-F]+);") {
            let matches = regex.matches(in: result, range: NSRange(result.startIndex..., in: result)).reversed()
            for match in matches {
                guard let range = Range(match.range, in: result), let hexRange = Range(match.range(at: 1), in: result),
                    let digitsRange = Range(match.range(at: 2), in: result)
                else { continue }
                let radix = result[hexRange].isEmpty ? 10 : 16
                if let code = UInt32(result[digitsRange], radix: radix), let scalar = Unicode.Scalar(code) {
                    result.replaceSubrange(range, with: String(Character(scalar)))
                }
            }
        }
        return result.replacingOccurrences(of: "&amp;", with: "&")
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
                    } else { quoted = false }
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

    static func pdf(_ data: Data, filename: String) async throws(LISAError) -> String {
        guard data.starts(with: Array("%PDF".utf8)) else { throw .invalidRequest("'\(filename)' is not a PDF.", param: "file") }
        return try await run("pdftotext", ["-layout", "-enc", "UTF-8", "{input}", "-"], input: data, suffix: ".pdf", filename: filename)
    }

    static func docx(_ data: Data, filename: String) async throws(LISAError) -> String {
        guard data.starts(with: [0x50, 0x4B, 0x03, 0x04]) else {
            throw .invalidRequest("'\(filename)' is not a DOCX (ZIP) file.", param: "file")
        }
        let xml = try await run("unzip", ["-p", "{input}", "word/document.xml"], input: data, suffix: ".docx", filename: filename)
        // Paragraphs and breaks become line breaks; the text runs are <w:t> elements.
        var text = xml.replacingOccurrences(of: "</w:p>", with: "\n").replacingOccurrences(of: "<w:br/>", with: "\n")
        text = text.replacingOccurrences(of: "<w:tab/>", with: "\t")
        text = text.replacingOccurrences(of: "<[^>]+>", with: "", options: .regularExpression)
        // The XML's own line breaks between elements are not text: keep non-empty lines.
        return decodeEntities(text).components(separatedBy: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }.joined(separator: "\n")
    }

    /// Runs a Debian tool on the data (written to a private temporary file) and returns its output.
    private static func run(_ tool: String, _ arguments: [String], input: Data, suffix: String, filename: String) async throws(LISAError) -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("lisa-\(UUID().uuidString)\(suffix)").path
        guard FileManager.default.createFile(atPath: path, contents: input, attributes: [.posixPermissions: 0o600]) else {
            throw .internalError("Cannot write a temporary file to read '\(filename)'.")
        }
        defer { try? FileManager.default.removeItem(atPath: path) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [tool] + arguments.map { $0 == "{input}" ? path : $0 }
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            throw .internalError("Cannot run \(tool) to read '\(filename)' (install poppler-utils and unzip).")
        }
        let bytes = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            if process.terminationStatus == 127 {
                throw .internalError("\(tool) is not installed; it reads '\(filename)' (Debian: poppler-utils, unzip).")
            }
            throw .invalidRequest("'\(filename)' cannot be read (\(tool) exited with \(process.terminationStatus)); is it damaged?", param: "file")
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
