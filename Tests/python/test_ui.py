"""LISA Chat in a real browser: Debian's headless Chromium driven by Playwright against a
LISAServe process. Screenshots of the main screens are saved under
Tests/python/artifacts/screenshots/ (LISA_UI_SCREENSHOTS overrides the folder)."""
import json
import os
import pathlib
import re
import shutil
import time
import urllib.error
import urllib.request

import pytest
from openai import OpenAI

from conftest import ADMIN_KEY, BIN, ROOT, Lisa, api, lisactl, start_fake_upstream
from test_oidc import CLIENT_ID, IdP

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = pathlib.Path(os.environ.get("LISA_UI_SCREENSHOTS", ROOT / "Tests" / "python" / "artifacts" / "screenshots"))

playwright_api = pytest.importorskip("playwright.sync_api")
if not os.path.exists(CHROMIUM):
    pytest.skip("needs Chromium (the README test command installs it)", allow_module_level=True)


@pytest.fixture(scope="module")
def slow_upstream(tmp_path_factory):
    """A fake upstream that streams one word every 80 ms, so a stream can be watched and stopped."""
    proc, url = start_fake_upstream(tmp_path_factory, 80)
    yield url
    proc.stop()


@pytest.fixture(scope="module")
def ui(slow_upstream, embedding_model, tmp_path_factory):
    """LISAServe with a chat model, a real embedding model and a repository on the embedded store."""
    data = tmp_path_factory.mktemp("ui") / "data"
    server = Lisa(slow_upstream, data, extra_config=f"""
  - modelId: minilm
    modelName: all-MiniLM-L6-v2
    modelType: embedding
    modelUrl: {embedding_model}
  - modelId: overloaded
    modelName: fail-503
    modelUrl: {slow_upstream}
    circuitBreaker: {{failureThreshold: 1000, cooldownSeconds: 1}}  # stays offered: an open circuit is "down"
  - modelId: flaky-stream
    modelName: break-stream
    modelUrl: {slow_upstream}
    circuitBreaker: {{failureThreshold: 1000, cooldownSeconds: 1}}
auth:
  adminGroup: lisa-admins
budgets:
  groups:
    team-a: {{period: month, tokens: 100000}}
usage:
  flushIntervalSeconds: 0.2
""")
    status, _ = api(server, "POST", "/repository", {"repositoryId": "handbook", "repositoryName": "Team handbook",
                                                     "type": "embedded", "embeddingModelId": "minilm"})
    assert status == 201
    status, created = api(server, "POST", "/api-tokens/alice", {"name": "alice browser", "groups": ["team-a"]})
    assert status == 201
    server.alice = created["token"]
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    # Script errors and console errors, except the browser's own line for each 4xx answer
    # (some tests provoke them on purpose).
    page.on("console", lambda message: page.errors.append(message.text)
            if message.type == "error" and not message.text.startswith("Failed to load resource") else None)
    page.set_default_timeout(15000)
    yield page
    context.close()


def wait_until(page, expression, timeout=15):
    """Polls `expression` in the page until it is truthy. (Playwright's wait_for_function
    evaluates strings with eval, which LISA Chat's Content-Security-Policy forbids.)"""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if page.evaluate(expression):
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for: {expression}")


