"""Several LISAServe replicas on one PostgreSQL when PostgreSQL fails: restarts and outages.

Each test runs its own PostgreSQL instance (scripts/postgres.sh on a port of its own), so it
can restart and stop it without touching the instance the other tests share."""
import concurrent.futures
import json
import signal
import os
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest
from openai import OpenAI

from conftest import ADMIN_KEY, ROOT, Lisa, free_port, lisactl
from conftest import api as request
from test_hosting import hosted, replica_processes, status, wait_for

pytestmark = pytest.mark.skipif(not os.environ.get("LISA_TEST_DATABASE_URL"),
                                reason="needs PostgreSQL (the README test command starts one)")


class Postgres:
    """A PostgreSQL instance of the test's own (its data in /tmp/lisa-pg-PORT)."""

    def __init__(self):
        self.port = free_port()
        self.directory = f"/tmp/lisa-pg-{self.port}"
        self.env = {k: v for k, v in os.environ.items() if k != "LISA_PG_DATA"}
        self.env["LISA_PG_PORT"] = str(self.port)
        self.url = self._run("start")

    def _run(self, *args):
        return subprocess.run([str(ROOT / "scripts" / "postgres.sh"), *args], env=self.env, capture_output=True, text=True,
                              check=True, timeout=120).stdout.strip()

    def restart(self):
        self._run("restart")

    def stop(self):
        self._run("stop")

    def start(self):
        self._run("start")


@pytest.fixture
def postgres():
    server = Postgres()
    yield server
    server.stop()
    shutil.rmtree(server.directory, ignore_errors=True)


