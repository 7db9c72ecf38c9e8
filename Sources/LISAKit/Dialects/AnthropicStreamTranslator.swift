import Foundation
public import NIOCore

/// Chat-completion chunks to Anthropic's stream: `message_start`, `ping`, then per content
/// block `content_block_start` / `content_block_delta` (`text_delta`, `thinking_delta`,
/// `input_json_delta`) / `content_block_stop`, and at `[DONE]` `message_delta` (stop reason,
/// usage) and `message_stop`. A broken upstream ends with an `error` event and no
/// `message_stop`.
public struct AnthropicStreamTranslator: ServerSentEventTranslator {
    enum BlockKind: Equatable {
        case text, thinking
        case tool(Int)
    }

    let model: String
    var messageID: String?
    var started = false
    public private(set) var finished = false
    var open: (index: Int, kind: BlockKind)?
    var nextIndex = 0
    var closedTools: Set<Int> = []
    var finishReason: String?
    var matchedStop: JSONValue?
    var usage: JSONValue?

    /// Whether plain deltas are written straight (``translate(_:into:)``); tests turn it off
    /// to compare with the events built as JSON values.
    var writesDeltasStraight = true

    public init(model: String) {
        self.model = model
    }

    /// A plain text or thinking delta that continues the open block is written straight: the
    /// bytes ``translate(_:)`` gives, without parsing the chunk into a tree or building the
    /// event as JSON values. Everything else takes ``translate(_:)``.
    public mutating func translate(_ event: ServerSentEvent, into buffer: inout ByteBuffer) {
        if writesDeltasStraight, started, !finished, event.event == nil, !event.isDone, let open,
            let delta = ChatStreamDelta.read(event.data)
        {
            let text = delta.content ?? ""
            let reasoning = delta.reasoning ?? ""
            if open.kind == .text, reasoning.isEmpty {
                guard !text.isEmpty else { return }
                writeDelta(index: open.index, type: "text_delta", field: "text", text: text, into: &buffer)
                return
            }
            if open.kind == .thinking, text.isEmpty {
                guard !reasoning.isEmpty else { return }
                writeDelta(index: open.index, type: "thinking_delta", field: "thinking", text: reasoning, into: &buffer)
                return
            }
        }
        for translated in translate(event) { translated.write(to: &buffer) }
    }

