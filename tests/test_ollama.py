"""Ollama against the loopback server: NDJSON whatever the Content-Type,
tools with object arguments, thinking, usage and errors."""

from __future__ import annotations

from typing import Any, Callable

import pytest

import minillm
from minillm.providers.ollama import ollama_host
from minillm.testing import Reply, ScriptedServer, ollama_stream


@pytest.fixture
def ollama(make_client: Callable[..., minillm.Client]) -> Callable[..., minillm.Client]:
    def make(**kwargs: Any) -> minillm.Client:
        return make_client("ollama/llama-test", **kwargs)

    return make


@pytest.mark.parametrize("content_type", ["application/x-ndjson", "application/json"])
def test_a_stream_is_read_as_ndjson_whatever_its_content_type(
    content_type: str, server: ScriptedServer, ollama: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(Reply(headers=(("Content-Type", content_type),), body=ollama_stream(["Hel", "lo"], prompt_tokens=9)))
    with ollama(price=minillm.TokenPrice(1, 1)).stream("Hi", max_tokens=20, stop="END", temperature=0.3) as stream:
        assert "".join(stream.text_stream()) == "Hello"
    assert stream.response is not None and stream.response.usage == minillm.Usage(
        prompt_tokens=9, completion_tokens=2, total_tokens=11
    )
    request = server.requests[0]
    assert request.path == "/api/chat" and "authorization" not in request.headers
    body = request.json()
    assert body["stream"] is True
    assert body["options"] == {"num_predict": 20, "temperature": 0.3, "stop": ["END"]}
    assert ledger.count == 1


def test_think_tags_and_native_thinking_both_become_thinking(
    server: ScriptedServer, ollama: Callable[..., minillm.Client]
) -> None:
    server.reply(Reply.ndjson(ollama_stream(["<think>inline</think>", "Answer"], thinking="native ")))
    with ollama().stream("Hi", thinking_budget=1000) as stream:
        list(stream)
    assert stream.response is not None
    assert (stream.response.text, stream.response.thinking) == ("Answer", "native inline")
    assert server.requests[0].json()["think"] is True


def test_tool_calls_round_trip_with_object_arguments_and_tool_names(
    server: ScriptedServer, ollama: Callable[..., minillm.Client]
) -> None:
    calls = [{"name": "weather", "arguments": {"city": "Paris"}}]
    server.reply(Reply.ndjson(ollama_stream([], tool_calls=calls)), Reply.ndjson(ollama_stream(["Sunny"])))
    client = ollama()
    with client.stream("Weather?", tools=[{"name": "weather"}]) as stream:
        list(stream)
    response = stream.response
    assert response is not None and response.finish_reason == "tool_calls"
    [call] = response.tool_calls
    assert (call.name, call.arguments) == ("weather", '{"city": "Paris"}') and call.id
    conversation = [
        {"role": "user", "content": "Weather?"},
        response.to_message(),
        {"role": "tool", "tool_call_id": call.id, "content": "Sunny"},
    ]
    with client.stream(conversation) as stream:
        list(stream)
    sent = server.requests[1].json()["messages"]
    assert sent[1]["tool_calls"] == [{"function": {"name": "weather", "arguments": {"city": "Paris"}}}]
    assert sent[2] == {"role": "tool", "content": "Sunny", "tool_name": "weather"}


def test_an_error_line_is_a_stream_error_and_an_error_body_an_api_error(
    server: ScriptedServer, ollama: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(*[Reply.ndjson([b'{"error":"model crashed"}\n'])] * 3)
    with pytest.raises(minillm.StreamError, match="model crashed") as caught:
        list(ollama().stream("Hi"))
    # The runner failing is a server error: retried, then raised.
    assert isinstance(caught.value, minillm.ServerError) and len(server.requests) == 3
    # Each stream had begun: it may be billed.
    assert [(c.failed, c.resolution) for c, _ in ledger.records] == [(True, minillm.Resolution.UNKNOWN)] * 3
    server.reply(Reply.json({"error": "llama-test does not support tools"}, status=400))
    with pytest.raises(minillm.BadRequestError, match="does not support tools"):
        ollama().complete("Hi", tools=[{"name": "f"}])
    assert ledger.count == 3  # an error status books nothing


def test_complete_reads_one_object(server: ScriptedServer, ollama: Callable[..., minillm.Client]) -> None:
    body = {
        "model": "llama-test",
        "message": {"role": "assistant", "content": "Hi there"},
        "done": True,
        "done_reason": "length",
        "prompt_eval_count": 3,
        "eval_count": 2,
    }
    server.reply(Reply.json(body))
    response = ollama().complete("Hi")
    assert (response.text, response.finish_reason) == ("Hi there", "length")
    assert server.requests[0].json()["stream"] is False


@pytest.mark.parametrize(
    ("value", "url"),
    [
        ("0.0.0.0:11434", "http://127.0.0.1:11434"),
        ("localhost", "http://localhost:11434"),
        ("http://gpu-box:8080/", "http://gpu-box:8080"),
        ("https://ollama.com", "https://ollama.com"),
    ],
)
def test_ollama_host_takes_its_usual_forms(value: str, url: str) -> None:
    assert ollama_host(value) == url


def test_ollama_host_from_the_environment_and_a_cloud_key(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", server.url.replace("http://", ""))
    monkeypatch.setenv("OLLAMA_API_KEY", "ollama-cloud-key")
    server.reply(Reply.ndjson(ollama_stream(["ok"])))
    with minillm.Client("ollama/llama-test").stream("Hi") as stream:
        list(stream)
    assert server.requests[0].headers["authorization"] == "Bearer ollama-cloud-key"
