"""Gemini against the loopback server: request shape, streams, tools round
trip, thinking, usage snapshots, errors and settlement."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Callable, Dict, List

import pytest

import minillm
from minillm.testing import Reply, ScriptedServer, gemini_stream, sse

PRICE = minillm.TokenPrice(input_per_mtok="0.30", output_per_mtok="2.50")


@pytest.fixture
def gemini(make_client: Callable[..., minillm.Client]) -> Callable[..., minillm.Client]:
    def make(**kwargs: Any) -> minillm.Client:
        kwargs.setdefault("api_key", "AIza-test-key")
        return make_client("gemini/gemini-test", **kwargs)

    return make


def test_the_key_goes_only_in_a_header_and_the_body_uses_contents(
    server: ScriptedServer, gemini: Callable[..., minillm.Client]
) -> None:
    server.reply(Reply.sse(gemini_stream(["Hi"])))
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hi!"},
        {"role": "user", "content": "Again"},
    ]
    with gemini().stream(messages, max_tokens=50, temperature=0.1, stop=["END"], thinking_budget=512) as stream:
        list(stream)
    request = server.requests[0]
    assert request.path == "/models/gemini-test:streamGenerateContent" and request.query == {"alt": ["sse"]}
    assert request.headers["x-goog-api-key"] == "AIza-test-key" and "key" not in request.query
    body = request.json()
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    assert body["generationConfig"] == {
        "maxOutputTokens": 50,
        "temperature": 0.1,
        "stopSequences": ["END"],
        "thinkingConfig": {"thinkingBudget": 512, "includeThoughts": True},
    }


def test_usage_snapshots_are_taken_last_never_summed_and_thoughts_count_as_output(
    server: ScriptedServer, gemini: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(Reply.sse(gemini_stream(["one ", "two ", "three"], prompt_tokens=20, thoughts="hmm well")))
    with gemini(price=PRICE).stream("Count") as stream:
        chunks = list(stream)
    assert "".join(c.text for c in chunks) == "one two three"
    assert "".join(c.thinking for c in chunks) == "hmm well"
    assert stream.response is not None
    assert stream.response.usage == minillm.Usage(
        prompt_tokens=20, completion_tokens=5, total_tokens=25, reasoning_tokens=2
    )
    assert ledger.records[0][0].usd == (Decimal(20) * Decimal("0.30") + 5 * Decimal("2.50")) / 1_000_000


def test_function_calls_get_stable_ids_and_round_trip_with_their_signatures(
    server: ScriptedServer, gemini: Callable[..., minillm.Client]
) -> None:
    calls = [{"name": "weather", "args": {"city": "Paris"}}, {"name": "time", "args": {}}]
    server.reply(Reply.sse(gemini_stream([], function_calls=calls)), Reply.sse(gemini_stream([], function_calls=calls)))
    server.reply(Reply.json(_answer("Sunny")))
    tools: List[Dict[str, Any]] = [{"name": "weather", "parameters": {"type": "object"}}, {"name": "time"}]
    client = gemini()
    responses = []
    for _ in range(2):
        with client.stream("Weather?", tools=tools, tool_choice="weather") as stream:
            list(stream)
        responses.append(stream.response)
    first = responses[0]
    assert first is not None and first.finish_reason == "tool_calls"
    assert [(c.name, c.arguments) for c in first.tool_calls] == [("weather", '{"city": "Paris"}'), ("time", "{}")]
    second = responses[1]
    assert second is not None and [c.id for c in first.tool_calls] == [c.id for c in second.tool_calls]  # stable
    assert len({c.id for c in first.tool_calls}) == 2
    sent = server.requests[0].json()
    assert sent["tools"] == [{"functionDeclarations": [
        {"name": "weather", "description": "", "parameters": {"type": "object"}},
        {"name": "time", "description": "", "parameters": {"type": "object", "properties": {}}},
    ]}]  # fmt: skip
    assert sent["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["weather"]}}
    conversation = [
        {"role": "user", "content": "Weather?"},
        first.to_message(),
        {"role": "tool", "tool_call_id": first.tool_calls[0].id, "content": '{"sky": "sunny"}'},
        {"role": "tool", "tool_call_id": first.tool_calls[1].id, "content": "noon"},
    ]
    assert client.complete(conversation, tools=tools).text == "Sunny"
    contents = server.requests[2].json()["contents"]
    assert contents[1] == {
        "role": "model",
        "parts": [
            {"functionCall": {"name": "weather", "args": {"city": "Paris"}}, "thoughtSignature": "sig"},
            {"functionCall": {"name": "time", "args": {}}, "thoughtSignature": "sig"},
        ],
    }
    assert contents[2] == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "weather", "response": {"sky": "sunny"}}},
            {"functionResponse": {"name": "time", "response": {"result": "noon"}}},
        ],
    }


def test_complete_uses_generate_content(
    server: ScriptedServer, gemini: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(Reply.json(_answer("Bonjour")))
    response = gemini().complete("Hi")
    assert server.requests[0].path == "/models/gemini-test:generateContent"
    assert (response.text, response.finish_reason) == ("Bonjour", "stop")
    assert response.usage == minillm.Usage(prompt_tokens=7, completion_tokens=2, total_tokens=9)


@pytest.mark.parametrize("reason", ["SAFETY", "RECITATION", "PROHIBITED_CONTENT", "BLOCKLIST"])
def test_safety_stops_are_content_filter(
    reason: str, server: ScriptedServer, gemini: Callable[..., minillm.Client]
) -> None:
    server.reply(Reply.sse(gemini_stream(["partial"], finish_reason=reason)))
    with gemini().stream("Hi") as stream:
        list(stream)
    assert stream.response is not None and stream.response.finish_reason == "content_filter"


def test_a_blocked_prompt_is_content_filter(server: ScriptedServer, gemini: Callable[..., minillm.Client]) -> None:
    blocked = {
        "promptFeedback": {"blockReason": "SAFETY"},
        "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5},
    }
    server.reply(Reply.sse([sse(blocked)]))
    with gemini().stream("Hi") as stream:
        list(stream)
    assert stream.response is not None and stream.response.finish_reason == "content_filter"


def test_a_stream_without_a_finish_reason_is_incomplete(
    server: ScriptedServer, gemini: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(Reply.sse(gemini_stream(["a", "b", "c"])[:2]))
    with pytest.raises(minillm.StreamError, match="ended before") as caught:
        list(gemini().stream("Hi"))
    assert caught.value.partial_text == "ab"
    ((cost, _),) = ledger.records  # generated, so billed: booked as failed, never as exact
    assert cost.failed and cost.resolution is not minillm.Resolution.RESOLVED


def test_an_oversized_prompt_is_a_context_overflow_with_its_counts(
    server: ScriptedServer, gemini: Callable[..., minillm.Client]
) -> None:
    message = "The input token count (3475108) exceeds the maximum number of tokens allowed (1048576)."
    server.reply(Reply.json({"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}}, status=400))
    with pytest.raises(minillm.ContextOverflowError) as caught:
        gemini().complete("Hi")
    assert (caught.value.requested_tokens, caught.value.limit_tokens) == (3475108, 1048576)


def test_the_key_comes_from_gemini_api_key_then_google_api_key(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", "from-google")
    server.reply(Reply.json(_answer("a")), Reply.json(_answer("b")))
    minillm.Client("gemini/gemini-test", base_url=server.url).complete("Hi")
    monkeypatch.setenv("GEMINI_API_KEY", "from-gemini")
    minillm.Client("gemini/gemini-test", base_url=server.url).complete("Hi")
    assert [r.headers["x-goog-api-key"] for r in server.requests] == ["from-google", "from-gemini"]


def _answer(text: str) -> Dict[str, Any]:
    return {
        "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 2, "totalTokenCount": 9},
        "modelVersion": "gemini-test",
        "responseId": "r-1",
    }
