#!/usr/bin/env python3
"""Writes LISA's OpenAPI 3.1 document, Sources/LISAWebUI/Assets/openapi.json (served at
/openapi.json). Edit this file, run it, commit both; a test checks the server serves the
committed document, and schemathesis checks the server against it.

Operations an administrator alone may call carry `x-lisa-admin-only: true`.
"""
import json
import pathlib

OUT = pathlib.Path(__file__).resolve().parents[1] / "Sources" / "LISAWebUI" / "Assets" / "openapi.json"


def ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def json_body(schema, required=True):
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def ok(schema, status="200", description="OK", extra=None):
    content = {"application/json": {"schema": schema}}
    content.update(extra or {})
    return {status: {"description": description, "content": content}}


ERRORS = {"default": {"description": "An error in OpenAI's shape.", "content": {"application/json": {"schema": ref("Error")}}}}

ID = {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[A-Za-z0-9._:-]+$"}


def path_param(name, schema=None):
    return {"name": name, "in": "path", "required": True, "schema": schema or ID}


def query(name, schema, required=False):
    return {"name": name, "in": "query", "required": required, "schema": schema}


def op(summary, responses, *, body=None, params=(), admin=False, tags=(), operation_id=None, errors=None):
    operation = {"summary": summary, "operationId": operation_id, "tags": list(tags), "responses": {**responses, **(errors or ERRORS)}}
    if body is not None:
        operation["requestBody"] = body
    if params:
        operation["parameters"] = list(params)
    if admin:
        operation["x-lisa-admin-only"] = True
    return operation


OBJECT = {"type": "object"}
STRING_OR_NULL = {"type": ["string", "null"]}

ANTHROPIC_ERRORS = {"default": {"description": "An error in Anthropic's shape.",
                                 "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AnthropicError"}}}}}
ANTHROPIC_MESSAGE = {"type": "object", "required": ["role", "content"],
                     "properties": {"role": {"type": "string", "enum": ["user", "assistant"]},
                                    "content": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]}}}

