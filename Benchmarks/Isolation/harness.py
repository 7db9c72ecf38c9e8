"""Shared parts of the isolation benchmarks: a fake upstream and a LISAServe (SQLite in a
temporary folder) on free loopback ports, tokens for named users, timed calls."""
import json
import os
import pathlib
import socket
import statistics
import subprocess
import time
import urllib.error
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[2]
KEY = "bench-admin-key-0123456789"


def binaries(path=None):
    if path:
        return pathlib.Path(path)
    for candidate in ("release", "debug"):
        folder = ROOT / ".build" / candidate
        if (folder / "LISAServe").exists():
            return folder
    return ROOT / ".build" / "debug"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


class FakeUpstream:
    def __init__(self, binary):
        self.port = free_port()
        self.process = subprocess.Popen([str(binary / "lisa-fake-upstream"), "--port", str(self.port), "--chunk-delay-ms", "0"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until_up(f"http://127.0.0.1:{self.port}/v1/models")

    def stop(self):
        self.process.terminate()
        self.process.wait()


class Server:
    """LISAServe with `config` (YAML text) in `data`; `url`, `call`, `stop`."""

    def __init__(self, binary, data, config):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        path = pathlib.Path(data) / "config.yaml"
        path.write_text(config)
        env = {k: v for k, v in os.environ.items() if not k.startswith("LISA_")} | {"LISA_ADMIN_KEY": KEY}
        self.log = open(pathlib.Path(data) / "server.log", "ab")
        self.process = subprocess.Popen([str(binary / "LISAServe"), "--config", str(path), "--port", str(self.port), "--data-dir", data],
                                        env=env, stdout=self.log, stderr=self.log)
        wait_until_up(self.url + "/health")

    def call(self, method, path, body=None, key=KEY, raw=None, timeout=300):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(self.url + path, method=method, data=data,
                                         headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def token(self, username):
        status, body = self.call("POST", f"/api-tokens/{username}", {"name": f"bench-{username}", "expiresInDays": 30})
        assert status == 201, (status, body[:300])
        return json.loads(body)["token"]

    def stop(self):
        self.process.terminate()
        self.process.wait()
        self.log.close()


def timed(function):
    start = time.perf_counter()
    result = function()
    return (time.perf_counter() - start) * 1000, result


def summary(latencies):
    if not latencies:
        return "no calls"
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return f"n={len(ordered)} median={statistics.median(ordered):.1f} ms p99={p99:.1f} ms max={ordered[-1]:.1f} ms"


def model_config(upstream_port):
    return f"""models:
  - modelId: chat
    modelName: chat
    modelType: textgen
    inferenceContainer: openai
    modelUrl: http://127.0.0.1:{upstream_port}/v1
    streaming: true
routing:
  defaultHealthCheck: {{enabled: false}}
rateLimits:
  default: {{requestsPerMinute: 6000000, burst: 100000}}
"""
