"""What a new user meets first (issue 31, items 12, 14, 15): --check-config that finds
every mistake at once, in file order and in LISA's words; the openai SDK's
models.retrieve; a server without pdftotext that says so instead of failing uploads later."""
import subprocess

import httpx
import openai
import pytest
from openai import OpenAI

from conftest import ADMIN_KEY, BIN, Lisa


def check_config(tmp_path, text):
    path = tmp_path / "lisa.yaml"
    path.write_text(text)
    return subprocess.run([str(BIN / "LISAServe"), "--check-config", "--config", str(path)], capture_output=True, text=True, timeout=30)


def test_check_config_finds_cross_references_in_file_order(tmp_path):
    checked = check_config(tmp_path, """models:
  - {modelId: chat, modelName: a, modelUrl: 'http://127.0.0.1:9/v1', fallbacks: [nowhere, embed]}
  - {modelId: embed, modelName: e, modelType: embedding, modelUrl: 'http://127.0.0.1:9/v1'}
  - {modelId: chat, modelName: b, modelUrl: 'http://127.0.0.1:9/v1'}
""")
    assert checked.returncode != 0
    lines = [line for line in checked.stderr.splitlines() if "models[" in line]
    assert len(lines) == 3, checked.stderr
    assert "models[0] 'chat'" in lines[0] and "'nowhere' is not a model" in lines[0]
    assert "models[0] 'chat'" in lines[1] and "'embed' has modelType embedding" in lines[1]
    assert "models[2] 'chat'" in lines[2] and "already declared by models[0]" in lines[2]
    # Start-up refuses the same file with the same list, before it listens.
    started = subprocess.run([str(BIN / "LISAServe"), "--config", str(tmp_path / "lisa.yaml"), "--port", "0",
                              "--data-dir", str(tmp_path / "data")], capture_output=True, text=True, timeout=30,
                             env={"LISA_ADMIN_KEY": ADMIN_KEY, "PATH": "/usr/bin:/bin"})
    assert started.returncode != 0 and [line for line in started.stderr.splitlines() if "models[" in line] == lines, started.stderr


def test_check_config_unknown_keys_by_line_and_enum_values_in_lisas_words(tmp_path):
    keys = [f"zkey{i}" for i in range(8)] + ["akey"]
    text = "models: []\nrouting:\n" + "".join(f"  {key}: 1\n" for key in keys)
    checked = check_config(tmp_path, text)
    assert checked.returncode != 0
    reported = [line.split("unknown key 'routing.")[1].split("'")[0] for line in checked.stderr.splitlines() if "unknown key" in line]
    assert reported == keys, "in the order of the file, not of a hash or the alphabet"
    lines = [int(line.split(".yaml:")[1].split(":")[0]) for line in checked.stderr.splitlines() if "unknown key" in line]
    assert lines == sorted(lines)

    checked = check_config(tmp_path, "budgets:\n  user: {period: week, tokens: 10}\n")
    assert checked.returncode != 0
    assert "'week' is not one of day, month" in checked.stderr, checked.stderr
    assert "Cannot initialize" not in checked.stderr and "Period" not in checked.stderr


def test_post_models_refuses_fallbacks_to_missing_or_other_type_models(lisa):
    with httpx.Client(base_url=lisa.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30) as client:
        missing = client.post("/models", json={"modelId": "c2", "modelName": "c", "modelUrl": "http://127.0.0.1:9/v1", "fallbacks": ["ghost"]})
        assert missing.status_code == 400 and missing.json()["error"]["param"] == "fallbacks[0]", missing.text
        other = client.post("/models", json={"modelId": "c3", "modelName": "c", "modelUrl": "http://127.0.0.1:9/v1", "fallbacks": ["embedder"]})
        assert other.status_code == 400 and "embedding" in other.json()["error"]["message"], other.text
        fine = client.post("/models", json={"modelId": "c4", "modelName": "c", "modelUrl": "http://127.0.0.1:9/v1", "fallbacks": ["chat-small"]})
        assert fine.status_code == 201, fine.text


def test_openai_sdk_retrieves_a_model_and_gets_404_for_unknown_ones(lisa):
    for prefix in ["/v1", "/v2/serve"]:
        client = OpenAI(base_url=lisa.url + prefix, api_key=ADMIN_KEY, max_retries=0)
        model = client.models.retrieve("chat-small")
        assert model.id == "chat-small" and model.object == "model" and model.owned_by == "lisa"
        with pytest.raises(openai.NotFoundError) as missing:
            client.models.retrieve("no-such-model")
        assert missing.value.body["code"] == "model_not_found"


def test_without_pdftotext_pdf_uploads_are_refused_at_once(upstream, tmp_path):
    missing = tmp_path / "no-such-dir" / "pdftotext"
    lisa = Lisa(upstream, tmp_path / "data", extra_env={"LISA_PDFTOTEXT": str(missing)})
    try:
        with httpx.Client(base_url=lisa.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30) as client:
            readiness = client.get("/health/readiness")
            assert readiness.status_code == 200, "ready: only PDF ingestion is off"
            assert "pdftotext" in readiness.json()["missingTools"]["pdftotext"]
            created = client.post("/repository", json={"repositoryId": "docs", "embeddingModelId": "embedder"})
            assert created.status_code == 201, created.text
            refused = client.post("/repository/docs/upload", files={"file": ("paper.pdf", b"%PDF-1.4\n...")})
            assert refused.status_code == 415, refused.text
            message = refused.json()["error"]["message"]
            assert "pdftotext" in message and str(missing) in message
            accepted = client.post("/repository/docs/upload", files={"file": ("notes.txt", b"plain text still works")})
            assert accepted.status_code == 202, accepted.text
    finally:
        lisa.stop()
    assert "PDF ingestion is off" in lisa.proc.output()


