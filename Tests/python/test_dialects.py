"""The Anthropic Messages and OpenAI Responses dialects through the official SDKs, the OpenAI
Agents SDK, and raw HTTP, against a running LISAServe in front of the fake upstream."""
import json
import os
import subprocess
import time

import httpx
import openai
import pytest

from conftest import ADMIN_KEY, ROOT, Lisa, api

MODELS = """
  - modelId: thinker
    modelName: think
    modelType: textgen
    modelUrl: {upstream}
  - modelId: counter
    modelName: count-messages
    modelType: textgen
    modelUrl: {upstream}
  - modelId: broken
    modelName: break-stream
    modelType: textgen
    modelUrl: {upstream}
  - modelId: overloaded
    modelName: fail-503
    modelType: textgen
    modelUrl: {upstream}
    retry: {{maxAttempts: 1}}
"""

WEATHER_TOOL = {"name": "get_weather", "description": "The weather in a city",
                "input_schema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}}


@pytest.fixture(scope="module")
def server(upstream, tmp_path_factory):
    lisa = Lisa(upstream, tmp_path_factory.mktemp("dialects") / "data",
                extra_config=MODELS.format(upstream=upstream) + "rateLimits: {enabled: false}\n")
    yield lisa
    lisa.stop()


def user_token(lisa, username):
    status, created = api(lisa, "POST", f"/api-tokens/{username}", {"name": "t", "groups": []})
    assert status == 201, created
    return created["token"]


@pytest.fixture(scope="module")
def claude(server):
    import anthropic
    # The SDK sends the key as x-api-key, as Claude Code does.
    return anthropic.Anthropic(base_url=server.url, api_key=ADMIN_KEY, max_retries=0)


@pytest.fixture(scope="module")
def oai(server):
    from openai import OpenAI
    return OpenAI(base_url=server.url + "/v1", api_key=ADMIN_KEY, max_retries=0)


# MARK: - Anthropic Messages

def test_anthropic_messages_create(claude):
    message = claude.messages.create(model="chat-small", max_tokens=64, system="Be brief.",
                                     messages=[{"role": "user", "content": "hello there"}],
                                     metadata={"user_id": "u-42"})
    assert message.type == "message" and message.role == "assistant"
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == "echo: hello there"
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert message.usage.input_tokens == 5 and message.usage.output_tokens == 3
    assert message.model == "chat-small"
    assert message.id.startswith("msg_")


def test_anthropic_max_tokens_maps_to_its_stop_reason(claude):
    message = claude.messages.create(model="chat-small", max_tokens=1, messages=[{"role": "user", "content": "one two"}])
    assert message.stop_reason == "max_tokens"
    assert message.content[0].text == "echo:"


def test_anthropic_messages_stream(claude):
    with claude.messages.stream(model="chat-small", max_tokens=64,
                                messages=[{"role": "user", "content": [{"type": "text", "text": "stream me please"}]}]) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) >= 3, "words arrive as separate deltas"
    assert "".join(pieces) == "echo: stream me please"
    assert final.content[0].text == "echo: stream me please"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 4 and final.usage.input_tokens == 5


def test_anthropic_stream_event_sequence_is_exact(server):
    body = {"model": "chat-small", "max_tokens": 16, "stream": True, "messages": [{"role": "user", "content": "a b"}]}
    with httpx.stream("POST", server.url + "/v1/messages", json=body, timeout=30,
                      headers={"x-api-key": ADMIN_KEY, "anthropic-version": "2023-06-01", "anthropic-beta": "tools-2024-05-16"}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line[len("event: "):] for line in response.iter_lines() if line.startswith("event: ")]
    assert events[:3] == ["message_start", "ping", "content_block_start"]
    assert set(events[3:-3]) == {"content_block_delta"}
    assert events[-3:] == ["content_block_stop", "message_delta", "message_stop"]