def readiness(lisa):
    try:
        with urllib.request.urlopen(lisa.url + "/health/readiness", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def leaders(replicas):
    return [lisa for lisa in replicas if readiness(lisa)[1]["leader"]]


def test_a_postgresql_restart_under_a_running_controller_leaves_one_leader(upstream, postgres, tmp_path):
    env = {"LISA_DATABASE_URL": postgres.url + "&call_timeout=3&leader_lease=6"}
    first = Lisa(upstream, tmp_path / "a", extra_env=env)
    second = Lisa(upstream, tmp_path / "b", extra_env=env)
    replicas = [first, second]
    try:
        code, _ = request(first, "POST", "/models", hosted("fenced", minimum=1, maximum=1))
        assert code == 201
        wait_for(lambda: (status(first, "fenced") or {}).get("status") == "InService", timeout=60, what="hosted InService")
        assert len(leaders(replicas)) == 1
        assert len(replica_processes("fenced")) == 1

        for attempt in range(3):
            postgres.restart()
            # Watch both replicas for a while: never two leaders, never two replica processes.
            most_leaders, most_processes, seen_leader = 0, 0, False
            deadline = time.time() + 20
            while time.time() < deadline:
                now_leading = len(leaders(replicas))
                most_leaders = max(most_leaders, now_leading)
                most_processes = max(most_processes, len(replica_processes("fenced")))
                seen_leader = seen_leader or now_leading == 1
                if seen_leader and time.time() > deadline - 12:
                    break
                time.sleep(0.1)
            assert most_leaders <= 1, f"restart {attempt}: two replicas ran the controller at once"
            assert most_processes <= 1, f"restart {attempt}: a second replica process was launched"
            wait_for(lambda: len(leaders(replicas)) == 1, timeout=30, what=f"one leader after restart {attempt}")
            wait_for(lambda: (status(second, "fenced") or {}).get("status") == "InService", timeout=30,
                     what=f"InService after restart {attempt}")
            assert len(replica_processes("fenced")) == 1

        request(first, "DELETE", "/models/fenced")
        wait_for(lambda: replica_processes("fenced") == [], timeout=60, what="replica stopped")
    finally:
        for lisa in replicas:
            started = time.time()
            lisa.stop()
            assert time.time() - started < 40, "SIGTERM stops LISAServe"


def test_through_a_database_outage_tokens_keep_working_and_the_rest_fails_fast(upstream, postgres, tmp_path):
    env = {"LISA_DATABASE_URL": postgres.url + "&call_timeout=6"}
    lisa = Lisa(upstream, tmp_path / "a", extra_env=env, extra_config="auth:\n  tokenCacheSeconds: 1\n")
    try:
        token = json.loads(lisactl(lisa, "--output", "json", "tokens", "create", "--name", "outage").stdout)["token"]
        client = OpenAI(base_url=lisa.url + "/v1", api_key=token, max_retries=0, timeout=20)
        ask = lambda text: client.chat.completions.create(
            model="chat-small", messages=[{"role": "user", "content": text}]).choices[0].message.content
        assert ask("before") == "echo: before"
        assert readiness(lisa)[0] == 200

        postgres.stop()
        time.sleep(1.5)  # past tokenCacheSeconds: the cached token is stale and the store is down
        started = time.time()
        assert ask("during the outage") == "echo: during the outage"
        # Neither the token lookup nor the rate limit waits out the 6 s call deadline (both would: 12 s).
        assert time.time() - started < 8
        started = time.time()
        for index in range(3):
            assert ask(f"still {index}") == f"echo: still {index}"
        assert time.time() - started < 8, "once the store is known to be down, nothing waits for it"

        started = time.time()
        code, body = request(lisa, "POST", "/api-tokens", {"name": "cannot"})
        assert code == 503 and body["error"]["code"] == "state_store_unavailable", body
        code, body = request(lisa, "POST", "/models", {"modelId": "x", "modelName": "echo", "modelUrl": upstream})
        assert code == 503 and body["error"]["code"] == "state_store_unavailable", body
        assert time.time() - started < 20, "each call fails within its deadline"
        code, body = readiness(lisa)
        assert code == 503 and body["status"] == "unavailable" and body["stateStore"] != "ok"
        with urllib.request.urlopen(lisa.url + "/health/liveliness", timeout=5) as response:
            assert response.status == 200, "alive, only not ready"

        postgres.start()
        wait_for(lambda: readiness(lisa)[0] == 200, timeout=30, what="ready again")
        code, _ = request(lisa, "POST", "/models", {"modelId": "after", "modelName": "echo", "modelUrl": upstream})
        assert code == 201
        assert ask("after") == "echo: after"
    finally:
        lisa.stop()


def test_a_short_restart_loses_no_request_and_revocation_stays_immediate_across_replicas(upstream, postgres, tmp_path):
    env = {"LISA_DATABASE_URL": postgres.url}
    config = "rateLimits:\n  enabled: false\n"
    first = Lisa(upstream, tmp_path / "a", extra_env=env, extra_config=config)
    second = Lisa(upstream, tmp_path / "b", extra_env=env, extra_config=config)
    try:
        token = json.loads(lisactl(first, "--output", "json", "tokens", "create", "--name", "load").stdout)
        clients = [OpenAI(base_url=lisa.url + "/v1", api_key=token["token"], max_retries=0, timeout=30) for lisa in (first, second)]
        failures, done = [], []
        stop = threading.Event()

        def load(index):
            client = clients[index % 2]
            count = 0
            while not stop.is_set():
                try:
                    answer = client.chat.completions.create(
                        model="chat-small", messages=[{"role": "user", "content": f"{index}-{count}"}]).choices[0].message.content
                    assert answer == f"echo: {index}-{count}"
                    done.append(1)
                except Exception as error:  # noqa: BLE001 - every failure is reported
                    failures.append(repr(error))
                count += 1

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            workers = [pool.submit(load, index) for index in range(4)]
            wait_for(lambda: len(done) >= 200, timeout=30, what="load running")
            postgres.restart()
            before = len(done)
            wait_for(lambda: len(done) >= before + 400, timeout=60, what="load after the restart")
            stop.set()
            for worker in workers:
                worker.result()
        assert failures == [], failures[:5]
        assert len(done) >= 600

        # The change feed reconnected: a revocation on one replica reaches the other at once
        # (the token is in the second's cache, fresh).
        wait_for(lambda: readiness(second)[0] == 200, timeout=30, what="second ready")
        assert clients[1].models.list().data
        time.sleep(1.5)  # both listeners have re-subscribed after the restart
        assert lisactl(first, "tokens", "revoke", token["tokenInfo"]["id"]).returncode == 0
        started = time.time()

        def refused():
            try:
                clients[1].models.list()
                return False
            except Exception as error:  # noqa: BLE001
                return getattr(error, "status_code", None) == 401
        wait_for(refused, timeout=2, interval=0.02, what="the revoked token refused by the other replica")
        assert time.time() - started < 2
    finally:
        first.stop()
        second.stop()


def test_rate_limits_hold_across_replicas(upstream, postgres, tmp_path):
    env = {"LISA_DATABASE_URL": postgres.url}
    config = "rateLimits:\n  default:\n    requestsPerMinute: 6\n    burst: 3\n"
    first = Lisa(upstream, tmp_path / "a", extra_env=env, extra_config=config)
    second = Lisa(upstream, tmp_path / "b", extra_env=env, extra_config=config)
    try:
        token = json.loads(lisactl(first, "--output", "json", "tokens", "create", "--name", "limited").stdout)["token"]
        clients = [OpenAI(base_url=lisa.url + "/v1", api_key=token, max_retries=0) for lisa in (first, second)]
        allowed, limited = 0, 0
        for index in range(12):
            try:
                clients[index % 2].chat.completions.create(model="chat-small", messages=[{"role": "user", "content": "x"}])
                allowed += 1
            except Exception as error:  # noqa: BLE001
                assert getattr(error, "status_code", None) == 429, error
                assert int(error.response.headers["retry-after"]) >= 1
                limited += 1
        # 12 requests take well under 10 s (the refill of one): the burst of 3, maybe one more.
        assert allowed in (3, 4), (allowed, limited)
        assert allowed + limited == 12
    finally:
        first.stop()
        second.stop()


def test_rag_on_two_replicas_shares_vectors_and_a_job_outlives_its_replica(postgres, tmp_path):
    """Repositories default to pgvector on PostgreSQL state; an upload through a replica
    that is SIGKILLed mid-job is finished, once, by the other."""
    import httpx
    from conftest import BIN, Process, wait_healthy
    port = free_port()
    fake = Process([str(BIN / "lisa-fake-upstream"), "--port", str(port), "--slow-delay-ms", "3000"], log=tmp_path / "fake.log")
    wait_healthy(f"http://127.0.0.1:{port}/health", fake.process)
    upstream = f"http://127.0.0.1:{port}/v1"
    env = {"LISA_DATABASE_URL": postgres.url}
    config = "rag:\n  ingestion:\n    leaseSeconds: 3\n    scanIntervalSeconds: 1\n"
    first = Lisa(upstream, tmp_path / "a", extra_env=env, extra_config=config)
    second = Lisa(upstream, tmp_path / "b", extra_env=env, extra_config=config)

    def call(lisa, method, path, **kwargs):
        with httpx.Client(timeout=60) as client:
            response = client.request(method, lisa.url + path, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, **kwargs)
            return response.status_code, response.json()
    try:
        code, _ = request(first, "POST", "/models", {"modelId": "slow-embed", "modelName": "slow", "modelType": "embedding",
                                                     "inferenceContainer": "tei", "modelUrl": upstream})
        assert code == 201
        wait_for(lambda: status(second, "slow-embed"), timeout=5, what="the model on the second replica")

        code, body = call(first, "POST", "/repository", json={"repositoryId": "shared", "embeddingModelId": "slow-embed"})
        assert code == 201 and body["type"] == "pgvector", body
        code, body = call(first, "POST", "/repository", json={"repositoryId": "local", "type": "embedded",
                                                              "embeddingModelId": "slow-embed"})
        assert code == 400 and body["error"]["param"] == "type" and "data directory" in body["error"]["message"], body

        text = b"Lighthouses guide ships past the rocks at night with a rotating beam of light."
        code, job = call(first, "POST", "/repository/shared/upload", files={"file": ("lighthouse.txt", text)})
        assert code == 202, job
        wait_for(lambda: call(second, "GET", f"/repository/shared/jobs/{job['jobId']}")[1]["status"] == "IN_PROGRESS",
                 timeout=10, interval=0.05, what="the job running on the first replica")
        first.stop(signal.SIGKILL)

        def finished():
            body = call(second, "GET", f"/repository/shared/jobs/{job['jobId']}")[1]
            return body if body["status"] in ("COMPLETED", "FAILED") else None
        done = wait_for(finished, timeout=60, what="the job finished by the second replica")
        assert done["status"] == "COMPLETED", done
        code, documents = call(second, "GET", "/repository/shared/document")
        assert code == 200 and [d["documentName"] for d in documents] == ["lighthouse.txt"], documents
        code, found = call(second, "GET", "/repository/shared/similaritySearch", params={"query": "lighthouse beam", "topK": 3})
        assert code == 200 and found["docs"] and found["docs"][0]["documentName"] == "lighthouse.txt", found

        # The first comes back: it ingests through itself, searches and deletes what the second stored.
        first = Lisa(upstream, tmp_path / "a2", extra_env=env, extra_config=config)
        code, job = call(second, "POST", "/repository/shared/upload", files={"file": ("harbour.txt", b"The harbour master logs every ship.")})
        assert code == 202, job
        wait_for(lambda: call(first, "GET", f"/repository/shared/jobs/{job['jobId']}")[1]["status"] == "COMPLETED", timeout=60,
                 what="the second upload ingested")
        code, documents = call(first, "GET", "/repository/shared/document")
        assert sorted(d["documentName"] for d in documents) == ["harbour.txt", "lighthouse.txt"]
        lighthouse = next(d for d in documents if d["documentName"] == "lighthouse.txt")
        code, _ = call(first, "DELETE", f"/repository/shared/document/{lighthouse['documentId']}")
        assert code == 200
        code, found = call(second, "GET", "/repository/shared/similaritySearch", params={"query": "lighthouse beam", "topK": 3})
        assert code == 200 and [d["documentName"] for d in found["docs"]] == ["harbour.txt"], found
        code, _ = call(second, "DELETE", "/repository/shared")
        assert code == 200
        assert call(first, "GET", "/repository/shared")[0] == 404
    finally:
        first.stop()
        second.stop()
        fake.stop()


def test_a_pgvector_repository_in_a_database_of_its_own_with_sqlite_state(postgres, tmp_path):
    """pgvector.url: vectors in a PostgreSQL of their own while the state is SQLite."""
    import httpx
    from conftest import BIN, Process, wait_healthy
    port = free_port()
    fake = Process([str(BIN / "lisa-fake-upstream"), "--port", str(port)], log=tmp_path / "fake.log")
    wait_healthy(f"http://127.0.0.1:{port}/health", fake.process)
    upstream = f"http://127.0.0.1:{port}/v1"
    lisa = Lisa(upstream, tmp_path / "data")

    def call(method, path, **kwargs):
        with httpx.Client(timeout=60) as client:
            response = client.request(method, lisa.url + path, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, **kwargs)
            return response.status_code, response.json()
    try:
        code, body = call("POST", "/repository", json={"repositoryId": "own", "embeddingModelId": "embedder",
                                                       "pgvector": {"url": postgres.url}})
        assert code == 201 and body["type"] == "pgvector", body
        code, body = call("POST", "/repository", json={"repositoryId": "bad", "type": "pgvector", "embeddingModelId": "embedder",
                                                       "pgvector": {"url": f"postgres://postgres@127.0.0.1:{free_port()}/x"}})
        assert code == 400 and body["error"]["param"] == "pgvector.url" and "cannot" in body["error"]["message"], body
        code, body = call("POST", "/repository", json={"repositoryId": "local", "embeddingModelId": "embedder"})
        assert code == 201 and body["type"] == "embedded", "SQLite state keeps the embedded default"

        code, job = call("POST", "/repository/own/upload", files={"file": ("tides.txt", b"Spring tides follow the full moon.")})
        assert code == 202, job
        wait_for(lambda: call("GET", f"/repository/own/jobs/{job['jobId']}")[1]["status"] == "COMPLETED", timeout=60, what="ingested")
        code, found = call("GET", "/repository/own/similaritySearch", params={"query": "tides", "topK": 1})
        assert code == 200 and found["docs"][0]["documentName"] == "tides.txt", found
        # The vectors are in that database, not in the data directory.
        rows = subprocess_psql(postgres, "SELECT count(*) FROM lisa_vector_collections")
        assert rows.strip() == "1", rows
    finally:
        lisa.stop()
        fake.stop()


def subprocess_psql(postgres, sql):
    import glob
    psql = glob.glob(str(ROOT / ".venv-pg" / "lib" / "python*" / "site-packages" / "pgserver" / "pginstall" / "bin" / "psql"))[0]
    return subprocess.run([psql, "-h", "127.0.0.1", "-p", str(postgres.port), "-U", "postgres", "-tA", "-c", sql],
                          capture_output=True, text=True, check=True).stdout
