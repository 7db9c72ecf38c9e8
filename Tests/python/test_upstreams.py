"""Upstreams beyond OpenAI chat completions, and OpenAI's other routes, through the official
SDKs against a running LISAServe in front of the fake upstream (which speaks Anthropic
Messages natively, vLLM's /tokenize, and the images, audio, moderation and rerank routes)."""
import base64
import json
import time

import httpx
import pytest

from conftest import ADMIN_KEY, Lisa, api

MODELS = """
  - modelId: claude
    modelName: claude-echo
    modelType: textgen
    upstreamAPI: anthropic
    endpoints: [{{url: "{upstream}", apiKey: sk-ant-upstream}}]
  - modelId: claude-show
    modelName: show-request
    modelType: textgen
    upstreamAPI: anthropic
    endpoints: [{{url: "{upstream}", apiKey: sk-ant-upstream}}]
  - modelId: claude-thinker
    modelName: think
    modelType: textgen
    upstreamAPI: anthropic
    modelUrl: {upstream}
  - modelId: claude-overloaded
    modelName: fail-529
    modelType: textgen
    upstreamAPI: anthropic
    modelUrl: {upstream}
    retry: {{maxAttempts: 1}}
  - modelId: claude-broken
    modelName: break-stream
    modelType: textgen
    upstreamAPI: anthropic
    modelUrl: {upstream}
  - modelId: gpt-resp
    modelName: resp-echo
    modelType: textgen
    upstreamAPI: openai-responses
    modelUrl: {upstream}
  - modelId: gpt-resp-show
    modelName: show-request
    modelType: textgen
    upstreamAPI: openai-responses
    modelUrl: {upstream}
  - modelId: gpt-resp-history
    modelName: count-history
    modelType: textgen
    upstreamAPI: openai-responses
    modelUrl: {upstream}
  - modelId: gpt-resp-broken
    modelName: break-stream
    modelType: textgen
    upstreamAPI: openai-responses
    modelUrl: {upstream}
  - modelId: llama-counter
    modelName: qwen-gguf
    modelType: textgen
    inferenceContainer: llamacpp
    modelUrl: {upstream}
  - modelId: plain-counter
    modelName: count-messages
    modelType: textgen
    modelUrl: {upstream}
  - modelId: painter
    modelName: dall-e-fake
    modelType: imagegen
    modelUrl: {upstream}
  - modelId: private-painter
    modelName: dall-e-fake
    modelType: imagegen
    modelUrl: {upstream}
    allowedGroups: [artists]
  - modelId: whisper
    modelName: whisper-upstream
    modelType: transcription
    modelUrl: {upstream}
  - modelId: voice
    modelName: tts-upstream
    modelType: speech
    modelUrl: {upstream}
  - modelId: impatient-voice
    modelName: tts-upstream
    modelType: speech
    modelUrl: {upstream}
    timeouts: {{streamIdleSeconds: 0.05}}
  - modelId: moderator
    modelName: moderation-upstream
    modelType: moderation
    modelUrl: {upstream}
  - modelId: ranker
    modelName: rerank-upstream
    modelType: rerank
    inferenceContainer: vllm
    modelUrl: {upstream}
  - modelId: tei-ranker
    modelName: bge-reranker
    modelType: rerank
    inferenceContainer: tei
    modelUrl: {upstream}
"""


@pytest.fixture(scope="module")
def server(upstream, tmp_path_factory):
    lisa = Lisa(upstream, tmp_path_factory.mktemp("upstreams") / "data",
                extra_config=MODELS.format(upstream=upstream) + "rateLimits: {enabled: false}\n")
    yield lisa
    lisa.stop()


@pytest.fixture(scope="module")
def oai(server):
    from openai import OpenAI
    return OpenAI(base_url=server.url + "/v1", api_key=ADMIN_KEY, max_retries=0)