def screenshot(page, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def sign_in(page, lisa, token=ADMIN_KEY):
    page.goto(lisa.url + "/")
    page.fill("#token", token)
    page.keyboard.press("Enter")
    page.wait_for_selector("#composer-input")
    wait_until(page, "document.querySelector('#model').value !== ''")


def send(page, text):
    page.fill("#composer-input", text)
    page.keyboard.press("Enter")


def answer_text(page):
    return page.locator(".message.ai .message-body").last.inner_text()


def wait_answer_done(page, timeout=30000):
    page.wait_for_selector("#send", state="visible", timeout=timeout)


def test_sign_in_with_a_token(ui, page):
    page.goto(ui.url + "/")
    page.wait_for_selector("#token")
    screenshot(page, "sign-in")
    page.fill("#token", "lisa_not-a-real-token")
    page.click("button[type=submit]")
    error = page.locator(".form-error")
    error.wait_for()
    assert "not accepted" in error.inner_text()
    page.fill("#token", ui.alice)
    page.click("button[type=submit]")
    page.wait_for_selector("#composer-input")
    assert page.locator(".username").inner_text().startswith("alice")
    page.reload()
    page.wait_for_selector("#composer-input")  # the tab keeps the sign-in across a reload
    page.click("text=Sign out")
    page.wait_for_selector("#token")
    assert page.evaluate("sessionStorage.getItem('lisa.credential') === null && localStorage.getItem('lisa.credential') === null")
    assert not page.errors, page.errors


def test_an_answer_streams_in_and_the_session_survives_a_reload(ui, page):
    sign_in(page, ui)
    words = " ".join(f"w{i}" for i in range(40))
    send(page, f"Tell me a story {words}")
    page.wait_for_selector(".message.ai.streaming")
    lengths = []
    deadline = time.time() + 20
    while time.time() < deadline and page.locator(".message.ai.streaming").count():
        lengths.append(len(answer_text(page)))
        time.sleep(0.25)
    wait_answer_done(page)
    grown = [length for length in lengths if length > 1]
    assert len(set(grown)) >= 4, f"the text should grow in steps while streaming: {lengths}"
    assert grown == sorted(grown), lengths
    stats = page.locator(".message.ai .message-stats").last.inner_text()
    assert re.search(r"\b\d+ ms to first token", stats) and "0.0 s" not in stats, stats
    assert answer_text(page) == f"echo: Tell me a story {words}"
    assert page.locator("#answer-status").inner_text() == "The answer is complete.", "screen readers hear that it ended"
    screenshot(page, "chat")

    match = re.search(r"#/chat/([\w.:-]+)$", page.url)
    assert match, page.url
    session_id = match.group(1)
    page.wait_for_selector(f".session[data-session='{session_id}']")
    page.reload()
    page.wait_for_selector(".message.ai")
    assert answer_text(page) == f"echo: Tell me a story {words}"
    assert page.locator(".message.human .message-body").inner_text() == f"Tell me a story {words}"
    assert page.locator(".session.active .session-name").inner_text().startswith("Tell me a story")
    status, session = api(ui, "GET", f"/session/{session_id}")
    assert status == 200 and [m["type"] for m in session["history"]] == ["human", "ai"]
    assert session["configuration"]["selectedModel"] == "chat-small"
    # The upstream's usage (asked for with stream_options) and the timings are kept and shown.
    metadata = session["history"][1]["metadata"]
    assert metadata["usage"]["completion_tokens"] == 45
    assert 0 < metadata["firstTokenMs"] < metadata["totalMs"]
    assert page.locator(".message-stats").inner_text().endswith("· 45 tokens")
    assert not page.errors, page.errors


def test_stop_ends_the_stream(ui, page):
    sign_in(page, ui)
    words = " ".join(f"w{i}" for i in range(200))
    send(page, f"Go on {words}")
    wait_until(page, "document.querySelector('.message.ai.streaming .message-body').innerText.length > 20")
    page.click("#stop")
    wait_answer_done(page, timeout=3000)
    stopped = answer_text(page)
    assert len(stopped) < len(f"echo: Go on {words}")
    assert page.locator(".message.ai .message-note").inner_text() == "Stopped."
    assert page.locator("#answer-status").inner_text() == "The answer was stopped."
    time.sleep(1)
    assert answer_text(page) == stopped, "nothing arrives after Stop"
    session_id = re.search(r"#/chat/([\w.:-]+)$", page.url).group(1)
    status, session = api(ui, "GET", f"/session/{session_id}")
    assert session["history"][-1]["metadata"]["stopped"] is True
    assert session["history"][-1]["content"] == stopped
    # Escape stops too, from the keyboard.
    send(page, f"Again {words}")
    wait_until(page, "document.querySelector('.message.ai.streaming .message-body').innerText.length > 20")
    page.keyboard.press("Escape")
    wait_answer_done(page, timeout=3000)
    assert page.locator(".message.ai .message-note").last.inner_text() == "Stopped."
    # Leaving a new chat mid-answer stops and saves it, and the page stays where the user went.
    page.click("#new-chat")
    send(page, f"Third {words}")
    wait_until(page, "document.querySelector('.message.ai.streaming .message-body').innerText.length > 20")
    before = {s["sessionId"] for s in api(ui, "GET", "/session")[1]}
    page.click(f".session[data-session='{session_id}'] .session-link")
    wait_until(page, f"location.hash === '#/chat/{session_id}'")
    wait_until(page, f"document.querySelectorAll('.session').length === {len(before) + 1}")
    time.sleep(0.3)
    assert page.evaluate("location.hash") == f"#/chat/{session_id}"
    left = [s for s in api(ui, "GET", "/session")[1] if s["sessionId"] not in before]
    assert len(left) == 1
    saved = api(ui, "GET", f"/session/{left[0]['sessionId']}")[1]
    assert saved["history"][-1]["metadata"]["stopped"] is True


def test_copy_an_answer_and_regenerate_or_retry_it(ui, browser):
    context = browser.new_context(permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    try:
        sign_in(page, ui)
        send(page, "Copy **this** answer")
        wait_answer_done(page)
        page.click(".message.ai .copy-answer")
        assert page.evaluate("navigator.clipboard.readText()") == "echo: Copy **this** answer", "the Markdown source is copied"
        # The session is titled with the text, not its Markdown marks.
        wait_until(page, "document.querySelector('.session.active .session-name')?.innerText === 'Copy this answer'")
        assert page.locator(".regenerate").inner_text() == "Regenerate"
        page.click(".regenerate")
        page.wait_for_selector(".message.ai.streaming")
        wait_answer_done(page)
        assert page.locator(".message.ai").count() == 1, "the new answer replaces the old one"
        session_id = re.search(r"#/chat/([\w.:-]+)$", page.url).group(1)
        history = api(ui, "GET", f"/session/{session_id}")[1]["history"]
        assert [m["type"] for m in history] == ["human", "ai"] and history[1]["content"] == "echo: Copy **this** answer"

        # A failed answer offers Retry; retrying with a working model replaces it.
        page.select_option("#model", "overloaded")
        send(page, "Second question")
        wait_answer_done(page)
        assert page.locator(".regenerate").count() == 1 and page.locator(".regenerate").inner_text() == "Retry"
        page.select_option("#model", "chat-small")
        page.click(".regenerate")
        wait_answer_done(page)
        assert answer_text(page) == "echo: Second question"
        assert page.locator(".message-error").count() == 0
        history = api(ui, "GET", f"/session/{session_id}")[1]["history"]
        assert [m["type"] for m in history] == ["human", "ai", "human", "ai"] and "error" not in history[3]["metadata"]
    finally:
        context.close()


def test_rename_export_and_delete_a_session(ui, page):
    sign_in(page, ui)
    send(page, "A chat to rename")
    wait_answer_done(page)
    session_id = re.search(r"#/chat/([\w.:-]+)$", page.url).group(1)
    item = page.locator(f".session[data-session='{session_id}']")
    item.locator("button[title=Rename]").click()
    page.fill("dialog input", "Quarterly planning")
    page.keyboard.press("Enter")
    wait_until(page, f"document.querySelector(\".session[data-session='{session_id}'] .session-name\").innerText === 'Quarterly planning'")
    assert api(ui, "GET", f"/session/{session_id}")[1]["name"] == "Quarterly planning"
    page.reload()
    page.wait_for_selector(f".session[data-session='{session_id}']")
    assert item.locator(".session-name").inner_text() == "Quarterly planning"
    assert page.locator(".chat-title").inner_text() == "Quarterly planning"

    with page.expect_download() as download:
        item.locator("button[title=Export]").click()
    exported = json.loads(pathlib.Path(download.value.path()).read_text())
    assert exported["sessionId"] == session_id and exported["history"][0]["content"] == "A chat to rename"

    item.locator("button[title=Delete]").click()
    page.wait_for_selector("dialog")
    screenshot(page, "delete-session")
    page.click("dialog button.danger")
    page.wait_for_selector(f".session[data-session='{session_id}']", state="detached")
    assert api(ui, "GET", f"/session/{session_id}")[0] == 404
    assert page.url.endswith("#/")


def test_model_output_with_markup_renders_as_text(ui, page):
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    sign_in(page, ui)
    hostile = ('<script>window.pwned = 1; alert(1)</script> <img src=x onerror="window.pwned = 2; alert(2)"> '
               '[click me](javascript:alert(3)) **bold** `<b>code</b>`')
    send(page, hostile)
    wait_answer_done(page)
    body = page.locator(".message.ai .message-body").last
    text = body.inner_text()
    assert "<script>window.pwned = 1; alert(1)</script>" in text
    assert '<img src=x onerror="window.pwned = 2; alert(2)">' in text
    assert body.locator("script, img, iframe").count() == 0
    assert body.locator("a").count() == 0, "a javascript: link stays text"
    assert body.locator("strong").inner_text() == "bold"
    assert body.locator("code").inner_text() == "<b>code</b>"
    time.sleep(0.5)
    assert page.evaluate("window.pwned") is None
    assert dialogs == []
    # The reloaded session renders the stored answer the same safe way.
    page.reload()
    page.wait_for_selector(".message.ai")
    assert page.locator(".message-body script, .message-body img").count() == 0
    assert page.evaluate("window.pwned") is None


def test_prompt_templates_fill_the_system_prompt_and_the_message(ui, page):
    assert api(ui, "POST", "/prompt-templates", {"title": "Pirate", "type": "persona", "body": "You talk like a pirate.",
                                                 "groups": ["lisa:public"]})[0] == 201
    assert api(ui, "POST", "/prompt-templates", {"title": "Summarise", "type": "directive",
                                                 "body": "Summarise in three bullet points:", "groups": ["lisa:public"]})[0] == 201
    sign_in(page, ui, ui.alice)
    page.select_option("#template", label="Pirate (persona)")
    assert page.input_value("#system-prompt") == "You talk like a pirate."
    page.fill("#composer-input", "the meeting notes")
    page.select_option("#template", label="Summarise (directive)")
    assert page.input_value("#composer-input") == "Summarise in three bullet points:\n\nthe meeting notes"
    page.keyboard.press("Enter")
    wait_answer_done(page)
    assert page.locator(".message.ai .message-body p").all_inner_texts() == [
        "echo: Summarise in three bullet points:", "the meeting notes"], "the directive went first, as its own paragraph"
    session_id = re.search(r"#/chat/([\w.:-]+)$", page.url).group(1)
    assert api(ui, "GET", f"/session/{session_id}", key=ui.alice)[1]["configuration"]["systemPrompt"] == "You talk like a pirate."
    # Save the current system prompt as alice's own template.
    page.fill("#system-prompt", "Answer in French.")
    page.click("text=Save as template")
    page.fill("dialog input", "French")
    page.keyboard.press("Enter")
    page.wait_for_selector("#template option:has-text('French (persona)')", state="attached")
    mine = [t for t in api(ui, "GET", "/prompt-templates", key=ui.alice)[1]["Items"] if t["title"] == "French"]
    assert len(mine) == 1 and mine[0]["owner"] == "alice" and mine[0]["body"] == "Answer in French."


def test_the_library_shares_and_revises_templates_and_lists_documents(ui, page, browser):
    sign_in(page, ui)
    page.click(".nav a:has-text('Library')")
    page.fill("#template-title", "Release notes")
    page.select_option("#template-type", "directive")
    page.select_option("#template-sharing", "groups")
    page.fill("#template-groups", "team-a")
    page.fill("#template-body", "Write release notes for:")
    page.click("#save-template")
    row = page.locator("#templates-table tr:has-text('Release notes')")
    row.wait_for()
    assert "team-a" in row.inner_text() and "admin" in row.inner_text()
    template_id = row.get_attribute("data-template")
    row.locator("button:has-text('Edit')").click()
    assert page.input_value("#template-body") == "Write release notes for:"
    page.fill("#template-body", "Write short release notes for:")
    page.click("#save-template")
    wait_until(page, f"document.querySelector(\"tr[data-template='{template_id}'] td:nth-child(5)\").innerText === '2'")
    status, revisions = api(ui, "GET", f"/prompt-templates/{template_id}/revisions")
    assert status == 200 and [r["body"] for r in revisions] == ["Write release notes for:"]

    # alice (team-a) gets it in her picker, may not edit it, and sees her own documents.
    status, jobs = api(ui, "POST", "/repository/handbook/bulk", {"documents": [{"name": "alice-notes.md", "content": "# Notes\n\nThe wiki moved."}]},
                       key=ui.alice)
    assert status == 202
    deadline = time.time() + 30
    while api(ui, "GET", f"/repository/handbook/jobs/{jobs['jobs'][0]['jobId']}", key=ui.alice)[1]["status"] != "COMPLETED":
        assert time.time() < deadline
        time.sleep(0.2)
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    other = context.new_page()
    try:
        sign_in(other, ui, ui.alice)
        other.wait_for_selector("#template option:has-text('Release notes (directive)')", state="attached")
        other.click(".nav a:has-text('Library')")
        shared = other.locator(f"#templates-table tr[data-template='{template_id}']")
        shared.wait_for()
        assert shared.locator("button").count() == 0, "only the owner and admins edit"
        document = other.locator("#documents-table tr:has-text('alice-notes.md')")
        document.wait_for()
        assert "alice" in document.inner_text()
        document.scroll_into_view_if_needed()
        screenshot(other, "library")
        document.locator("button:has-text('Delete')").click()
        other.click("dialog button.danger")
        document.wait_for(state="detached")
        names = [d["documentName"] for d in api(ui, "GET", "/repository/handbook/document", key=ui.alice)[1]]
        assert "alice-notes.md" not in names
    finally:
        context.close()
    row.locator("button:has-text('Delete')").click()
    page.click("dialog button.danger")
    row.wait_for(state="detached")
    assert api(ui, "GET", f"/prompt-templates/{template_id}")[0] == 404


def test_a_rag_administrator_creates_a_repository_in_the_library(ui, page, browser):
    sign_in(page, ui)
    page.goto(ui.url + "/#/library")
    page.click("#new-repository")
    wait_until(page, "[...document.querySelectorAll('#repository-model option')].some((o) => o.value === 'minilm')")
    page.fill("#repository-id", "ui-repo")
    page.fill("#repository-name", "Made in the UI")
    page.select_option("#repository-model", "minilm")
    page.fill("#repository-groups", "team-b")
    page.click("#create-repository")
    wait_until(page, "document.querySelector('#library-repository').value === 'ui-repo'")
    status, repositories = api(ui, "GET", "/repository")
    made = next(repository for repository in repositories if repository["repositoryId"] == "ui-repo")
    assert made["embeddingModelId"] == "minilm" and made["allowedGroups"] == ["team-b"]
    # A bad id is refused with the server's reason, shown in the form.
    page.click("#new-repository")
    page.fill("#repository-id", "Bad Id!")
    page.evaluate("document.querySelector('#repository-id').removeAttribute('pattern')")
    page.click("#create-repository")
    page.wait_for_selector("#repository-form .form-error:not([hidden])")
    # alice (team-a, no RAG administration) gets no form, and no repository of team-b.
    other = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    try:
        sign_in(other, ui, ui.alice)
        other.goto(ui.url + "/#/library")
        other.wait_for_selector("#library-repository option[value='handbook']", state="attached")
        assert other.locator("#new-repository").count() == 0
        assert "ui-repo" not in [o.get_attribute("value") for o in other.locator("#library-repository option").all()]
    finally:
        other.context.close()
    assert api(ui, "DELETE", "/repository/ui-repo")[0] == 200


def test_server_errors_are_shown_as_readable_messages(ui, page):
    sign_in(page, ui)
    page.select_option("#model", "overloaded")
    send(page, "Are you there?")
    wait_answer_done(page)
    error = page.locator(".message.ai .message-error").last
    assert "503" in error.inner_text() or "unavailable" in error.inner_text().lower(), error.inner_text()
    page.select_option("#model", "flaky-stream")
    send(page, "Tell me everything")
    wait_answer_done(page)
    broken = page.locator(".message.ai").last
    assert broken.locator(".message-error").count() == 1, "a stream that breaks says so"
    assert "[DONE]" not in broken.inner_text()
    screenshot(page, "errors")
    session_id = re.search(r"#/chat/([\w.:-]+)$", page.url).group(1)
    history = api(ui, "GET", f"/session/{session_id}")[1]["history"]
    assert all(message["metadata"].get("error") for message in history if message["type"] == "ai")


def test_rag_upload_then_a_grounded_answer_with_its_citation(ui, page, tmp_path):
    sign_in(page, ui, ui.alice)
    page.select_option("#repository", "handbook")
    page.wait_for_selector("#collection option[value=default]", state="attached")
    document = tmp_path / "lighthouse-notes.txt"
    document.write_text("The Skerryvore lighthouse keeper has a ginger cat named Biscuit who sleeps by the lamp.\n\n"
                        "Supply boats reach the rock every second Tuesday when the sea is calm.")
    page.set_input_files("#upload-file", str(document))
    page.click("#upload")
    page.wait_for_selector(".job[data-status=COMPLETED]", timeout=30000)
    assert "Ready" in page.locator(".job").first.inner_text()
    send(page, "What is the name of the lighthouse keeper's cat?")
    wait_answer_done(page)
    sources = page.locator(".message.ai .sources").last
    sources.wait_for()
    assert "lighthouse-notes.txt" in sources.inner_text()
    assert "Biscuit" in sources.locator(".source").first.inner_text(), "the best source is the passage about the cat"
    screenshot(page, "rag")
    session_id = re.search(r"#/chat/([\w.:-]+)$", page.url).group(1)
    status, session = api(ui, "GET", f"/session/{session_id}", key=ui.alice)
    assert session["history"][-1]["metadata"]["sources"][0]["documentName"] == "lighthouse-notes.txt"
    assert session["configuration"]["rag"]["repositoryId"] == "handbook"


def test_a_non_admin_sees_no_admin_pages_and_gets_403(ui, page):
    sign_in(page, ui, ui.alice)
    assert page.locator(".nav a").all_inner_texts() == ["Chat", "Library", "Usage"]
    page.goto(ui.url + "/#/admin/models")
    page.wait_for_selector("text=Administrator rights needed")
    assert "administrator" in page.locator(".empty-state p").inner_text().lower()
    screenshot(page, "non-admin")
    # Her tokens page lists her token and offers no form the server would refuse.
    page.goto(ui.url + "/#/admin/tokens")
    page.wait_for_selector("#tokens-table tr:has-text('alice browser')")
    assert page.locator("#create-token").count() == 0
    assert "ask an administrator" in page.locator(".page .hint").inner_text()
    statuses = page.evaluate("""async (token) => {
        const headers = {Authorization: `Bearer ${token}`};
        const models = await fetch('/models', {headers});
        const created = await fetch('/models', {method: 'POST', headers: {...headers, 'Content-Type': 'application/json'},
                                                body: JSON.stringify({modelId: 'x', modelName: 'x', modelUrl: 'http://127.0.0.1:9/v1'})});
        const metrics = await fetch('/metrics', {headers});
        const listed = await models.json();
        return [models.status, created.status, metrics.status, (await created.json()).error.type,
                listed.models.every((model) => !model.modelUrl && (model.endpoints ?? []).length === 0)];
    }""", ui.alice)
    assert statuses[:3] == [200, 403, 403], "a user lists the models they use, and manages none"
    assert statuses[3] == "permission_error"
    assert statuses[4] is True, "without where they run"
    # The same answer the UI decides by, from the command line.
    who = lisactl(ui, "--output", "json", "whoami", key=ui.alice)
    assert who.returncode == 0, who.stderr
    identity = json.loads(who.stdout)
    assert identity["username"] == "alice" and identity["groups"] == ["team-a"] and identity["isAdmin"] is False
    assert "alice" in lisactl(ui, "whoami", key=ui.alice).stdout


def test_admin_manages_models_and_tokens(ui, page, slow_upstream):
    sign_in(page, ui)
    page.click(".nav a:has-text('Models')")
    row = page.locator("#models-table tr[data-model='chat-small']")
    row.wait_for()
    assert "InService" in row.inner_text() and "healthy" in row.inner_text()
    page.click("#add-model")
    page.fill("#new-model-id", "ui-made")
    page.fill("#new-model-name", "echo")
    page.fill("#new-model-endpoints", slow_upstream)
    page.select_option("#new-model-container", "vllm")
    page.fill("#new-model-api-key", "sk-from-the-form")
    page.fill("#new-model-groups", "team-a, team-b")
    page.click("text=Create model")
    made = page.locator("#models-table tr[data-model='ui-made']")
    made.wait_for()
    wait_until(page, "document.querySelector(\"tr[data-model='ui-made']\").innerText.includes('InService')")
    assert "groups: team-a, team-b" in made.locator(".groups").inner_text()
    stored = api(ui, "GET", "/models/ui-made")[1]
    assert stored["inferenceContainer"] == "vllm" and stored["allowedGroups"] == ["team-a", "team-b"]
    assert "sk-from-the-form" not in json.dumps(stored), "the key is stored, never shown"
    assert "sk-from-the-form" not in made.inner_text()
    screenshot(page, "models")
    made.locator("[data-action=stop]").click()
    wait_until(page, "document.querySelector(\"tr[data-model='ui-made'] .status\").innerText === 'Stopped'")
    assert api(ui, "GET", "/models/ui-made")[1]["status"] == "Stopped"
    made.locator("[data-action=start]").click()
    wait_until(page, "document.querySelector(\"tr[data-model='ui-made'] .status\").innerText === 'InService'")
    made.locator("[data-action=delete]").click()
    page.click("dialog button.danger")
    made.wait_for(state="detached")
    assert api(ui, "GET", "/models/ui-made")[0] == 404

    # A hosted model from the JSON definition: replicas, scaling and logs.
    definition = {
        "modelId": "ui-hosted", "modelName": "echo", "hostingType": "lisa_hosted",
        "launch": {"command": f"{BIN / 'lisa-fake-upstream'} --port {{port}}", "startupTimeoutSeconds": 30},
        "autoScalingConfig": {"minCapacity": 1, "maxCapacity": 2, "cooldown": 600, "metricConfig": {"targetValue": 100}},
    }
    page.click("#add-model")
    page.click("text=Advanced: the whole definition as JSON")
    page.fill("#new-model-json", json.dumps(definition))
    page.click("text=Create model")
    hosted = page.locator("#models-table tr[data-model='ui-hosted']")
    hosted.wait_for()
    wait_until(page, "document.querySelector(\"tr[data-model='ui-hosted'] .replicas\")?.innerText === '1 of 1 replicas ready (1–2)'", 40)
    hosted.locator("[data-action=scale]").click()
    page.fill("dialog input", "2")
    page.keyboard.press("Enter")
    wait_until(page, "document.querySelector(\"tr[data-model='ui-hosted'] .replicas\")?.innerText === '2 of 2 replicas ready (1–2)'", 40)
    assert len([r for r in api(ui, "GET", "/models/ui-hosted")[1]["replicas"] if r["state"] == "ready"]) == 2
    hosted.locator("[data-action=logs]").click()
    wait_until(page, "document.querySelector('dialog pre.logs').innerText.includes('lisa-fake-upstream listening on')")
    screenshot(page, "model-logs")
    page.keyboard.press("Escape")
    hosted.locator("[data-action=delete]").click()
    page.click("dialog button.danger")
    hosted.wait_for(state="detached", timeout=30000)

    page.click(".nav a:has-text('API tokens')")
    page.fill("#token-name", "notebook")
    page.fill("#token-owner", "bob")
    page.fill("#token-groups", "team-b")
    page.click("#create-token")
    secret = page.locator(".secret-value")
    secret.wait_for()
    token = secret.inner_text()
    assert token.startswith("lisa_")
    assert api(ui, "GET", "/whoami", key=token)[1]["username"] == "bob"
    row = page.locator("#tokens-table tr:has-text('notebook')")
    row.wait_for()
    screenshot(page, "tokens")
    row.locator("button:has-text('Revoke')").click()
    page.click("dialog button.danger")
    row.wait_for(state="detached")
    assert api(ui, "GET", "/whoami", key=token)[0] == 401


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_main_screens_pass_an_axe_accessibility_audit(ui, browser, scheme):
    """axe-core (bundled by axe-playwright-python) on each main screen, in both colour schemes:
    no violations of the WCAG 2 A/AA rules or axe's best practices."""
    from axe_playwright_python.sync_playwright import Axe
    axe = Axe()
    context = browser.new_context(viewport={"width": 1280, "height": 800}, color_scheme=scheme)
    page = context.new_page()
    found = {}

    def audit(name):
        result = axe.run(page)
        if result.violations_count:
            found[name] = result.generate_report()

    try:
        page.goto(ui.url + "/")
        page.wait_for_selector("#token")
        audit("sign-in")
        sign_in(page, ui)
        send(page, "Some **Markdown**, `code`, and a list:\n\n- one\n- two\n\n```python\nprint('hi')\n```")
        wait_answer_done(page)
        audit("chat")
        if scheme == "dark":
            screenshot(page, "chat-dark")
        page.locator(".session").first.locator("button[title=Rename]").click()
        page.wait_for_selector("dialog")
        audit("dialog")
        page.keyboard.press("Escape")
        for route, ready in [("#/library", "#documents-table tbody tr"), ("#/usage", "#latency-table tbody tr"),
                             ("#/admin/models", "#models-table tbody tr"),
                             ("#/admin/tokens", "#tokens-table tbody tr")]:
            page.goto(f"{ui.url}/{route}")
            page.wait_for_selector(ready)
            audit(route)
    finally:
        context.close()
    assert not found, "\n\n".join(f"== {name}\n{report}" for name, report in found.items())


def test_usage_pages_chart_every_call_and_show_a_users_own(ui, page, browser):
    # A call of alice's own, so her page has something, and the admin's has two users.
    client = OpenAI(base_url=ui.url + "/v1", api_key=ui.alice, max_retries=0)
    client.chat.completions.create(model="chat-small", messages=[{"role": "user", "content": "count this"}])
    # And one of the administrator's, so the test does not lean on the calls earlier tests made.
    OpenAI(base_url=ui.url + "/v1", api_key=ADMIN_KEY, max_retries=0).chat.completions.create(
        model="chat-small", messages=[{"role": "user", "content": "and this"}])
    deadline = time.time() + 10
    while api(ui, "GET", "/usage?bucket=none&user=lisa:admin")[1]["totals"]["requests"] < 1 and time.time() < deadline:
        time.sleep(0.1)

    sign_in(page, ui)
    page.click(".nav a:has-text('Usage')")
    page.wait_for_selector("#latency-table tr[data-model='chat-small']")
    wait_until(page, "document.querySelectorAll('#usage-chart svg rect.bar').length > 0")
    total = api(ui, "GET", "/usage?from=%d&bucket=none" % (time.time() - 7 * 86400))[1]["totals"]["requests"]
    assert page.locator("#usage-summary .stat-value").first.inner_text() == f"{total:,}"
    users = page.locator("#top-users").inner_text()
    assert "alice" in users and "lisa:admin" in users
    assert "team-a" in page.locator("#top-groups").inner_text()
    # The chart switches metric without a reload; every bar names its bucket, model and figure.
    page.select_option("#usage-metric", "requests")
    wait_until(page, "[...document.querySelectorAll('#usage-chart rect.bar title')].some((t) => t.textContent.includes('chat-small'))")
    page.select_option("#usage-range", "day")
    wait_until(page, "document.querySelectorAll('#usage-chart svg rect.bar').length > 0")
    screenshot(page, "usage")
    assert not page.errors, page.errors

    other = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    try:
        sign_in(other, ui, ui.alice)
        other.click(".nav a:has-text('Usage')")
        other.wait_for_selector("#latency-table tr[data-model='chat-small']")
        assert other.locator("h1").inner_text() == "Your usage"
        assert other.locator("#top-users").count() == 0, "a user sees no one else"
        own = api(ui, "GET", "/usage?from=%d&bucket=none&user=alice" % (time.time() - 7 * 86400))[1]["totals"]["requests"]
        assert own >= 1 and own < total
        assert other.locator("#usage-summary .stat-value").first.inner_text() == f"{own:,}"
        budget = other.locator("#budgets li").first
        assert "Group team-a: tokens per month" in budget.inner_text() and "100,000" in budget.inner_text()
        screenshot(other, "usage-user")
    finally:
        other.context.close()


def test_phone_sized_screen_and_keyboard(ui, browser):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    try:
        page.goto(ui.url + "/")
        page.wait_for_selector("#token")
        page.keyboard.type(ADMIN_KEY)  # the token field has focus on load
        page.keyboard.press("Enter")
        page.wait_for_selector("#composer-input")
        wait_until(page, "document.querySelector('#model').value !== ''")
        assert not page.locator("#sidebar").is_visible() or page.locator("#sidebar").bounding_box()["x"] < 0
        page.keyboard.type("Hello from a phone")
        page.keyboard.press("Enter")
        wait_answer_done(page)
        assert answer_text(page) == "echo: Hello from a phone"
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, "nothing overflows sideways"
        screenshot(page, "phone-chat")
        page.click(".menu-toggle")
        wait_until(page, "document.querySelector('#sidebar').getBoundingClientRect().x >= 0")
        assert page.locator(".session").count() >= 1
        screenshot(page, "phone-sessions")
        page.keyboard.press("Escape")
        wait_until(page, "document.querySelector('#sidebar').getBoundingClientRect().right <= 0")
        # A drawer also closes with its own button (no keyboard on a phone).
        page.click(".menu-toggle")
        wait_until(page, "document.querySelector('#sidebar').getBoundingClientRect().x >= 0")
        page.click("#sidebar .drawer-close")
        wait_until(page, "document.querySelector('#sidebar').getBoundingClientRect().right <= 0")
        page.click(".settings-toggle")
        wait_until(page, "document.querySelector('#settings').getBoundingClientRect().right <= 391")
        page.click("#settings .drawer-close")
        wait_until(page, "document.querySelector('#settings').getBoundingClientRect().x >= 390")
        page.click(".nav a:has-text('Models')")
        page.wait_for_selector("#models-table tr[data-model='chat-small']")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        assert page.evaluate("document.querySelector('.table-wrap').scrollWidth <= document.querySelector('.table-wrap').clientWidth"), \
            "the models table fits the phone as cards"
        screenshot(page, "phone-models")
    finally:
        context.close()


def test_oidc_sign_in_with_authorization_code_and_pkce(slow_upstream, tmp_path, browser):
    idp = IdP()
    idp.login_claims = {"preferred_username": "carol", "realm_access": {"roles": ["lisa-admins"]}}
    server = Lisa(slow_upstream, tmp_path / "data", extra_config=f"""
auth:
  authority: {idp.issuer}
  clientId: {CLIENT_ID}
  jwtGroupsProperty: realm_access.roles
  adminGroup: lisa-admins
""")
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(server.url + "/")
        page.wait_for_selector("#oidc-signin")
        screenshot(page, "sign-in-oidc")
        policy = page.evaluate("fetch('/').then((r) => r.headers.get('Content-Security-Policy'))")
        assert f"connect-src 'self' http://127.0.0.1:{idp.port}" in policy
        page.click("#oidc-signin")
        page.wait_for_selector("#composer-input")
        assert page.locator(".username").inner_text().startswith("carol")
        assert "code=" not in page.url, "the code is removed from the address bar"
        assert page.locator(".nav a").all_inner_texts() == ["Chat", "Library", "Usage", "Models", "API tokens"], "the IdP's group makes carol an admin"
        assert len(idp.exchanges) == 1 and len(idp.exchanges[0]["code_verifier"]) >= 43
        send(page, "Signed in with SSO")
        wait_answer_done(page)
        assert answer_text(page) == "echo: Signed in with SSO"
    finally:
        context.close()
        server.stop()
        idp.server.shutdown()


def test_the_ui_can_be_turned_off_or_served_from_a_folder(slow_upstream, tmp_path):
    off = Lisa(slow_upstream, tmp_path / "off", extra_env={"LISA_UI_ENABLED": "false"})
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(off.url + "/", timeout=5)
        assert refused.value.code == 404
        assert api(off, "GET", "/whoami")[0] == 200, "the API is unaffected"
    finally:
        off.stop()
    folder = tmp_path / "assets"
    shutil.copytree(ROOT / "Sources" / "LISAWebUI" / "Assets", folder)
    (folder / "index.html").write_text((folder / "index.html").read_text().replace("<title>LISA Chat</title>", "<title>Working copy</title>"))
    dev = Lisa(slow_upstream, tmp_path / "dev", extra_env={"LISA_UI_DIRECTORY": str(folder)})
    try:
        with urllib.request.urlopen(dev.url + "/", timeout=5) as response:
            page = response.read().decode()
        assert "<title>Working copy</title>" in page
        version = re.search(r'ui/([0-9a-f]+)/app\.js', page).group(1)
        with urllib.request.urlopen(f"{dev.url}/ui/{version}/chat.js", timeout=5) as response:
            assert response.headers["Content-Type"] == "text/javascript; charset=utf-8"
            assert response.read() == (folder / "chat.js").read_bytes()
    finally:
        dev.stop()


def test_an_oidc_sign_in_is_renewed_with_its_refresh_token(slow_upstream, tmp_path, browser):
    idp = IdP()
    idp.lifetime = 5  # seconds: renewed after about 4
    idp.login_claims = {"preferred_username": "dana", "realm_access": {"roles": ["team-a"]}}
    server = Lisa(slow_upstream, tmp_path / "data", extra_config=f"""
auth:
  authority: {idp.issuer}
  clientId: {CLIENT_ID}
  jwtGroupsProperty: realm_access.roles
  leewaySeconds: 0
""")
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(server.url + "/")
        page.click("#oidc-signin")
        page.wait_for_selector("#composer-input")
        first = page.evaluate("JSON.parse(sessionStorage.getItem('lisa.credential')).token")
        time.sleep(8)  # past the first ID token's expiry
        assert len(idp.refreshes) >= 1
        renewed = page.evaluate("JSON.parse(sessionStorage.getItem('lisa.credential')).token")
        assert renewed != first
        assert api(server, "GET", "/whoami", key=first)[0] == 401, "the first ID token has expired"
        send(page, "Still signed in?")
        wait_answer_done(page)
        assert answer_text(page) == "echo: Still signed in?"
        page.reload()  # a reload keeps the renewed sign-in
        page.wait_for_selector("#composer-input")
        assert page.locator(".username").inner_text().startswith("dana")
    finally:
        context.close()
        server.stop()
        idp.server.shutdown()


class PrefixProxy:
    """A reverse proxy serving LISA under /lisa/ (the prefix stripped), relaying bodies as
    they arrive (streams included), like a load balancer's path rule."""

    def __init__(self, target_port):
        import http.client
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        import threading

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def relay(self):
                if not self.path.startswith("/lisa/"):
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                upstream = http.client.HTTPConnection("127.0.0.1", target_port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                upstream.request(self.command, self.path[len("/lisa"):], body=body, headers=headers)
                response = upstream.getresponse()
                self.send_response(response.status)
                for name, value in response.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                while chunk := response.read1(65536):
                    self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
                upstream.close()

            do_GET = do_POST = do_PUT = do_DELETE = relay

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/lisa/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_served_under_a_path_prefix_behind_a_proxy(ui, page):
    proxy = PrefixProxy(ui.port)
    try:
        page.goto(proxy.url)
        page.fill("#token", ADMIN_KEY)
        page.keyboard.press("Enter")
        page.wait_for_selector("#composer-input")
        wait_until(page, "document.querySelector('#model').value !== ''")
        send(page, "Through the proxy")
        wait_answer_done(page)
        assert answer_text(page) == "echo: Through the proxy"
        assert page.url.startswith(proxy.url + "#/chat/")
        page.reload()
        page.wait_for_selector(".message.ai")
        assert answer_text(page) == "echo: Through the proxy"
        assert not page.errors, page.errors
    finally:
        proxy.server.shutdown()
