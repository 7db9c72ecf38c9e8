"""Every path that spends is reserved before and charged after, whatever the client sends or does:
the official openai SDK against a real LISAServe, concurrent calls through real sockets."""
import concurrent.futures
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openai
from openai import OpenAI

from conftest import Lisa
from conftest import api as request
from test_usage import token_for, wait_for_usage


class VLLMLikeUpstream:
    """Answers chat calls as vLLM counts them: `max_completion_tokens` (0 reads as unset), else
    `max_tokens`, written in full. Each call is held until `expected` calls have arrived here or
    been refused by LISA, so none settles before the others were admitted."""

    def __init__(self, expected):
        self.expected = expected
        self.arrived = 0
        self.refused = 0
        self.condition = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self._answer({"object": "list", "data": []})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.condition:
                    outer.arrived += 1
                    outer.condition.notify_all()
                    outer.condition.wait_for(lambda: outer.arrived + outer.refused >= outer.expected, timeout=30)
                written = body.get("max_completion_tokens") or body.get("max_tokens") or 16
                self._answer({
                    "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": body["model"],
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "word " * 3}, "finish_reason": "length"}],
                    "usage": {"prompt_tokens": 20, "completion_tokens": written, "total_tokens": 20 + written},
                })

            def _answer(self, value):
                data = json.dumps(value).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def refuse(self):
        with self.condition:
            self.refused += 1
            self.condition.notify_all()


def settled_budget(lisa, token, timeout=15):
    """The caller's budget once nothing is held (settling runs off the request path)."""
    deadline = time.monotonic() + timeout
    while True:
        status, budgets = request(lisa, "GET", "/budgets", key=token)
        assert status == 200, budgets
        (budget,) = budgets["data"]
        if budget["reserved"] == 0 or time.monotonic() > deadline:
            return budget
        time.sleep(0.1)


def test_concurrent_calls_reserve_the_output_limit_the_upstream_honours(tmp_path):
    upstream = VLLMLikeUpstream(expected=8)
    lisa = Lisa(upstream.url, tmp_path / "data", extra_config="budgets:\n  user: {period: day, tokens: 1000}\n")
    try:
        token = token_for(lisa, "alice")
        client = OpenAI(base_url=lisa.url + "/v1", api_key=token, max_retries=0)

        def call(_):
            try:
                client.chat.completions.create(model="chat-small", messages=[{"role": "user", "content": "write"}],
                                               max_completion_tokens=0, max_tokens=300)
                return True
            except openai.RateLimitError as error:
                assert error.response.json()["error"]["code"] == "budget_exceeded"
                upstream.refuse()
                return False

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            admitted = sum(pool.map(call, range(8)))
        budget = settled_budget(lisa, token)
        # Each call may write 300 (vLLM reads 0 as unset): reserved at its input and 300, at most
        # four start under 1,000. Reading the 0 as the limit, all eight ran and spent 2,560.
        assert 1 <= admitted <= 4, admitted
        assert budget["spent"] == admitted * 320
        assert budget["spent"] <= 1000 + 320
    finally:
        lisa.stop()
        upstream.server.shutdown()


def test_a_client_that_times_out_after_the_upstream_read_its_prompt_is_charged_the_prompt(upstream, tmp_path):
    lisa = Lisa(upstream, tmp_path / "data", extra_config="budgets:\n  user: {period: day, tokens: 100000}\n")
    try:
        status, created = request(lisa, "POST", "/models", {
            "modelId": "slow", "modelName": "slow", "modelType": "textgen", "inferenceContainer": "vllm", "modelUrl": upstream,
        })
        assert status in (200, 201), created
        token = token_for(lisa, "carol")
        # The fake's `slow` model answers after 5 s; the client gives up after 1.
        client = OpenAI(base_url=lisa.url + "/v1", api_key=token, max_retries=0, timeout=1.0)
        prompt = "tell me more about this " * 90  # ~2,200 bytes: ~550 tokens
        try:
            client.chat.completions.create(model="slow", messages=[{"role": "user", "content": prompt}])
            raise AssertionError("the call should have timed out")
        except openai.APITimeoutError:
            pass
        deadline = time.monotonic() + 15
        while True:
            budget = settled_budget(lisa, token)
            if budget["spent"] > 0 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert budget["spent"] > 500, budget  # the prompt, at about four bytes a token
        report = wait_for_usage(lisa, 1, key=token)
        assert report["totals"]["estimatedRequests"] == 1 and report["totals"]["inputTokens"] == budget["spent"]
    finally:
        lisa.stop()
