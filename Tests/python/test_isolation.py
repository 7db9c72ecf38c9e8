"""The isolated-network guarantee: LISAServe and lisactl open network connections only to
the addresses the operator configured. Every connect() of the processes (and their
threads and children) is recorded with strace while they do real work."""
import json
import os
import re
import shutil
import signal
import subprocess
import urllib.request

import pytest
from openai import OpenAI

from conftest import ADMIN_KEY, BIN, free_port, wait_healthy

CONNECT = re.compile(r'connect\(\d+, \{sa_family=(AF_INET6?|AF_UNIX)(.*?)\}')
INET = re.compile(r'sin6?_port=htons\((\d+)\).*?inet_?(?:6_)?(?:addr|pton)\((?:AF_INET6?, )?"([^"]+)"')


def connections(trace_file):
    """(family, address, port) of every connect() in an strace log."""
    found = []
    for line in open(trace_file):
        match = CONNECT.search(line)
        if not match:
            continue
        family, rest = match.groups()
        if family == "AF_UNIX":
            found.append((family, rest, None))
        else:
            inet = INET.search(rest)
            found.append((family, inet.group(2), int(inet.group(1))) if inet else (family, rest, None))
    return found


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace (the README test command installs it)")
def test_lisaserve_and_lisactl_connect_only_to_configured_addresses(upstream, tmp_path):
    upstream_port = int(upstream.rsplit(":", 1)[1].split("/")[0])
    trace = tmp_path / "lisaserve.trace"
    # LISAServe under strace: every thread and child process, connect() only.
    port = free_port()
    config = tmp_path / "lisa.yaml"
    config.write_text(f"""
models:
  - modelId: chat-small
    modelName: m
    modelUrl: {upstream}
  - modelId: embedder
    modelName: e
    modelType: embedding
    modelUrl: {upstream}
""")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LISA_")}
    env["LISA_ADMIN_KEY"] = ADMIN_KEY
    process = subprocess.Popen(["strace", "-f", "-qq", "-e", "trace=connect", "-o", str(trace), str(BIN / "LISAServe"),
                                "--config", str(config), "--port", str(port), "--data-dir", str(tmp_path / "data")],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url + "/health", process, timeout=60)

        # Real work: chat (plain and streamed), embeddings, the models API, tokens, metrics, lisactl.
        client = OpenAI(base_url=url + "/v1", api_key=ADMIN_KEY, max_retries=0)
        assert client.chat.completions.create(model="chat-small", messages=[{"role": "user", "content": "x"}]).choices
        assert list(client.chat.completions.create(model="chat-small", messages=[{"role": "user", "content": "y"}], stream=True))
        assert client.embeddings.create(model="embedder", input="z").data
        request = urllib.request.Request(url + "/models", method="POST", headers={"Authorization": f"Bearer {ADMIN_KEY}",
                                         "Content-Type": "application/json"},
                                         data=json.dumps({"modelId": "api-model", "modelName": "m", "modelUrl": upstream}).encode())
        with urllib.request.urlopen(request) as response:
            assert response.status == 201
        with urllib.request.urlopen(urllib.request.Request(url + "/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"})) as r:
            assert r.status == 200

        lisactl_trace = tmp_path / "lisactl.trace"
        lisactl_env = {k: v for k, v in os.environ.items() if not k.startswith("LISA_")}
        lisactl_env.update({"LISA_URL": url, "LISA_API_KEY": ADMIN_KEY})
        for args in (["models", "list"], ["chat", "--model", "api-model", "hello"], ["tokens", "create", "--name", "iso"]):
            done = subprocess.run(["strace", "-f", "-qq", "-e", "trace=connect", "-o", str(lisactl_trace) + "." + args[0],
                                   str(BIN / "lisactl"), *args], env=lisactl_env, capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
    finally:
        # Stop LISAServe itself (strace's child); strace exits with it.
        children = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout.split()
        for pid in children:
            os.kill(int(pid), signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    allowed_server = {("AF_INET", "127.0.0.1", upstream_port)}
    seen = connections(trace)
    network = [c for c in seen if c[0] != "AF_UNIX"]
    assert network, "the trace recorded the upstream calls"
    unexpected = [c for c in network if c not in allowed_server]
    assert unexpected == [], f"LISAServe connected to addresses nobody configured: {unexpected}"

    for args in ("models", "chat", "tokens"):
        lisactl_seen = [c for c in connections(str(lisactl_trace) + "." + args) if c[0] != "AF_UNIX"]
        assert lisactl_seen and all(c == ("AF_INET", "127.0.0.1", port) for c in lisactl_seen), lisactl_seen
