"""Fail-over across real upstream processes: one is killed mid-run and no client sees an error."""
import signal
import threading
import time

import openai

from conftest import ADMIN_KEY, BIN, Lisa, Process, free_port, lisactl, wait_healthy


def test_killing_one_of_three_upstreams_mid_run_is_invisible(tmp_path):
    upstreams = []
    for index in range(3):
        port = free_port()
        proc = Process([str(BIN / "lisa-fake-upstream"), "--port", str(port)], log=tmp_path / f"up{index}.log")
        wait_healthy(f"http://127.0.0.1:{port}/health", proc.process)
        upstreams.append((port, proc))
    lisa = Lisa(f"http://127.0.0.1:{upstreams[0][0]}/v1", tmp_path / "data")
    try:
        spec = tmp_path / "pool.yaml"
        spec.write_text("modelId: pool\nmodelName: pooled\nendpoints:\n" + "".join(
            f"  - url: http://127.0.0.1:{port}/v1\n" for port, _ in upstreams))
        assert lisactl(lisa, "models", "create", "-f", str(spec)).returncode == 0

        client = openai.OpenAI(base_url=lisa.url + "/v1", api_key=ADMIN_KEY, max_retries=0)
        errors, successes = [], []
        stop = time.time() + 3.0

        def worker(n):
            while time.time() < stop:
                try:
                    answer = client.chat.completions.create(model="pool", messages=[{"role": "user", "content": f"w{n}"}])
                    assert answer.choices[0].message.content == f"echo: w{n}"
                    successes.append(1)
                except Exception as error:  # noqa: BLE001 - every failure is a finding
                    errors.append(repr(error))

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        upstreams[1][1].stop(signal.SIGKILL)  # a replica dies mid-run
        for thread in threads:
            thread.join()
        assert errors == [], errors[:5]
        assert len(successes) > 100

        shown = lisactl(lisa, "--output", "json", "models", "get", "pool")
        assert shown.returncode == 0, shown.stderr
        import json
        status = json.loads(shown.stdout)["endpointStatus"]
        assert status[1]["circuit"] in ("open", "half_open"), status
        assert all(s["inFlight"] == 0 for s in status)
    finally:
        lisa.stop()
        for _, proc in upstreams:
            proc.stop()