def test_lisactl_prints_small_costs_with_their_significant_digits(upstream, tmp_path):
    import time
    from conftest import lisactl
    lisa = Lisa(upstream, tmp_path / "data", extra_config="usage:\n  flushIntervalSeconds: 0.2\n")
    try:
        with httpx.Client(base_url=lisa.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30) as client:
            created = client.post("/models", json={"modelId": "cheap", "modelName": "c", "modelUrl": upstream,
                                                   "pricing": {"inputPerMillionTokens": 1, "outputPerMillionTokens": 1}})
            assert created.status_code == 201, created.text
            OpenAI(base_url=lisa.url + "/v1", api_key=ADMIN_KEY, max_retries=0).chat.completions.create(
                model="cheap", messages=[{"role": "user", "content": "a penny saved"}])
            deadline = time.monotonic() + 30
            rows = []
            while not rows and time.monotonic() < deadline:
                rows = [row for row in client.get("/usage?bucket=none&groupBy=model").json()["data"] if row["model"] == "cheap"]
                if not rows:
                    time.sleep(0.1)
            cost = rows[0]["cost"]
        assert 0 < cost < 0.0001, cost
        table = lisactl(lisa, "usage", "--bucket", "none", "--group-by", "model").stdout
        line = next(line for line in table.splitlines() if line.startswith("cheap"))
        printed = line.split()[-1]
        assert printed != "0.0000" and float(printed) > 0, table
        assert abs(float(printed) - cost) <= cost * 0.01, (printed, cost)
    finally:
        lisa.stop()


def test_an_endpoint_that_never_answered_is_unknown_not_healthy(lisa):
    from conftest import lisactl
    with httpx.Client(base_url=lisa.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30) as client:
        created = client.post("/models", json={"modelId": "silent", "modelName": "s", "modelUrl": "http://127.0.0.1:9/v1",
                                               "healthCheck": {"enabled": False}})
        assert created.status_code == 201, created.text
        assert created.json()["health"] == "unknown" and created.json()["endpointStatus"][0]["health"] == "unknown"
        listed = {m["id"]: m for m in client.get("/v1/models").json()["data"]}
        assert listed["silent"]["lisa"]["health"] == "unknown"
    shown = lisactl(lisa, "models", "get", "silent")
    assert shown.returncode == 0, shown.stderr
    assert "unknown" in shown.stdout and "yes" not in shown.stdout.split("ENDPOINT")[1], shown.stdout


def test_api_names_the_accepted_values_of_a_closed_field(lisa):
    with httpx.Client(base_url=lisa.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30) as client:
        for path, body, expected in [
            ("/models", {"modelId": "x", "modelName": "x", "modelUrl": "http://127.0.0.1:9/v1", "loadBalancing": "random"},
             "'random' is not one of roundRobin"),
            ("/repository", {"repositoryId": "r", "embeddingModelId": "embedder", "type": "bogus"},
             "'bogus' is not one of embedded, pgvector, opensearch"),
            ("/api-tokens/bob", {"name": "t", "budget": {"period": "week", "tokens": 5}}, "'week' is not one of day, month"),
        ]:
            answer = client.post(path, json=body)
            assert answer.status_code == 400, answer.text
            message = answer.json()["error"]["message"]
            assert expected in message and "Cannot initialize" not in message, message


NODE = __import__("shutil").which("node")


@pytest.mark.skipif(NODE is None, reason="needs Node.js to run LISA Chat's modules outside a browser")
def test_lisa_chat_offers_no_down_model_shows_the_real_status_and_prints_small_costs():
    import json
    from conftest import ROOT
    assets = ROOT / "Sources" / "LISAWebUI" / "Assets"
    script = f"""
      const chat = await import({json.dumps(str(assets / 'chat.js'))});
      const admin = await import({json.dumps(str(assets / 'admin.js'))});
      const usage = await import({json.dumps(str(assets / 'usage.js'))});
      const models = [{{id: 'dead', lisa: {{modelType: 'textgen', health: 'down'}}}},
                      {{id: 'new', lisa: {{modelType: 'textgen', health: 'unknown'}}}},
                      {{id: 'ok', lisa: {{modelType: 'textgen', health: 'healthy'}}}},
                      {{id: 'vectors', lisa: {{modelType: 'embedding', health: 'healthy'}}}},
                      {{id: 'old-server'}}];
      console.log(JSON.stringify({{
        offered: chat.offeredModels(models).map((m) => m.id),
        badges: [['InService', 'down'], ['InService', 'degraded'], ['InService', 'healthy'], ['Stopped', 'down']]
          .map(([status, health]) => admin.shownStatus({{status, health}})),
        costs: [0, 0.0000123, 0.00041, 0.5, 12.345, 250.4].map(usage.formatCost),
      }}));
    """
    run = subprocess.run([NODE, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["offered"] == ["new", "ok", "old-server"], "a down model is not offered"
    assert result["badges"] == ["Down", "Degraded", "InService", "Stopped"], "no green InService beside a red down"
    assert result["costs"] == ["0", "0.0000123", "0.00041", "0.5", "12.35", "250"], "never 0.0000 for a small spend"
