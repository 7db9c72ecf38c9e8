"""Usage records, cost and budgets, as an operator and their users see them: the official
openai and anthropic SDKs, lisactl, GET /usage and /budgets, the request log, and budgets that
hold under concurrency on two replicas sharing PostgreSQL."""
import concurrent.futures
import json
import os
import time

import anthropic
import pytest
from openai import OpenAI

from conftest import ADMIN_KEY, Lisa, lisactl
from conftest import api as request
from test_scaleout import postgres  # noqa: F401  (the fixture)

PRICED = {
    "modelId": "priced", "modelName": "Qwen/Qwen2.5-0.5B-Instruct", "modelType": "textgen", "inferenceContainer": "vllm",
    "pricing": {"inputPerMillionTokens": 1000000, "outputPerMillionTokens": 2000000},
}


def token_for(lisa, user, groups=(), **extra):
    body = {"name": f"{user}-token", "groups": list(groups), **extra}
    status, created = request(lisa, "POST", f"/api-tokens/{user}", body)
    assert status == 201, created
    return created["token"]


def wait_for_usage(lisa, expected_requests, params="bucket=none", key=ADMIN_KEY, timeout=15):
    """Waits until the records are in, then reads the report once with `key`. /usage counts
    against the caller's rate limit, so the waiting is done with the administrator key (exempt),
    not with the key under test."""
    deadline = time.monotonic() + timeout
    while True:
        status, report = request(lisa, "GET", f"/usage?{params}", key=ADMIN_KEY)
        assert status == 200, report
        if report["totals"]["requests"] >= expected_requests or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    status, report = request(lisa, "GET", f"/usage?{params}", key=key)
    assert status == 200, report
    return report


def test_every_dialect_is_recorded_with_cost_and_the_request_log_has_no_content(upstream, tmp_path):
    lisa = Lisa(upstream, tmp_path / "data", extra_config="usage:\n  requestLog: true\n  flushIntervalSeconds: 0.2\n")
    try:
        status, created = request(lisa, "POST", "/models", {**PRICED, "modelUrl": upstream})
        assert status in (200, 201), created
        token = token_for(lisa, "alice", ["team"])
        client = OpenAI(base_url=lisa.url + "/v1", api_key=token, max_retries=0)
        secret_prompt = "the launch code is swordfish"
        answer = client.chat.completions.create(model="priced", messages=[{"role": "user", "content": secret_prompt}])
        assert answer.usage.prompt_tokens == 5
        chunks = list(client.chat.completions.create(model="priced", messages=[{"role": "user", "content": "a b c"}], stream=True,
                                                     stream_options={"include_usage": True}))
        assert chunks
        list(client.chat.completions.create(model="chat-small", messages=[{"role": "user", "content": "no usage here"}], stream=True))
        client.embeddings.create(model="embedder", input=["one", "two"])
        client.responses.create(model="priced", input="responses dialect")
        claude = anthropic.Anthropic(base_url=lisa.url, api_key=token, max_retries=0)
        message = claude.messages.create(model="priced", max_tokens=20, messages=[{"role": "user", "content": "messages dialect"}])
        assert message.content

        report = wait_for_usage(lisa, 6, "bucket=none&groupBy=user,model", key=token)
        rows = {row["model"]: row for row in report["data"]}
        assert all(row["user"] == "alice" for row in report["data"])
        assert rows["priced"]["requests"] == 4, rows
        assert rows["chat-small"]["estimatedRequests"] == 1, "a stream without include_usage is an estimate, marked"
        assert rows["chat-small"]["cost"] == 0, "no prices, no cost"
        # Cost comes from the prices: 1 a token in, 2 a token out.
        priced = rows["priced"]
        assert priced["estimatedRequests"] == 0, priced
        assert abs(priced["cost"] - (priced["inputTokens"] + 2 * priced["outputTokens"])) < 1e-6, priced
        assert rows["embedder"]["requests"] == 1
        latency = {entry["model"]: entry for entry in report["latency"]}
        assert latency["priced"]["p50Ms"] > 0 and latency["priced"]["timeToFirstTokenP50Ms"] > 0

        # Grouped by group; a user sees only their own and may not ask for anyone else's.
        status, by_group = request(lisa, "GET", "/usage?bucket=none&groupBy=group", key=token)
        assert status == 200 and by_group["data"][0]["group"] == "team" and by_group["data"][0]["requests"] == 6
        status, error = request(lisa, "GET", "/usage?user=bob", key=token)
        assert status == 403, error
        status, error = request(lisa, "GET", "/usage?bucket=weekly")
        assert status == 400 and "hour, day, month, none" in error["error"]["message"]

        # lisactl shows the same figures to the administrator.
        out = json.loads(lisactl(lisa, "--output", "json", "usage", "--bucket", "none", "--group-by", "user").stdout)
        assert out["data"][0]["user"] == "alice" and out["data"][0]["requests"] == 6
        table = lisactl(lisa, "usage", "--group-by", "model").stdout
        assert "priced" in table and "total" in table

        # One JSON line per request, parseable, naming who and what, never the prompt or a secret.
        lines = [json.loads(line) for line in lisa.proc.output().splitlines() if line.startswith("{") and '"lisa.request"' in line]
        assert len(lines) >= 6
        operations = {line["operation"] for line in lines}
        assert {"chat.completions", "embeddings", "responses", "messages"} <= operations, operations
        assert all(line["username"] == "alice" and line["status"] == "ok" for line in lines)
        log = lisa.proc.output()
        assert secret_prompt not in log and token not in log
    finally:
        lisa.stop()


