import Foundation
public import NIOCore

/// Chat-completion chunks to the Responses stream: `response.created`,
/// `response.in_progress`, per output item `response.output_item.added`, its parts and deltas
/// (`response.output_text.delta`, `response.function_call_arguments.delta`,
/// `response.reasoning_text.delta`) and their `.done` events, `response.output_item.done`,
/// then `response.completed` (or `response.incomplete`). A broken upstream ends with
/// `response.failed`, never a completion.
public struct ResponsesStreamTranslator: ServerSentEventTranslator {
    /// The output item being streamed; its text (or a call's arguments) so far is `openText`.
    enum Open {
        case message(id: String)
        case reasoning(id: String)
        case function(id: String, index: Int, callID: String, name: String)
    }

    let id: String
    let createdAt: Int64
    let translation: ResponsesDialect.Translation
    var sequence: Int64 = 0
    var started = false
    var open: Open?
    /// The open item's text or arguments so far, appended to in place (linear in the answer).
    var openText = ""
    /// Whether plain deltas are written straight (``translate(_:into:)``); tests turn it off
    /// to compare with the events built as JSON values.
    var writesDeltasStraight = true
    var closedTools: Set<Int> = []
    public private(set) var output: [JSONValue] = []
    var usage: JSONValue?
    var finishReason: String?
    var lisa: JSONValue?
    /// The final response object, once the stream completed or failed.
    public private(set) var final: JSONValue?

    public init(id: String, createdAt: Int64, translation: ResponsesDialect.Translation) {
        self.id = id
        self.createdAt = createdAt
        self.translation = translation
    }

    public mutating func translate(_ event: ServerSentEvent) -> [ServerSentEvent] {
        guard final == nil else { return [] }
        if event.event == "error" {
            let error = DialectJSON.object(in: event.data)?["error"]
            return fail(message: error?["message"]?.stringValue ?? "The upstream failed during the stream.", code: error?["code"]?.stringValue)
        }
        var out = start()
        if event.isDone { return out + complete() }
        guard let chunk = DialectJSON.object(in: event.data) else {
            return out + fail(message: "The upstream sent a stream event that is not a JSON object.", code: nil)
        }
        if let lisa = chunk["lisa"] { self.lisa = lisa }
        if let usage = chunk["usage"], usage != .null { self.usage = usage }
        for choice in chunk["choices"]?.arrayValue ?? [] where (choice["index"]?.int64Value ?? 0) == 0 {
            let delta = choice["delta"] ?? .object([:])
            if let reasoning = (delta["reasoning_content"] ?? delta["reasoning"])?.stringValue, !reasoning.isEmpty {
                out += appendReasoning(reasoning)
            }
            if let text = delta["content"]?.stringValue, !text.isEmpty {
                out += appendText(text)
            }
            for call in delta["tool_calls"]?.arrayValue ?? [] {
                let index = Int(call["index"]?.int64Value ?? 0)
                if case .function(_, index, _, _) = open {
                } else {
                    guard !closedTools.contains(index) else {
                        return out + fail(message: "The upstream interleaved the arguments of parallel tool calls.", code: nil)
                    }
                    out += closeOpen()
                    let item = Open.function(
                        id: DialectJSON.id("fc_"), index: index, callID: call["id"]?.stringValue ?? DialectJSON.id("call_"),
                        name: call["function"]?["name"]?.stringValue ?? ""
                    )
                    open = item
                    openText = ""
                    out.append(emit("response.output_item.added", ["output_index": outputIndex, "item": item.json(status: "in_progress", text: "")]))
                }
                if let arguments = call["function"]?["arguments"]?.stringValue, !arguments.isEmpty, case .function(let itemID, _, _, _) = open {
                    openText += arguments
                    out.append(
                        emit(
                            "response.function_call_arguments.delta",
                            ["item_id": .string(itemID), "output_index": outputIndex, "delta": .string(arguments)]))
                }
            }
            if let reason = choice["finish_reason"]?.stringValue { finishReason = reason }
        }
        return out
    }

