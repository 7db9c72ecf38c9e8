#!/usr/bin/env python3
"""How much memory one translated answer costs LISAServe.

An Anthropic Messages upstream answers a chat request with one message of many tiny text
blocks (the issue's case: 800,000 blocks, ~22 MB); a Responses upstream with one response of
as many output_text parts. The script starts LISAServe (from --bin), asks each once through
/v1/chat/completions, and prints the server's peak RSS (VmHWM) before and after each call,
next to the answer's size: the growth over the answer's size is the translation's factor.
A third model passes a chat answer of the same size through untranslated, as the floor.

    python3 Benchmarks/Memory/translated_answer_rss.py --bin .build/debug [--blocks 800000]
"""
import argparse
import http.server
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(blocks):
    text_blocks = ",".join('{"type":"text","text":"ab"}' for _ in range(blocks))
    message = ('{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[' + text_blocks +
               '],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":5}}').encode()
    parts = ",".join('{"type":"output_text","text":"ab","annotations":[]}' for _ in range(blocks))
    response = ('{"id":"resp_1","object":"response","created_at":1,"status":"completed","model":"m","output":[{"type":"message",'
                '"id":"msg_1","role":"assistant","status":"completed","content":[' + parts +
                ']}],"usage":{"input_tokens":3,"output_tokens":5,"total_tokens":8}}').encode()
    content = "ab" * blocks * 12
    chat = json.dumps({"id": "c", "object": "chat.completion", "created": 1, "model": "m",
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}}).encode()
    return {"/anthropic/v1/messages": message, "/responses/v1/responses": response, "/chat/v1/chat/completions": chat}


def serve(bodies, port):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            body = bodies[self.path]
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default=".build/debug")
    parser.add_argument("--blocks", type=int, default=800_000)
    args = parser.parse_args()
    bodies = answers(args.blocks)
    upstream_port, lisa_port = free_port(), free_port()
    serve(bodies, upstream_port)
    work = tempfile.mkdtemp()
    config = os.path.join(work, "lisa.yaml")
    with open(config, "w") as f:
        f.write(f"""
# The memory budget raised far past these answers, so that what is measured is the cost.
upstream: {{requestTimeoutSeconds: 300, maxAnswerMemoryBytes: 4294967296, answersInFlightMemoryBytes: 8589934592}}
models:
  - {{modelId: anthropic, modelName: m, modelType: textgen, inferenceContainer: openai, upstreamAPI: anthropic, modelUrl: "http://127.0.0.1:{upstream_port}/anthropic/v1", healthCheck: {{enabled: false}}}}
  - {{modelId: responses, modelName: m, modelType: textgen, inferenceContainer: openai, upstreamAPI: openai-responses, modelUrl: "http://127.0.0.1:{upstream_port}/responses/v1", healthCheck: {{enabled: false}}}}
  - {{modelId: chat, modelName: m, modelType: textgen, inferenceContainer: openai, modelUrl: "http://127.0.0.1:{upstream_port}/chat/v1", healthCheck: {{enabled: false}}}}
""")
    env = dict(os.environ, LISA_ADMIN_KEY="bench-admin-key-0123456789")
    print(f"{'model':<10} {'answer MB':>10} {'idle peak RSS MiB':>18} {'after MiB':>10} {'growth MiB':>11} {'growth/answer':>14} {'status':>7} {'seconds':>8}")
    for model, path in [("chat", "/chat/v1/chat/completions"), ("anthropic", "/anthropic/v1/messages"), ("responses", "/responses/v1/responses")]:
        # A fresh server per model: the peak RSS of one call is not hidden by an earlier one's.
        lisa = subprocess.Popen([os.path.join(args.bin, "LISAServe"), "--config", config, "--port", str(lisa_port), "--data-dir",
                                 os.path.join(work, "data-" + model)], env=env, stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "log"), "w"))
        try:
            for _ in range(100):
                if lisa.poll() is not None:
                    sys.exit("LISAServe did not start: " + open(os.path.join(work, "log")).read()[-2000:])
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{lisa_port}/health", timeout=1)
                    break
                except OSError:
                    time.sleep(0.2)
            before = peak_rss_mib(lisa.pid)
            request = urllib.request.Request(
                f"http://127.0.0.1:{lisa_port}/v1/chat/completions",
                data=json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]}).encode(),
                headers={"Authorization": "Bearer bench-admin-key-0123456789", "Content-Type": "application/json"})
            start = time.monotonic()
            try:
                with urllib.request.urlopen(request, timeout=300) as answer:
                    answer.read()
                    status = answer.status
            except urllib.error.HTTPError as error:
                status = error.code
                error.read()
            elapsed = time.monotonic() - start
            after = peak_rss_mib(lisa.pid)
            size = len(bodies[path]) / 1e6
            print(f"{model:<10} {size:>10.1f} {before:>18.1f} {after:>10.1f} {after - before:>11.1f} {(after - before) * 1.048576 / size:>13.1f}x {status:>7} {elapsed:>8.2f}")
        finally:
            lisa.terminate()
            lisa.wait()


if __name__ == "__main__":
    sys.exit(main())
