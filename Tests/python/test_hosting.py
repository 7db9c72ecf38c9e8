"""Hosted models with real processes: LISAServe launches lisa-fake-upstream replicas,
supervises, autoscales, stops and deletes them; survives SIGKILL mid-workflow; and two
LISAServe replicas share one PostgreSQL database."""
import concurrent.futures
import json
import os
import signal
import subprocess
import time
import uuid

import pytest
from openai import OpenAI

from conftest import ADMIN_KEY, BIN, ROOT, Lisa, lisactl
from conftest import api as request


def hosted(model_id, minimum=1, maximum=1, target=2, cooldown=60, model_name="echo", command=None):
    return {
        "modelId": model_id, "modelName": model_name, "modelType": "textgen", "inferenceContainer": "openai",
        "hostingType": "lisa_hosted",
        "launch": {"command": command or f"{BIN / 'lisa-fake-upstream'} --port {{port}} --chunk-delay-ms 5 --slow-delay-ms 3000",
                   "startupTimeoutSeconds": 30, "drainTimeoutSeconds": 10, "stopTimeoutSeconds": 5},
        "autoScalingConfig": {"minCapacity": minimum, "maxCapacity": maximum, "cooldown": cooldown,
                              "metricConfig": {"targetValue": target}},
    }


def wait_for(predicate, timeout=30, interval=0.2, what="condition"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what} not reached within {timeout}s (last: {last})")


def status(lisa, model_id):
    code, body = request(lisa, "GET", f"/models/{model_id}")
    return body if code == 200 else None