def test_anthropic_tool_use_round_trip(claude):
    first = claude.messages.create(model="chat-small", max_tokens=64, tools=[WEATHER_TOOL],
                                   messages=[{"role": "user", "content": "Paris"}])
    assert first.stop_reason == "tool_use"
    (call,) = [block for block in first.content if block.type == "tool_use"]
    assert call.name == "get_weather" and call.input == {"text": "Paris"}
    second = claude.messages.create(
        model="chat-small", max_tokens=64, tools=[WEATHER_TOOL],
        messages=[{"role": "user", "content": "Paris"},
                  {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]},
                  {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny, 21°C"}]}])
    assert second.stop_reason == "end_turn"
    assert second.content[0].text == "tool said: sunny, 21°C"


def test_anthropic_streamed_tool_input(claude):
    with claude.messages.stream(model="chat-small", max_tokens=64, tools=[WEATHER_TOOL],
                                tool_choice={"type": "tool", "name": "get_weather"},
                                messages=[{"role": "user", "content": "Oslo"}]) as stream:
        partials = [event.partial_json for event in stream if event.type == "input_json"]
        final = stream.get_final_message()
    assert len(partials) == 2, "the arguments arrive in the upstream's two deltas"
    assert json.loads("".join(partials)) == {"text": "Oslo"}
    (call,) = final.content
    assert call.type == "tool_use" and call.input == {"text": "Oslo"}
    assert final.stop_reason == "tool_use"


def test_anthropic_thinking_blocks(claude):
    message = claude.messages.create(model="thinker", max_tokens=64, messages=[{"role": "user", "content": "why"}])
    assert [block.type for block in message.content] == ["thinking", "text"]
    assert message.content[0].thinking == "thinking about echo: why"
    with claude.messages.stream(model="thinker", max_tokens=64, messages=[{"role": "user", "content": "why"}]) as stream:
        final = stream.get_final_message()
    assert [block.type for block in final.content] == ["thinking", "text"]


def test_anthropic_count_tokens(claude):
    counted = claude.messages.count_tokens(model="chat-small", system="You are terse.", tools=[WEATHER_TOOL],
                                           messages=[{"role": "user", "content": "How many tokens is this?"}])
    # chat-small is a vllm model: its /tokenize counts (the fake counts characters of the chat form).
    assert counted.input_tokens == len("You are terse.") + len("How many tokens is this?")
    import anthropic
    with pytest.raises(anthropic.NotFoundError):
        claude.messages.count_tokens(model="no-such-model", messages=[{"role": "user", "content": "x"}])


def test_anthropic_typed_errors(server, claude):
    import anthropic
    with pytest.raises(anthropic.NotFoundError) as missing:
        claude.messages.create(model="no-such-model", max_tokens=8, messages=[{"role": "user", "content": "x"}])
    assert missing.value.status_code == 404
    assert missing.value.body["type"] == "error" and missing.value.body["error"]["type"] == "not_found_error"

    bad = anthropic.Anthropic(base_url=server.url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as denied:
        bad.messages.create(model="chat-small", max_tokens=8, messages=[{"role": "user", "content": "x"}])
    assert denied.value.body["error"]["type"] == "authentication_error"

    with pytest.raises(anthropic.BadRequestError) as invalid:
        claude.messages.create(model="chat-small", max_tokens=8, messages=[{"role": "user", "content": "x"}],
                               tools=[{"type": "web_search_20250305", "name": "web_search"}])
    assert invalid.value.body["error"]["type"] == "invalid_request_error"
    assert "tools[0].type" in invalid.value.body["error"]["message"]

    with pytest.raises(anthropic.InternalServerError) as overloaded:
        claude.messages.create(model="overloaded", max_tokens=8, messages=[{"role": "user", "content": "x"}])
    assert overloaded.value.status_code == 529
    assert overloaded.value.body["error"]["type"] == "overloaded_error"

    # Unknown paths under /v1/messages answer in Anthropic's shape too.
    response = httpx.post(server.url + "/v1/messages/batches", json={}, headers={"x-api-key": ADMIN_KEY})
    assert response.status_code == 404 and response.json()["type"] == "error"
    # So do other methods on its routes, signed in or not (each dialect is a route group of its own).
    for method, path in [("GET", "/v1/messages"), ("OPTIONS", "/v1/messages"), ("DELETE", "/v2/serve/messages/count_tokens")]:
        response = httpx.request(method, server.url + path)
        assert response.status_code == 404 and response.json()["type"] == "error", (method, path, response.text)
    refused = httpx.post(server.url + "/v1/messages", json={}, headers={"x-api-key": "wrong"})
    assert refused.status_code == 401 and refused.json()["error"]["type"] == "authentication_error"


def test_anthropic_rate_limit_is_a_rate_limit_error(upstream, tmp_path):
    import anthropic
    lisa = Lisa(upstream, tmp_path / "data", extra_config="rateLimits:\n  enabled: true\n  default: {requestsPerMinute: 2, burst: 2}\n")
    try:
        token = user_token(lisa, "carol")
        client = anthropic.Anthropic(base_url=lisa.url, api_key=token, max_retries=0)
        statuses = []
        for _ in range(4):
            try:
                client.messages.create(model="chat-small", max_tokens=8, messages=[{"role": "user", "content": "x"}])
                statuses.append(200)
            except anthropic.RateLimitError as error:
                assert error.body["error"]["type"] == "rate_limit_error"
                assert error.response.headers.get("retry-after")
                statuses.append(429)
        assert statuses[:2] == [200, 200] and 429 in statuses[2:]
    finally:
        lisa.stop()


def test_anthropic_broken_upstream_ends_with_an_error_event(server, claude):
    import anthropic
    with pytest.raises(anthropic.APIStatusError):
        with claude.messages.stream(model="broken", max_tokens=64, messages=[{"role": "user", "content": "one two three four"}]) as stream:
            for _ in stream:
                pass
    body = {"model": "broken", "max_tokens": 16, "stream": True, "messages": [{"role": "user", "content": "one two three four"}]}
    with httpx.stream("POST", server.url + "/v1/messages", json=body, timeout=30, headers={"x-api-key": ADMIN_KEY}) as response:
        events = [line[len("event: "):] for line in response.iter_lines() if line.startswith("event: ")]
    assert events[-1] == "error" and "message_stop" not in events


def test_anthropic_access_control_applies(server):
    import anthropic
    status, _ = api(server, "POST", "/models", {"modelId": "private-claude", "modelName": "x", "modelType": "textgen",
                                                "modelUrl": "http://127.0.0.1:9/v1", "allowedGroups": ["secret"]})
    assert status == 201
    client = anthropic.Anthropic(base_url=server.url, api_key=user_token(server, "dave"), max_retries=0)
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(model="private-claude", max_tokens=8, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(anthropic.NotFoundError):
        client.messages.count_tokens(model="private-claude", messages=[{"role": "user", "content": "x"}])


# MARK: - OpenAI Responses

def test_responses_create_retrieve_and_delete(oai):
    response = oai.responses.create(model="chat-small", input="hello responses", instructions="Be brief.",
                                    metadata={"purpose": "test"}, temperature=0.3)
    assert response.status == "completed"
    assert response.output_text == "echo: hello responses"
    assert response.id.startswith("resp_")
    assert response.usage.input_tokens == 5 and response.usage.output_tokens == 3
    assert response.metadata == {"purpose": "test"} and response.instructions == "Be brief."
    again = oai.responses.retrieve(response.id)
    assert again.output_text == response.output_text and again.id == response.id
    items = oai.responses.input_items.list(response.id)
    assert [item.type for item in items.data] == ["message"]
    assert items.data[0].content[0].text == "hello responses"
    oai.responses.delete(response.id)
    import openai
    with pytest.raises(openai.NotFoundError):
        oai.responses.retrieve(response.id)


def test_responses_previous_response_id_continues_the_conversation(oai):
    first = oai.responses.create(model="counter", input="one", instructions="sys")
    assert first.output_text == "messages: 2 roles: system,user"
    second = oai.responses.create(model="counter", input="two", previous_response_id=first.id)
    # The history (user, assistant) and the new input; the first response's instructions are not carried.
    assert second.output_text == "messages: 3 roles: user,assistant,user"
    assert second.previous_response_id == first.id
    import openai
    with pytest.raises(openai.NotFoundError):
        oai.responses.create(model="counter", input="x", previous_response_id="resp_doesnotexist")


def test_responses_store_false_is_not_kept(oai):
    import openai
    response = oai.responses.create(model="chat-small", input="forget me", store=False)
    assert response.output_text == "echo: forget me" and response.store is False
    with pytest.raises(openai.NotFoundError):
        oai.responses.retrieve(response.id)


def test_responses_stream_event_sequence(oai):
    with oai.responses.stream(model="chat-small", input="stream this now") as stream:
        events = list(stream)
        final = stream.get_final_response()
    types = [event.type for event in events]
    assert types[:4] == ["response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"]
    assert types[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed"]
    deltas = [event.delta for event in events if event.type == "response.output_text.delta"]
    assert len(deltas) >= 3 and "".join(deltas) == "echo: stream this now"
    assert [event.sequence_number for event in events] == list(range(len(events)))
    assert final.output_text == "echo: stream this now" and final.status == "completed"
    # Stored before response.completed was sent.
    assert oai.responses.retrieve(final.id).output_text == "echo: stream this now"


def test_responses_function_call_round_trip(oai):
    tools = [{"type": "function", "name": "lookup", "description": "Looks up a word",
              "parameters": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}}]
    first = oai.responses.create(model="chat-small", input="kiwi", tools=tools)
    (call,) = [item for item in first.output if item.type == "function_call"]
    assert call.name == "lookup" and json.loads(call.arguments) == {"text": "kiwi"}
    second = oai.responses.create(model="chat-small", previous_response_id=first.id, tools=tools,
                                  input=[{"type": "function_call_output", "call_id": call.call_id, "output": "a fruit"}])
    assert second.output_text == "tool said: a fruit"

    with oai.responses.stream(model="chat-small", input="fig", tools=tools) as stream:
        events = list(stream)
        final = stream.get_final_response()
    deltas = [event.delta for event in events if event.type == "response.function_call_arguments.delta"]
    assert len(deltas) == 2 and json.loads("".join(deltas)) == {"text": "fig"}
    done = [event for event in events if event.type == "response.function_call_arguments.done"]
    assert json.loads(done[0].arguments) == {"text": "fig"}
    assert [item.type for item in final.output] == ["function_call"]


def test_responses_json_schema_and_refusals(server, oai):
    import openai
    response = oai.responses.create(model="chat-small", input="shape",
                                    text={"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}}})
    assert response.text.format.type == "json_schema"
    with pytest.raises(openai.BadRequestError) as refused:
        oai.responses.create(model="chat-small", input="x", tools=[{"type": "web_search"}])
    assert refused.value.body["param"] == "tools[0].type"


def test_responses_belong_to_their_principal(server, oai):
    from openai import OpenAI
    import openai
    mine = OpenAI(base_url=server.url + "/v1", api_key=user_token(server, "erin"), max_retries=0)
    theirs = OpenAI(base_url=server.url + "/v1", api_key=user_token(server, "frank"), max_retries=0)
    response = mine.responses.create(model="chat-small", input="private")
    assert mine.responses.retrieve(response.id).id == response.id
    for attempt in (lambda: theirs.responses.retrieve(response.id),
                    lambda: theirs.responses.delete(response.id),
                    lambda: theirs.responses.input_items.list(response.id),
                    lambda: theirs.responses.create(model="chat-small", input="x", previous_response_id=response.id),
                    lambda: oai.responses.retrieve(response.id)):
        with pytest.raises(openai.NotFoundError):
            attempt()
    assert mine.responses.retrieve(response.id).id == response.id, "nothing another user did removed it"


def test_responses_broken_upstream_fails_the_response(oai):
    with oai.responses.stream(model="broken", input="one two three four") as stream:
        types = [event.type for event in stream]
    assert types[-1] == "response.failed" and "response.completed" not in types


def test_openai_agents_sdk_runs_a_function_tool_through_lisa(server):
    from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled
    from openai import AsyncOpenAI
    set_tracing_disabled(True)
    calls = []

    @function_tool
    def get_weather(text: str) -> str:
        """The weather in a city."""
        calls.append(text)
        return f"sunny in {text}"

    model = OpenAIResponsesModel(model="chat-small", openai_client=AsyncOpenAI(base_url=server.url + "/v1", api_key=ADMIN_KEY, max_retries=0))
    agent = Agent(name="weather", instructions="Answer with the weather.", tools=[get_weather], model=model)
    result = Runner.run_sync(agent, "Lisbon")
    assert calls == ["Lisbon"]
    assert result.final_output == "tool said: sunny in Lisbon"


@pytest.mark.skipif(not os.environ.get("LISA_TEST_DATABASE_URL"), reason="needs PostgreSQL")
def test_stored_responses_are_read_from_a_second_replica(upstream, tmp_path):
    from openai import OpenAI
    name = "lisa_responses_" + os.urandom(5).hex()
    url = subprocess.run([str(ROOT / "scripts" / "postgres.sh"), "createdb", name], capture_output=True, text=True,
                         check=True).stdout.strip()
    a = Lisa(upstream, tmp_path / "a", extra_env={"LISA_DATABASE_URL": url})
    b = Lisa(upstream, tmp_path / "b", extra_env={"LISA_DATABASE_URL": url})
    try:
        client_a = OpenAI(base_url=a.url + "/v1", api_key=ADMIN_KEY, max_retries=0)
        client_b = OpenAI(base_url=b.url + "/v1", api_key=ADMIN_KEY, max_retries=0)
        created = client_a.responses.create(model="chat-small", input="shared state")
        assert client_b.responses.retrieve(created.id).output_text == "echo: shared state"
        follow = client_b.responses.create(model="chat-small", input="next", previous_response_id=created.id)
        assert follow.output_text == "echo: next"
        assert [item.type for item in client_a.responses.input_items.list(follow.id).data] == ["message"]
        # Deleted through one replica, gone through the other.
        client_b.responses.delete(created.id)
        with pytest.raises(openai.NotFoundError):
            client_a.responses.retrieve(created.id)
        # Usage written by either replica is in the other's report (the hourly rollup is shared).
        deadline = time.monotonic() + 60
        while True:
            report = httpx.get(a.url + "/usage", params={"bucket": "hour"}, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30)
            assert report.status_code == 200, report.text
            if report.json()["totals"]["requests"] >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert report.json()["totals"]["requests"] >= 2, report.json()
    finally:
        a.stop()
        b.stop()


def test_lisactl_sends_messages_and_responses_requests(server):
    from conftest import lisactl
    answer = lisactl(server, "send", "--dialect", "messages", "-m", "chat-small", "hello", "lisactl")
    assert answer.returncode == 0, answer.stderr
    assert json.loads(answer.stdout)["content"][0]["text"] == "echo: hello lisactl"
    streamed = lisactl(server, "send", "--dialect", "responses", "-m", "chat-small", "--stream", "hi")
    assert streamed.returncode == 0, streamed.stderr
    assert "event: response.created" in streamed.stdout and "event: response.completed" in streamed.stdout
    refused = lisactl(server, "send", "--dialect", "messages", "-m", "no-such-model", "x")
    assert refused.returncode != 0 and "HTTP 404" in refused.stderr and "no-such-model" in refused.stderr
    # The same names as the server's dialects: chat completions too.
    chat = lisactl(server, "send", "--dialect", "chat", "-m", "chat-small", "hello", "chat")
    assert chat.returncode == 0, chat.stderr
    assert json.loads(chat.stdout)["choices"][0]["message"]["content"] == "echo: hello chat"


# MARK: - LangChain's ChatAnthropic

def test_langchain_chat_anthropic(server):
    from langchain_anthropic import ChatAnthropic
    from langchain_core.tools import tool

    llm = ChatAnthropic(model="chat-small", base_url=server.url, api_key=ADMIN_KEY, max_tokens=64, max_retries=0)
    answer = llm.invoke("hello langchain")
    assert answer.content == "echo: hello langchain"
    assert answer.response_metadata["stop_reason"] == "end_turn"
    assert answer.usage_metadata["input_tokens"] == 5
    pieces = [chunk.content for chunk in llm.stream("stream via langchain")]
    text = "".join(piece if isinstance(piece, str) else "".join(part.get("text", "") for part in piece) for piece in pieces)
    assert text == "echo: stream via langchain"

    @tool
    def get_weather(text: str) -> str:
        """The weather in a city."""
        return "sunny"

    called = llm.bind_tools([get_weather]).invoke("Paris")
    assert called.tool_calls and called.tool_calls[0]["name"] == "get_weather" and called.tool_calls[0]["args"] == {"text": "Paris"}