@pytest.fixture(scope="module")
def claude(server):
    import anthropic
    return anthropic.Anthropic(base_url=server.url, api_key=ADMIN_KEY, max_retries=0)


def shown(text):
    """What the fake's show-request model saw."""
    return json.loads(text)


# MARK: - Chat completions to an Anthropic upstream

def test_openai_chat_to_an_anthropic_upstream(oai):
    answer = oai.chat.completions.create(model="claude", messages=[{"role": "system", "content": "Be brief."},
                                                                   {"role": "user", "content": "hello claude"}])
    assert answer.choices[0].message.content == "echo: hello claude"
    assert answer.choices[0].finish_reason == "stop"
    # The fake counts characters: "Be brief." (system) + "hello claude".
    assert answer.usage.prompt_tokens == len("Be brief.") + len("hello claude")
    assert answer.usage.completion_tokens == 3


def test_openai_chat_request_is_translated_with_the_upstream_key(oai):
    answer = oai.chat.completions.create(model="claude-show", stop=["NEVER"], temperature=0.5, user="u-7",
                                         messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}])
    seen = shown(answer.choices[0].message.content)
    assert seen["x-api-key"] == "sk-ant-upstream", "the model's key, never the client's"
    assert seen["authorization"] is False
    assert seen["anthropic-version"] == "2023-06-01"
    assert seen["body"] == {"model": "show-request", "max_tokens": 4096, "system": "Be brief.", "stop_sequences": ["NEVER"],
                            "temperature": 0.5, "metadata": {"user_id": "u-7"},
                            "messages": [{"role": "user", "content": "hi"}]}


def test_openai_chat_stream_from_an_anthropic_upstream(oai):
    stream = oai.chat.completions.create(model="claude", stream=True, stream_options={"include_usage": True},
                                         messages=[{"role": "user", "content": "stream these words"}])
    chunks = list(stream)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == "echo: stream these words"
    assert [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices and chunk.choices[0].finish_reason] == ["stop"]
    (usage,) = [chunk.usage for chunk in chunks if chunk.usage]
    assert usage.prompt_tokens == len("stream these words") and usage.completion_tokens == 4
    assert len([chunk for chunk in chunks if chunk.choices and chunk.choices[0].delta.content]) >= 4, "deltas arrive one by one"


