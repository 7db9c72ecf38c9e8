import Foundation
public import NIOCore
import Synchronization

/// What a chat completion asks of RAG: `"lisa": {"rag": {"repositoryId": "…",
/// "collectionId": "…", "topK": 3}}` in the request body, so any OpenAI client can ask.
public struct GroundingRequest: Sendable, Hashable, Codable {
    public var repositoryId: String
    public var collectionId: String?
    public var topK: Int?
}

/// A chat request rewritten with retrieved context, and the sources to return.
public struct GroundedChat: Sendable {
    public var body: ByteBuffer
    public var sources: [RAGSource]
    /// The model the client asked for (what the sources event names).
    public var model: String = ""
}

extension RAGService {
    static let lisaMember = Array("\"lisa\"".utf8)
    static let unicodeEscape = Array("\\u".utf8)

    /// The context template placed in a system message before the conversation.
    public static func contextMessage(_ sources: [RAGSource]) -> String {
        var text = """
            Answer using the numbered sources below when they are relevant, and cite them as [1], [2] … \
            If they do not contain the answer, say so rather than guessing.

            """
        for (index, source) in sources.enumerated() {
            text += "\n[\(index + 1)] \(source.documentName)\n\(source.text)\n"
        }
        return text
    }

    /// When `body` asks for grounding: retrieves context for its last user message, adds
    /// it as a system message, removes the `lisa` member (upstreams do not know it), and
    /// returns the new body with the sources. `nil` when the request does not ask.
    public func ground(_ body: ByteBuffer, for principal: Principal) async throws -> GroundedChat? {
        // Most requests do not ask: skip decoding unless the member can be there.
        // (An escaped key, `"li\u0073a"`, is the same member: look whenever there are escapes.)
        guard body.firstOffset(of: Self.lisaMember) != nil || body.firstOffset(of: Self.unicodeEscape) != nil else { return nil }
        guard case .object(var request) = try RequestJSON.decode(JSONValue.self, from: body),
            let lisa = request["lisa"], let rag = lisa.member("rag")
        else { return nil }
        let grounding: GroundingRequest
        do {
            grounding = try rag.decode(GroundingRequest.self)
        } catch {
            throw LISAError.invalidRequest("lisa.rag needs repositoryId (and optionally collectionId, topK).", param: "lisa.rag")
        }
        let topK = grounding.topK ?? 3
        guard (1...20).contains(topK) else { throw LISAError.invalidRequest("lisa.rag.topK must be between 1 and 20.", param: "lisa.rag.topK") }
        guard case .array(var messages) = request["messages"] ?? .null,
            let question = messages.reversed().lazy.compactMap(Self.userText).first
        else {
            throw LISAError.invalidRequest("Grounding needs a user message to search with.", param: "messages")
        }
        let sources = try await search(
            question, in: grounding.repositoryId, collection: grounding.collectionId, topK: topK, for: principal
        )
        if !sources.isEmpty {
            let leading = messages.prefix { $0.member("role") == .string("system") || $0.member("role") == .string("developer") }.count
            messages.insert(["role": "system", "content": .string(Self.contextMessage(sources))], at: leading)
            request["messages"] = .array(messages)
        }
        if case .object(var members) = lisa {
            members["rag"] = nil
            request["lisa"] = members.isEmpty ? nil : .object(members)
        }
        // Written in the client's member order (JSONEncoder's would follow the process's hash seed).
        return GroundedChat(body: JSONValue.object(request).jsonBytes, sources: sources, model: request["model"]?.stringValue ?? "")
    }

    private static func userText(_ message: JSONValue) -> String? {
        guard message.member("role") == .string("user") else { return nil }
        switch message.member("content") {
        case .string(let text)?: return text
        case .array(let parts)?:
            let texts = parts.compactMap { part -> String? in
                guard part.member("type") == .string("text") else { return nil }
                return part.member("text")?.stringValue
            }
            return texts.isEmpty ? nil : texts.joined(separator: "\n")
        default: return nil
        }
    }

    /// A non-streamed answer with `"lisa": {"sources": [...]}` added.
    public static func attach(_ sources: [RAGSource], to body: ByteBuffer) -> ByteBuffer {
        guard case .object(var response)? = try? JSONValue(parsing: body),
            let encoded = try? JSONValue(encoding: SourcesEnvelope(sources: sources))
        else { return body }
        response["lisa"] = encoded
        return JSONValue.object(response).jsonBytes
    }

    /// The SSE event carrying the sources at the end of a stream: a chunk with no choices
    /// (as usage chunks have), so OpenAI clients read it like any other.
    public static func sourcesEvent(_ sources: [RAGSource], model: String) -> ByteBuffer {
        let chunk: JSONValue = [
            "id": .string("lisa-sources-\(UUID().uuidString.prefix(8))"), "object": "chat.completion.chunk",
            "created": .integer(Int64(Date().timeIntervalSince1970)), "model": .string(model), "choices": [],
            "lisa": (try? JSONValue(encoding: SourcesEnvelope(sources: sources))) ?? .null,
        ]
        var buffer = ByteBuffer(string: "data: ")
        chunk.write(to: &buffer)
        buffer.writeString("\n\n")
        return buffer
    }

    struct SourcesEnvelope: Encodable {
        var sources: [RAGSource]
    }
}

/// Puts an extra event before a stream's `data: [DONE]`. A stream that ends with an
/// error event instead gets none (its sources would describe an answer that failed).
public final class SourcesInjector: Sendable {
    let event: ByteBuffer
    private let done = Mutex(false)
    static let doneMarker = Array("data: [DONE]".utf8)

    public init(event: ByteBuffer) {
        self.event = event
    }

    /// The buffers to send for one relayed element.
    public func process(_ chunk: ByteBuffer) -> [ByteBuffer] {
        guard !done.withLock({ $0 }) else { return [chunk] }
        let view = chunk.readableBytesView
        guard let offset = chunk.firstOffset(of: Self.doneMarker) else { return [chunk] }
        // Only at the start of an event.
        if offset > 0 && !(offset >= 1 && view[view.startIndex + offset - 1] == UInt8(ascii: "\n")) { return [chunk] }
        done.withLock { $0 = true }
        var before = chunk
        let head = before.readSlice(length: offset) ?? ByteBuffer()
        return [head, event, before].filter { $0.readableBytes > 0 }
    }
}
