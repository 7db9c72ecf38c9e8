"""An attacker with one ordinary API token against a real LISAServe process.

- one parse: random and adversarial bodies through LISA and a Python (last-key-wins)
  upstream must agree on model, stream, user and the lisa extension;
- slow clients are cut off by the connection deadlines; the connection cap holds;
- ingestion bombs (quadratic text, unclosed tags, a DOCX that expands 1000-fold) fail or
  finish within their budgets while another user's upload goes through, and shutdown
  does not wait on them;
- all of it at once while an ordinary user chats: their p99 stays under a stated bound.
"""
import http.server
import io
import json
import random
import socket
import statistics
import threading
import time
import zipfile

import httpx
import pytest

from conftest import ADMIN_KEY, Lisa, api, free_port

SECRET_UPSTREAM = "secret-upstream"
PUBLIC_UPSTREAM = "public-upstream"


class PythonUpstream:
    """An OpenAI-compatible upstream in Python, parsing bodies the way vLLM and FastAPI do
    (json.loads: the last duplicate key wins). Records every raw body it receives."""

    def __init__(self):
        self.bodies = []
        upstream = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                self._send(200, "application/json", b'{"status":"ok"}')

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                upstream.bodies.append(raw)
                try:
                    body = json.loads(raw)
                except ValueError:
                    self._send(400, "application/json", b'{"error":{"message":"bad json","type":"invalid_request_error"}}')
                    return
                model = body.get("model") if isinstance(body, dict) else None
                if isinstance(body, dict) and body.get("stream") is True:
                    chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": model,
                             "choices": [{"index": 0, "delta": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]}
                    payload = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode()
                    self._send(200, "text/event-stream", payload)
                    return
                answer = {"id": "c1", "object": "chat.completion", "created": 1, "model": model,
                          "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
                          "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
                self._send(200, "application/json", json.dumps(answer).encode())

            def _send(self, status, content_type, payload):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()


MODELS = f"""
  - modelId: public
    modelName: {PUBLIC_UPSTREAM}
    modelType: textgen
    inferenceContainer: vllm
    modelUrl: {{url}}
  - modelId: secret
    modelName: {SECRET_UPSTREAM}
    modelType: textgen
    inferenceContainer: vllm
    modelUrl: {{url}}
    allowedGroups: [vip]
"""


@pytest.fixture
def python_upstream():
    upstream = PythonUpstream()
    yield upstream
    upstream.stop()


def user_token(lisa, username, groups=()):
    status, created = api(lisa, "POST", f"/api-tokens/{username}", {"name": "t", "groups": list(groups)})
    assert status == 201, created
    return created["token"]


def escape_key(key, rng):
    """`key` with some characters written as \\u escapes (upper or lower hex)."""
    out = []
    for ch in key:
        if rng.random() < 0.5:
            code = f"{ord(ch):04x}"
            out.append("\\u" + (code.upper() if rng.random() < 0.5 else code))
        else:
            out.append(ch)
    return "".join(out)


def whitespace(rng):
    return rng.choice(["", " ", "\n", "\t", "\r\n", "  \t "])


def random_body(rng):
    """A chat request with adversarial spellings: duplicates (plain and escaped) of the
    routing and policy members, BOMs, NaN, odd whitespace, deep nesting."""
    members = [("model", '"public"'), ("messages", '[{"role":"user","content":"hi"}]')]
    if rng.random() < 0.5:
        members.append(("stream", rng.choice(["true", "false"])))
    if rng.random() < 0.5:
        members.append(("user", '"alice"'))
    for _ in range(rng.randint(0, 3)):
        key = rng.choice(["model", "stream", "user", "lisa"])
        value = {"model": f'"secret"', "stream": rng.choice(["true", "false", "1", '"yes"']),
                 "user": '"mallory"', "lisa": '{"rag":{"repositoryId":"other"}}'}[key]
        members.insert(rng.randint(0, len(members)), (escape_key(key, rng) if rng.random() < 0.7 else key, value))
    if rng.random() < 0.1:
        members.append(("temperature", rng.choice(["NaN", "Infinity", "-Infinity", "1e999"])))
    if rng.random() < 0.1:
        depth = rng.choice([50, 127, 128, 400])
        members.append(("extra", "[" * depth + "]" * depth))
    w = lambda: whitespace(rng)  # noqa: E731
    text = "{" + ",".join(f'{w()}"{k}"{w()}:{w()}{v}{w()}' for k, v in members) + "}"
    data = text.encode()
    if rng.random() < 0.05:
        data = b"\xef\xbb\xbf" + data
    return data


ADVERSARIAL = [
    b'{"model":"public","mod\\u0065l":"secret","messages":[{"role":"user","content":"hi"}]}',
    b'{"mod\\u0065l":"secret","model":"public","messages":[{"role":"user","content":"hi"}]}',
    b'{"model":"public","messages":[{"role":"user","content":"hi"}],"model":"secret"}',
    b'{"model":"public","messages":[{"role":"user","content":"hi"}],"stream":false,"str\\u0065am":true}',
    b'\xef\xbb\xbf{"model":"secret","messages":[{"role":"user","content":"hi"}]}',
    b'{"model":"public","messages":[{"role":"user","content":"hi"}],"\\u006c\\u0069\\u0073\\u0061":{"rag":{"repositoryId":"x"}}}',
    b'{"model":"public","messages":[{"role":"user","content":"hi","role":"system"}]}',
    b'{"model":"public","messages":[{"role":"user","content":"hi"}],"temperature":NaN}',
]


def first_wins(pairs):
    result = {}
    for key, value in pairs:
        result.setdefault(key, value)
    return result


def test_lisa_and_a_last_key_wins_upstream_agree_on_what_was_authorized(python_upstream, tmp_path):
    lisa = Lisa(python_upstream.url, tmp_path / "data", extra_config=MODELS.format(url=python_upstream.url) + """
rateLimits:
  enabled: false
""")
    try:
        token = user_token(lisa, "mallory")
        rng = random.Random(20261202)
        bodies = ADVERSARIAL + [random_body(rng) for _ in range(300)]
        accepted = refused = 0
        with httpx.Client(timeout=30) as client:
            for body in bodies:
                python_upstream.bodies.clear()
                response = client.post(lisa.url + "/v1/chat/completions", content=body,
                                       headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
                if response.status_code >= 400:
                    refused += 1
                    assert response.status_code in (400, 404), (body, response.status_code, response.text)
                    assert response.json()["error"]["message"]
                    assert not python_upstream.bodies or response.status_code == 404, "a refused body never reaches the upstream"
                    continue
                accepted += 1
                assert response.status_code == 200, (body, response.text)
                assert len(python_upstream.bodies) == 1, body
                forwarded = python_upstream.bodies[0]
                last = json.loads(forwarded)
                first = json.loads(forwarded, object_pairs_hook=first_wins)
                for field in ("model", "stream", "user", "lisa"):
                    assert first.get(field) == last.get(field), (field, body, forwarded)
                assert last["model"] == PUBLIC_UPSTREAM, (body, forwarded)
                assert "lisa" not in last, "no grounding request reaches the upstream unread"
                streamed = response.headers["content-type"].startswith("text/event-stream")
                assert streamed == (last.get("stream") is True), (body, forwarded)
        print(f"differential parse: {len(bodies)} bodies, {accepted} accepted and forwarded unambiguously, {refused} refused")
        assert accepted >= 50 and refused >= 50, (accepted, refused)
    finally:
        lisa.stop()


def test_slow_clients_are_cut_off_and_the_connection_cap_holds(upstream, tmp_path):
    lisa = Lisa(upstream, tmp_path / "data", extra_config="""
server:
  headerReadTimeoutSeconds: 1
  idleTimeoutSeconds: 2
  bodyReadTimeoutSeconds: 1
  maxConnections: 64
""")
    try:
        # 40 half-open connections, each trickling a request head that never completes.
        slow = []
        for _ in range(40):
            s = socket.create_connection(("127.0.0.1", lisa.port))
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
            slow.append(s)
        # A client that stops halfway through its body.
        stalled = socket.create_connection(("127.0.0.1", lisa.port))
        stalled.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + ADMIN_KEY.encode()
                        + b"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"model\":")
        # An idle keep-alive connection after one answered request.
        idle = socket.create_connection(("127.0.0.1", lisa.port))
        idle.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"200" in idle.recv(4096)

        def closed_by_server(s):
            s.settimeout(30)
            try:
                while True:
                    if s.send(b"X-Slow: 1\r\n") == 0:
                        return True
                    data = s.recv(4096)
                    if not data:
                        return True
            except TimeoutError:
                return False  # still open after 30 s: the deadline did not hold
            except OSError:
                return True  # reset by the server

        assert all(closed_by_server(s) for s in slow), "every trickling client is closed"
        assert closed_by_server(stalled)
        idle.settimeout(30)
        assert idle.recv(4096) == b"", "an idle keep-alive connection is closed"
        # The server still answers ordinary clients.
        status, body = api(lisa, "POST", "/v1/chat/completions", {"model": "chat-small", "messages": [{"role": "user", "content": "hi"}]})
        assert status == 200, body
    finally:
        lisa.stop()


def docx_bomb(expanded_bytes):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        with archive.open("word/document.xml", "w") as entry:
            block = b" " * (1 << 20)
            for _ in range(expanded_bytes >> 20):
                entry.write(block)
        archive.writestr("[Content_Types].xml", "<Types/>")
    return buffer.getvalue()


def rag_upload(lisa, repository, name, data, key):
    response = httpx.post(f"{lisa.url}/repository/{repository}/upload", headers={"Authorization": f"Bearer {key}"},
                          files={"file": (name, data)}, timeout=60)
    return response.status_code, response.json()


def wait_jobs(lisa, repository, job_ids, timeout=120):
    deadline = time.time() + timeout
    finished = {}
    while time.time() < deadline and len(finished) < len(job_ids):
        for job_id in job_ids:
            if job_id in finished:
                continue
            status, job = api(lisa, "GET", f"/repository/{repository}/jobs/{job_id}")
            if job.get("status") in ("COMPLETED", "FAILED"):
                finished[job_id] = job
        time.sleep(0.1)
    return finished


def test_ingestion_bombs_fail_within_budget_while_others_ingest_and_shutdown_is_prompt(upstream, tmp_path):
    lisa = Lisa(upstream, tmp_path / "data", extra_config="""
rag:
  ingestion:
    concurrency: 2
    timeoutSeconds: 60
    maxExpandedBytes: 33554432
""")
    stopped = False
    try:
        status, body = api(lisa, "POST", "/repository", {"repositoryId": "shared", "embeddingModelId": "embedder"})
        assert status == 201, body
        mallory = user_token(lisa, "mallory")
        alice = user_token(lisa, "alice")
        bombs = {
            "nowhitespace.txt": b"x" * (2 << 20),
            "scripts.html": b"<p>a</p>" + b"<script>x" * 200_000,
            "bomb.docx": docx_bomb(512 << 20),
        }
        assert len(bombs["bomb.docx"]) < 1 << 20, "the DOCX is small on the wire"
        bomb_jobs = []
        for name, data in bombs.items():
            status, job = rag_upload(lisa, "shared", name, data, mallory)
            assert status == 202, job
            bomb_jobs.append(job["jobId"])
        status, job = rag_upload(lisa, "shared", "note.txt", b"Alice's note about the lighthouse.", alice)
        assert status == 202, job
        alice_done = wait_jobs(lisa, "shared", [job["jobId"]], timeout=60)
        assert alice_done.get(job["jobId"], {}).get("status") == "COMPLETED", alice_done
        done = wait_jobs(lisa, "shared", bomb_jobs, timeout=120)
        assert len(done) == len(bomb_jobs), "no bomb is left running"
        by_name = {job["documentName"]: job for job in done.values()}
        assert by_name["bomb.docx"]["status"] == "FAILED" and "expands to more than" in by_name["bomb.docx"]["reason"]
        # The quadratic cases are now linear: they simply finish.
        assert by_name["nowhitespace.txt"]["status"] == "COMPLETED"
        assert by_name["scripts.html"]["status"] == "COMPLETED"

        # A slow job in flight does not hold shutdown: a big document is still embedding.
        status, job = rag_upload(lisa, "shared", "big.txt", (b"word " * 400_000), mallory)
        assert status == 202
        started = time.monotonic()
        code = lisa.stop()
        stopped = True
        assert time.monotonic() - started < 25, "SIGTERM is honoured promptly"
        assert code == 0
    finally:
        if not stopped:
            lisa.stop()


def test_ordinary_users_keep_their_latency_under_attack(upstream, tmp_path):
    """Slow clients, a token flood, multipart junk with huge boundaries and ingestion bombs
    at once; an ordinary user's chat p99 stays under 2 s (a loaded 2-core machine runs the
    attack and the debug build; unattacked it is a few milliseconds)."""
    lisa = Lisa(upstream, tmp_path / "data", extra_config="""
server:
  headerReadTimeoutSeconds: 2
auth:
  apiGroup: lisa-api
rateLimits:
  groups:
    chatters: {requestsPerMinute: 100000, burst: 1000}
""")
    stop = threading.Event()
    try:
        api(lisa, "POST", "/repository", {"repositoryId": "shared", "embeddingModelId": "embedder"})
        mallory = user_token(lisa, "mallory", ["lisa-api"])
        alice = user_token(lisa, "alice", ["chatters"])
        session = {"history": [{"role": "user", "content": "keep me"}]}
        assert api(lisa, "PUT", "/session/kept", session, key=alice)[0] == 200

        def slowloris():
            while not stop.is_set():
                sockets = []
                for _ in range(30):
                    try:
                        s = socket.create_connection(("127.0.0.1", lisa.port), timeout=5)
                        s.sendall(b"GET /v1/models HTTP/1.1\r\n")
                        sockets.append(s)
                    except OSError:
                        pass
                stop.wait(1)
                for s in sockets:
                    s.close()

        def keep_trying(call):
            """Runs `call` until the attack stops; the server may cut an attacker off."""
            def loop():
                while not stop.is_set():
                    try:
                        call()
                    except (httpx.HTTPError, OSError):
                        stop.wait(0.05)
            return loop

        flood_client = httpx.Client(timeout=30)
        junk_client = httpx.Client(timeout=30)
        boundary = "a" * 8_000
        junk = f"--{boundary}\r\n".encode() + b"x" * (4 << 20)

        def token_flood():
            flood_client.post(lisa.url + "/api-tokens", json={"name": "flood"}, headers={"Authorization": f"Bearer {mallory}"})

        def multipart_junk():
            junk_client.post(lisa.url + "/repository/shared/upload", content=junk,
                             headers={"Authorization": f"Bearer {mallory}", "Content-Type": f"multipart/form-data; boundary={boundary}"})

        bomb = docx_bomb(256 << 20)

        def ingestion_bombs():
            for index in range(3):
                try:
                    rag_upload(lisa, "shared", f"bomb{index}.docx", bomb, mallory)
                except (httpx.HTTPError, OSError):
                    pass

        attackers = [threading.Thread(target=t, daemon=True)
                     for t in (slowloris, keep_trying(token_flood), keep_trying(multipart_junk), ingestion_bombs)]
        for thread in attackers:
            thread.start()
        time.sleep(1)  # let the attack get going before measuring
        latencies = []
        with httpx.Client(timeout=30) as client:
            for _ in range(60):
                started = time.monotonic()
                response = client.post(lisa.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {alice}"},
                                       json={"model": "chat-small", "messages": [{"role": "user", "content": "hello there"}]})
                latencies.append(time.monotonic() - started)
                assert response.status_code == 200, response.text
        stop.set()
        latencies.sort()
        p99 = latencies[int(len(latencies) * 0.99) - 1]
        print(f"ordinary user under attack: p50 {statistics.median(latencies) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms")
        assert p99 < 2.0, latencies
        status, kept = api(lisa, "GET", "/session/kept", key=alice)
        assert status == 200 and kept["history"] == session["history"], "nothing the user stored is lost"
    finally:
        stop.set()
        lisa.stop()
        flood_client.close() if "flood_client" in locals() else None
        junk_client.close() if "junk_client" in locals() else None
