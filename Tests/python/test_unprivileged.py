"""LISAServe run as an unprivileged user, as the systemd unit and the container image run it."""
import os
import pathlib
import shutil
import subprocess
import tempfile

import pytest
import openai
from openai import OpenAI

from conftest import ADMIN_KEY, BIN, free_port, wait_healthy

NOBODY = 65534


def reachable_binary(home: pathlib.Path) -> pathlib.Path:
    """LISAServe where `nobody` can run it: the checkout may lie under a directory closed to
    other users (a clone under `mktemp -d`), so it is linked, or else copied, into `home`."""
    target = home / "LISAServe"
    try:
        os.link(BIN / "LISAServe", target)
    except OSError:
        shutil.copy2(BIN / "LISAServe", target)
    os.chmod(target, 0o755)
    return target


@pytest.mark.skipif(os.geteuid() != 0, reason="starting LISAServe as another user needs root (as non-root every test runs it unprivileged)")
def test_unprivileged_lisaserve_reaches_its_upstream(upstream):
    # Not under pytest's tmp_path: its parents are closed to other users.
    home = pathlib.Path(tempfile.mkdtemp(prefix="lisa-unprivileged-"))
    try:
        os.chmod(home, 0o755)
        config = home / "lisa.yaml"
        config.write_text(f"""
models:
  - modelId: chat-small
    modelName: Qwen/Qwen2.5-0.5B-Instruct
    modelType: textgen
    inferenceContainer: vllm
    modelUrl: {upstream}
""")
        data = home / "data"
        data.mkdir()
        os.chown(data, NOBODY, NOBODY)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("LISA_")}
        env.update(LISA_ADMIN_KEY=ADMIN_KEY, HOME=str(data))
        with open(home / "lisa.log", "wb") as log:
            process = subprocess.Popen([str(reachable_binary(home)), "--config", str(config), "--port", str(port), "--data-dir", str(data)],
                                       env=env, stdout=log, stderr=subprocess.STDOUT, user=NOBODY, group=NOBODY, extra_groups=[])
        try:
            wait_healthy(f"http://127.0.0.1:{port}/health", process)
            client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=ADMIN_KEY, max_retries=0)
            try:
                answer = client.chat.completions.create(model="chat-small", messages=[{"role": "user", "content": "hi"}])
            except openai.APIStatusError as error:
                pytest.fail(f"{error}\n{(home / 'lisa.log').read_text()[-2000:]}")
            assert answer.choices[0].message.content == "echo: hi"
        finally:
            process.terminate()
            process.wait(timeout=15)
    finally:
        shutil.rmtree(home, ignore_errors=True)