schemas = {
    "AnthropicError": {
        "type": "object", "required": ["type", "error"],
        "properties": {"type": {"const": "error"}, "error": {
            "type": "object", "required": ["type", "message"],
            "properties": {"type": {"type": "string"}, "message": {"type": "string"}}}},
    },
    "AnthropicMessagesRequest": {
        "type": "object", "required": ["model", "max_tokens", "messages"],
        "properties": {"model": {"type": "string"}, "max_tokens": {"type": "integer", "minimum": 1},
                       "system": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]},
                       "messages": {"type": "array", "minItems": 1, "items": ANTHROPIC_MESSAGE},
                       "stream": {"type": "boolean"}, "temperature": {"type": "number"}, "top_p": {"type": "number"},
                       "stop_sequences": {"type": "array", "items": {"type": "string"}},
                       "tools": {"type": "array", "items": {"type": "object"}}, "tool_choice": {"type": "object"},
                       "metadata": {"type": "object"}},
    },
    "AnthropicCountTokensRequest": {
        "type": "object", "required": ["model", "messages"],
        "properties": {"model": {"type": "string"}, "messages": {"type": "array", "minItems": 1, "items": ANTHROPIC_MESSAGE}},
    },
    "AnthropicMessage": {
        "type": "object", "required": ["id", "type", "role", "model", "content", "stop_reason", "usage"],
        "properties": {"id": {"type": "string"}, "type": {"const": "message"}, "role": {"const": "assistant"},
                       "model": {"type": "string"}, "content": {"type": "array", "items": {"type": "object"}},
                       "stop_reason": {"type": "string", "enum": ["end_turn", "max_tokens", "stop_sequence", "tool_use", "refusal"]},
                       "stop_sequence": STRING_OR_NULL, "usage": {"type": "object"}},
    },
    "ResponsesRequest": {
        "type": "object", "required": ["model", "input"],
        "properties": {"model": {"type": "string"},
                       "input": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]},
                       "instructions": {"type": "string"}, "stream": {"type": "boolean"}, "store": {"type": "boolean"},
                       "previous_response_id": {"type": "string"}, "max_output_tokens": {"type": "integer", "minimum": 1},
                       "tools": {"type": "array", "items": {"type": "object"}}, "metadata": {"type": "object"}},
    },
    "Response": {
        "type": "object", "required": ["id", "object", "created_at", "status", "model", "output"],
        "properties": {"id": {"type": "string"}, "object": {"const": "response"}, "created_at": {"type": "integer"},
                       "status": {"type": "string", "enum": ["completed", "incomplete", "failed", "in_progress"]},
                       "model": {"type": "string"}, "output": {"type": "array", "items": {"type": "object"}}},
    },
    "ResponseInputItems": {
        "type": "object", "required": ["object", "data", "has_more"],
        "properties": {"object": {"const": "list"}, "data": {"type": "array", "items": {"type": "object"}},
                       "first_id": STRING_OR_NULL, "last_id": STRING_OR_NULL, "has_more": {"type": "boolean"}},
    },
    "Error": {
        "type": "object", "required": ["error"],
        "properties": {"error": {
            "type": "object", "required": ["message", "type"],
            "properties": {"message": {"type": "string"}, "type": {"type": "string"},
                           "param": STRING_OR_NULL, "code": STRING_OR_NULL},
        }},
    },
    "Status": {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}},
    "ModelTest": {"type": "object", "required": ["modelId", "ok", "latencyMilliseconds", "request"],
                  "properties": {"modelId": {"type": "string"}, "ok": {"type": "boolean"}, "latencyMilliseconds": {"type": "number"},
                                 "request": {"type": "string", "enum": ["chat", "embeddings"]}, "error": {"type": "string"},
                                 "code": {"type": ["string", "null"]}}},
    "Readiness": {"type": "object", "required": ["status", "stateStore", "leader", "models"],
                  "properties": {"status": {"type": "string", "enum": ["OK", "unavailable"]}, "stateStore": {"type": "string"},
                                 "leader": {"type": "boolean"}, "models": {"type": "integer", "minimum": 0},
                                 "missingTools": {"type": "object", "additionalProperties": {"type": "string"},
                                                  "description": "Tools an optional feature needs and this server lacks "
                                                                 "(pdftotext: PDF uploads are refused)."}}},
    "ChatMessage": {
        "type": "object", "required": ["role"],
        "properties": {"role": {"type": "string", "enum": ["system", "developer", "user", "assistant", "tool"]},
                       "content": {"type": ["string", "array", "null"]}, "name": {"type": "string"}},
    },
    "ChatCompletionRequest": {
        "type": "object", "required": ["model", "messages"],
        "properties": {
            "model": {"type": "string", "examples": ["chat-small"]},
            "messages": {"type": "array", "minItems": 1, "items": ref("ChatMessage")},
            "stream": {"type": "boolean"}, "temperature": {"type": "number", "minimum": 0, "maximum": 2},
            "max_tokens": {"type": "integer", "minimum": 1}, "user": {"type": "string"},
            "lisa": {"type": "object", "description": "LISA's extension: {\"rag\": {\"repositoryId\", \"collectionId\", \"topK\"}}."},
        },
    },
    "ChatCompletion": {
        "type": "object", "required": ["id", "object", "choices"],
        "properties": {"id": {"type": "string"}, "object": {"type": "string"}, "model": {"type": "string"},
                       "choices": {"type": "array"}, "usage": OBJECT, "lisa": OBJECT},
    },
    "CompletionRequest": {
        "type": "object", "required": ["model", "prompt"],
        "properties": {"model": {"type": "string", "examples": ["chat-small"]}, "prompt": {"type": ["string", "array"]},
                       "stream": {"type": "boolean"}, "max_tokens": {"type": "integer", "minimum": 1}},
    },
    "EmbeddingRequest": {
        "type": "object", "required": ["model", "input"],
        "properties": {"model": {"type": "string", "examples": ["embedder"]}, "input": {"type": ["string", "array"]},
                       "encoding_format": {"type": "string", "enum": ["float", "base64"]}},
    },
    "EmbeddingResponse": {"type": "object", "required": ["data"], "properties": {"object": {"type": "string"}, "data": {"type": "array"}}},
    "ModelList": {"type": "object", "required": ["object", "data"],
                  "properties": {"object": {"const": "list"}, "data": {"type": "array", "items": ref("Model")}}},
    "Model": {"type": "object", "required": ["id", "object", "created", "owned_by"],
              "properties": {"id": {"type": "string"}, "object": {"const": "model"}, "created": {"type": "integer"},
                             "owned_by": {"type": "string"},
                             "lisa": {"type": "object", "properties": {
                                 "modelType": {"type": "string"}, "streaming": {"type": "boolean"},
                                 "health": {"type": "string", "enum": ["healthy", "unknown", "degraded", "down", "none"]}}}}},
    "ModelDefinition": {
        "type": "object", "required": ["modelId", "modelName"],
        "properties": {
            "modelId": ID, "modelName": {"type": "string", "minLength": 1},
            "modelType": {"type": "string", "enum": ["textgen", "embedding", "imagegen", "transcription", "speech", "moderation", "rerank"]},
            "inferenceContainer": {"type": "string", "enum": ["openai", "vllm", "tgi", "tei", "ollama", "llamacpp"]},
            "upstreamAPI": {"type": "string", "enum": ["openai", "anthropic", "openai-responses"]},
            "modelUrl": {"type": "string", "format": "uri"}, "streaming": {"type": "boolean"},
            "allowedGroups": {"type": "array", "items": {"type": "string"}},
            "pricing": {"type": "object", "properties": {"inputPerMillionTokens": {"type": "number", "minimum": 0},
                                                         "outputPerMillionTokens": {"type": "number", "minimum": 0},
                                                         "replicaHourly": {"type": "number", "minimum": 0}}},
        },
    },
    "ModelRecord": {"type": "object", "required": ["modelId"],
                    "properties": {"modelId": {"type": "string"}, "status": {"type": "string"},
                                   "health": {"type": "string", "enum": ["healthy", "unknown", "degraded", "down", "none"]},
                                   "fallbacks": {"type": "array", "items": {"type": "string"}},
                                   "endpointStatus": {"type": "array", "items": {"type": "object", "properties": {
                                       "healthy": {"type": "boolean"},
                                       "health": {"type": "string", "enum": ["unknown", "healthy", "unhealthy"]}}}}}},
    "ModelsEnvelope": {"type": "object", "required": ["models"], "properties": {"models": {"type": "array", "items": ref("ModelRecord")}}},
    "DeletedModel": {"type": "object", "required": ["modelId", "deleted", "status"],
                     "properties": {"modelId": {"type": "string"}, "deleted": {"type": "boolean"}, "status": {"type": "string"}}},
    "CallerIdentity": {
        "type": "object", "required": ["username", "groups", "method", "isAdmin"],
        "properties": {"username": {"type": "string"}, "groups": {"type": "array", "items": {"type": "string"}},
                       "method": {"type": "string"}, "isAdmin": {"type": "boolean"}, "isRagAdmin": {"type": "boolean"},
                       "mayCallInference": {"type": "boolean"}, "mayCreateTokens": {"type": "boolean"}},
    },
    "TokenCreate": {
        "type": "object", "required": ["name"],
        "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 128},
                       "groups": {"type": "array", "items": {"type": "string"}},
                       "expiresInDays": {"type": "integer", "minimum": 1, "maximum": 3650},
                       "isSystemToken": {"type": "boolean"}, "noExpiry": {"type": "boolean"},
                       "rateLimit": {"type": "object", "required": ["requestsPerMinute", "burst"],
                                     "properties": {"requestsPerMinute": {"type": "number"}, "burst": {"type": "integer"}}},
                       "budget": ref("BudgetLimit")},
    },
    "BudgetLimit": {"type": "object", "required": ["period"],
                    "properties": {"period": {"type": "string", "enum": ["day", "month"]}, "tokens": {"type": "integer", "minimum": 0},
                                   "cost": {"type": "number", "minimum": 0}}},
    "UsageRow": {"type": "object", "required": ["requests", "errors", "inputTokens", "outputTokens", "estimatedRequests", "cost", "hostedCost"],
                 "properties": {"start": {"type": "number", "description": "Unix seconds"}, "user": {"type": "string"},
                                "model": {"type": "string"}, "group": {"type": "string"}, "tokenId": {"type": "string"},
                                "requests": {"type": "integer"}, "errors": {"type": "integer"}, "inputTokens": {"type": "integer"},
                                "outputTokens": {"type": "integer"}, "estimatedRequests": {"type": "integer"}, "cost": {"type": "number"},
                                "hostedCost": {"type": "number"}}},
    "UsageReport": {"type": "object", "required": ["object", "from", "to", "bucket", "groupBy", "data", "totals", "latency"],
                    "properties": {"object": {"const": "usage"}, "from": {"type": "number"}, "to": {"type": "number"},
                                   "bucket": {"type": "string", "enum": ["hour", "day", "month", "none"]},
                                   "groupBy": {"type": "array", "items": {"type": "string", "enum": ["user", "model", "group", "token"]}},
                                   "data": {"type": "array", "items": ref("UsageRow")}, "totals": ref("UsageRow"),
                                   "latency": {"type": "array", "items": {
                                       "type": "object", "required": ["model", "requests", "errors", "p50Ms", "p99Ms"],
                                       "properties": {"model": {"type": "string"}, "requests": {"type": "integer"},
                                                      "errors": {"type": "integer"}, "p50Ms": {"type": "number"},
                                                      "p99Ms": {"type": "number"}, "timeToFirstTokenP50Ms": {"type": "number"},
                                                      "timeToFirstTokenP99Ms": {"type": "number"}}}}}},
    "BudgetList": {"type": "object", "required": ["object", "data"],
                   "properties": {"object": {"const": "list"}, "data": {"type": "array", "items": {
                       "type": "object", "required": ["scope", "subject", "metric", "period", "limit", "spent", "reserved", "resetsAt"],
                       "properties": {"scope": {"type": "string", "enum": ["user", "group", "token"]}, "subject": {"type": "string"},
                                      "metric": {"type": "string", "enum": ["tokens", "cost"]},
                                      "period": {"type": "string", "enum": ["day", "month"]}, "limit": {"type": "number"},
                                      "spent": {"type": "number"}, "reserved": {"type": "number"},
                                      "resetsAt": {"type": "number", "description": "Unix seconds"}}}}}},
    "TokenView": {"type": "object", "required": ["id", "name", "username"],
                  "properties": {"id": {"type": "string"}, "name": {"type": "string"}, "username": {"type": "string"}}},
    "TokenCreated": {"type": "object", "required": ["token", "tokenInfo"],
                     "properties": {"token": {"type": "string"}, "tokenInfo": ref("TokenView")}},
    "TokenList": {"type": "object", "required": ["tokens"], "properties": {"tokens": {"type": "array", "items": ref("TokenView")}}},
    "Rotation": {"type": "object", "required": ["adminKey"], "properties": {"adminKey": {"type": "string"}}},
    "Repository": {
        "type": "object", "required": ["repositoryId", "embeddingModelId"],
        "properties": {"repositoryId": {"type": "string", "pattern": "^[a-z0-9_-]{1,30}$"}, "repositoryName": {"type": "string"},
                       "type": {"type": "string", "enum": ["embedded", "pgvector", "opensearch"]},
                       "embeddingModelId": {"type": "string"}, "allowedGroups": {"type": "array", "items": {"type": "string"}},
                       "chunkSize": {"type": "integer"}, "chunkOverlap": {"type": "integer"}, "opensearch": OBJECT,
                       "pgvector": {"type": "object", "required": ["url"], "properties": {"url": {"type": "string"}}}},
    },
    "RepositoryList": {"type": "array", "items": ref("Repository")},
    "Collection": {"type": "object", "required": ["collectionId"], "properties": {"collectionId": {"type": "string"}}},
    "CollectionList": {"type": "array", "items": ref("Collection")},
    "Job": {"type": "object", "required": ["jobId", "status"], "properties": {"jobId": {"type": "string"}, "status": {"type": "string"}}},
    "JobList": {"type": "array", "items": ref("Job")},
    "Document": {"type": "object", "required": ["documentId"], "properties": {"documentId": {"type": "string"}}},
    "DocumentList": {"type": "array", "items": ref("Document")},
    "Bulk": {
        "type": "object", "required": ["documents"],
        "properties": {"collectionId": {"type": "string"}, "chunkSize": {"type": "integer"}, "chunkOverlap": {"type": "integer"},
                       "documents": {"type": "array", "minItems": 1, "maxItems": 100,
                                     "items": {"type": "object", "required": ["name"],
                                               "properties": {"name": {"type": "string"}, "content": {"type": "string"},
                                                              "contentBase64": {"type": "string"}}}}},
    },
    "Session": {"type": "object", "required": ["sessionId", "history"],
                "properties": {"sessionId": {"type": "string"}, "name": STRING_OR_NULL, "history": {"type": "array"}}},
    "SessionSave": {"type": "object", "properties": {"history": {"type": "array", "items": OBJECT}, "configuration": OBJECT,
                                                       "name": {"type": "string"}}},
    "SessionList": {"type": "array", "items": {"type": "object", "required": ["sessionId"], "properties": {"sessionId": {"type": "string"}}}},
    "PromptTemplateInput": {
        "type": "object", "required": ["title", "body"],
        "properties": {"title": {"type": "string", "minLength": 1, "maxLength": 200},
                       "type": {"type": "string", "enum": ["persona", "directive"]},
                       "body": {"type": "string", "minLength": 1, "maxLength": 32000},
                       "groups": {"type": "array", "items": {"type": "string"}}},
    },
    "PromptTemplate": {"type": "object", "required": ["id", "title", "body", "owner", "revision"],
                       "properties": {"id": {"type": "string"}, "title": {"type": "string"}, "body": {"type": "string"},
                                      "owner": {"type": "string"}, "revision": {"type": "integer"}}},
}

