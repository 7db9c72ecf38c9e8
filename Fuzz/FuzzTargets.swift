// libFuzzer entry point for LISA's parsers. Built by scripts/fuzz.sh from the parsers'
// own sources (coverage-instrumented, with AddressSanitizer), not from the package build.
// LISA_FUZZ_TARGET picks the target: json, sse, multipart, chunker, text, upstream, zip.
import Foundation
import NIOCore

/// The target, read once.
private let target: String = ProcessInfo.processInfo.environment["LISA_FUZZ_TARGET"] ?? "json"

/// Stops the run with a message libFuzzer records with the crashing input.
func invariant(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() {
        fputs("invariant broken: \(message())\n", stderr)
        abort()
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    switch target {
    case "json": fuzzJSON(bytes)
    case "sse": fuzzSSE(bytes)
    case "multipart": fuzzMultipart(bytes)
    case "chunker": fuzzChunker(bytes)
    case "text": fuzzText(bytes)
    case "upstream": fuzzUpstream(bytes)
    case "zip": fuzzZip(bytes)
    default: fatalError("unknown LISA_FUZZ_TARGET \(target)")
    }
    return 0
}

/// The strict validator, the member scanner, the one-pass reads and the typed decoders must
/// agree: what the validator accepts is JSON to Foundation too, the scanner finds every
/// top-level member, a rewritten `model` is the only `model`, and what the one-pass reads
/// accept decodes to the same values.
private func fuzzJSON(_ bytes: [UInt8]) {
    let buffer = ByteBuffer(bytes: bytes)
    let accepted = (try? StrictJSON.validate(bytes)) != nil
    if accepted {
        invariant(
            (try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])) != nil, "validator accepted what Foundation refuses")
        if let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] {
            let ranges = JSONMemberScanner.valueRanges(of: "model", in: buffer)
            invariant(ranges != nil, "scanner failed on a valid object")
            invariant((ranges?.count ?? 0) == (object["model"] == nil ? 0 : 1), "scanner and Foundation disagree on model")
            if let rewritten = JSONMemberScanner.replacingStringMember("model", with: "upstream\"name", in: buffer) {
                let reparsed = try? JSONSerialization.jsonObject(with: Data(rewritten.readableBytesView)) as? [String: Any]
                invariant(reparsed?["model"] as? String == "upstream\"name", "rewrite produced a different model")
            }
        }
        let decoded = try? JSONDecoder().decode(ChatCompletionRequest.self, from: Data(bytes))
        // The hot path's one-pass read only ever accepts what the typed decode accepts, with
        // the same routing fields.
        if let quick = ChatCompletionRequest.routingFields(in: buffer) {
            invariant(decoded != nil, "one-pass read accepted what the decoder refuses")
            invariant(decoded.map { !$0.messages.isEmpty } ?? false, "one-pass read accepted empty messages")
            invariant(
                decoded.map { RoutingFields(model: $0.model, stream: $0.stream ?? false, user: $0.user) } == quick,
                "one-pass read and decoder disagree on model, stream or user"
            )
        }
    }
    if let usage = JSONMemberScanner.value(of: "usage", in: buffer) {
        checkUsage(usage)
    }
    // Upstream bytes are not validated first: the usage reader must hold on anything.
    checkUsage(buffer)
}

/// A usage object read in one pass is what the decoder reads.
private func checkUsage(_ buffer: ByteBuffer) {
    guard let quick = Usage.quickRead(buffer) else { return }
    let decoded = try? JSONDecoder().decode(Usage.self, from: Data(buffer.readableBytesView))
    invariant(decoded == quick, "one-pass usage read differs from the decoder's")
}

/// Feeding the same bytes in any split gives the same events and the same raw bytes.
private func fuzzSSE(_ bytes: [UInt8]) {
    guard let first = bytes.first else { return }
    var whole = ServerSentEventParser(maximumEventSize: 64 * 1024)
    let reference = try? whole.feed(ByteBuffer(bytes: bytes))
    var pieces = ServerSentEventParser(maximumEventSize: 64 * 1024)
    var events: [ServerSentEventParser.ParsedEvent] = []
    var failed = false
    var offset = 0
    let step = Int(first % 7) + 1
    while offset < bytes.count {
        let end = min(offset + step, bytes.count)
        do {
            events += try pieces.feed(ByteBuffer(bytes: bytes[offset..<end]))
        } catch {
            failed = true
            break
        }
        offset = end
    }
    if let reference, !failed {
        invariant(reference.map(\.event) == events.map(\.event), "events depend on how the bytes were split")
        invariant(
            reference.map { Array($0.raw.readableBytesView) } == events.map { Array($0.raw.readableBytesView) }, "raw bytes depend on the split")
    }
}

/// Multipart parsing never crashes, and a part's data lies inside the body.
private func fuzzMultipart(_ bytes: [UInt8]) {
    let boundaryLength = Int(bytes.first ?? 0) % 70 + 1
    let boundary = String(decoding: bytes.dropFirst().prefix(boundaryLength), as: UTF8.self)
    for candidate in [boundary, "XyZ"] where MultipartForm.boundary(of: "multipart/form-data; boundary=\"\(candidate)\"") != nil {
        if let form = try? MultipartForm(body: ByteBuffer(bytes: bytes), boundary: candidate) {
            invariant(form.parts.reduce(0) { $0 + $1.data.count } <= bytes.count, "parts larger than the body")
        }
    }
}

/// Every chunk is within the size; with no overlap, chunks joined keep every non-space character.
private func fuzzChunker(_ bytes: [UInt8]) {
    let size = 100 + Int(bytes.first ?? 0) % 200
    let text = String(decoding: bytes.dropFirst(), as: UTF8.self)
    for chunk in ChunkingStrategy.recursive(size: size, overlap: 0).split(text) {
        invariant(chunk.count <= size, "a chunk of \(chunk.count) > \(size)")
    }
    // Chunks are trimmed of whitespace scalars (which can detach a combining mark from the
    // space it sat on), so compare the scalars that are not whitespace.
    let spaces = CharacterSet.whitespacesAndNewlines
    let kept = ChunkingStrategy.recursive(size: size, overlap: 0).split(text).joined().unicodeScalars.filter { !spaces.contains($0) }
    invariant(Array(kept) == Array(text.unicodeScalars.filter { !spaces.contains($0) }), "the chunker lost or reordered text")
    _ = ChunkingStrategy.recursive(size: size, overlap: size / 2).split(text)
}

/// The text extractors never crash and never grow text beyond a small factor.
private func fuzzText(_ bytes: [UInt8]) {
    let text = String(decoding: bytes, as: UTF8.self)
    invariant(DocumentParser.html(text).utf8.count <= 4 * text.utf8.count + 16, "HTML text grew")
    _ = DocumentParser.decodeEntities(text)
    _ = DocumentParser.csv(text)
    _ = DocumentParser.wordText(text)
    _ = try? DocumentParser.json(text, filename: "fuzz.json")
}

/// The ZIP structure check reads every offset an uploader's archive states: none may take it
/// outside the bytes, and it gives the same answer twice.
private func fuzzZip(_ bytes: [UInt8]) {
    // Behind 512 zero bytes too, so that stated offsets also land inside a larger body.
    let first = Result { try ZipStructure.check(bytes) }.map { true }
    let again = Result { try ZipStructure.check(bytes) }.map { true }
    invariant((try? first.get()) == (try? again.get()), "the check gave two answers")
    _ = try? ZipStructure.check(Array(repeating: 0, count: 512) + bytes)
}
