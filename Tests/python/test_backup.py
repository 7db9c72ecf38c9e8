"""Backup and restore as an operator runs them: `lisactl admin backup` against a LISAServe that is
serving streamed chats and ingesting documents, `lisactl admin restore` into a new data directory, a
new LISAServe on it; and for PostgreSQL state, pg_dump/pg_restore and `LISAServe --check-database`."""
import glob
import os
import pathlib
import subprocess
import threading
import urllib.parse
import uuid

import httpx
import pytest
from openai import OpenAI

from conftest import ADMIN_KEY, BIN, ROOT, Lisa, lisactl
from test_usage import token_for, wait_for_usage

BUDGETS = "budgets:\n  user: {period: day, tokens: 1000000}\n"
NOTE = "The lighthouse keeper logs the barometer every evening before the storm season begins."


def api(lisa, method, path, body=None, key=ADMIN_KEY, **kwargs):
    with httpx.Client(timeout=60) as client:
        response = client.request(method, lisa.url + path, json=body, headers={"Authorization": f"Bearer {key}"}, **kwargs)
        return response.status_code, response.json()


def ingest(lisa, repository, name, text):
    status, job = api(lisa, "POST", f"/repository/{repository}/upload", files={"file": (name, text.encode())})
    assert status == 202, job
    return job["jobId"]