def replica_processes(model_id):
    """Live processes LISA launched for `model_id`, found by their environment."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as handle:
                environment = dict(item.split(b"=", 1) for item in handle.read().split(b"\0") if b"=" in item)
            with open(f"/proc/{entry}/stat") as handle:
                state = handle.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if environment.get(b"LISA_MODEL_ID") == model_id.encode() and state != "Z":
            found.append(int(entry))
    return found


def chat(lisa, model, text="hello"):
    client = OpenAI(base_url=lisa.url + "/v1", api_key=ADMIN_KEY, max_retries=0)
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}]).choices[0].message.content


def test_hosted_model_lifecycle_with_real_processes(upstream, tmp_path):
    lisa = Lisa(upstream, tmp_path / "data")
    try:
        spec = tmp_path / "model.json"
        spec.write_text(json.dumps(hosted("fake-hosted", minimum=2, maximum=2)))
        created = lisactl(lisa, "models", "create", "-f", str(spec), "--wait")
        assert created.returncode == 0, created.stderr
        assert "fake-hosted: Creating" in created.stdout and "fake-hosted: InService" in created.stdout

        model = status(lisa, "fake-hosted")
        assert model["status"] == "InService"
        assert [r["state"] for r in model["replicas"]] == ["ready", "ready"]
        assert len(replica_processes("fake-hosted")) == 2
        for pid in replica_processes("fake-hosted"):
            with open(f"/proc/{pid}/environ", "rb") as handle:
                environment = handle.read()
            assert b"LISA_REPLICA_ID=" in environment and ADMIN_KEY.encode() not in environment, "LISAServe's secrets stay out"
        assert chat(lisa, "fake-hosted", "through a replica") == "echo: through a replica"

        # Kill one replica: traffic keeps flowing, and the replica comes back with a new process.
        victim = model["replicas"][0]
        os.kill(int(victim["handle"]), signal.SIGKILL)
        for i in range(20):
            assert chat(lisa, "fake-hosted", f"during restart {i}") == f"echo: during restart {i}"
            time.sleep(0.1)

        def restarted():
            replicas = {r["replicaId"]: r for r in status(lisa, "fake-hosted")["replicas"]}
            again = replicas.get(victim["replicaId"])
            return again and again["state"] == "ready" and again["restarts"] == 1 and again["handle"] != victim["handle"]
        wait_for(restarted, what="the killed replica restarted")
        assert len(replica_processes("fake-hosted")) == 2

        logs = lisactl(lisa, "models", "logs", "fake-hosted", "--tail", "20")
        assert logs.returncode == 0 and "lisa-fake-upstream listening" in logs.stdout and "LISA: starting replica" in logs.stdout

        # An illegal request names the current status.
        code, body = request(lisa, "PUT", "/models/fake-hosted", {"enabled": True})
        assert code == 409 and "InService" in body["error"]["message"]
        code, body = request(lisa, "PUT", "/models/fake-hosted", {"enabled": False, "streaming": False})
        assert code == 400

        stopped = lisactl(lisa, "models", "stop", "fake-hosted", "--wait")
        assert stopped.returncode == 0, stopped.stderr
        assert "fake-hosted: Stopped" in stopped.stdout
        assert replica_processes("fake-hosted") == []
        client = OpenAI(base_url=lisa.url + "/v1", api_key=ADMIN_KEY, max_retries=0)
        with pytest.raises(Exception) as refused:
            client.chat.completions.create(model="fake-hosted", messages=[{"role": "user", "content": "x"}])
        assert getattr(refused.value, "status_code", None) == 503 and "Stopped" in str(refused.value)

        started = lisactl(lisa, "models", "start", "fake-hosted", "--wait")
        assert started.returncode == 0 and "fake-hosted: InService" in started.stdout, started.stdout + started.stderr
        assert chat(lisa, "fake-hosted", "after start") == "echo: after start"

        deleted = lisactl(lisa, "models", "delete", "fake-hosted", "--wait")
        assert deleted.returncode == 0 and "deleted model fake-hosted" in deleted.stdout, deleted.stdout + deleted.stderr
        assert replica_processes("fake-hosted") == []
        assert request(lisa, "GET", "/models/fake-hosted")[0] == 404
    finally:
        lisa.stop()
    assert replica_processes("fake-hosted") == []


def test_a_replica_that_cannot_start_fails_the_model_with_its_reason(upstream, tmp_path):
    lisa = Lisa(upstream, tmp_path / "data")
    try:
        spec = tmp_path / "broken.json"
        spec.write_text(json.dumps(hosted("broken", command="/bin/sh -c 'echo cannot load weights >&2; exit 3' {port}")))
        created = lisactl(lisa, "models", "create", "-f", str(spec), "--wait")
        assert created.returncode == 1
        assert "exited with status 3" in created.stderr and "cannot load weights" in created.stderr
        model = status(lisa, "broken")
        assert model["status"] == "Failed" and "cannot load weights" in model["statusReason"]
        assert replica_processes("broken") == []
        assert request(lisa, "DELETE", "/models/broken")[0] == 200
        wait_for(lambda: status(lisa, "broken") is None, what="the failed model deleted")
    finally:
        lisa.stop()


def test_autoscaling_follows_in_flight_requests(upstream, tmp_path):
    lisa = Lisa(upstream, tmp_path / "data")
    try:
        code, body = request(lisa, "POST", "/models", hosted("scaled", minimum=1, maximum=3, target=2, cooldown=3, model_name="slow"))
        assert code == 201, body
        wait_for(lambda: status(lisa, "scaled")["status"] == "InService", what="InService")
        assert len(status(lisa, "scaled")["replicas"]) == 1

        # Six requests of 3 s each with a target of 2 per replica: three replicas wanted.
        def ready_count():
            return sum(1 for r in status(lisa, "scaled")["replicas"] if r["state"] == "ready")

        peak = 0
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            futures = [pool.submit(chat, lisa, "scaled", f"load {i}") for i in range(6)]
            deadline = time.time() + 10
            while time.time() < deadline and peak < 3:
                peak = max(peak, ready_count())
                time.sleep(0.2)
            answers = [f.result(timeout=30) for f in futures]
        assert answers == [f"echo: load {i}" for i in range(6)]
        assert peak == 3, f"scaled out to {peak}"
        assert status(lisa, "scaled")["autoScalingConfig"]["desiredCapacity"] == 3

        # Idle for a cooldown: back to the minimum, the extra replicas drained and stopped.
        wait_for(lambda: len(status(lisa, "scaled")["replicas"]) == 1, timeout=20, what="scaled back in")
        wait_for(lambda: len(replica_processes("scaled")) == 1, timeout=10, what="extra processes stopped")
        assert chat(lisa, "scaled", "after scale-in") == "echo: after scale-in"
        request(lisa, "DELETE", "/models/scaled")
        wait_for(lambda: replica_processes("scaled") == [], what="replicas stopped on delete")
    finally:
        lisa.stop()


def test_sigkill_mid_create_and_mid_delete_converges_without_orphans(upstream, tmp_path):
    data = tmp_path / "data"
    lisa = Lisa(upstream, data)
    code, body = request(lisa, "POST", "/models", hosted("crashy", minimum=2, maximum=2))
    assert code == 201 and body["status"] == "Creating"
    time.sleep(0.3)  # replicas are being launched
    lisa.stop(signal.SIGKILL)

    lisa = Lisa(upstream, data, port=lisa.port)
    try:
        wait_for(lambda: status(lisa, "crashy")["status"] == "InService", what="InService after the restart")
        wait_for(lambda: len(replica_processes("crashy")) == 2, timeout=10, what="exactly two replica processes")
        time.sleep(1.5)
        assert len(replica_processes("crashy")) == 2, "no orphan from the interrupted create"
        assert chat(lisa, "crashy", "converged") == "echo: converged"

        code, body = request(lisa, "DELETE", "/models/crashy")
        assert code == 200 and body["status"] == "Deleting"
        lisa.stop(signal.SIGKILL)
    finally:
        lisa.stop()

    lisa = Lisa(upstream, data, port=lisa.port)
    try:
        wait_for(lambda: status(lisa, "crashy") is None, what="the delete finished after the restart")
        wait_for(lambda: replica_processes("crashy") == [], timeout=10, what="no replica process left")
    finally:
        lisa.stop()


@pytest.mark.skipif(not os.environ.get("LISA_TEST_DATABASE_URL"), reason="needs PostgreSQL (the README test command starts one)")
def test_two_lisaserve_replicas_share_one_postgresql(upstream, tmp_path):
    name = "lisa_py_" + uuid.uuid4().hex[:10]
    url = subprocess.run([str(ROOT / "scripts" / "postgres.sh"), "createdb", name], capture_output=True, text=True,
                         check=True).stdout.strip()
    env = {"LISA_DATABASE_URL": url}
    first = Lisa(upstream, tmp_path / "a", extra_env=env)
    second = Lisa(upstream, tmp_path / "b", extra_env=env)
    try:
        # A model created on one replica is served by the other within a second.
        started = time.time()
        code, _ = request(first, "POST", "/models", {"modelId": "shared", "modelName": "echo", "modelUrl": upstream})
        assert code == 201
        wait_for(lambda: any(m.id == "shared" for m in OpenAI(base_url=second.url + "/v1", api_key=ADMIN_KEY).models.list().data),
                 timeout=1.0, interval=0.02, what="the model visible on the other replica")
        assert time.time() - started < 1.0
        assert chat(second, "shared", "via the other replica") == "echo: via the other replica"

        # A token created on one works on the other; revoked on one, refused by the other at once.
        token = json.loads(lisactl(first, "--output", "json", "tokens", "create", "--name", "t").stdout)
        user_client = OpenAI(base_url=second.url + "/v1", api_key=token["token"], max_retries=0)
        assert user_client.models.list().data
        assert lisactl(first, "tokens", "revoke", token["tokenInfo"]["id"]).returncode == 0
        with pytest.raises(Exception) as refused:
            user_client.models.list()
        assert getattr(refused.value, "status_code", None) == 401

        # Stopping on one stops routing on both.
        code, _ = request(second, "PUT", "/models/shared", {"enabled": False})
        assert code == 200
        wait_for(lambda: status(first, "shared")["status"] == "Stopped", timeout=5, what="Stopped seen by the first")

        # A hosted model: launched by whichever replica leads; both route to it.
        code, _ = request(second, "POST", "/models", hosted("shared-hosted"))
        assert code == 201
        wait_for(lambda: status(first, "shared-hosted")["status"] == "InService", what="hosted InService")
        wait_for(lambda: (status(second, "shared-hosted") or {}).get("status") == "InService", timeout=2, what="seen by the second")
        assert chat(first, "shared-hosted", "one") == "echo: one" and chat(second, "shared-hosted", "two") == "echo: two"
        pids = replica_processes("shared-hosted")
        assert len(pids) == 1

        # Kill the leader (the first started first): the second takes the workflows over,
        # adopts the running replica, and carries out new ones.
        first.stop(signal.SIGKILL)
        code, _ = request(second, "POST", "/models", hosted("after-failover"))
        assert code == 201
        wait_for(lambda: status(second, "after-failover")["status"] == "InService", timeout=30, what="new leader launched a model")
        assert replica_processes("shared-hosted") == pids, "the running replica was adopted, not restarted"
        assert chat(second, "after-failover", "new leader") == "echo: new leader"
        for model in ("shared-hosted", "after-failover"):
            request(second, "DELETE", f"/models/{model}")
        wait_for(lambda: replica_processes("shared-hosted") == [] and replica_processes("after-failover") == [],
                 what="replicas stopped")
    finally:
        first.stop()
        second.stop()