    /// A plain text or reasoning delta that continues the open item is written straight:
    /// the bytes ``translate(_:)`` gives, without parsing the chunk into a tree or building
    /// the event as JSON values. Everything else takes ``translate(_:)``.
    public mutating func translate(_ event: ServerSentEvent, into buffer: inout ByteBuffer) {
        if writesDeltasStraight, started, final == nil, event.event == nil, !event.isDone, let open,
            let delta = ChatStreamDelta.read(event.data)
        {
            let text = delta.content ?? ""
            let reasoning = delta.reasoning ?? ""
            switch open {
            case .message(let itemID) where reasoning.isEmpty:
                guard !text.isEmpty else { return }
                openText += text
                writeDelta("response.output_text.delta", itemID: itemID, text: text, logprobs: true, into: &buffer)
                return
            case .reasoning(let itemID) where text.isEmpty:
                guard !reasoning.isEmpty else { return }
                openText += reasoning
                writeDelta("response.reasoning_text.delta", itemID: itemID, text: reasoning, logprobs: false, into: &buffer)
                return
            default:
                break
            }
        }
        for translated in translate(event) { translated.write(to: &buffer) }
    }

    /// The event `emit` builds for a delta, written as the same bytes.
    private mutating func writeDelta(_ type: StaticString, itemID: String, text: String, logprobs: Bool, into buffer: inout ByteBuffer) {
        buffer.writeStaticString("event: ")
        buffer.writeStaticString(type)
        buffer.writeStaticString("\ndata: {\"item_id\":")
        JSONValue.writeString(itemID, to: &buffer)
        buffer.writeStaticString(",\"output_index\":")
        buffer.writeString(String(output.count))
        buffer.writeStaticString(",\"content_index\":0,\"delta\":")
        JSONValue.writeString(text, to: &buffer)
        if logprobs { buffer.writeStaticString(",\"logprobs\":[]") }
        buffer.writeStaticString(",\"type\":\"")
        buffer.writeStaticString(type)
        buffer.writeStaticString("\",\"sequence_number\":")
        buffer.writeString(String(sequence))
        buffer.writeStaticString("}\n\n")
        sequence += 1
    }

    var outputIndex: JSONValue { .integer(Int64(output.count)) }

    private mutating func emit(_ type: String, _ members: JSONObject) -> ServerSentEvent {
        var members = members
        members["type"] = .string(type)
        members["sequence_number"] = .integer(sequence)
        sequence += 1
        return DialectJSON.event(type, .object(members))
    }

    private mutating func snapshot(status: String, error: JSONValue? = nil, incomplete: String? = nil) -> JSONValue {
        ResponsesDialect.responseObject(
            id: id, createdAt: createdAt, translation: translation, status: status, output: output, usage: usage, error: error,
            incompleteReason: incomplete, lisa: lisa
        )
    }

    private mutating func start() -> [ServerSentEvent] {
        guard !started else { return [] }
        started = true
        let response = snapshot(status: "in_progress")
        return [emit("response.created", ["response": response]), emit("response.in_progress", ["response": response])]
    }

    private mutating func appendText(_ text: String) -> [ServerSentEvent] {
        var out: [ServerSentEvent] = []
        let itemID: String
        if case .message(let id) = open {
            itemID = id
            openText += text
        } else {
            out += closeOpen()
            itemID = DialectJSON.id("msg_")
            open = .message(id: itemID)
            openText = text
            out.append(
                emit(
                    "response.output_item.added",
                    ["output_index": outputIndex, "item": ResponsesDialect.messageItem(id: itemID, status: "in_progress", content: [])]))
            out.append(
                emit(
                    "response.content_part.added",
                    ["item_id": .string(itemID), "output_index": outputIndex, "content_index": 0, "part": ResponsesDialect.outputText("")])
            )
        }
        out.append(
            emit(
                "response.output_text.delta",
                ["item_id": .string(itemID), "output_index": outputIndex, "content_index": 0, "delta": .string(text), "logprobs": []])
        )
        return out
    }

