"""RAG end to end with a real sentence-embedding model (all-MiniLM-L6-v2 in numpy behind an
OpenAI-compatible endpoint): repositories, multipart uploads of real files, background
ingestion, semantic search, grounded chat with sources, bad input, permissions."""
import json
import os
import subprocess
import time
import uuid

import httpx
import openai
import pytest

from conftest import ADMIN_KEY, ROOT, Lisa, Process, free_port, lisactl

DOCUMENTS = ROOT / "Tests" / "LISAKitTests" / "Fixtures" / "documents"

CORPUS = {
    "gardening.txt": "Tomatoes need six hours of direct sunlight and deep watering twice a week. "
                     "Pinch off the suckers that grow between the stem and the branches.",
    "astronomy.md": "# Night sky\n\nJupiter is the largest planet in the solar system; its Great Red Spot is a storm "
                    "larger than Earth. Saturn's rings are made of ice and rock.",
    "baking.html": "<html><body><h1>Sourdough</h1><p>Feed the starter with flour and water, let the dough rise "
                   "overnight, then bake it in a hot Dutch oven.</p></body></html>",
}


def api(lisa, method, path, body=None, key=ADMIN_KEY, **kwargs):
    with httpx.Client(timeout=60) as client:
        response = client.request(method, lisa.url + path, json=body, headers={"Authorization": f"Bearer {key}"}, **kwargs)
        return response.status_code, response.json()


def upload(lisa, repository, name, data, key=ADMIN_KEY, **fields):
    return api(lisa, "POST", f"/repository/{repository}/upload", key=key, files={"file": (name, data)},
               data={k: str(v) for k, v in fields.items()})


