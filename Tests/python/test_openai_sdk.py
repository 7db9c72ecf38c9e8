"""The official openai SDK and LangChain against a running LISAServe."""
import openai
import pytest

from conftest import ADMIN_KEY


def test_models_list(openai_client):
    ids = [model.id for model in openai_client.models.list()]
    assert ids == ["chat-small", "embedder"]


def test_chat_completion(openai_client):
    completion = openai_client.chat.completions.create(
        model="chat-small",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello gateway"}],
        temperature=0.2,
        extra_body={"top_k": 20, "repetition_penalty": 1.05},
    )
    assert completion.choices[0].message.content == "echo: hello gateway"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.total_tokens > 0


def test_streaming_chat(openai_client):
    stream = openai_client.chat.completions.create(
        model="chat-small",
        messages=[{"role": "user", "content": "one two three four"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: one two three four"
    assert len(chunks) >= 5
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5


def test_completions(openai_client):
    completion = openai_client.completions.create(model="chat-small", prompt="finish this", max_tokens=5)
    assert completion.choices[0].text == "echo: finish this"


def test_embeddings_base64_and_float(openai_client):
    # The SDK asks for base64 by default and decodes it itself.
    default = openai_client.embeddings.create(model="embedder", input=["first text", "second text"])
    assert [len(d.embedding) for d in default.data] == [8, 8]
    floats = openai_client.embeddings.create(model="embedder", input="first text", encoding_format="float")
    assert floats.data[0].embedding == pytest.approx(default.data[0].embedding, abs=1e-6)


def test_unknown_model_raises_not_found(openai_client):
    with pytest.raises(openai.NotFoundError) as caught:
        openai_client.chat.completions.create(model="gpt-nope", messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 404
    assert "gpt-nope" in caught.value.message
    assert caught.value.code == "model_not_found"


def test_bad_request_and_auth_errors(lisa, openai_client):
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client.chat.completions.create(model="chat-small", messages=[])
    assert "at least one message" in caught.value.message
    wrong = openai.OpenAI(base_url=lisa.url + "/v1", api_key="wrong-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()


def test_streaming_error_before_first_byte_is_typed(openai_client):
    with pytest.raises(openai.NotFoundError):
        for _ in openai_client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}], stream=True):
            pass


def test_langchain_chat_and_embeddings(lisa):
    from langchain_openai import ChatOpenAI, OpenAIEmbeddings

    chat = ChatOpenAI(base_url=lisa.url + "/v1", api_key=ADMIN_KEY, model="chat-small", max_retries=0)
    assert chat.invoke("hi from langchain").content == "echo: hi from langchain"
    streamed = "".join(chunk.content for chunk in chat.stream("streamed words"))
    assert streamed == "echo: streamed words"

    embeddings = OpenAIEmbeddings(base_url=lisa.url + "/v1", api_key=ADMIN_KEY, model="embedder",
                                  check_embedding_ctx_length=False, max_retries=0)
    vectors = embeddings.embed_documents(["alpha", "beta"])
    assert len(vectors) == 2 and len(vectors[0]) == 8
    assert len(embeddings.embed_query("alpha")) == 8