def test_openai_tool_round_trip_through_an_anthropic_upstream(oai):
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"text": {"type": "string"}}}}}]
    first = oai.chat.completions.create(model="claude", tools=tools, messages=[{"role": "user", "content": "Paris"}])
    assert first.choices[0].finish_reason == "tool_calls"
    (call,) = first.choices[0].message.tool_calls
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"text": "Paris"}
    second = oai.chat.completions.create(model="claude", tools=tools, messages=[
        {"role": "user", "content": "Paris"}, first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"}])
    assert second.choices[0].message.content == "tool said: sunny"
    # Streamed, the arguments arrive as deltas of the one call.
    stream = oai.chat.completions.create(model="claude", tools=tools, stream=True, messages=[{"role": "user", "content": "Rome"}])
    pieces = [tc.function.arguments for chunk in stream if chunk.choices for tc in (chunk.choices[0].delta.tool_calls or [])]
    assert len(pieces) >= 3 and json.loads("".join(pieces)) == {"text": "Rome"}


def test_reasoning_from_an_anthropic_upstream(oai):
    answer = oai.chat.completions.create(model="claude-thinker", messages=[{"role": "user", "content": "think"}])
    assert answer.choices[0].message.model_extra["reasoning_content"] == "thinking about it"


def test_what_messages_cannot_carry_is_refused(oai):
    from openai import BadRequestError
    with pytest.raises(BadRequestError) as refused:
        oai.chat.completions.create(model="claude", n=2, messages=[{"role": "user", "content": "x"}])
    assert refused.value.body["param"] == "n"
    with pytest.raises(BadRequestError) as wrong:
        oai.completions.create(model="claude", prompt="x")
    assert wrong.value.body["param"] == "model"


def test_anthropic_upstream_errors_keep_their_meaning(oai, claude, server):
    import anthropic
    from openai import InternalServerError
    with pytest.raises(InternalServerError) as overloaded:
        oai.chat.completions.create(model="claude-overloaded", messages=[{"role": "user", "content": "x"}])
    assert overloaded.value.status_code == 503
    with pytest.raises(anthropic.OverloadedError) as passed:
        claude.messages.create(model="claude-overloaded", max_tokens=8, messages=[{"role": "user", "content": "x"}])
    assert passed.value.body["error"]["type"] == "overloaded_error"


def test_openai_stream_from_a_broken_anthropic_upstream_fails(server):
    body = {"model": "claude-broken", "stream": True, "messages": [{"role": "user", "content": "one two three four"}]}
    with httpx.stream("POST", server.url + "/v1/chat/completions", json=body, timeout=30,
                      headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as response:
        lines = list(response.iter_lines())
    assert "event: error" in lines
    assert "data: [DONE]" not in lines
    assert sum(1 for line in lines if line == "event: error") == 1


# MARK: - Anthropic Messages passed through

def test_messages_pass_through_is_lossless(claude):
    message = claude.messages.create(
        model="claude-show", max_tokens=32, extra_body={"top_k": 3},
        system=[{"type": "text", "text": "Cached system.", "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]}])
    seen = shown(message.content[0].text)
    assert seen["x-api-key"] == "sk-ant-upstream" and seen["authorization"] is False
    assert seen["anthropic-beta"] is None
    assert seen["body"] == {"model": "show-request", "max_tokens": 32, "top_k": 3,
                            "system": [{"type": "text", "text": "Cached system.", "cache_control": {"type": "ephemeral"}}],
                            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]}]}


def test_messages_pass_through_carries_anthropic_beta(claude, oai):
    beta = "interleaved-thinking-2025-05-14,context-1m-2025-08-07"
    message = claude.messages.create(model="claude-show", max_tokens=8, messages=[{"role": "user", "content": "hi"}],
                                     extra_headers={"anthropic-beta": beta})
    assert shown(message.content[0].text)["anthropic-beta"] == beta
    odd = claude.messages.create(model="claude-show", max_tokens=8, messages=[{"role": "user", "content": "hi"}],
                                 extra_headers={"anthropic-beta": "x; evil=1"})
    assert shown(odd.content[0].text)["anthropic-beta"] is None, "only a list of beta names is carried on"
    # A chat client's request is LISA's own translation: no client header goes with it.
    chat = oai.chat.completions.create(model="claude-show", messages=[{"role": "user", "content": "hi"}], extra_headers={"anthropic-beta": beta})
    assert shown(chat.choices[0].message.content)["anthropic-beta"] is None


def test_messages_stream_pass_through_keeps_signatures(server, claude):
    with claude.messages.stream(model="claude-thinker", max_tokens=64, messages=[{"role": "user", "content": "deep"}]) as stream:
        final = stream.get_final_message()
    assert [block.type for block in final.content] == ["thinking", "text"]
    assert final.content[0].signature == "fake-signature", "signatures only survive a pass-through"
    assert final.content[1].text == "echo: deep"
    assert final.usage.output_tokens >= 1
    body = {"model": "claude", "max_tokens": 16, "stream": True, "messages": [{"role": "user", "content": "a b"}]}
    with httpx.stream("POST", server.url + "/v1/messages", json=body, timeout=30, headers={"x-api-key": ADMIN_KEY}) as response:
        events = [line[len("event: "):] for line in response.iter_lines() if line.startswith("event: ")]
    assert events[:3] == ["message_start", "ping", "content_block_start"]
    assert events[-3:] == ["content_block_stop", "message_delta", "message_stop"]


def test_messages_pass_through_broken_stream_has_one_error_event(server):
    body = {"model": "claude-broken", "max_tokens": 16, "stream": True, "messages": [{"role": "user", "content": "one two three four"}]}
    with httpx.stream("POST", server.url + "/v1/messages", json=body, timeout=30, headers={"x-api-key": ADMIN_KEY}) as response:
        events = [line[len("event: "):] for line in response.iter_lines() if line.startswith("event: ")]
    assert events[-1] == "error" and events.count("error") == 1 and "message_stop" not in events


def test_responses_reach_an_anthropic_upstream(oai):
    response = oai.responses.create(model="claude", input="hello from responses", store=False)
    assert response.output_text == "echo: hello from responses"


# MARK: - Upstreams that speak OpenAI Responses

def test_openai_chat_to_a_responses_upstream(oai):
    answer = oai.chat.completions.create(model="gpt-resp", messages=[{"role": "user", "content": "hello responses"}])
    assert answer.choices[0].message.content == "echo: hello responses" and answer.choices[0].finish_reason == "stop"
    assert answer.usage.prompt_tokens == len("hello responses") and answer.usage.completion_tokens == 3
    seen = shown(oai.chat.completions.create(model="gpt-resp-show", max_tokens=50, user="u-9", messages=[
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]).choices[0].message.content)
    assert seen["authorization"] is False
    assert seen["body"] == {"model": "show-request", "store": False, "instructions": "Be brief.", "max_output_tokens": 50, "user": "u-9",
                            "input": [{"type": "message", "role": "user", "content": "hi"}]}


def test_openai_chat_stream_and_tools_through_a_responses_upstream(oai):
    chunks = list(oai.chat.completions.create(model="gpt-resp", stream=True, stream_options={"include_usage": True},
                                              messages=[{"role": "user", "content": "stream these words"}]))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: stream these words"
    assert [c.usage.completion_tokens for c in chunks if c.usage] == [4]
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"text": {"type": "string"}}}}}]
    first = oai.chat.completions.create(model="gpt-resp", tools=tools, messages=[{"role": "user", "content": "Oslo"}])
    (call,) = first.choices[0].message.tool_calls
    assert first.choices[0].finish_reason == "tool_calls" and json.loads(call.function.arguments) == {"text": "Oslo"}
    second = oai.chat.completions.create(model="gpt-resp", tools=tools, messages=[
        {"role": "user", "content": "Oslo"}, first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "snow"}])
    assert second.choices[0].message.content == "tool said: snow"