def wait_job(lisa, repository, job_id):
    deadline = time.time() + 120
    while time.time() < deadline:
        status, job = api(lisa, "GET", f"/repository/{repository}/jobs/{job_id}")
        if job.get("status") in ("COMPLETED", "FAILED"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


def search(lisa, repository, query, top_k=3):
    status, body = api(lisa, "GET", f"/repository/{repository}/similaritySearch", params={"query": query, "topK": top_k})
    assert status == 200, body
    return [doc["documentName"] for doc in body["docs"]]


def ingest_corpus(lisa, repository):
    jobs = [upload(lisa, repository, name, text.encode())[1] for name, text in CORPUS.items()]
    for name in ("lighthouse.pdf", "report.docx", "people.csv"):
        status, job = upload(lisa, repository, name, (DOCUMENTS / name).read_bytes())
        assert status == 202, job
        jobs.append(job)
    assert all(job["status"] == "PENDING" for job in jobs)
    finished = [wait_job(lisa, repository, job["jobId"]) for job in jobs]
    assert [job["status"] for job in finished] == ["COMPLETED"] * len(jobs), finished


SEMANTIC = [
    ("How do sailors know that bad weather is coming?", "lighthouse.pdf"),
    ("Did the company earn more money this year?", "report.docx"),
    ("Which planet is the biggest one?", "astronomy.md"),
    ("How should I grow vegetables in my backyard?", "gardening.txt"),
    ("How do I make bread at home?", "baking.html"),
]


def check_repository(lisa, repository):
    ingest_corpus(lisa, repository)
    for question, expected in SEMANTIC:
        found = search(lisa, repository, question)
        assert found[0] == expected, f"{question!r} → {found}"

    # Grounded chat through the openai SDK: the sources come back in "lisa".
    client = openai.OpenAI(base_url=lisa.url + "/v1", api_key=ADMIN_KEY, max_retries=0)
    answer = client.chat.completions.create(
        model="chat-small", messages=[{"role": "user", "content": "Which planet is the biggest one?"}],
        extra_body={"lisa": {"rag": {"repositoryId": repository, "topK": 2}}})
    assert answer.choices[0].message.content == "echo: Which planet is the biggest one?"
    sources = answer.model_extra["lisa"]["sources"]
    assert len(sources) == 2 and sources[0]["documentName"] == "astronomy.md" and "Jupiter" in sources[0]["text"]

    chunks = list(client.chat.completions.create(
        model="chat-small", messages=[{"role": "user", "content": "How do I make bread at home?"}], stream=True,
        extra_body={"lisa": {"rag": {"repositoryId": repository, "topK": 1}}}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: How do I make bread at home?"
    last = chunks[-1]
    assert last.choices == [] and last.model_extra["lisa"]["sources"][0]["documentName"] == "baking.html"


def test_rag_end_to_end_with_a_real_embedding_model(upstream, embedding_model, tmp_path):
    lisa = Lisa(upstream, tmp_path / "data")
    try:
        status, _ = api(lisa, "POST", "/models", {"modelId": "minilm", "modelName": "all-MiniLM-L6-v2", "modelType": "embedding",
                                                  "modelUrl": embedding_model})
        assert status == 201
        status, repo = api(lisa, "POST", "/repository", {"repositoryId": "handbook", "embeddingModelId": "minilm",
                                                         "allowedGroups": ["staff"]})
        assert status == 201, repo
        check_repository(lisa, "handbook")

        # Re-ingesting a document replaces its chunks; deleting removes it.
        status, docs = api(lisa, "GET", "/repository/handbook/document")
        assert len(docs) == 6
        job = wait_job(lisa, "handbook", upload(lisa, "handbook", "gardening.txt", b"Water the roses in the evening.")[1]["jobId"])
        assert job["status"] == "COMPLETED"
        status, docs = api(lisa, "GET", "/repository/handbook/document")
        assert len(docs) == 6
        gardening = next(d for d in docs if d["documentName"] == "gardening.txt")
        assert "roses" in json.dumps(api(lisa, "GET", "/repository/handbook/similaritySearch",
                                         params={"query": "flowers", "topK": 6})[1])
        status, _ = api(lisa, "DELETE", f"/repository/handbook/document/{gardening['documentId']}")
        assert status == 200
        assert "gardening.txt" not in search(lisa, "handbook", "roses", top_k=6)

        # Bad input: a clear 4xx, and nothing stored.
        assert upload(lisa, "handbook", "photo.png", b"\x89PNG")[0] == 415
        assert upload(lisa, "handbook", "empty.txt", b"")[0] == 400
        status, body = upload(lisa, "handbook", "notes.txt", b"some text", chunkSize=50)
        assert status == 400 and body["error"]["param"] == "chunkSize"
        status, body = upload(lisa, "handbook", "notes.txt", b"some text", chunkSize=500, chunkOverlap=300)
        assert status == 400 and body["error"]["param"] == "chunkOverlap"
        assert upload(lisa, "nowhere", "notes.txt", b"text")[0] == 404
        assert upload(lisa, "handbook", "notes.txt", b"text", collectionId="missing")[0] == 404
        failed = wait_job(lisa, "handbook", upload(lisa, "handbook", "broken.pdf", b"%PDF-1.4 garbage")[1]["jobId"])
        assert failed["status"] == "FAILED" and "broken.pdf" in failed["reason"]
        assert len(api(lisa, "GET", "/repository/handbook/document")[1]) == 5

        # Permissions: a user outside allowedGroups does not see the repository; users cannot create one.
        outsider = json.loads(lisactl(lisa, "--output", "json", "tokens", "create", "--name", "o", "--user", "olga",
                                      "--group", "guests").stdout)["token"]
        member = json.loads(lisactl(lisa, "--output", "json", "tokens", "create", "--name", "m", "--user", "mia",
                                    "--group", "staff").stdout)["token"]
        assert api(lisa, "GET", "/repository/handbook", key=outsider)[0] == 404
        assert api(lisa, "GET", "/repository", key=outsider)[1] == []
        assert api(lisa, "GET", "/repository/handbook/similaritySearch", key=member, params={"query": "planets"})[0] == 200
        assert api(lisa, "POST", "/repository", {"repositoryId": "mine", "embeddingModelId": "minilm"}, key=member)[0] == 403
        status, job = upload(lisa, "handbook", "mia.txt", b"Mia's notes about the harbour.", key=member)
        assert wait_job(lisa, "handbook", job["jobId"])["status"] == "COMPLETED"
        mia_doc = next(d for d in api(lisa, "GET", "/repository/handbook/document", key=member)[1] if d["documentName"] == "mia.txt")
        report = next(d for d in api(lisa, "GET", "/repository/handbook/document")[1] if d["documentName"] == "report.docx")
        assert api(lisa, "DELETE", f"/repository/handbook/document/{report['documentId']}", key=member)[0] == 403
        assert api(lisa, "DELETE", f"/repository/handbook/document/{mia_doc['documentId']}", key=member)[0] == 200

        # The embedding model of a repository cannot be deleted (LISA's ModelInUseError).
        status, body = api(lisa, "DELETE", "/models/minilm")
        assert status == 409 and body["error"]["code"] == "model_in_use"
        assert api(lisa, "DELETE", "/repository/handbook")[0] == 200
        assert api(lisa, "DELETE", "/models/minilm")[0] == 200
    finally:
        lisa.stop()


@pytest.mark.skipif(not os.environ.get("LISA_TEST_DATABASE_URL"), reason="needs PostgreSQL with pgvector")
def test_rag_on_pgvector(upstream, embedding_model, tmp_path):
    name = "lisa_rag_" + uuid.uuid4().hex[:10]
    url = subprocess.run([str(ROOT / "scripts" / "postgres.sh"), "createdb", name], capture_output=True, text=True,
                         check=True).stdout.strip()
    lisa = Lisa(upstream, tmp_path / "data", extra_env={"LISA_DATABASE_URL": url})
    try:
        assert api(lisa, "POST", "/models", {"modelId": "minilm", "modelName": "m", "modelType": "embedding",
                                             "modelUrl": embedding_model})[0] == 201
        status, repo = api(lisa, "POST", "/repository", {"repositoryId": "pg-handbook", "type": "pgvector", "embeddingModelId": "minilm"})
        assert status == 201, repo
        check_repository(lisa, "pg-handbook")
    finally:
        lisa.stop()


def test_lisactl_repos_docs_search_and_grounded_chat(upstream, embedding_model, tmp_path):
    lisa = Lisa(upstream, tmp_path / "data")
    try:
        assert api(lisa, "POST", "/models", {"modelId": "minilm", "modelName": "m", "modelType": "embedding",
                                             "modelUrl": embedding_model})[0] == 201
        created = lisactl(lisa, "repos", "create", "notes", "--embedding-model", "minilm", "--chunk-size", "300", "--chunk-overlap", "30")
        assert created.returncode == 0 and "created repository notes" in created.stdout, created.stderr
        assert "notes" in lisactl(lisa, "repos", "list").stdout
        files = []
        for name, text in CORPUS.items():
            path = tmp_path / name
            path.write_text(text)
            files.append(str(path))
        files.append(str(DOCUMENTS / "lighthouse.pdf"))
        ingested = lisactl(lisa, "docs", "ingest", "--repo", "notes", *files)
        assert ingested.returncode == 0, ingested.stderr
        assert "[####################] 4/4" in ingested.stdout and ingested.stdout.count("COMPLETED") == 4
        bad = tmp_path / "image.png"
        bad.write_bytes(b"\x89PNG")
        refused = lisactl(lisa, "docs", "ingest", "--repo", "notes", str(bad))
        assert refused.returncode == 1 and "415" in refused.stderr and "unsupported file type" in refused.stderr

        listed = lisactl(lisa, "docs", "list", "--repo", "notes")
        assert all(name in listed.stdout for name in ["gardening.txt", "astronomy.md", "baking.html", "lighthouse.pdf"])
        found = lisactl(lisa, "search", "--repo", "notes", "--top-k", "1", "Which planet is the biggest one?")
        assert found.returncode == 0 and "[1] astronomy.md" in found.stdout
        chat = lisactl(lisa, "chat", "--model", "chat-small", "--rag", "notes", "How do I make bread at home?")
        assert chat.returncode == 0 and "echo: How do I make bread at home?" in chat.stdout
        assert "Sources:" in chat.stdout and "baking.html" in chat.stdout.split("Sources:")[1]
        doc_id = next(d["documentId"] for d in json.loads(lisactl(lisa, "--output", "json", "docs", "list", "--repo", "notes").stdout)
                      if d["documentName"] == "lighthouse.pdf")
        assert lisactl(lisa, "docs", "delete", "--repo", "notes", doc_id).returncode == 0
        assert lisactl(lisa, "repos", "delete", "notes").returncode == 0
        assert "notes" not in lisactl(lisa, "repos", "list").stdout
    finally:
        lisa.stop()


def test_rag_on_opensearch_emulator_with_basic_auth(upstream, embedding_model, tmp_path):
    """The OpenSearch driver against the in-repo emulator of the k-NN REST API (no cluster can
    run here; the Swift conformance suite runs against a real one when OPENSEARCH_URL is set)."""
    from conftest import BIN
    port = free_port()
    emulator = Process([str(BIN / "lisa-fake-upstream"), "--opensearch", "--port", str(port), "--opensearch-user", "lisa",
                        "--opensearch-password", "s3cret"], log=tmp_path / "opensearch.log")
    lisa = Lisa(upstream, tmp_path / "data")
    try:
        deadline = time.time() + 20
        while "listening" not in (tmp_path / "opensearch.log").read_text() and time.time() < deadline:
            time.sleep(0.05)
        assert api(lisa, "POST", "/models", {"modelId": "minilm", "modelName": "m", "modelType": "embedding",
                                             "modelUrl": embedding_model})[0] == 201
        settings = {"url": f"http://127.0.0.1:{port}", "username": "lisa", "password": "s3cret"}
        status, repo = api(lisa, "POST", "/repository", {"repositoryId": "os-handbook", "type": "opensearch",
                                                         "embeddingModelId": "minilm", "opensearch": settings})
        assert status == 201 and repo["opensearch"]["password"] == "***", repo
        assert "s3cret" not in json.dumps(api(lisa, "GET", "/repository")[1])
        check_repository(lisa, "os-handbook")

        # Wrong credentials: a clear upstream error, nothing half-stored.
        status, _ = api(lisa, "POST", "/repository", {"repositoryId": "os-bad", "type": "opensearch", "embeddingModelId": "minilm",
                                                      "opensearch": {**settings, "password": "wrong"}})
        assert status == 201
        job = wait_job(lisa, "os-bad", upload(lisa, "os-bad", "a.txt", b"some text about boats")[1]["jobId"])
        assert job["status"] == "FAILED" and "credentials" in job["reason"], job
        status, body = api(lisa, "GET", "/repository/os-bad/document")
        assert status == 200 and body == []
    finally:
        lisa.stop()
        emulator.stop()


def test_upload_size_limit_is_configurable(upstream, embedding_model, tmp_path):
    lisa = Lisa(upstream, tmp_path / "data", extra_env={"LISA_RAG_MAX_UPLOAD_SIZE": "1000"})
    try:
        assert api(lisa, "POST", "/models", {"modelId": "minilm", "modelName": "m", "modelType": "embedding",
                                             "modelUrl": embedding_model})[0] == 201
        assert api(lisa, "POST", "/repository", {"repositoryId": "small", "embeddingModelId": "minilm"})[0] == 201
        status, body = upload(lisa, "small", "big.txt", b"x " * 600)
        assert status == 413 and body["error"]["code"] == "request_too_large", body
        assert upload(lisa, "small", "ok.txt", b"small enough")[0] == 202
        assert api(lisa, "GET", "/repository/small/jobs")[1][0]["documentName"] == "ok.txt"
    finally:
        lisa.stop()