    private mutating func appendReasoning(_ text: String) -> [ServerSentEvent] {
        var out: [ServerSentEvent] = []
        let itemID: String
        if case .reasoning(let id) = open {
            itemID = id
            openText += text
        } else {
            out += closeOpen()
            itemID = DialectJSON.id("rs_")
            open = .reasoning(id: itemID)
            openText = text
            out.append(
                emit(
                    "response.output_item.added",
                    ["output_index": outputIndex, "item": ["type": "reasoning", "id": .string(itemID), "summary": [], "content": []]]))
        }
        out.append(
            emit(
                "response.reasoning_text.delta",
                ["item_id": .string(itemID), "output_index": outputIndex, "content_index": 0, "delta": .string(text)]))
        return out
    }

    private mutating func closeOpen() -> [ServerSentEvent] {
        guard let open else { return [] }
        self.open = nil
        let text = openText
        openText = ""
        var out: [ServerSentEvent] = []
        switch open {
        case .message(let itemID):
            out.append(
                emit(
                    "response.output_text.done",
                    ["item_id": .string(itemID), "output_index": outputIndex, "content_index": 0, "text": .string(text), "logprobs": []]))
            out.append(
                emit(
                    "response.content_part.done",
                    ["item_id": .string(itemID), "output_index": outputIndex, "content_index": 0, "part": ResponsesDialect.outputText(text)])
            )
        case .reasoning(let itemID):
            out.append(
                emit(
                    "response.reasoning_text.done",
                    ["item_id": .string(itemID), "output_index": outputIndex, "content_index": 0, "text": .string(text)]))
        case .function(let itemID, let index, _, let name):
            closedTools.insert(index)
            out.append(
                emit(
                    "response.function_call_arguments.done",
                    ["item_id": .string(itemID), "output_index": outputIndex, "name": .string(name), "arguments": .string(text)])
            )
        }
        let item = open.json(status: "completed", text: text)
        out.append(emit("response.output_item.done", ["output_index": outputIndex, "item": item]))
        output.append(item)
        return out
    }

    private mutating func complete() -> [ServerSentEvent] {
        var out = closeOpen()
        if output.isEmpty {
            // An answer with no text and no call is still a message, as the buffered path gives.
            output.append(ResponsesDialect.messageItem(id: DialectJSON.id("msg_"), status: "completed", content: [ResponsesDialect.outputText("")]))
        }
        let (status, incomplete) = ResponsesDialect.status(finish: finishReason)
        let response = snapshot(status: status, incomplete: incomplete)
        final = response
        out.append(emit(status == "completed" ? "response.completed" : "response.incomplete", ["response": response]))
        return out
    }

    private mutating func fail(message: String, code: String?) -> [ServerSentEvent] {
        var out = start()
        let error: JSONValue = ["code": .string(code == "upstream_timeout" ? "timeout" : "server_error"), "message": .string(message)]
        let response = snapshot(status: "failed", error: error)
        final = response
        out.append(emit("response.failed", ["response": response]))
        return out
    }
}

extension ResponsesStreamTranslator.Open {
    /// The item, with `text` (the text or arguments so far) where a completed item carries it.
    func json(status: String, text: String) -> JSONValue {
        switch self {
        case .message(let id):
            ResponsesDialect.messageItem(id: id, status: status, content: status == "completed" ? [ResponsesDialect.outputText(text)] : [])
        case .reasoning(let id):
            [
                "type": "reasoning", "id": .string(id), "summary": [],
                "content": status == "completed" ? [["type": "reasoning_text", "text": .string(text)]] : [],
            ]
        case .function(let id, _, let callID, let name):
            ResponsesDialect.functionCallItem(id: id, callID: callID, name: name, arguments: status == "completed" ? text : "", status: status)
        }
    }
}
