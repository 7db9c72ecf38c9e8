"""Chat sessions and prompt templates over HTTP with real users (API tokens): each user
sees only their own sessions; templates are shared by group or publicly, revised on update,
changed only by their owner or an administrator."""
import json

import httpx
import pytest

from conftest import ADMIN_KEY, Lisa, lisactl


@pytest.fixture
def lisa(upstream, tmp_path):
    # Rate limits (LISA's 60 a minute, bursts of 10) are tested elsewhere; these tests make many calls.
    server = Lisa(upstream, tmp_path / "data", extra_config="rateLimits: {enabled: false}\n")
    yield server
    server.stop()


def call(lisa, method, path, key, body=None):
    with httpx.Client(timeout=30) as client:
        response = client.request(method, lisa.url + path, json=body, headers={"Authorization": f"Bearer {key}"})
        return response.status_code, response.json()


def token(lisa, user, *groups):
    args = ["--output", "json", "tokens", "create", "--name", user, "--user", user]
    for group in groups:
        args += ["--group", group]
    return json.loads(lisactl(lisa, *args).stdout)["token"]


def test_sessions_belong_to_their_owner(lisa):
    alice, bob = token(lisa, "alice", "team-a"), token(lisa, "bob", "team-b")
    history = [{"type": "human", "content": "What is LISA?"}, {"type": "ai", "content": "A gateway.",
                                                                 "metadata": {"sources": [{"documentName": "a.pdf"}]}}]
    status, saved = call(lisa, "PUT", "/session/s-1", alice, {"history": history, "configuration": {"selectedModel": "chat-small",
                                                                                                    "modelArgs": {"temperature": 0.2}}})
    assert status == 200 and saved["userId"] == "alice"
    assert call(lisa, "PUT", "/session/s-2", alice, {"history": []})[0] == 200
    status, listed = call(lisa, "GET", "/session", alice)
    assert [s["sessionId"] for s in listed] == ["s-2", "s-1"] and listed[1]["firstHumanMessage"] == "What is LISA?"
    status, full = call(lisa, "GET", "/session/s-1", alice)
    assert full["history"] == history and full["configuration"]["modelArgs"]["temperature"] == 0.2

    # Bob sees none of it, cannot read, rename or delete it; his own id space is separate.
    assert call(lisa, "GET", "/session", bob) == (200, [])
    assert call(lisa, "GET", "/session/s-1", bob)[0] == 404
    assert call(lisa, "PUT", "/session/s-1/name", bob, {"name": "mine"})[0] == 404
    assert call(lisa, "DELETE", "/session/s-1", bob)[0] == 404
    assert call(lisa, "PUT", "/session/s-1", bob, {"history": []})[1]["userId"] == "bob"
    assert call(lisa, "GET", "/session/s-1", alice)[1]["history"] == history, "bob's save did not touch alice's"

    status, renamed = call(lisa, "PUT", "/session/s-1/name", alice, {"name": "  About LISA  "})
    assert status == 200 and renamed["name"] == "About LISA"
    assert call(lisa, "PUT", "/session/s-1/name", alice, {"name": ""})[0] == 400
    assert call(lisa, "PUT", "/session/bad id", alice, {"history": []})[0] in (400, 404)
    assert call(lisa, "PUT", "/session/s-3", alice, {"history": "not a list"})[0] == 400
    assert call(lisa, "DELETE", "/session/s-2", alice)[0] == 200
    assert call(lisa, "DELETE", "/session", alice)[1] == {"deleted": 1}
    assert call(lisa, "GET", "/session", alice) == (200, [])
    assert len(call(lisa, "GET", "/session", bob)[1]) == 1
    assert call(lisa, "GET", "/session", "not-a-token")[0] == 401


def test_prompt_templates_shared_by_group_and_revised(lisa):
    alice, bob, carol = token(lisa, "alice", "team-a"), token(lisa, "bob", "team-a"), token(lisa, "carol", "team-c")
    status, private = call(lisa, "POST", "/prompt-templates", alice, {"title": "Mine", "type": "directive", "body": "Be terse."})
    assert status == 201 and private["owner"] == "alice" and private["revision"] == 1
    status, shared = call(lisa, "POST", "/prompt-templates", alice, {"title": "Team", "body": "You are helpful.", "groups": ["team-a"]})
    status, public = call(lisa, "POST", "/prompt-templates", carol, {"title": "Everyone", "body": "Hi.", "groups": ["lisa:public"]})
    titles = lambda key: sorted(t["title"] for t in call(lisa, "GET", "/prompt-templates", key)[1]["Items"])
    assert titles(alice) == ["Everyone", "Mine", "Team"]
    assert titles(bob) == ["Everyone", "Team"]
    assert titles(carol) == ["Everyone"]
    assert call(lisa, "GET", f"/prompt-templates/{private['id']}", bob)[0] == 404

    # Only the owner (or an administrator) changes a template; each change is a revision.
    assert call(lisa, "PUT", f"/prompt-templates/{shared['id']}", bob, {"title": "Team", "body": "Hijack"})[0] == 403
    status, revised = call(lisa, "PUT", f"/prompt-templates/{shared['id']}", alice, {"title": "Team v2", "body": "You are very helpful."})
    assert status == 200 and revised["revision"] == 2 and revised["groups"] == ["team-a"]
    status, revisions = call(lisa, "GET", f"/prompt-templates/{shared['id']}/revisions", bob)
    assert [r["body"] for r in revisions] == ["You are helpful."]
    assert call(lisa, "PUT", f"/prompt-templates/{public['id']}", ADMIN_KEY, {"title": "Everyone", "body": "Hello."})[1]["revision"] == 2
    assert call(lisa, "POST", "/prompt-templates", alice, {"title": "", "body": "x"})[0] == 400
    assert call(lisa, "DELETE", f"/prompt-templates/{shared['id']}", bob)[0] == 403
    assert call(lisa, "DELETE", f"/prompt-templates/{shared['id']}", alice)[0] == 200
    assert titles(bob) == ["Everyone"]
