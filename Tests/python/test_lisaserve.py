"""LISAServe as a process: lisactl, persistence across restarts, the generated admin key, graceful shutdown."""
import json
import signal
import threading
import time

import openai

from conftest import ADMIN_KEY, Lisa, lisactl


def test_lisactl_models_chat_embed(lisa, upstream, tmp_path):
    spec = tmp_path / "model.yaml"
    spec.write_text(f"modelId: mistral\nmodelName: mistralai/Mistral-7B\nmodelType: textgen\n"
                    f"inferenceContainer: vllm\nendpoints: [{{url: '{upstream}', apiKey: sk-never-shown}}]\n")
    created = lisactl(lisa, "models", "create", "-f", str(spec))
    assert created.returncode == 0, created.stderr
    assert "mistral" in created.stdout

    listed = lisactl(lisa, "--output", "json", "models", "list")
    assert listed.returncode == 0, listed.stderr
    models = {m["modelId"]: m for m in json.loads(listed.stdout)}
    assert set(models) == {"chat-small", "embedder", "mistral"}
    assert models["mistral"]["source"] == "api" and models["chat-small"]["source"] == "configuration"
    assert "sk-never-shown" not in listed.stdout

    table = lisactl(lisa, "models", "get", "mistral")
    assert table.returncode == 0 and "InService" in table.stdout

    chat = lisactl(lisa, "chat", "--model", "mistral", "tell me something")
    assert chat.returncode == 0, chat.stderr
    assert chat.stdout.strip() == "echo: tell me something"
    piped = lisactl(lisa, "chat", "-m", "chat-small", stdin="from stdin\n")
    assert piped.stdout.strip() == "echo: from stdin"

    embed = lisactl(lisa, "--output", "json", "embed", "--model", "embedder", "a text")
    assert embed.returncode == 0, embed.stderr
    assert len(json.loads(embed.stdout)["data"][0]["embedding"]) == 8

    deleted = lisactl(lisa, "models", "delete", "mistral")
    assert deleted.returncode == 0
    missing = lisactl(lisa, "models", "get", "mistral")
    assert missing.returncode != 0
    assert missing.stderr.strip().count("\n") == 0, "one-line error"
    assert "does not exist" in missing.stderr

    denied = lisactl(lisa, "models", "list", key="wrong")
    assert denied.returncode != 0 and "401" in denied.stderr


def test_registered_model_survives_restart(upstream, tmp_path):
    data = tmp_path / "data"
    first = Lisa(upstream, data)
    spec = tmp_path / "m.json"
    spec.write_text(json.dumps({"modelId": "kept", "modelName": "kept-upstream", "modelUrl": upstream}))
    assert lisactl(first, "models", "create", "-f", str(spec)).returncode == 0
    assert first.stop() == 0

    second = Lisa(upstream, data, port=first.port)
    try:
        client = openai.OpenAI(base_url=second.url + "/v1", api_key=ADMIN_KEY, max_retries=0)
        answer = client.chat.completions.create(model="kept", messages=[{"role": "user", "content": "still here"}])
        assert answer.choices[0].message.content == "echo: still here"
    finally:
        second.stop()


def test_generated_admin_key_is_printed_once_and_stored_hashed(upstream, tmp_path):
    data = tmp_path / "data"
    first = Lisa(upstream, data, admin_key=None)
    time.sleep(0.2)
    output = first.proc.output()
    keys = [line.strip() for line in output.splitlines() if line.strip().startswith("lisa-admin-")]
    assert len(keys) == 1, output
    key = keys[0]
    client = openai.OpenAI(base_url=first.url + "/v1", api_key=key, max_retries=0)
    assert [m.id for m in client.models.list()][0] == "chat-small"
    assert first.stop() == 0
    files = [path for path in data.rglob("*") if path.is_file()]
    assert files, "the data directory holds the state"
    for path in files:
        assert key.encode() not in path.read_bytes(), f"{path.name} holds the key in clear"

    second = Lisa(upstream, data, admin_key=None, port=first.port)
    try:
        time.sleep(0.2)
        assert "lisa-admin-" not in second.proc.output(), "the key is shown only once"
        client = openai.OpenAI(base_url=second.url + "/v1", api_key=key, max_retries=0)
        assert len(client.models.list().data) == 2
    finally:
        second.stop()


def test_sigterm_lets_an_inflight_stream_finish(lisa):
    client = openai.OpenAI(base_url=lisa.url + "/v1", api_key=ADMIN_KEY, max_retries=0)
    words = " ".join(f"w{i}" for i in range(40))  # about 1.2 s of streaming
    received = []
    stream = client.chat.completions.create(model="chat-small", messages=[{"role": "user", "content": words}], stream=True)
    first = next(iter(stream))
    received.append(first.choices[0].delta.content or "")
    stopper = threading.Thread(target=lambda: lisa.proc.process.send_signal(signal.SIGTERM))
    stopper.start()
    for chunk in stream:
        if chunk.choices:
            received.append(chunk.choices[0].delta.content or "")
    stopper.join()
    assert "".join(received) == "echo: " + words
    assert lisa.proc.process.wait(15) == 0