# Each server-sent event: `data` holds one chunk's JSON (or [DONE]); `event: error` carries an
# OpenAI error envelope when the upstream breaks mid-stream.
STREAM = {"text/event-stream": {"schema": {
    "type": "object", "required": ["data"],
    "properties": {"data": {"type": "string"}, "event": {"type": "string"}, "id": {"type": "string"}, "retry": {"type": "integer"}},
}}}
REPOSITORY_ID = {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[A-Za-z0-9._:-]+$", "examples": ["docs"]}
R = "Repositories"
paths = {}
for prefix, tag in (("/v1", "OpenAI"), ("/v2/serve", "OpenAI (LISA's paths)")):
    suffix = "" if prefix == "/v1" else "LISA"
    paths[f"{prefix}/models"] = {"get": op("Models the caller may use.", ok(ref("ModelList")), tags=[tag], operation_id=f"listModels{suffix}")}
    paths[f"{prefix}/models/{{id}}"] = {"get": op(
        "One model the caller may use, as the list shows it (404 model_not_found for an unknown or hidden one).", ok(ref("Model")),
        params=[path_param("id")], tags=[tag], operation_id=f"retrieveModel{suffix}")}
    paths[f"{prefix}/chat/completions"] = {"post": op(
        "A chat completion (streamed as server-sent events with stream: true).",
        ok(ref("ChatCompletion"), extra=STREAM), body=json_body(ref("ChatCompletionRequest")), tags=[tag],
        operation_id=f"createChatCompletion{suffix}")}
    paths[f"{prefix}/completions"] = {"post": op(
        "A text completion.", ok(OBJECT, extra=STREAM), body=json_body(ref("CompletionRequest")), tags=[tag],
        operation_id=f"createCompletion{suffix}")}
    paths[f"{prefix}/embeddings"] = {"post": op(
        "Embeddings.", ok(ref("EmbeddingResponse")), body=json_body(ref("EmbeddingRequest")), tags=[tag],
        operation_id=f"createEmbedding{suffix}")}
    paths[f"{prefix}/messages"] = {"post": op(
        "Anthropic Messages (streamed as Anthropic's events with stream: true); errors in Anthropic's shape.",
        ok(ref("AnthropicMessage"), extra=STREAM), body=json_body(ref("AnthropicMessagesRequest")), tags=[tag],
        operation_id=f"createMessage{suffix}", errors=ANTHROPIC_ERRORS)}
    paths[f"{prefix}/messages/count_tokens"] = {"post": op(
        "The input tokens of a Messages request (the upstream's tokenizer where it has one, else an estimate; see Dialects.md).",
        ok({"type": "object", "required": ["input_tokens"], "properties": {"input_tokens": {"type": "integer"}}}),
        body=json_body(ref("AnthropicCountTokensRequest")), tags=[tag], operation_id=f"countMessageTokens{suffix}",
        errors=ANTHROPIC_ERRORS)}
    paths[f"{prefix}/responses"] = {"post": op(
        "An OpenAI Responses call (streamed as response.* events with stream: true).",
        ok(ref("Response"), extra=STREAM), body=json_body(ref("ResponsesRequest")), tags=[tag],
        operation_id=f"createResponse{suffix}")}
    model = {"type": "string", "minLength": 1}
    images = {"type": "object", "required": ["data"], "properties": {"created": {"type": "integer"}, "data": {"type": "array", "items": OBJECT}}}
    text_answer = {"application/json": {"schema": {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}}},
                   "text/plain": {"schema": {"type": "string"}}, "text/vtt": {"schema": {"type": "string"}},
                   "application/x-subrip": {"schema": {"type": "string"}}, "text/event-stream": {"schema": {"type": "string"}}}
    def form(required, **fields):
        properties = {"model": model, **fields}
        return {"required": True, "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": ["model", *required], "properties": properties}}}}
    paths[f"{prefix}/images/generations"] = {"post": op(
        "Images from a prompt, by a model of type imagegen.", ok(images),
        body=json_body({"type": "object", "required": ["model", "prompt"], "properties": {
            "model": {**model, "examples": ["painter"]}, "prompt": {"type": "string"}, "n": {"type": "integer", "minimum": 1, "maximum": 10},
            "size": {"type": "string"}, "response_format": {"type": "string", "enum": ["url", "b64_json"]}}}),
        tags=[tag], operation_id=f"createImage{suffix}")}
    paths[f"{prefix}/images/edits"] = {"post": op(
        "An edited image (a multipart form), by a model of type imagegen.", ok(images),
        body=form(["image", "prompt"], image={"type": "string", "contentMediaType": "application/octet-stream"}, prompt={"type": "string"}),
        tags=[tag], operation_id=f"editImage{suffix}")}
    for route, what, name in (("transcriptions", "A transcript", "Transcription"), ("translations", "An English translation", "Translation")):
        paths[f"{prefix}/audio/{route}"] = {"post": op(
            f"{what} of an audio file (a multipart form), by a model of type transcription.",
            {"200": {"description": "OK", "content": text_answer}},
            body=form(["file"], file={"type": "string", "contentMediaType": "application/octet-stream"},
                      response_format={"type": "string", "enum": ["json", "text", "srt", "verbose_json", "vtt"]}),
            tags=[tag], operation_id=f"create{name}{suffix}")}
    paths[f"{prefix}/audio/speech"] = {"post": op(
        "Speech audio, relayed as it is made, by a model of type speech.",
        {"200": {"description": "Audio", "content": {"audio/*": {"schema": {"type": "string"}}, "application/octet-stream": {"schema": {"type": "string"}}}}},
        body=json_body({"type": "object", "required": ["model", "input", "voice"], "properties": {
            "model": {**model, "examples": ["voice"]}, "input": {"type": "string"}, "voice": {"type": "string"},
            "response_format": {"type": "string"}}}),
        tags=[tag], operation_id=f"createSpeech{suffix}")}
    paths[f"{prefix}/moderations"] = {"post": op(
        "Moderation results, by a model of type moderation.",
        ok({"type": "object", "required": ["results"], "properties": {"results": {"type": "array", "items": OBJECT}}}),
        body=json_body({"type": "object", "required": ["model", "input"], "properties": {
            "model": {**model, "examples": ["moderator"]}, "input": {"type": ["string", "array"]}}}),
        tags=[tag], operation_id=f"createModeration{suffix}")}
    paths[f"{prefix}/rerank"] = {"post": op(
        "Documents ranked by relevance to a query (vLLM's and Cohere's shape; TEI is translated), by a model of type rerank.",
        ok({"type": "object", "required": ["results"], "properties": {"results": {"type": "array", "items": OBJECT}}}),
        body=json_body({"type": "object", "required": ["model", "query", "documents"], "properties": {
            "model": {**model, "examples": ["ranker"]}, "query": {"type": "string"},
            "documents": {"type": "array", "minItems": 1, "items": {"type": ["string", "object"]}},
            "top_n": {"type": "integer", "minimum": 1}, "return_documents": {"type": "boolean"}}}),
        tags=[tag], operation_id=f"rerank{suffix}")}
    response_id = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9_-]+$"}
    paths[f"{prefix}/responses/{{id}}"] = {
        "parameters": [path_param("id", response_id)],
        "get": op("A stored response of the caller.", ok(ref("Response")), tags=[tag], operation_id=f"getResponse{suffix}"),
        "delete": op("Deletes a stored response of the caller.", ok(OBJECT), tags=[tag], operation_id=f"deleteResponse{suffix}"),
    }
    paths[f"{prefix}/responses/{{id}}/input_items"] = {"parameters": [path_param("id", response_id)], "get": op(
        "The input items of a stored response.", ok(ref("ResponseInputItems")),
        params=[query("limit", {"type": "integer", "minimum": 1, "maximum": 100}), query("order", {"type": "string", "enum": ["asc", "desc"]}),
                query("after", {"type": "string"})],
        tags=[tag], operation_id=f"listResponseInputItems{suffix}")}

