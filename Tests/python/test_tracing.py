"""OpenTelemetry traces, as an operator running a collector sees them: LISAServe exports
OTLP/HTTP (JSON) to a local receiver; the official openai and anthropic SDKs call it with a
W3C traceparent; a model server written here records the headers LISA sends upstream."""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import anthropic
import pytest
from openai import OpenAI

from conftest import ADMIN_KEY, Lisa, free_port

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


class Receiver:
    """An OTLP/HTTP collector: keeps every span posted to /v1/traces (JSON encoding)."""

    def __init__(self):
        self.requests = []  # (headers, document)
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.requests.append((dict(self.headers), json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def spans(self):
        with self.lock:
            documents = [document for _, document in self.requests]
        result = []
        for document in documents:
            for resource in document["resourceSpans"]:
                service = {a["key"]: a["value"] for a in resource["resource"]["attributes"]}["service.name"]["stringValue"]
                for scope in resource["scopeSpans"]:
                    for span in scope["spans"]:
                        span["attrs"] = {a["key"]: next(iter(a["value"].values())) for a in span.get("attributes", [])}
                        span["service"] = service
                        result.append(span)
        return result

    def wait_for(self, predicate, timeout=15):
        deadline = time.monotonic() + timeout
        while True:
            spans = self.spans()
            if predicate(spans) or time.monotonic() > deadline:
                return spans
            time.sleep(0.05)

    def close(self):
        self.server.shutdown()


class ModelServer:
    """An OpenAI-compatible chat server that records the headers of each call."""

    def __init__(self):
        self.headers = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def do_POST(self):
                request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                server.headers.append({k.lower(): v for k, v in self.headers.items()})
                usage = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
                if request.get("stream"):
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for piece in ["one", " two", " three"]:
                        self.chunk({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": request["model"],
                                    "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
                    self.chunk({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": request["model"],
                                "choices": [], "usage": usage})
                    self.write_chunk(b"data: [DONE]\n\n")
                    self.write_chunk(b"")
                    return
                body = json.dumps({
                    "id": "c1", "object": "chat.completion", "created": 1, "model": request["model"],
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "answer-text-42"}, "finish_reason": "stop"}],
                    "usage": usage,
                }).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def chunk(self, value):
                self.write_chunk(f"data: {json.dumps(value)}\n\n".encode())

            def write_chunk(self, data):
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def model_server():
    server = ModelServer()
    yield server
    server.close()


def models_config(model_server, dead_port=None):
    endpoints = f"      - url: {model_server.url}\n"
    if dead_port:
        endpoints = f"      - url: http://127.0.0.1:{dead_port}/v1\n" + endpoints
    return f"""
  - modelId: traced
    modelName: traced-upstream-name
    modelType: textgen
    inferenceContainer: vllm
    loadBalancing: roundRobin
    healthCheck: {{enabled: false}}
    endpoints:
{endpoints}"""


def by_id(spans):
    return {span["spanId"]: span for span in spans}


def test_a_call_is_one_trace_from_the_client_through_lisa_to_the_model_server(upstream, tmp_path, receiver, model_server):
    config = f"tracing:\n  endpoint: {receiver.url}\n  exportIntervalSeconds: 0.2\n  serviceName: lisa-under-test\n"
    lisa = Lisa(upstream, tmp_path / "data", extra_config=models_config(model_server) + config)
    try:
        client = OpenAI(base_url=lisa.url + "/v1", api_key=ADMIN_KEY, max_retries=0)
        traceparent = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
        answer = client.chat.completions.create(
            model="traced", messages=[{"role": "user", "content": "prompt-text-17"}], max_tokens=50, temperature=0.5,
            extra_headers={"traceparent": traceparent, "tracestate": "vendor=abc"})
        assert answer.choices[0].message.content == "answer-text-42"

        spans = receiver.wait_for(lambda spans: any(s["name"] == "POST /v1/chat/completions" for s in spans)
                                  and any(s["name"] == "chat traced" for s in spans))
        assert receiver.requests[0][0]["Content-Type"] == "application/json"
        trace = [s for s in spans if s["traceId"] == CLIENT_TRACE]
        assert {s["service"] for s in trace} == {"lisa-under-test"}
        server = next(s for s in trace if s["name"] == "POST /v1/chat/completions")
        # The server span continues the client's trace, under the client's span.
        assert server["parentSpanId"] == CLIENT_SPAN and server["kind"] == 2
        assert server["attrs"]["http.response.status_code"] == "200"
        assert server["attrs"]["http.route"] == "/v1/chat/completions"
        assert server.get("traceState") == "vendor=abc"
        auth = next(s for s in trace if s["name"] == "authenticate")
        assert auth["parentSpanId"] == server["spanId"]
        assert auth["attrs"]["lisa.auth.method"] == "adminKey"
        call = next(s for s in trace if s["name"] == "chat traced")
        assert call["parentSpanId"] == server["spanId"]
        attrs = call["attrs"]
        assert attrs["gen_ai.operation.name"] == "chat"
        assert attrs["gen_ai.request.model"] == "traced"
        assert attrs["gen_ai.response.model"] == "traced-upstream-name"
        assert attrs["gen_ai.usage.input_tokens"] == "7" and attrs["gen_ai.usage.output_tokens"] == "3"
        assert attrs["gen_ai.request.max_tokens"] == "50" and attrs["gen_ai.request.temperature"] == 0.5
        assert "lisa.usage.estimated" not in attrs
        attempt = next(s for s in trace if s["name"] == "POST" and s["kind"] == 3)
        assert attempt["parentSpanId"] == call["spanId"]
        assert attempt["attrs"]["http.response.status_code"] == "200"
        assert attempt["attrs"]["server.address"] == "127.0.0.1"
        assert attempt["attrs"]["url.full"].endswith("/v1/chat/completions")
        assert attempt["attrs"]["lisa.attempt"] == "1"
        # Children lie within their parents.
        for child, parent in [(auth, server), (call, server), (attempt, call)]:
            assert int(parent["startTimeUnixNano"]) <= int(child["startTimeUnixNano"])
            assert int(child["endTimeUnixNano"]) <= int(parent["endTimeUnixNano"])
        # The model server was called as the attempt span's child, in the same trace.
        sent = model_server.headers[-1]["traceparent"]
        assert sent == f"00-{CLIENT_TRACE}-{attempt['spanId']}-01"
        assert model_server.headers[-1]["tracestate"] == "vendor=abc"
        # No prompt or answer text goes into spans.
        exported = json.dumps([document for _, document in receiver.requests])
        assert "prompt-text-17" not in exported and "answer-text-42" not in exported
    finally:
        lisa.stop()


def test_streams_fail_over_and_errors_are_spans_too(upstream, tmp_path, receiver, model_server):
    dead = free_port()
    config = f"tracing:\n  endpoint: {receiver.url}\n  exportIntervalSeconds: 0.2\n"
    lisa = Lisa(upstream, tmp_path / "data", extra_config=models_config(model_server, dead_port=dead) + config)
    try:
        client = OpenAI(base_url=lisa.url + "/v1", api_key=ADMIN_KEY, max_retries=0)
        # Round robin over [dead, alive]: within two calls one tries the dead endpoint first.
        for _ in range(2):
            chunks = list(client.chat.completions.create(model="traced", messages=[{"role": "user", "content": "s"}], stream=True,
                                                         stream_options={"include_usage": True}))
            assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "one two three"

        def failed_over(spans):
            attempts = [s for s in spans if s["name"] == "POST" and s["kind"] == 3]
            return any(s["attrs"].get("error.type") == "upstream_unreachable" for s in attempts) and \
                sum(1 for s in spans if s["name"] == "chat traced") == 2
        spans = receiver.wait_for(failed_over)
        assert failed_over(spans), [(s["name"], s["attrs"]) for s in spans]
        spans_by_id = by_id(spans)
        failed = next(s for s in spans if s["name"] == "POST" and s["attrs"].get("error.type") == "upstream_unreachable")
        assert failed["status"]["code"] == 2
        call = spans_by_id[failed["parentSpanId"]]
        siblings = [s for s in spans if s.get("parentSpanId") == call["spanId"] and s["name"] == "POST"]
        assert sorted(s["attrs"]["lisa.attempt"] for s in siblings) == ["1", "2"]
        good = next(s for s in siblings if s["attrs"]["lisa.attempt"] == "2")
        assert good["attrs"]["http.response.status_code"] == "200" and "status" not in good
        # The stream's span ends after the stream, with the usage of its last chunk.
        assert call["attrs"]["lisa.stream"] is True
        assert call["attrs"]["gen_ai.usage.output_tokens"] == "3"
        assert float(call["attrs"]["lisa.time_to_first_token_ms"]) >= 0
        assert int(call["endTimeUnixNano"]) >= int(good["endTimeUnixNano"])

        # An unknown model: the server span says 404; an Anthropic client gets its own status.
        with pytest.raises(Exception):
            client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
        claude = anthropic.Anthropic(base_url=lisa.url, api_key="wrong-key", max_retries=0)
        with pytest.raises(anthropic.AuthenticationError):
            claude.messages.create(model="traced", max_tokens=5, messages=[{"role": "user", "content": "x"}])
        spans = receiver.wait_for(lambda spans: any(s["attrs"].get("http.response.status_code") == "404" for s in spans)
                                  and any(s["attrs"].get("http.response.status_code") == "401" for s in spans))
        missing = next(s for s in spans if s["attrs"].get("http.response.status_code") == "404")
        assert missing["name"] == "POST /v1/chat/completions" and missing["attrs"]["error.type"] == "model_not_found"
        refused = next(s for s in spans if s["attrs"].get("http.response.status_code") == "401")
        assert refused["name"] == "POST /v1/messages"
        auth = next(s for s in spans if s.get("parentSpanId") == refused["spanId"] and s["name"] == "authenticate")
        assert auth["status"]["code"] == 2
    finally:
        lisa.stop()


def test_without_tracing_nothing_is_exported_and_the_clients_trace_goes_upstream_as_it_came(upstream, tmp_path, receiver, model_server):
    # The standard variable turned off by OTEL_SDK_DISABLED: nothing may reach the receiver.
    lisa = Lisa(upstream, tmp_path / "data", extra_config=models_config(model_server),
                extra_env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_SDK_DISABLED": "true"})
    try:
        client = OpenAI(base_url=lisa.url + "/v1", api_key=ADMIN_KEY, max_retries=0)
        traceparent = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
        client.chat.completions.create(model="traced", messages=[{"role": "user", "content": "x"}],
                                       extra_headers={"traceparent": traceparent})
        assert model_server.headers[-1]["traceparent"] == traceparent
        # A malformed traceparent is not passed on.
        client.chat.completions.create(model="traced", messages=[{"role": "user", "content": "x"}],
                                       extra_headers={"traceparent": "00-zz-yy-01"})
        assert "traceparent" not in model_server.headers[-1]
    finally:
        lisa.stop()
    # Stopping flushes any exporter: had there been one, its spans would be here now.
    assert receiver.requests == []


def test_sampling_follows_the_client_and_a_dead_collector_costs_nothing(upstream, tmp_path, receiver, model_server):
    dead_collector = free_port()
    # The standard variable names the collector; sampleRatio 0 records no trace LISA starts.
    config = "tracing:\n  sampleRatio: 0\n  exportIntervalSeconds: 0.2\n"
    lisa = Lisa(upstream, tmp_path / "data", extra_config=models_config(model_server) + config,
                extra_env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_SERVICE_NAME": "from-env"})
    try:
        client = OpenAI(base_url=lisa.url + "/v1", api_key=ADMIN_KEY, max_retries=0)
        client.chat.completions.create(model="traced", messages=[{"role": "user", "content": "unsampled"}])
        # Not recorded, but the ids still go upstream (flags 00) so the trace stays whole.
        unsampled = model_server.headers[-1]["traceparent"]
        assert unsampled.startswith("00-") and unsampled.endswith("-00")
        # A client that samples its trace is recorded whatever the ratio.
        sampled = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
        client.chat.completions.create(model="traced", messages=[{"role": "user", "content": "sampled"}],
                                       extra_headers={"traceparent": sampled})
        spans = receiver.wait_for(lambda spans: any(s["name"] == "chat traced" for s in spans))
        assert {s["traceId"] for s in spans} == {CLIENT_TRACE}
        assert {s["service"] for s in spans} == {"from-env"}
        assert unsampled.split("-")[1] not in json.dumps(spans)
    finally:
        lisa.stop()

    # A collector that is not there: calls answer as fast as ever, and LISA still stops cleanly.
    lisa = Lisa(upstream, tmp_path / "data2", extra_config=models_config(model_server)
                + f"tracing:\n  endpoint: http://127.0.0.1:{dead_collector}\n  exportIntervalSeconds: 0.1\n")
    try:
        client = OpenAI(base_url=lisa.url + "/v1", api_key=ADMIN_KEY, max_retries=0)
        for _ in range(20):
            assert client.chat.completions.create(model="traced", messages=[{"role": "user", "content": "x"}]).choices
    finally:
        assert lisa.stop() == 0
    assert "exporting traces failed" in lisa.proc.output()


def test_a_failed_sign_in_cannot_make_lisa_export_spans(upstream, tmp_path, receiver, model_server):
    """A sampled traceparent counts only for a caller who signed in: at sampleRatio 0, 40
    requests with a bad key export nothing (they used to export 80 spans); a signed-in one
    with the same kind of header is still recorded, and its spans come after the refused ones."""
    config = "tracing:\n  sampleRatio: 0\n  exportIntervalSeconds: 0.1\n"
    lisa = Lisa(upstream, tmp_path / "data", extra_config=models_config(model_server) + config,
                extra_env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url})
    try:
        refused = OpenAI(base_url=lisa.url + "/v1", api_key="not-a-key", max_retries=0)
        bad_traces = []
        for i in range(40):
            trace = f"{i + 1:032x}"
            bad_traces.append(trace)
            with pytest.raises(Exception) as failure:
                refused.chat.completions.create(model="traced", messages=[{"role": "user", "content": "x"}],
                                                extra_headers={"traceparent": f"00-{trace}-{CLIENT_SPAN}-01"})
            assert getattr(failure.value, "status_code", None) == 401
        client = OpenAI(base_url=lisa.url + "/v1", api_key=ADMIN_KEY, max_retries=0)
        client.chat.completions.create(model="traced", messages=[{"role": "user", "content": "signed in"}],
                                       extra_headers={"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"})
        # The signed-in call's spans (its authenticate span included) reach the collector, which
        # by then has had every chance to receive the refused requests' spans.
        spans = receiver.wait_for(lambda spans: any(s["name"] == "chat traced" for s in spans)
                                  and any(s["name"] == "authenticate" for s in spans))
        assert any(s["name"] == "chat traced" for s in spans)
        assert {s["traceId"] for s in spans} == {CLIENT_TRACE}, "no span of a request that failed sign-in"
    finally:
        lisa.stop()
