"""LISA's OpenAPI document, served and attacked: schemathesis runs every operation against a
live LISAServe, as an administrator and as an ordinary user, with a bounded number of
examples: no 500, responses conform to the document, and no administrator-only operation
answers 2xx to the user."""
import json
import os
import subprocess
import urllib.request

import pytest

from conftest import ADMIN_KEY, ROOT, Lisa, api

DOCUMENT = ROOT / "Sources" / "LISAWebUI" / "Assets" / "openapi.json"
SCHEMATHESIS = ROOT / ".venv" / "bin" / "schemathesis"
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,admin_only_refused,no_internal_error"


@pytest.fixture
def attacked(upstream, tmp_path):
    lisa = Lisa(upstream, tmp_path / "data", extra_config=f"""
  - {{modelId: painter, modelName: painter, modelType: imagegen, modelUrl: "{upstream}"}}
  - {{modelId: whisper, modelName: whisper, modelType: transcription, modelUrl: "{upstream}"}}
  - {{modelId: voice, modelName: voice, modelType: speech, modelUrl: "{upstream}"}}
  - {{modelId: moderator, modelName: moderator, modelType: moderation, modelUrl: "{upstream}"}}
  - {{modelId: ranker, modelName: ranker, modelType: rerank, modelUrl: "{upstream}"}}
  - {{modelId: claude, modelName: claude, modelType: textgen, upstreamAPI: anthropic, modelUrl: "{upstream}"}}
rateLimits:
  enabled: false
""")
    status, body = api(lisa, "POST", "/repository", {"repositoryId": "docs", "embeddingModelId": "embedder"})
    assert status == 201, body
    yield lisa
    lisa.stop()


def test_the_served_document_is_the_committed_one(attacked):
    with urllib.request.urlopen(attacked.url + "/openapi.json", timeout=10) as response:
        assert response.headers["Content-Type"] == "application/json"
        served = json.loads(response.read())
    assert served == json.loads(DOCUMENT.read_text())
    assert served["openapi"] == "3.1.0"
    admin_only = {f"{method.upper()} {path}" for path, item in served["paths"].items() for method, operation in item.items()
                  if isinstance(operation, dict) and operation.get("x-lisa-admin-only")}
    assert {"POST /models", "GET /models/{modelId}", "DELETE /models/{modelId}", "GET /models/{modelId}/test", "GET /metrics",
            "POST /admin/rotate-key"} <= admin_only
    assert "GET /models" not in admin_only, "users list the models they may use"


@pytest.mark.parametrize("role", ["admin", "user"])
def test_schemathesis_finds_nothing(attacked, role, tmp_path):
    if not SCHEMATHESIS.exists():
        pytest.skip("needs schemathesis in .venv (the README test command installs it)")
    key = ADMIN_KEY
    if role == "user":
        status, created = api(attacked, "POST", "/api-tokens/mallory", {"name": "schemathesis", "groups": []})
        assert status == 201, created
        key = created["token"]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "schemathesis_hooks", "LISA_SCHEMATHESIS_ROLE": role,
           "PYTHONPATH": str(ROOT / "Tests" / "python")}
    result = subprocess.run(
        [str(SCHEMATHESIS), "run", attacked.url + "/openapi.json", "-H", f"Authorization: Bearer {key}",
         "--max-examples", "10", "--checks", CHECKS, "--continue-on-failure", "--generation-deterministic",
         "--report", "junit", "--report-dir", str(tmp_path / "report")],
        env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    summary = result.stdout[-6000:]
    print(summary)
    assert result.returncode == 0, summary
