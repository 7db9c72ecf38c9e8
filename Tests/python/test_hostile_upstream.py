"""An upstream that breaks HTTP/1.1's framing must not take LISAServe down: each broken answer
fails that one call (502 in OpenAI's shape, or an SSE error event), and the server keeps serving
every other model, with the official openai SDK as the client."""
import socket
import threading

import openai
import pytest

from conftest import ADMIN_KEY, Lisa, free_port

GOOD_BODY = (b'{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,'
             b'"message":{"role":"assistant","content":"fine"},"finish_reason":"stop"}],'
             b'"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}')

def answer(usage: bytes) -> bytes:
    body = (b'{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,'
            b'"message":{"role":"assistant","content":"fine"},"finish_reason":"stop"}],"usage":' + usage + b'}')
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body


# Well-framed answers whose usage is hostile: counts that are negative, past 64 bits, or add
# up past them. Each is answered; nothing may trap (a negative counter increment, an Int64
# conversion, an overflowing sum) in metrics, accounting or the usage rollup.
USAGES = {
    "negative": answer(b'{"prompt_tokens":-1,"completion_tokens":-5,"total_tokens":0}'),
    "past64": answer(b'{"prompt_tokens":1,"total_tokens":-9223372036854775808}'),
    "huge": answer(b'{"prompt_tokens":9223372036854775807,"completion_tokens":9223372036854775807,"total_tokens":1e300}'),
    "float": answer(b'{"prompt_tokens":1e19,"completion_tokens":-1e19,"total_tokens":1e19}'),
}

# What the upstream writes for each path prefix: the first is what crashed LISAServe on 40538b8.
FRAMINGS = {
    "zz": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    "bigchunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffffffff\r\nabc\r\n",
    "midchunk": b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n40\r\ndata: {",
    "both": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    "switch": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: upgrade\r\n\r\n\x00\x00\x00",
    "garbage": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)),
    "bighead": b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (64 << 10) + b"\r\nContent-Length: 2\r\n\r\nok",
    "extra": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(GOOD_BODY) + GOOD_BODY + b"HTTP/1.1 200 OK\r\n\r\nzz",
}


class RawUpstream:
    """Reads each request and writes the raw bytes its path names; /good/ answers properly."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", free_port()))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        buf = b""
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
                while b"\r\n\r\n" in buf:
                    head, rest = buf.split(b"\r\n\r\n", 1)
                    length = 0
                    for line in head.split(b"\r\n"):
                        if line.lower().startswith(b"content-length:"):
                            length = int(line.split(b":", 1)[1])
                    if len(rest) < length:
                        break
                    buf = rest[length:]
                    name = head.split(b" ")[1].split(b"/")[1].decode()
                    if name in USAGES:
                        conn.sendall(USAGES[name])
                    elif name == "good":
                        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(GOOD_BODY) + GOOD_BODY)
                    else:
                        conn.sendall(FRAMINGS[name])
                        if name == "midchunk":
                            conn.close()
                            return
        except OSError:
            pass
        finally:
            conn.close()

    def stop(self):
        self.sock.close()


@pytest.fixture
def hostile(upstream, tmp_path):
    raw = RawUpstream()
    models = "".join(f"""
  - modelId: {name}
    modelName: m
    modelType: textgen
    inferenceContainer: openai
    modelUrl: http://127.0.0.1:{raw.port}/{name}/v1
    healthCheck: {{enabled: false}}
""" for name in [*FRAMINGS, *USAGES, "good"])
    lisa = Lisa(upstream, tmp_path / "data", extra_config=models)
    yield lisa
    lisa.stop()
    raw.stop()


def test_broken_framings_fail_one_call_each_and_the_server_keeps_serving(hostile):
    client = openai.OpenAI(base_url=hostile.url + "/v1", api_key=ADMIN_KEY, max_retries=0, timeout=30)
    messages = [{"role": "user", "content": "hi"}]
    for _ in range(3):
        for name in FRAMINGS:
            if name == "extra":
                # The answer itself is whole; the bytes after it close that connection.
                assert client.chat.completions.create(model=name, messages=messages).choices[0].message.content == "fine"
                continue
            with pytest.raises(openai.APIStatusError) as failure:
                client.chat.completions.create(model=name, messages=messages)
            assert failure.value.status_code == 502, name
            assert failure.value.body["code"] == "upstream_error", name
            # Streamed: the call fails (before the head: 502; after: an error event), never hangs.
            with pytest.raises((openai.APIStatusError, openai.APIError)):
                for _ in client.chat.completions.create(model=name, messages=messages, stream=True):
                    pass
            assert hostile.proc.process.poll() is None, f"LISAServe died on framing {name}"
            assert client.chat.completions.create(model="good", messages=messages).choices[0].message.content == "fine"


def test_hostile_usage_counts_are_answered_and_nothing_traps(hostile):
    client = openai.OpenAI(base_url=hostile.url + "/v1", api_key=ADMIN_KEY, max_retries=0, timeout=30)
    messages = [{"role": "user", "content": "hi"}]
    for _ in range(2):
        for name in USAGES:
            # A usage the SDK reads as invalid is still an answer: the call succeeds or fails cleanly.
            try:
                client.chat.completions.create(model=name, messages=messages)
            except openai.APIStatusError as error:
                assert error.status_code == 502, name
            assert hostile.proc.process.poll() is None, f"LISAServe died on usage {name}"
    import httpx
    metrics = httpx.get(hostile.url + "/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30)
    assert metrics.status_code == 200
    assert "lisa_tokens_total" in metrics.text
    usage = httpx.get(hostile.url + "/usage", params={"bucket": "hour", "groupBy": "model"},
                      headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30)
    assert usage.status_code == 200, usage.text
    assert hostile.proc.process.poll() is None
