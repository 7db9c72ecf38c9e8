"""Answers name the model the client asked for, not the upstream's modelName (item 17 of issue 31).

The fake upstream answers with the `model` LISA sends it (`modelName`), as llama.cpp and vLLM do.
"""
import openai
import pytest

from conftest import ADMIN_KEY, Lisa

SHOWN = """  - modelId: shown
    modelName: upstream-own-name
    modelType: textgen
    passUpstreamModelName: true
    modelUrl: {upstream}
"""


@pytest.fixture
def client(upstream, tmp_path):
    server = Lisa(upstream, tmp_path / "data", extra_config=SHOWN.format(upstream=upstream))
    yield openai.OpenAI(base_url=server.url + "/v1", api_key=ADMIN_KEY)
    server.stop()


def test_chat_buffered_and_every_streamed_chunk(client):
    completion = client.chat.completions.create(model="chat-small", messages=[{"role": "user", "content": "one two three"}])
    assert completion.model == "chat-small"
    chunks = list(client.chat.completions.create(
        model="chat-small", messages=[{"role": "user", "content": "one two three"}], stream=True,
        stream_options={"include_usage": True},
    ))
    assert len(chunks) >= 4
    assert {chunk.model for chunk in chunks} == {"chat-small"}


def test_completions_embeddings_and_responses(client):
    assert client.completions.create(model="chat-small", prompt="finish this").model == "chat-small"
    streamed = list(client.completions.create(model="chat-small", prompt="finish this", stream=True))
    assert {chunk.model for chunk in streamed} == {"chat-small"}
    assert client.embeddings.create(model="embedder", input="text").model == "embedder"
    response = client.responses.create(model="chat-small", input="hello")
    assert response.model == "chat-small"
    assert client.responses.retrieve(response.id).model == "chat-small"


def test_pass_upstream_model_name(client):
    completion = client.chat.completions.create(model="shown", messages=[{"role": "user", "content": "hi"}])
    assert completion.model == "upstream-own-name"
    chunks = list(client.chat.completions.create(model="shown", messages=[{"role": "user", "content": "hi"}], stream=True))
    assert {chunk.model for chunk in chunks} == {"upstream-own-name"}