def wait_job(lisa, repository, job_id):
    deadline = 120
    import time
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        status, job = api(lisa, "GET", f"/repository/{repository}/jobs/{job_id}")
        if job.get("status") in ("COMPLETED", "FAILED"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish")


def search(lisa, repository, query):
    status, body = api(lisa, "GET", f"/repository/{repository}/similaritySearch", params={"query": query, "topK": 1})
    assert status == 200, body
    return [doc["documentName"] for doc in body["docs"]]


def populate(lisa, repository_type="embedded"):
    """Everything a backup must keep: an API model, a user's token, a session, a repository with a
    document, usage records and a budget's spending. Returns what to check after the restore."""
    status, model = api(lisa, "POST", "/models", {"modelId": "api-chat", "modelName": "Qwen/Qwen2.5-0.5B-Instruct",
                                                  "modelType": "textgen", "inferenceContainer": "vllm",
                                                  "modelUrl": lisa.upstream})
    assert status == 201, model
    alice = token_for(lisa, "alice")
    client = OpenAI(base_url=lisa.url + "/v1", api_key=alice, max_retries=0)
    for index in range(3):
        client.chat.completions.create(model="chat-small", messages=[{"role": "user", "content": f"hello {index}"}])
    history = [{"type": "human", "content": "What is LISA?"}, {"type": "ai", "content": "A gateway."}]
    status, _ = api(lisa, "PUT", "/session/s-1", {"history": history}, key=alice)
    assert status == 200
    status, repo = api(lisa, "POST", "/repository", {"repositoryId": "notes", "type": repository_type, "embeddingModelId": "embedder"})
    assert status == 201, repo
    job = wait_job(lisa, "notes", ingest(lisa, "notes", "lighthouse.txt", NOTE))
    assert job["status"] == "COMPLETED", job
    assert search(lisa, "notes", NOTE) == ["lighthouse.txt"]
    usage = wait_for_usage(lisa, 3)
    status, budgets = api(lisa, "GET", "/budgets", key=alice)
    assert status == 200 and budgets["data"][0]["spent"] > 0, budgets
    return {"alice": alice, "history": history, "requests": usage["totals"]["requests"], "spent": budgets["data"][0]["spent"]}


def check_restored(lisa, before):
    """The restored server has everything populate() made, and it works."""
    status, models = api(lisa, "GET", "/models")
    assert status == 200 and "api-chat" in [m["modelId"] for m in models["models"]], models
    client = OpenAI(base_url=lisa.url + "/v1", api_key=before["alice"], max_retries=0)
    answer = client.chat.completions.create(model="api-chat", messages=[{"role": "user", "content": "still here?"}])
    assert answer.choices[0].message.content == "echo: still here?"
    status, session = api(lisa, "GET", "/session/s-1", key=before["alice"])
    assert status == 200 and session["history"] == before["history"], session
    assert search(lisa, "notes", NOTE) == ["lighthouse.txt"]
    status, documents = api(lisa, "GET", "/repository/notes/document")
    assert status == 200 and "lighthouse.txt" in str(documents), documents
    usage = wait_for_usage(lisa, before["requests"])
    assert usage["totals"]["requests"] >= before["requests"], usage
    status, budgets = api(lisa, "GET", "/budgets", key=before["alice"])
    assert status == 200 and budgets["data"][0]["spent"] >= before["spent"], budgets


class Load:
    """Streamed chats in a loop and documents ingested one after another, until stopped."""

    def __init__(self, lisa):
        self.lisa = lisa
        self.stop = threading.Event()
        self.chats = 0
        self.ingested = 0
        self.errors = []
        self.threads = [threading.Thread(target=self._chat), threading.Thread(target=self._chat), threading.Thread(target=self._ingest)]
        for thread in self.threads:
            thread.start()

    def _chat(self):
        client = OpenAI(base_url=self.lisa.url + "/v1", api_key=ADMIN_KEY, max_retries=0)
        while not self.stop.is_set():
            try:
                words = [c.choices[0].delta.content or "" for c in client.chat.completions.create(
                    model="chat-small", messages=[{"role": "user", "content": "a b c d e f"}], stream=True) if c.choices]
                assert "".join(words) == "echo: a b c d e f"
                self.chats += 1
            except Exception as error:  # noqa: BLE001 (reported by finish())
                self.errors.append(error)
                return

    def _ingest(self):
        while not self.stop.is_set():
            try:
                text = " ".join(f"load sentence {self.ingested} number {i}." for i in range(400))
                job = wait_job(self.lisa, "notes", ingest(self.lisa, "notes", f"load-{self.ingested}.txt", text))
                assert job["status"] == "COMPLETED", job
                self.ingested += 1
            except Exception as error:  # noqa: BLE001
                self.errors.append(error)
                return

    def finish(self):
        self.stop.set()
        for thread in self.threads:
            thread.join(60)
        assert not self.errors, self.errors


def wait_for(condition, what):
    import time
    end = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < end, f"waited 60 s for {what}"
        time.sleep(0.05)


def test_backup_under_load_restores_into_a_new_data_directory_that_serves_everything(upstream, tmp_path):
    lisa = Lisa(upstream, tmp_path / "data", extra_config=BUDGETS)
    lisa.upstream = upstream
    archive = tmp_path / "backup.tar"
    try:
        before = populate(lisa)
        # Only administrators may take one.
        status, refused = api(lisa, "POST", "/admin/backup", {}, key=before["alice"])
        assert status == 403, refused

        load = Load(lisa)
        try:
            wait_for(lambda: load.chats >= 2 and load.ingested >= 1 or load.errors, "the load to run")
            result = lisactl(lisa, "admin", "backup", "-o", str(archive))
            assert result.returncode == 0, result.stderr
            assert "files" in result.stdout
            # Who took it is on record: the archive holds all of the state.
            wait_for(lambda: any("state backup taken" in line and "lisa.principal" in line
                                 for line in lisa.proc.output().splitlines()), "the backup's log line")
            # The load kept running through the backup.
            chats, ingested = load.chats, load.ingested
            wait_for(lambda: load.chats > chats and load.ingested > ingested or load.errors, "the load to go on after the backup")
        finally:
            load.finish()
        # The snapshot's files are gone from the data directory; it stays private.
        assert not [p for p in os.listdir(tmp_path / "data") if p.startswith(".backup-")]
        assert (os.stat(tmp_path / "data").st_mode & 0o777) == 0o700
        # Refuses to overwrite.
        again = lisactl(lisa, "admin", "backup", "-o", str(archive))
        assert again.returncode == 1 and "exists" in again.stderr
    finally:
        lisa.stop()

    verified = subprocess.run([str(BIN / "lisactl"), "admin", "verify-backup", str(archive)], capture_output=True, text=True)
    assert verified.returncode == 0, verified.stderr
    assert "lisa.sqlite" in verified.stdout and "vectors/vectors.sqlite" in verified.stdout

    # Restore: only into a new (or empty) directory.
    restored = tmp_path / "restored"
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep").write_text("x")
    refused = subprocess.run([str(BIN / "lisactl"), "admin", "restore", str(archive), "--data-dir", str(occupied)],
                             capture_output=True, text=True)
    assert refused.returncode == 1 and "not empty" in refused.stderr
    result = subprocess.run([str(BIN / "lisactl"), "admin", "restore", str(archive), "--data-dir", str(restored)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (os.stat(restored).st_mode & 0o777) == 0o700

    check = subprocess.run([str(BIN / "LISAServe"), "--check-database", "--data-dir", str(restored)],
                           env={k: v for k, v in os.environ.items() if not k.startswith("LISA_")}, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "complete" in check.stdout and "table usage_records" in check.stdout

    second = Lisa(upstream, restored, extra_config=BUDGETS)
    try:
        check_restored(second, before)
    finally:
        second.stop()


def test_a_damaged_or_truncated_archive_is_refused_and_leaves_nothing(upstream, tmp_path):
    lisa = Lisa(upstream, tmp_path / "data")
    archive = tmp_path / "backup.tar"
    try:
        assert lisactl(lisa, "admin", "backup", "-o", str(archive)).returncode == 0
    finally:
        lisa.stop()
    data = bytearray(archive.read_bytes())
    data[2048] ^= 0xFF  # inside lisa.sqlite (the manifest and its header take the first blocks)
    damaged = tmp_path / "damaged.tar"
    damaged.write_bytes(bytes(data))
    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(archive.read_bytes()[:5000])
    for bad, reason in ((damaged, "checksum"), (truncated, "truncated")):
        target = tmp_path / f"restore-{bad.stem}"
        result = subprocess.run([str(BIN / "lisactl"), "admin", "restore", str(bad), "--data-dir", str(target)],
                                capture_output=True, text=True)
        assert result.returncode == 1 and reason in result.stderr, result.stderr
        assert not target.exists()
        assert not [p for p in os.listdir(tmp_path) if ".restoring-" in p]


def pg_bin(name):
    """The PostgreSQL 16 client tools of the server scripts/postgres.sh runs (the pgserver wheel's)."""
    found = glob.glob(str(ROOT / ".venv-pg" / "lib" / "python3*" / "site-packages" / "pgserver" / "pginstall" / "bin" / name))
    if not found:
        pytest.skip("needs the pgserver wheel's PostgreSQL binaries (scripts/postgres.sh installs them)")
    return found[0]


def createdb(name):
    url = os.environ["LISA_TEST_DATABASE_URL"]
    port = str(urllib.parse.urlparse(url).port or 5432)
    return subprocess.run([str(ROOT / "scripts" / "postgres.sh"), "createdb", name], capture_output=True, text=True, check=True,
                          env={**os.environ, "LISA_PG_PORT": port}).stdout.strip()


def libpq(url):
    """A URL pg_dump and psql accept (they know sslmode but not LISA's own parameters)."""
    parsed = urllib.parse.urlparse(url)
    return parsed._replace(query="sslmode=disable").geturl()


@pytest.mark.skipif(not os.environ.get("LISA_TEST_DATABASE_URL"), reason="needs PostgreSQL (the README test command starts one)")
def test_postgresql_state_round_trips_through_pg_dump_and_the_check_command(upstream, tmp_path):
    suffix = uuid.uuid4().hex[:10]
    source, target = createdb(f"lisa_backup_src_{suffix}"), createdb(f"lisa_backup_dst_{suffix}")
    env = {"LISA_DATABASE_URL": source}
    lisa = Lisa(upstream, tmp_path / "data", extra_config=BUDGETS, extra_env=env)
    lisa.upstream = upstream
    dump = tmp_path / "lisa.dump"
    try:
        before = populate(lisa, repository_type="pgvector")
        # The archive route refuses, naming pg_dump.
        status, refused = api(lisa, "POST", "/admin/backup", {})
        assert status == 409 and refused["error"]["code"] == "state_in_postgresql" and "pg_dump" in refused["error"]["message"]
        # pg_dump runs beside the serving LISA (one consistent snapshot of its own).
        subprocess.run([pg_bin("pg_dump"), "-Fc", "-f", str(dump), "-d", libpq(source)], check=True, capture_output=True, timeout=120)
    finally:
        lisa.stop()
    subprocess.run([pg_bin("pg_restore"), "--no-owner", "-d", libpq(target), str(dump)], check=True, capture_output=True, timeout=120)

    plain_env = {k: v for k, v in os.environ.items() if not k.startswith("LISA_")}
    check = subprocess.run([str(BIN / "LISAServe"), "--check-database"], env={**plain_env, "LISA_DATABASE_URL": target},
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "complete" in check.stdout and "vectors notes" in check.stdout, check.stdout

    second = Lisa(upstream, tmp_path / "second", extra_config=BUDGETS, extra_env={"LISA_DATABASE_URL": target})
    try:
        check_restored(second, before)
    finally:
        second.stop()

    # A restore that lost a table (or the pgvector data) is reported, exit 1.
    subprocess.run([pg_bin("psql"), "-d", libpq(target), "-q", "-c", "DROP TABLE budget_counters"], check=True, capture_output=True)
    check = subprocess.run([str(BIN / "LISAServe"), "--check-database"], env={**plain_env, "LISA_DATABASE_URL": target},
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 1 and "table budget_counters is missing" in check.stdout, check.stdout + check.stderr