    /// The event ``delta(_:)`` builds, written as the same bytes.
    private func writeDelta(index: Int, type: StaticString, field: StaticString, text: String, into buffer: inout ByteBuffer) {
        buffer.writeStaticString("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":")
        buffer.writeString(String(index))
        buffer.writeStaticString(",\"delta\":{\"type\":\"")
        buffer.writeStaticString(type)
        buffer.writeStaticString("\",\"")
        buffer.writeStaticString(field)
        buffer.writeStaticString("\":")
        JSONValue.writeString(text, to: &buffer)
        buffer.writeStaticString("}}\n\n")
    }

    public mutating func translate(_ event: ServerSentEvent) -> [ServerSentEvent] {
        guard !finished else { return [] }
        if event.event == "error" {
            let error = DialectJSON.object(in: event.data)?["error"]
            let message = error?["message"]?.stringValue ?? "The upstream failed during the stream."
            let type = error?["code"]?.stringValue?.contains("timeout") == true ? "timeout_error" : "api_error"
            return fail(type: type, message: message)
        }
        if event.isDone { return finish() }
        guard let chunk = DialectJSON.object(in: event.data) else {
            return fail(type: "api_error", message: "The upstream sent a stream event that is not a JSON object.")
        }
        var out = start(id: chunk["id"]?.stringValue)
        if let lisa = chunk["lisa"] {
            out.append(DialectJSON.event("lisa.sources", ["type": "lisa.sources", "lisa": lisa]))
        }
        if let usage = chunk["usage"], usage != .null { self.usage = usage }
        for choice in chunk["choices"]?.arrayValue ?? [] where (choice["index"]?.int64Value ?? 0) == 0 {
            let delta = choice["delta"] ?? .object([:])
            if let reasoning = (delta["reasoning_content"] ?? delta["reasoning"])?.stringValue, !reasoning.isEmpty {
                out += ensureOpen(.thinking, start: ["type": "thinking", "thinking": "", "signature": ""])
                out.append(self.delta(["type": "thinking_delta", "thinking": .string(reasoning)]))
            }
            if let text = delta["content"]?.stringValue, !text.isEmpty {
                out += ensureOpen(.text, start: ["type": "text", "text": ""])
                out.append(self.delta(["type": "text_delta", "text": .string(text)]))
            }
            for call in delta["tool_calls"]?.arrayValue ?? [] {
                let toolIndex = Int(call["index"]?.int64Value ?? 0)
                if open?.kind != .tool(toolIndex) {
                    guard !closedTools.contains(toolIndex) else {
                        return out + fail(type: "api_error", message: "The upstream interleaved the arguments of parallel tool calls.")
                    }
                    out += ensureOpen(
                        .tool(toolIndex),
                        start: [
                            "type": "tool_use", "id": .string(call["id"]?.stringValue ?? DialectJSON.id("toolu_")),
                            "name": .string(call["function"]?["name"]?.stringValue ?? ""), "input": .object([:]),
                        ]
                    )
                }
                if let arguments = call["function"]?["arguments"]?.stringValue, !arguments.isEmpty {
                    out.append(self.delta(["type": "input_json_delta", "partial_json": .string(arguments)]))
                }
            }
            if let reason = choice["finish_reason"]?.stringValue {
                finishReason = reason
                matchedStop = choice["stop_reason"]
            }
        }
        return out
    }

    private mutating func start(id: String?) -> [ServerSentEvent] {
        guard !started else { return [] }
        started = true
        messageID = AnthropicDialect.messageID(for: id)
        return [
            DialectJSON.event(
                "message_start",
                [
                    "type": "message_start",
                    "message": [
                        "id": .string(messageID!), "type": "message", "role": "assistant", "model": .string(model), "content": [],
                        "stop_reason": nil, "stop_sequence": nil, "usage": ["input_tokens": 0, "output_tokens": 0],
                    ],
                ]
            ),
            DialectJSON.event("ping", ["type": "ping"]),
        ]
    }

    private mutating func ensureOpen(_ kind: BlockKind, start block: JSONValue) -> [ServerSentEvent] {
        if let open, open.kind == kind { return [] }
        var out = closeOpen()
        open = (nextIndex, kind)
        out.append(
            DialectJSON.event("content_block_start", ["type": "content_block_start", "index": .integer(Int64(nextIndex)), "content_block": block]))
        nextIndex += 1
        return out
    }

    private func delta(_ delta: JSONValue) -> ServerSentEvent {
        DialectJSON.event("content_block_delta", ["type": "content_block_delta", "index": .integer(Int64(open?.index ?? 0)), "delta": delta])
    }

    private mutating func closeOpen() -> [ServerSentEvent] {
        guard let open else { return [] }
        self.open = nil
        if case .tool(let index) = open.kind { closedTools.insert(index) }
        return [DialectJSON.event("content_block_stop", ["type": "content_block_stop", "index": .integer(Int64(open.index))])]
    }

    private mutating func finish() -> [ServerSentEvent] {
        var out = start(id: nil)
        out += closeOpen()
        finished = true
        let (stopReason, stopSequence) = AnthropicDialect.stopReason(finish: finishReason, matched: matchedStop)
        var usage = AnthropicDialect.usage(self.usage)
        if self.usage == nil, var object = usage.objectValue {
            object.removeValue(forKey: "input_tokens")
            usage = .object(object)
        }
        out.append(
            DialectJSON.event(
                "message_delta",
                [
                    "type": "message_delta",
                    "delta": ["stop_reason": .string(stopReason), "stop_sequence": stopSequence.map(JSONValue.string) ?? .null],
                    "usage": usage,
                ]
            )
        )
        out.append(DialectJSON.event("message_stop", ["type": "message_stop"]))
        return out
    }

    private mutating func fail(type: String, message: String) -> [ServerSentEvent] {
        finished = true
        return [DialectJSON.event("error", ["type": "error", "error": ["type": .string(type), "message": .string(message)]])]
    }
}
