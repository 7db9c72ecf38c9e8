"""Fixtures that run the real binaries: lisa-fake-upstream and LISAServe."""
import json
import os
import pathlib
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(os.environ.get("LISA_BIN_DIR", ROOT / ".build" / "debug"))
ADMIN_KEY = "pytest-admin-key-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, process: subprocess.Popen, timeout: float = 30, cafile=None) -> None:
    deadline = time.time() + timeout
    context = ssl.create_default_context(cafile=str(cafile)) if cafile else None
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1, context=context) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{url} did not become healthy")


class Process:
    """A child process with its output captured to a file."""

    def __init__(self, args, env=None, log=None):
        self.log_path = log
        self.log = open(log, "w") if log else subprocess.DEVNULL
        self.process = subprocess.Popen(args, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def stop(self, sig=signal.SIGTERM, timeout=15) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.log is not subprocess.DEVNULL:
            self.log.close()
        return self.process.returncode

    def output(self) -> str:
        return pathlib.Path(self.log_path).read_text() if self.log_path else ""


def start_fake_upstream(tmp_path_factory, chunk_delay_ms: int):
    """Starts lisa-fake-upstream streaming one word per `chunk_delay_ms`; returns (process, base URL)."""
    port = free_port()
    proc = Process([str(BIN / "lisa-fake-upstream"), "--port", str(port), "--chunk-delay-ms", str(chunk_delay_ms)],
                   log=tmp_path_factory.mktemp("fake") / "fake.log")
    wait_healthy(f"http://127.0.0.1:{port}/health", proc.process)
    return proc, f"http://127.0.0.1:{port}/v1"


@pytest.fixture(scope="session")
def upstream(tmp_path_factory):
    proc, url = start_fake_upstream(tmp_path_factory, 30)
    yield url
    proc.stop()


def api(lisa, method, path, body=None, key=ADMIN_KEY):
    """One JSON call to LISA: (status, decoded body)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(lisa.url + path, data=data, method=method,
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


EMBED_PYTHON = ROOT / ".venv-embed" / "bin" / "python"


@pytest.fixture(scope="session")
def embedding_model(tmp_path_factory):
    """A real sentence-embedding model (all-MiniLM-L6-v2 in numpy) behind /v1/embeddings."""
    if not EMBED_PYTHON.exists():
        pytest.skip("needs .venv-embed (the README test command creates it)")
    port = free_port()
    proc = Process([str(EMBED_PYTHON), str(ROOT / "Tests" / "python" / "embedding_server.py"), str(port)],
                   log=tmp_path_factory.mktemp("embed") / "embed.log")
    wait_healthy(f"http://127.0.0.1:{port}/health", proc.process, timeout=60)
    yield f"http://127.0.0.1:{port}/v1"
    proc.stop()


class Lisa:
    """A running LISAServe."""

    def __init__(self, upstream: str, data_dir: pathlib.Path, admin_key: str | None = ADMIN_KEY, port: int | None = None,
                 extra_config: str = "", extra_env: dict | None = None, tls_ca=None, extra_args=()):
        self.port = port or free_port()
        self.url = f"{'https' if tls_ca else 'http'}://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        config = data_dir.parent / f"lisa-{self.port}.yaml"
        config.write_text(f"""
models:
  - modelId: chat-small
    modelName: Qwen/Qwen2.5-0.5B-Instruct
    modelType: textgen
    inferenceContainer: vllm
    modelUrl: {upstream}
  - modelId: embedder
    modelName: all-MiniLM-L6-v2
    modelType: embedding
    inferenceContainer: tei
    modelUrl: {upstream}
""" + extra_config)
        env = {k: v for k, v in os.environ.items() if not k.startswith("LISA_")}
        if admin_key:
            env["LISA_ADMIN_KEY"] = admin_key
        env.update(extra_env or {})
        self.admin_key = admin_key
        self.proc = Process([str(BIN / "LISAServe"), "--config", str(config), "--port", str(self.port),
                             "--data-dir", str(data_dir), *extra_args], env=env, log=data_dir.parent / f"lisa-{self.port}.log")
        wait_healthy(self.url + "/health", self.proc.process, cafile=tls_ca)

    def stop(self, sig=signal.SIGTERM) -> int:
        return self.proc.stop(sig)


@pytest.fixture
def lisa(upstream, tmp_path):
    server = Lisa(upstream, tmp_path / "data")
    yield server
    server.stop()


@pytest.fixture
def openai_client(lisa):
    from openai import OpenAI
    return OpenAI(base_url=lisa.url + "/v1", api_key=ADMIN_KEY, max_retries=0)


def lisactl(lisa: Lisa, *args: str, stdin: str | None = None, key: str | None = ADMIN_KEY):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LISA_")}
    env["LISA_URL"] = lisa.url
    if key:
        env["LISA_API_KEY"] = key
    return subprocess.run([str(BIN / "lisactl"), *args], env=env, input=stdin, capture_output=True, text=True, timeout=60)
