"""The embedding examples: an app of one's own that mounts LISA's routes through LISARuntime
(Examples/EmbedInHummingbird) or serves them from Vapor with LISAKit alone
(Examples/EmbedInVapor), chatting through each with the openai SDK."""
import os
import subprocess

import openai
import pytest
from openai import OpenAI

from conftest import BIN, Process, free_port, wait_healthy


def test_an_app_that_embeds_lisa_serves_its_own_routes_and_lisas(upstream, tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LISA_")}
    env.update({"UPSTREAM_URL": upstream, "UPSTREAM_MODEL": "echo", "PORT": str(port),
                "LISA_ADMIN_KEY": "embed-admin-key-0123456789", "LISA_DATA_DIR": str(tmp_path / "state")})
    app = Process([str(BIN / "EmbedInHummingbird")], env=env, log=tmp_path / "app.log")
    try:
        wait_healthy(f"http://127.0.0.1:{port}/health", app.process)
        hello = subprocess.run(["curl", "-sS", f"http://127.0.0.1:{port}/hello"], capture_output=True, text=True, timeout=10)
        assert hello.stdout == "hello from my service"
        # LISA's middleware stays on LISA's routes: the app's own answers and 404s are its own.
        own = subprocess.run(["curl", "-sS", "-i", f"http://127.0.0.1:{port}/hello"], capture_output=True, text=True, timeout=10)
        assert "x-request-id" not in own.stdout.lower(), own.stdout
        missing = subprocess.run(["curl", "-sS", "-w", "\n%{http_code}", f"http://127.0.0.1:{port}/no-such-page"],
                                 capture_output=True, text=True, timeout=10)
        assert missing.stdout.endswith("404") and "invalid_request_error" not in missing.stdout, missing.stdout
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="embed-admin-key-0123456789", max_retries=0)
        assert [m.id for m in client.models.list()] == ["assistant"]
        answer = client.chat.completions.create(model="assistant", messages=[{"role": "user", "content": "hi there"}])
        assert answer.choices[0].message.content == "echo: hi there"
    finally:
        assert app.stop() == 0, app.output()


def test_a_vapor_app_serves_lisa_with_lisakit_alone(upstream, tmp_path):
    binary = BIN / "EmbedInVapor"
    if not binary.exists():
        if os.environ.get("LISA_VAPOR_EXAMPLE"):
            pytest.fail("EmbedInVapor was not built although LISA_VAPOR_EXAMPLE is set")
        pytest.skip("build with LISA_VAPOR_EXAMPLE=1 to compile Examples/EmbedInVapor")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LISA_")}
    env.update({"UPSTREAM_URL": upstream, "UPSTREAM_MODEL": "echo", "PORT": str(port),
                "LISA_ADMIN_KEY": "vapor-admin-key-0123456789", "LISA_DATA_DIR": str(tmp_path / "state")})
    app = Process([str(binary)], env=env, log=tmp_path / "vapor.log")
    try:
        wait_healthy(f"http://127.0.0.1:{port}/hello", app.process)
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="vapor-admin-key-0123456789", max_retries=0)
        assert [m.id for m in client.models.list()] == ["assistant"]
        answer = client.chat.completions.create(model="assistant", messages=[{"role": "user", "content": "hi vapor"}])
        assert answer.choices[0].message.content == "echo: hi vapor"
        stream = client.chat.completions.create(model="assistant", stream=True,
                                                messages=[{"role": "user", "content": "one two three"}])
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "echo: one two three"
        with pytest.raises(openai.NotFoundError) as missing:
            client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
        assert missing.value.body["code"] == "model_not_found"
        stranger = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="wrong-key", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            stranger.models.list()
    finally:
        assert app.stop() == 0, app.output()


def test_a_script_calls_a_model_in_process_with_no_server(upstream, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LISA_")}
    env.update({"UPSTREAM_URL": upstream, "UPSTREAM_MODEL": "echo", "LISA_DATA_DIR": str(tmp_path / "state")})
    run = subprocess.run([str(BIN / "InProcess"), "why", "blue"], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "answer: echo: why blue" in run.stdout and "stream: echo: why blue" in run.stdout, run.stdout