def test_responses_pass_through_is_lossless_and_stored(oai):
    # A built-in tool the translated path refuses passes through to a Responses upstream.
    response = oai.responses.create(model="gpt-resp-show", input="hi", tools=[{"type": "web_search"}], tool_choice="none",
                                    include=["reasoning.encrypted_content"], reasoning={"effort": "low"})
    seen = shown(response.output_text)
    assert seen["body"] == {"model": "show-request", "input": "hi", "tools": [{"type": "web_search"}], "tool_choice": "none",
                            "include": ["reasoning.encrypted_content"], "reasoning": {"effort": "low"}}
    assert oai.responses.retrieve(response.id).output_text == response.output_text
    from openai import BadRequestError
    for member in ({"conversation": "conv_someone_elses"}, {"background": True}):
        with pytest.raises(BadRequestError) as refused:
            oai.responses.create(model="gpt-resp-show", input="hi", extra_body=member)
        assert refused.value.body["param"] == next(iter(member))


def test_responses_pass_through_continues_upstream_and_keeps_ownership(server, oai):
    from openai import NotFoundError
    first = oai.responses.create(model="gpt-resp-history", input="one")
    assert first.output_text == "history: 0"
    second = oai.responses.create(model="gpt-resp-history", input="two", previous_response_id=first.id)
    assert second.output_text == "history: 1", "the upstream got the previous_response_id"
    assert [item.content[0].text for item in oai.responses.input_items.list(second.id).data] == ["two"]
    other = user_client(server, "resp-intruder")
    with pytest.raises(NotFoundError):
        other.responses.retrieve(second.id)
    with pytest.raises(NotFoundError):
        other.responses.create(model="gpt-resp-history", input="steal", previous_response_id=second.id)
    oai.responses.delete(second.id)
    with pytest.raises(NotFoundError):
        oai.responses.retrieve(second.id)


