public import Foundation

/// Turns an uploaded file into text, by its extension: plain text, Markdown, HTML, JSON,
/// CSV, PDF (poppler's `pdftotext`, from Debian's `poppler-utils`) and DOCX (the ZIP's
/// `word/document.xml`, read in process with ZIPFoundation).
///
/// Every extractor is linear in its input and bounded by ``Limits``: a file whose text (or,
/// for DOCX, whose expanded XML) would pass the budget is refused with a 413, a PDF tool
/// that runs too long or writes too much is killed, and cancelling the calling task stops
/// the work (a running subprocess is killed).
public enum DocumentParser {
    public static let supportedExtensions = ["txt", "text", "md", "markdown", "html", "htm", "json", "csv", "pdf", "docx"]

    /// What one document may cost to read.
    public struct Limits: Sendable, Hashable, Codable {
        /// The most text (UTF-8 bytes) a document may yield. Default 8 MiB.
        public var maxTextBytes: Int
        /// The most bytes a DOCX's `word/document.xml` may expand to. Default 64 MiB.
        public var maxExpandedBytes: Int
        /// How long `pdftotext` may run on one file before it is killed. Default 120 s.
        public var toolTimeoutSeconds: Double
        /// The `pdftotext` to run: a path, or a name looked up on `PATH`
        /// (`rag.ingestion.pdftotextPath`, `LISA_PDFTOTEXT`). Default `pdftotext`.
        public var pdftotextPath: String

        public init(
            maxTextBytes: Int = 8 * 1024 * 1024, maxExpandedBytes: Int = 64 * 1024 * 1024, toolTimeoutSeconds: Double = 120,
            pdftotextPath: String = "pdftotext"
        ) {
            self.maxTextBytes = maxTextBytes
            self.maxExpandedBytes = maxExpandedBytes
            self.toolTimeoutSeconds = toolTimeoutSeconds
            self.pdftotextPath = pdftotextPath
        }
    }

    /// The executable `pdftotext` resolves to (a path, or the first match on `PATH`), or
    /// `nil` when there is none: PDF uploads are then refused at once.
    public static func pdfTool(_ limits: Limits) -> String? {
        let tool = limits.pdftotextPath
        let files = FileManager.default
        if tool.contains("/") { return files.isExecutableFile(atPath: tool) ? tool : nil }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in path.split(separator: ":") where !directory.isEmpty {
            let candidate = "\(directory)/\(tool)"
            if files.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// Why this server cannot read PDFs (the tool it misses and how to provide it), or `nil`.
    public static func pdfProblem(_ limits: Limits) -> String? {
        guard pdfTool(limits) == nil else { return nil }
        let where_ = limits.pdftotextPath.contains("/") ? "at \(limits.pdftotextPath)" : "on PATH"
        return "pdftotext (poppler-utils) was not found \(where_); PDF uploads are refused: install poppler-utils or set rag.ingestion.pdftotextPath"
    }

    /// The text of `data`, named `filename`. Unsupported types, empty files and files
    /// without text are 400s naming the file; files over the budget are 413s.
    public static func text(of data: Data, filename: String, limits: Limits = Limits()) async throws(LISAError) -> String {
        let ext = (filename as NSString).pathExtension.lowercased()
        guard supportedExtensions.contains(ext) else {
            throw .unsupportedFileType(
                "'\(filename)': unsupported file type; LISA ingests \(supportedExtensions.map { ".\($0)" }.joined(separator: ", "))"
            )
        }
        guard !data.isEmpty else { throw .invalidRequest("'\(filename)' is empty.", param: "file") }
        let text: String
        switch ext {
        case "pdf": text = try await pdf(data, filename: filename, limits: limits)
        case "docx": text = try docx(data, filename: filename, limits: limits)
        default:
            guard data.count <= limits.maxTextBytes else { throw tooMuchText(filename, limits) }
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
        guard text.utf8.count <= limits.maxTextBytes else { throw tooMuchText(filename, limits) }
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { throw .invalidRequest("'\(filename)' has no text to ingest.", param: "file") }
        return trimmed
    }

    static func tooMuchText(_ filename: String, _ limits: Limits) -> LISAError {
        .payloadTooLarge("'\(filename)' holds more text than the limit of \(limits.maxTextBytes) bytes (rag.ingestion.maxTextBytes).")
    }

    static func pdf(_ data: Data, filename: String, limits: Limits) async throws(LISAError) -> String {
        guard data.starts(with: Array("%PDF".utf8)) else { throw .invalidRequest("'\(filename)' is not a PDF.", param: "file") }
        guard let tool = pdfTool(limits) else { throw .unsupportedFileType("'\(filename)': \(pdfProblem(limits) ?? "pdftotext is missing").") }
        return try await BoundedProcess.output(
            of: tool, ["-layout", "-enc", "UTF-8", "{input}", "-"], input: data, suffix: ".pdf", filename: filename,
            maxOutputBytes: limits.maxTextBytes, timeoutSeconds: limits.toolTimeoutSeconds
        )
    }

    /// The text of a DOCX: its `word/document.xml`, inflated in process with a byte budget
    /// (a small file that expands to gigabytes stops at the budget), then its text runs.
    static func docx(_ data: Data, filename: String, limits: Limits) throws(LISAError) -> String {
        guard data.starts(with: [0x50, 0x4B, 0x03, 0x04]) else {
            throw .invalidRequest("'\(filename)' is not a DOCX (ZIP) file.", param: "file")
        }
        let xml: Data
        do {
            xml = try ZipReader.entry("word/document.xml", of: data, maxBytes: limits.maxExpandedBytes)
        } catch ZipReader.Failure.tooLarge {
            throw .payloadTooLarge("'\(filename)' expands to more than \(limits.maxExpandedBytes) bytes (rag.ingestion.maxExpandedBytes).")
        } catch {
            throw .invalidRequest("'\(filename)' cannot be read as a DOCX (\(error)); is it damaged?", param: "file")
        }
        return wordText(String(decoding: xml, as: UTF8.self))
    }
}