def test_a_grace_period_that_cuts_streams_ends_them_with_an_error_event(upstream, tmp_path):
    """Streams still open when the shutdown grace runs out get the SSE error event, not a bare close."""
    import httpx
    lisa = Lisa(upstream, tmp_path / "data", extra_config="""
  - modelId: slowpoke
    modelName: slow
    modelType: textgen
    modelUrl: {upstream}
server:
  shutdownGracePeriodSeconds: 2
""".format(upstream=upstream))
    body = {"model": "slowpoke", "stream": True, "messages": [{"role": "user", "content": " ".join(f"w{i}" for i in range(40))}]}
    results, started = {}, threading.Barrier(6)

    def stream(index):
        lines = []
        with httpx.stream("POST", lisa.url + "/v1/chat/completions", json=body, timeout=60,
                          headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as response:
            iterator = response.iter_lines()
            for line in iterator:
                lines.append(line)
                if line.startswith("data: {"):
                    break
            started.wait(30)
            try:
                for line in iterator:
                    lines.append(line)
            except httpx.HTTPError as error:
                lines.append(f"closed: {error}")
        results[index] = lines

    threads = [threading.Thread(target=stream, args=(index,)) for index in range(5)]
    for thread in threads:
        thread.start()
    started.wait(30)  # every stream has its first chunk; each would take about 20 s more
    cut = time.monotonic()
    lisa.proc.process.send_signal(signal.SIGTERM)
    for thread in threads:
        thread.join(30)
    assert lisa.proc.process.wait(30) == 0
    assert time.monotonic() - cut < 15, "the grace period bounds the shutdown"
    for index in range(5):
        lines = results[index]
        assert "event: error" in lines, lines[-3:]
        assert "data: [DONE]" not in lines
        (error,) = [json.loads(line[len("data: "):]) for line in lines if line.startswith("data: {\"error\"")]
        assert "shutting down" in error["error"]["message"]


def test_lisactl_tokens_and_the_openai_sdk_with_a_token(lisa):
    created = lisactl(lisa, "--output", "json", "tokens", "create", "--name", "ci", "--user", "alice", "--group", "team-a")
    assert created.returncode == 0, created.stderr
    token = json.loads(created.stdout)
    secret, token_id = token["token"], token["tokenInfo"]["id"]
    assert secret.startswith("lisa_")

    client = openai.OpenAI(base_url=lisa.url + "/v1", api_key=secret, max_retries=0)
    assert client.chat.completions.create(model="chat-small", messages=[{"role": "user", "content": "as alice"}]).choices[0].message.content == "echo: as alice"
    listed_by_user = lisactl(lisa, "--output", "json", "models", "list", key=secret)
    assert listed_by_user.returncode == 0, listed_by_user.stderr
    seen = {m["modelId"]: m for m in json.loads(listed_by_user.stdout)}
    assert "chat-small" in seen and seen["chat-small"]["status"] == "InService"
    assert "modelUrl" not in seen["chat-small"] and seen["chat-small"].get("endpoints", []) == [], "no upstream address for users"
    assert all(e["url"] == "" for e in seen["chat-small"]["endpointStatus"])
    created_by_user = lisactl(lisa, "models", "get", "chat-small", key=secret)
    assert created_by_user.returncode != 0 and "403" in created_by_user.stderr, "a user token cannot manage models"

    listed = lisactl(lisa, "tokens", "list")
    assert listed.returncode == 0 and token_id in listed.stdout and secret not in listed.stdout
    assert lisactl(lisa, "tokens", "revoke", token_id).returncode == 0
    try:
        client.models.list()
        raise AssertionError("a revoked token must not work")
    except openai.AuthenticationError:
        pass


def test_admin_key_rotation_with_grace_period(upstream, tmp_path):
    data = tmp_path / "data"
    server = Lisa(upstream, data, admin_key=None)
    try:
        time.sleep(0.2)
        old = next(line.strip() for line in server.proc.output().splitlines() if line.strip().startswith("lisa-admin-"))
        rotated = lisactl(server, "--output", "json", "admin", "rotate-key", "--grace-period-seconds", "1", key=old)
        assert rotated.returncode == 0, rotated.stderr
        new = json.loads(rotated.stdout)["adminKey"]
        assert new != old
        assert lisactl(server, "models", "list", key=new).returncode == 0
        assert lisactl(server, "models", "list", key=old).returncode == 0, "the old key works during the grace period"
        time.sleep(1.5)
        expired = lisactl(server, "models", "list", key=old)
        assert expired.returncode != 0 and "401" in expired.stderr
    finally:
        server.stop()
    restarted = Lisa(upstream, data, admin_key=None, port=server.port)
    try:
        assert lisactl(restarted, "models", "list", key=new).returncode == 0, "the new key survives a restart"
        assert lisactl(restarted, "models", "list", key=old).returncode != 0
    finally:
        restarted.stop()


def test_version_and_check_config(tmp_path, lisa):
    import subprocess
    from conftest import BIN
    for binary in ("LISAServe", "lisactl"):
        version = subprocess.run([str(BIN / binary), "--version"], capture_output=True, text=True, timeout=30)
        assert version.returncode == 0 and version.stdout.strip(), version.stderr
    good = tmp_path / "good.yaml"
    good.write_text("models:\n  - {modelId: a, modelName: a, modelUrl: 'http://127.0.0.1:9/v1', inferenceContainer: vllm}\n")
    checked = subprocess.run([str(BIN / "LISAServe"), "--check-config", "--config", str(good)], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0 and "configuration OK: 1 models" in checked.stdout, checked.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  - {modelId: a, modelName: a, modelUrl: 'http://127.0.0.1:9/v1', inferenceContainer: vlm}\n")
    refused = subprocess.run([str(BIN / "LISAServe"), "--check-config", "--config", str(bad)], capture_output=True, text=True, timeout=30)
    assert refused.returncode != 0 and "inferenceContainer must be one of" in refused.stderr and "'vlm'" in refused.stderr
    # The API validates the same way.
    import urllib.request, urllib.error
    request = urllib.request.Request(lisa.url + "/models", method="POST", data=json.dumps(
        {"modelId": "typo", "modelName": "t", "modelUrl": "http://127.0.0.1:9/v1", "inferenceContainer": "vlm"}).encode(),
        headers={"Authorization": f"Bearer {ADMIN_KEY}", "Content-Type": "application/json"})
    try:
        urllib.request.urlopen(request, timeout=10)
        raise AssertionError("an unknown inferenceContainer must be refused")
    except urllib.error.HTTPError as error:
        assert error.code == 400 and json.loads(error.read())["error"]["param"] == "inferenceContainer"


def test_head_probes_and_request_ids(lisa):
    """Load balancers probe with HEAD; every answer carries a fixed-width request id."""
    import re
    import urllib.request
    for path in ("/", "/health", "/health/liveliness", "/health/readiness"):
        with urllib.request.urlopen(urllib.request.Request(lisa.url + path, method="HEAD"), timeout=10) as response:
            assert response.status == 200 and response.read() == b"", path
    ids = set()
    for _ in range(50):
        with urllib.request.urlopen(lisa.url + "/health", timeout=10) as response:
            ids.add(response.headers["X-Request-Id"])
    assert len(ids) == 50 and all(re.fullmatch(r"req-[0-9a-f]{24}", value) for value in ids), sorted(ids)[:3]


def test_a_sqlite_file_another_process_holds_fails_the_start_within_seconds(tmp_path):
    """Not a busy loop: SQLite's busy timeout is set before anything else, and the message says why."""
    import sqlite3
    import subprocess
    import time
    from conftest import BIN
    data = tmp_path / "data"
    data.mkdir()
    holder = sqlite3.connect(str(data / "lisa.sqlite"), isolation_level=None, check_same_thread=False)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("CREATE TABLE IF NOT EXISTS t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("INSERT INTO t VALUES (1)")
    try:
        started = time.time()
        env = {"LISA_ADMIN_KEY": "0123456789abcdef0123", "PATH": "/usr/bin:/bin"}
        result = subprocess.run([str(BIN / "LISAServe"), "--port", "0", "--data-dir", str(data)], env=env,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 78, (result.returncode, result.stderr[-500:])
        assert "another process holds the SQLite database" in result.stderr
        assert time.time() - started < 45
    finally:
        holder.close()


def test_model_test_and_health(lisa):
    """GET /models/{id}/test sends a minimal real request; health says when no endpoint can take one."""
    from conftest import api, free_port
    ok = lisactl(lisa, "models", "test", "chat-small")
    assert ok.returncode == 0 and "chat-small: ok (chat," in ok.stdout, ok.stdout + ok.stderr
    embedded = lisactl(lisa, "--output", "json", "models", "test", "embedder")
    result = json.loads(embedded.stdout)
    assert embedded.returncode == 0 and result["ok"] is True and result["request"] == "embeddings" and result["latencyMilliseconds"] > 0
    listed = lisactl(lisa, "models", "list")
    assert "HEALTH" in listed.stdout and "healthy" in listed.stdout

    dead = f"http://127.0.0.1:{free_port()}/v1"
    code, _ = api(lisa, "POST", "/models", {"modelId": "dead", "modelName": "echo", "modelUrl": dead})
    assert code == 201
    failed = lisactl(lisa, "models", "test", "dead")
    assert failed.returncode == 1 and "dead: failed after" in failed.stdout, failed.stdout + failed.stderr
    for _ in range(10):
        code, model = api(lisa, "GET", "/models/dead")
        if model["health"] == "down":
            break
        lisactl(lisa, "models", "test", "dead")
    assert model["health"] == "down", model["endpointStatus"]
    got = lisactl(lisa, "models", "get", "dead")
    assert "health" in got.stdout and "down" in got.stdout
    assert api(lisa, "GET", "/models/nope/test")[0] == 404