def test_responses_pass_through_stream(server, oai):
    with oai.responses.stream(model="gpt-resp", input="stream me") as stream:
        events = [event.type for event in stream]
        final = stream.get_final_response()
    assert events[:2] == ["response.created", "response.in_progress"] and events[-1] == "response.completed"
    assert final.output_text == "echo: stream me"
    assert oai.responses.retrieve(final.id).output_text == "echo: stream me", "stored once the stream completed"
    body = {"model": "gpt-resp-broken", "input": "one two three", "stream": True}
    with httpx.stream("POST", server.url + "/v1/responses", json=body, timeout=30, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as response:
        names = [line[len("event: "):] for line in response.iter_lines() if line.startswith("event: ")]
    assert names[-1] == "error" and names.count("error") == 1 and "response.completed" not in names


# MARK: - count_tokens by the upstream's tokenizer

def test_count_tokens_uses_the_upstream_tokenizer(claude):
    messages = [{"role": "user", "content": "How many tokens is this?"}]
    # An Anthropic upstream counts (the fake: characters, system included).
    assert claude.messages.count_tokens(model="claude", system="Terse.", messages=messages).input_tokens == len("Terse.") + len(messages[0]["content"])
    # vLLM's /tokenize (chat-small is a vllm model) counts the chat form.
    assert claude.messages.count_tokens(model="chat-small", system="Terse.", messages=messages).input_tokens == len("Terse.") + len(messages[0]["content"])
    # llama.cpp: the chat template applied (/apply-template), then /tokenize of the prompt.
    llama = claude.messages.count_tokens(model="llama-counter", system="Terse.", messages=messages).input_tokens
    assert llama == len("system: Terse.\n") + len("user: How many tokens is this?\n")
    # No tokenizer declared: the documented estimate (bytes / 4, plus 4 per message, rounded up).
    estimate = claude.messages.count_tokens(model="plain-counter", system="Terse.", messages=messages).input_tokens
    assert estimate != len("Terse.") + len(messages[0]["content"]) and 5 <= estimate <= 30


# MARK: - Images, audio, moderations, rerank

def user_client(server, username, groups=()):
    from openai import OpenAI
    status, created = api(server, "POST", f"/api-tokens/{username}", {"name": "t", "groups": list(groups)})
    assert status == 201, created
    return OpenAI(base_url=server.url + "/v1", api_key=created["token"], max_retries=0)


def test_image_generation_and_edit(oai):
    generated = oai.images.generate(model="painter", prompt="a lighthouse", n=2, response_format="b64_json")
    assert [base64.b64decode(item.b64_json).decode() for item in generated.data] == ["image for: a lighthouse"] * 2
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
    edited = oai.images.edit(model="painter", image=("lighthouse.png", png, "image/png"), prompt="at night")
    assert base64.b64decode(edited.data[0].b64_json).decode() == f"edited lighthouse.png ({len(png)} bytes): at night"


def test_transcription_and_translation_forms(oai):
    audio = bytes(range(256)) * 100
    text = oai.audio.transcriptions.create(model="whisper", file=("talk.wav", audio, "audio/wav"))
    # The upstream got LISA's modelName, not the client's modelId: the form is re-written from LISA's parse.
    assert text.text == f"transcribed talk.wav ({len(audio)} bytes) as whisper-upstream"
    plain = oai.audio.transcriptions.create(model="whisper", file=("talk.wav", audio, "audio/wav"), response_format="text")
    assert plain.strip() == f"transcribed talk.wav ({len(audio)} bytes) as whisper-upstream"
    translated = oai.audio.translations.create(model="whisper", file=("rede.mp3", audio, "audio/mpeg"))
    assert translated.text.startswith("translated rede.mp3")


def test_speech_streams_as_it_is_made(oai):
    arrivals = []
    with oai.audio.speech.with_streaming_response.create(model="voice", voice="alloy", input="Hello there.") as response:
        assert response.headers["content-type"] == "audio/mpeg"
        data = b""
        for chunk in response.iter_bytes(4096):
            arrivals.append(time.monotonic())
            data += chunk
    assert len(data) == 6 * 4096
    # The fake pauses 200 ms between its six chunks: relayed unbuffered, the first arrives
    # about a second before the last; buffered, they would arrive together.
    assert arrivals[-1] - arrivals[0] >= 0.5


def test_speech_that_goes_quiet_is_cut_at_the_idle_timeout(server):
    # The fake pauses 200 ms between chunks; this model allows 50 ms of silence.
    received = b""
    with pytest.raises(httpx.HTTPError):
        with httpx.stream("POST", server.url + "/v1/audio/speech", json={"model": "impatient-voice", "voice": "a", "input": "x"},
                          headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30) as response:
            assert response.status_code == 200
            for chunk in response.iter_bytes():
                received += chunk
    assert len(received) < 6 * 4096, "the body ended early, not with every chunk"


def test_moderation_and_rerank(server, oai):
    moderated = oai.moderations.create(model="moderator", input=["hello", "I will kill the process"])
    assert [result.flagged for result in moderated.results] == [False, True]
    body = {"model": "ranker", "query": "red apple", "documents": ["green pear", "red apple pie", "apple"], "top_n": 2}
    ranked = httpx.post(server.url + "/v1/rerank", json=body, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30).json()
    assert [result["index"] for result in ranked["results"]] == [1, 2]
    # TEI speaks its own shape; LISA answers in the same one as vLLM and Cohere.
    body = {**body, "model": "tei-ranker", "return_documents": True}
    tei = httpx.post(server.url + "/v2/serve/rerank", json=body, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30).json()
    assert [result["index"] for result in tei["results"]] == [1, 2]
    assert tei["results"][0]["document"] == {"text": "red apple pie"} and tei["model"] == "tei-ranker"


def test_media_routes_apply_access_control_and_types(server, oai):
    from openai import BadRequestError, NotFoundError
    outsider = user_client(server, "media-outsider")
    with pytest.raises(NotFoundError):
        outsider.images.generate(model="private-painter", prompt="x")
    artist = user_client(server, "media-artist", groups=["artists"])
    assert artist.images.generate(model="private-painter", prompt="x").data
    with pytest.raises(BadRequestError) as mismatch:
        oai.images.generate(model="chat-small", prompt="x")
    assert mismatch.value.body["code"] == "model_type_mismatch"
    no_model = httpx.post(server.url + "/v1/audio/transcriptions", files={"file": ("a.wav", b"RIFF")},
                          headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30)
    assert no_model.status_code == 400 and no_model.json()["error"]["param"] == "model"
    malformed = httpx.post(server.url + "/v1/audio/transcriptions", content=b"--x\r\nno headers end",
                           headers={"Authorization": f"Bearer {ADMIN_KEY}", "Content-Type": "multipart/form-data; boundary=x"}, timeout=30)
    assert malformed.status_code == 400 and "multipart" in malformed.json()["error"]["message"]
    not_form = httpx.post(server.url + "/v1/images/edits", json={"model": "painter"}, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30)
    assert not_form.status_code == 415


def test_models_list_shows_media_types(oai):
    types = {model.id: model.model_extra["lisa"]["modelType"] for model in oai.models.list()}
    assert types["painter"] == "imagegen" and types["whisper"] == "transcription" and types["ranker"] == "rerank"
