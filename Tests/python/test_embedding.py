"""The embedding example (Examples/EmbedInHummingbird): an app of one's own that mounts
LISA's routes through LISARuntime, chatting through it with the openai SDK."""
import os
import subprocess

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