def test_a_budget_refuses_with_what_was_exceeded_and_when_it_resets(upstream, tmp_path):
    config = "budgets:\n  user: {period: day, tokens: 30}\n  defaultReservationTokens: 10\n"
    lisa = Lisa(upstream, tmp_path / "data", extra_config=config)
    try:
        token = token_for(lisa, "bob")
        client = OpenAI(base_url=lisa.url + "/v1", api_key=token, max_retries=0)
        refused = None
        for _ in range(10):
            try:
                client.chat.completions.create(model="chat-small", messages=[{"role": "user", "content": "hello"}])
            except Exception as error:  # noqa: BLE001
                refused = error
                break
        assert refused is not None and refused.status_code == 429
        body = refused.response.json()["error"]
        assert body["code"] == "budget_exceeded" and body["type"] == "rate_limit_error"
        assert "tokens budget of user 'bob'" in body["message"] and "resets at" in body["message"]
        assert int(refused.response.headers["retry-after"]) >= 1
        # The Anthropic SDK gets Anthropic's error shape.
        claude = anthropic.Anthropic(base_url=lisa.url, api_key=token, max_retries=0)
        with pytest.raises(anthropic.RateLimitError) as raised:
            claude.messages.create(model="chat-small", max_tokens=5, messages=[{"role": "user", "content": "x"}])
        assert raised.value.body["error"]["type"] == "rate_limit_error"
        assert "budget" in raised.value.body["error"]["message"]
        # Where the budget stands, for the user and through lisactl.
        status, budgets = request(lisa, "GET", "/budgets", key=token)
        assert status == 200
        (budget,) = budgets["data"]
        assert budget["scope"] == "user" and budget["subject"] == "bob" and budget["limit"] == 30 and budget["spent"] >= 30
        table = lisactl(lisa, "budgets", key=token).stdout
        assert "bob" in table and "tokens" in table
        # A token's own budget applies on top; anyone may limit their own token.
        status, own = request(lisa, "POST", "/api-tokens", {"name": "capped", "budget": {"period": "day", "tokens": 0}}, key=ADMIN_KEY)
        assert status == 201 and own["tokenInfo"]["budget"] == {"period": "day", "tokens": 0}
        status, bad = request(lisa, "POST", "/api-tokens", {"name": "bad", "budget": {"period": "week", "tokens": 1}})
        assert status == 400, bad
    finally:
        lisa.stop()


@pytest.mark.skipif(not os.environ.get("LISA_TEST_DATABASE_URL"), reason="needs PostgreSQL (the README test command starts one)")
def test_fifty_concurrent_calls_on_two_replicas_overspend_a_budget_by_at_most_one_reservation(upstream, postgres, tmp_path):  # noqa: F811
    env = {"LISA_DATABASE_URL": postgres.url}
    limit = 60
    config = (f"budgets:\n  user: {{period: day, tokens: {limit}}}\n"
              "rateLimits:\n  enabled: false\nusage:\n  flushIntervalSeconds: 0.2\n")
    first = Lisa(upstream, tmp_path / "a", extra_env=env, extra_config=config)
    second = Lisa(upstream, tmp_path / "b", extra_env=env, extra_config=config)
    try:
        token = token_for(first, "carol")
        clients = [OpenAI(base_url=lisa.url + "/v1", api_key=token, max_retries=0) for lisa in (first, second)]
        max_tokens = 20
        body = "hello"

        def call(index):
            try:
                clients[index % 2].chat.completions.create(
                    model="chat-small", messages=[{"role": "user", "content": body}], max_tokens=max_tokens)
                return "ok"
            except Exception as error:  # noqa: BLE001
                assert error.status_code == 429 and error.response.json()["error"]["code"] == "budget_exceeded", error
                return "refused"

        # Waves of 50 concurrent calls until a wave gets nothing through: held reservations
        # refuse calls while they run, so it takes a few to use the budget up.
        allowed, sent = 0, 0
        with concurrent.futures.ThreadPoolExecutor(50) as pool:
            for _ in range(10):
                wave = list(pool.map(call, range(50))).count("ok")
                allowed += wave
                sent += 50
                if wave == 0:
                    break
        assert 0 < allowed < sent and wave == 0

        # Settling is off the request path: wait until nothing is held.
        deadline = time.monotonic() + 10
        while True:
            status, budgets = request(second, "GET", "/budgets", key=token)
            budget = budgets["data"][0]
            if budget["reserved"] == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert budget["reserved"] == 0
        report = wait_for_usage(first, sent, "bucket=none&groupBy=user")
        row = report["data"][0]
        assert row["requests"] == sent and row["errors"] == sent - allowed
        used = row["inputTokens"] + row["outputTokens"]
        assert budget["spent"] == used, (budget, row)
        # The bound: a call starts only while spent + reserved is under the limit, and what
        # each call reserves (a quarter of its body's bytes plus max_tokens) is at least what
        # it spends, so the last call admitted takes the budget past the limit by at most its
        # own spend (50 unchecked calls would spend 50 times it).
        per_call = used / allowed
        assert per_call == int(per_call), "every call spends the same"
        assert used < limit + per_call, (used, allowed, per_call)
        assert used >= limit, "the waves used the budget up"
        print(f"budget {limit} tokens, {allowed} of {sent} concurrent calls admitted on two replicas, {used} spent "
              f"(overshoot {max(used - limit, 0)}, one call spends {int(per_call)}, reserves about {25 + max_tokens})")
    finally:
        first.stop()
        second.stop()