paths.update({
    "/health": {"get": {"summary": "Liveness (no credentials).", "operationId": "health", "security": [],
                        "tags": ["Health"], "responses": ok(ref("Status"))}},
    "/health/readiness": {"get": {"summary": "Readiness: 503 while the state store cannot be read.", "operationId": "readiness",
                                  "security": [], "tags": ["Health"],
                                  "responses": {**ok(ref("Readiness")), **ok(ref("Readiness"), "503", "Not ready")}}},
    "/health/liveliness": {"get": {"summary": "Liveness (LISA's path).", "operationId": "liveliness", "security": [], "tags": ["Health"],
                                   "responses": ok(ref("Status"))}},
    "/openapi.json": {"get": {"summary": "This document (no credentials).", "operationId": "openapi", "security": [], "tags": ["Health"],
                              "responses": ok(OBJECT)}},
    "/whoami": {"get": op("Who the caller is and what they may do.", ok(ref("CallerIdentity")), tags=["Access"], operation_id="whoami")},
    "/api-tokens": {
        "get": op("Tokens the caller may see (administrators: all).", ok(ref("TokenList")), tags=["Access"], operation_id="listTokens"),
        "post": op("A token for the caller (administrators and apiGroup members).", ok(ref("TokenCreated"), "201", "Created"),
                   body=json_body(ref("TokenCreate")), tags=["Access"], operation_id="createOwnToken"),
    },
    "/api-tokens/{id}": {
        "parameters": [path_param("id")],
        "get": op("One token (404 for others' tokens).", ok(ref("TokenView")), tags=["Access"], operation_id="getToken"),
        "delete": op("Revokes a token.", ok(OBJECT), tags=["Access"], operation_id="revokeToken"),
        "post": op("A token for the user `id` (administrators).", ok(ref("TokenCreated"), "201", "Created"),
                   body=json_body(ref("TokenCreate")), admin=True, tags=["Access"], operation_id="createTokenFor"),
    },
    "/usage": {"get": op(
        "Requests, tokens, cost and latency per time bucket and group (administrators: everyone's; others: their own).",
        ok(ref("UsageReport")),
        params=[query("from", {"type": "string", "description": "Unix seconds or ISO 8601; default 24 hours before to"}),
                query("to", {"type": "string", "description": "Unix seconds or ISO 8601; default now"}),
                query("bucket", {"type": "string", "enum": ["hour", "day", "month", "none"]}),
                query("groupBy", {"type": "string", "description": "Comma-separated: user, model, group, token"}),
                query("user", {"type": "string"}), query("model", {"type": "string"})],
        tags=["Operations"], operation_id="usage")},
    "/budgets": {"get": op(
        "Where the caller's budgets stand (administrators: a user's, with user, groups and tokenId).", ok(ref("BudgetList")),
        params=[query("user", {"type": "string"}), query("groups", {"type": "string", "description": "Comma-separated"}),
                query("tokenId", {"type": "string"})],
        tags=["Operations"], operation_id="budgets")},
    "/admin/rotate-key": {"post": op(
        "A new admin key; the previous one works for the grace period.", ok(ref("Rotation")),
        body=json_body({"type": "object", "properties": {"gracePeriodSeconds": {"type": "number", "minimum": 1, "maximum": 2592000}}},
                       required=False),
        admin=True, tags=["Access"], operation_id="rotateAdminKey")},
    "/admin/backup": {"post": op(
        "An online backup of the embedded state (SQLite state, embedded vectors, waiting uploads) as one tar archive whose first "
        "entry, manifest.json, lists each file's size and SHA-256; 409 state_in_postgresql when the state is in PostgreSQL (use "
        "pg_dump), 409 backup_in_progress while another runs.",
        {"200": {"description": "The archive", "content": {"application/x-tar": {"schema": {"type": "string", "format": "binary"}}}}},
        body=json_body(OBJECT, required=False), admin=True, tags=["Operations"], operation_id="backup")},
    "/metrics": {"get": op("Prometheus metrics.", {"200": {"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}}},
                           admin=True, tags=["Operations"], operation_id="metrics")},
    "/models": {
        "get": op("Every model with its status and health (administrators); the models the caller may use, without endpoints or "
                  "launch specs (anyone else who may call inference).", ok(ref("ModelsEnvelope")), tags=["Models"],
                  operation_id="listModelRecords"),
        "post": op("Creates a model.", ok(ref("ModelRecord"), "201", "Created"), body=json_body(ref("ModelDefinition")), admin=True, tags=["Models"],
                   operation_id="createModel"),
    },
    "/models/{modelId}": {
        "parameters": [path_param("modelId")],
        "get": op("One model.", ok(ref("ModelRecord")), admin=True, tags=["Models"], operation_id="getModel"),
        "put": op("Changes a model (JSON merge patch).", ok(ref("ModelRecord")), body=json_body(OBJECT), admin=True, tags=["Models"],
                  operation_id="updateModel"),
        "delete": op("Deletes a model.", ok(ref("DeletedModel")), admin=True, tags=["Models"], operation_id="deleteModel"),
    },
    "/models/{modelId}/test": {"parameters": [path_param("modelId")], "get": op(
        "Sends the model the smallest real request (one chat token, or one embedding) and reports the latency or the error.",
        ok(ref("ModelTest")), admin=True, tags=["Models"], operation_id="testModel")},
    "/models/{modelId}/logs": {"parameters": [path_param("modelId")], "get": op(
        "The last lines of a hosted model's replica logs.",
        {"200": {"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}}},
        params=[query("tail", {"type": "integer", "minimum": 1, "maximum": 10000})], admin=True, tags=["Models"],
        operation_id="modelLogs")},
    "/repository": {
        "get": op("Repositories the caller may use.", ok(ref("RepositoryList")), tags=[R], operation_id="listRepositories"),
        "post": op("Creates a repository (administrators).", ok(ref("Repository"), "201", "Created"), body=json_body(ref("Repository")),
                   admin=True, tags=[R], operation_id="createRepository"),
    },
    "/repository/{id}": {
        "parameters": [path_param("id", REPOSITORY_ID)],
        "get": op("One repository.", ok(ref("Repository")), tags=[R], operation_id="getRepository"),
        "put": op("Changes a repository (RAG administrators; its connection: administrators).", ok(ref("Repository")),
                  body=json_body(OBJECT), tags=[R], operation_id="updateRepository"),
        "delete": op("Deletes a repository and its vectors (administrators).", ok(OBJECT), admin=True, tags=[R],
                     operation_id="deleteRepository"),
    },
    "/repository/{id}/collection": {
        "parameters": [path_param("id", REPOSITORY_ID)],
        "get": op("Collections of a repository.", ok(ref("CollectionList")), tags=[R], operation_id="listCollections"),
        "post": op("Creates a collection (RAG administrators).", ok(ref("Collection"), "201", "Created"),
                   body=json_body(ref("Collection")), tags=[R], operation_id="createCollection"),
    },
    "/repository/{id}/upload": {"parameters": [path_param("id", REPOSITORY_ID)], "post": op(
        "Queues a document for ingestion.", ok(ref("Job"), "202", "Accepted"),
        body={"required": True, "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": ["file"],
            "properties": {"file": {"type": "string", "contentMediaType": "application/octet-stream"},
                           "collectionId": {"type": "string"}, "chunkSize": {"type": "string"}, "chunkOverlap": {"type": "string"},
                           "chunkingStrategy": {"type": "string", "enum": ["recursive", "none"]}}}}}},
        tags=[R], operation_id="uploadDocument")},
    "/repository/{id}/bulk": {"parameters": [path_param("id", REPOSITORY_ID)], "post": op(
        "Queues up to 100 documents given inline.", ok({"type": "object", "required": ["jobs"], "properties": {"jobs": ref("JobList")}},
                                                      "202", "Accepted"),
        body=json_body(ref("Bulk")), tags=[R], operation_id="bulkIngest")},
    "/repository/{id}/document": {
        "parameters": [path_param("id", REPOSITORY_ID)],
        "get": op("Documents of a repository.", ok(ref("DocumentList")), params=[query("collectionId", {"type": "string"})], tags=[R],
                  operation_id="listDocuments"),
        "delete": op("Deletes a document (its owner or a RAG administrator).", ok(ref("Document")),
                     params=[query("documentId", {"type": "string"}, required=True)], tags=[R], operation_id="deleteDocumentByQuery"),
    },
    "/repository/{id}/document/{documentId}": {
        "parameters": [path_param("id", REPOSITORY_ID), path_param("documentId")],
        "delete": op("Deletes a document (its owner or a RAG administrator).", ok(ref("Document")), tags=[R], operation_id="deleteDocument"),
    },
    "/repository/{id}/jobs": {"parameters": [path_param("id", REPOSITORY_ID)],
                              "get": op("Ingestion jobs.", ok(ref("JobList")), tags=[R], operation_id="listJobs")},
    "/repository/{id}/jobs/{jobId}": {"parameters": [path_param("id", REPOSITORY_ID), path_param("jobId")],
                                      "get": op("One ingestion job.", ok(ref("Job")), tags=[R], operation_id="getJob")},
    "/repository/{id}/similaritySearch": {"parameters": [path_param("id", REPOSITORY_ID)], "get": op(
        "The chunks closest to a query.", ok({"type": "object", "required": ["docs"], "properties": {"docs": {"type": "array"}}}),
        params=[query("query", {"type": "string", "minLength": 1}, required=True), query("topK", {"type": "integer", "minimum": 1, "maximum": 100}),
                query("collectionId", {"type": "string"}), query("hybrid", {"type": "string", "enum": ["true", "false"]})],
        tags=[R], operation_id="similaritySearch")},
    "/session": {
        "get": op("The caller's sessions.", ok(ref("SessionList")), tags=["Sessions"], operation_id="listSessions"),
        "delete": op("Deletes all of the caller's sessions.", ok(OBJECT), tags=["Sessions"], operation_id="deleteSessions"),
    },
    "/session/{id}": {
        "parameters": [path_param("id")],
        "get": op("One of the caller's sessions.", ok(ref("Session")), tags=["Sessions"], operation_id="getSession"),
        "put": op("Creates or replaces a session.", ok(ref("Session")), body=json_body(ref("SessionSave")), tags=["Sessions"],
                  operation_id="saveSession"),
        "delete": op("Deletes a session.", ok(OBJECT), tags=["Sessions"], operation_id="deleteSession"),
    },
    "/session/{id}/name": {"parameters": [path_param("id")], "put": op(
        "Renames a session.", ok(ref("Session")),
        body=json_body({"type": "object", "required": ["name"], "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 200}}}),
        tags=["Sessions"], operation_id="renameSession")},
    "/prompt-templates": {
        "get": op("Templates the caller may use.", ok({"type": "object", "required": ["Items"],
                                                      "properties": {"Items": {"type": "array", "items": ref("PromptTemplate")}}}),
                  tags=["Prompt templates"], operation_id="listTemplates"),
        "post": op("Creates a template.", ok(ref("PromptTemplate"), "201", "Created"), body=json_body(ref("PromptTemplateInput")),
                   tags=["Prompt templates"], operation_id="createTemplate"),
    },
    "/prompt-templates/{id}": {
        "parameters": [path_param("id")],
        "get": op("One template.", ok(ref("PromptTemplate")), tags=["Prompt templates"], operation_id="getTemplate"),
        "put": op("A new revision (owner or administrator).", ok(ref("PromptTemplate")), body=json_body(ref("PromptTemplateInput")),
                  tags=["Prompt templates"], operation_id="updateTemplate"),
        "delete": op("Deletes a template (owner or administrator).", ok(OBJECT), tags=["Prompt templates"], operation_id="deleteTemplate"),
    },
    "/prompt-templates/{id}/revisions": {"parameters": [path_param("id")], "get": op(
        "Earlier revisions the caller could read.", ok({"type": "array", "items": ref("PromptTemplate")}), tags=["Prompt templates"],
        operation_id="templateRevisions")},
})

document = {
    "openapi": "3.1.0",
    "info": {
        "title": "LISA", "version": "1",
        "description": "LISA's HTTP API: the OpenAI routes' envelopes, models, RAG repositories, sessions, prompt templates and "
                       "API tokens. Every error is OpenAI-shaped. Operations marked x-lisa-admin-only answer 403 to everyone but "
                       "administrators.",
    },
    "servers": [{"url": "/"}],
    "security": [{"bearer": []}],
    "paths": paths,
    "components": {"schemas": schemas,
                   "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                                  "description": "The admin key, an API token or an OIDC ID token."}}},
}

if __name__ == "__main__":
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
    print(f"wrote {OUT.relative_to(OUT.parents[3])}: {sum(len([m for m in p if m != 'parameters']) for p in paths.values())} operations")
