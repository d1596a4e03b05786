"""Anthropic Messages against the loopback server: request shape, streams,
tools round trip, thinking, usage, errors and settlement."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Callable, Dict, List

import pytest

import minillm
from minillm import Resolution
from minillm.testing import Hang, Reply, ScriptedServer, anthropic_stream, sse

PRICE = minillm.TokenPrice(input_per_mtok="3", output_per_mtok="15", cached_input_per_mtok="0.30")


@pytest.fixture
def claude(make_client: Callable[..., minillm.Client]) -> Callable[..., minillm.Client]:
    def make(**kwargs: Any) -> minillm.Client:
        kwargs.setdefault("api_key", "sk-ant-test")
        return make_client("anthropic/claude-test", **kwargs)

    return make


def test_a_request_carries_the_key_version_system_and_max_tokens(
    server: ScriptedServer, claude: Callable[..., minillm.Client]
) -> None:
    server.reply(Reply.sse(anthropic_stream(["Hi"])))
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello"},
    ]
    with claude().stream(messages, system="You are terse.", temperature=0.5, stop=["END"]) as stream:
        list(stream)
    request = server.requests[0]
    assert request.path == "/v1/messages"
    assert request.headers["x-api-key"] == "sk-ant-test" and "authorization" not in request.headers
    assert request.headers["anthropic-version"] == "2023-06-01"
    body = request.json()
    assert body["system"] == "You are terse.\n\nBe brief."  # system turns never go into messages
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}]
    assert body["max_tokens"] == 4096 and body["stream"] is True
    assert (body["temperature"], body["stop_sequences"]) == (0.5, ["END"])


def test_a_thinking_budget_becomes_enabled_thinking_with_room_for_the_answer(
    server: ScriptedServer, claude: Callable[..., minillm.Client]
) -> None:
    server.reply(Reply.json(_message("ok")), Reply.json(_message("ok")))
    claude().complete("Hi", thinking_budget=2000)
    claude().complete("Hi", thinking_budget=100, max_tokens=5000)
    first, second = (r.json() for r in server.requests)
    assert first["thinking"] == {"type": "enabled", "budget_tokens": 2000} and first["max_tokens"] == 6096
    assert second["thinking"]["budget_tokens"] == 1024 and second["max_tokens"] == 5000  # the API's minimum


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"temperature": 0.2}, "a temperature other than 1 with extended thinking"),
        ({"extra_body": {"top_k": 40}}, "top_k with extended thinking"),
        ({"extra_body": {"top_p": 0.9}}, "a top_p below 0.95 with extended thinking"),
        (
            {"tools": [{"name": "f"}], "tool_choice": "f"},
            "a tool_choice that forces a tool with extended thinking",
        ),
        (
            {"temperature": 0, "extra_body": {"top_k": 1}},
            "refuses a temperature other than 1 and top_k with extended thinking .*leave them out",
        ),
    ],
)
def test_what_extended_thinking_refuses_is_an_invalid_argument_before_sending(
    server: ScriptedServer, claude: Callable[..., minillm.Client], ledger: minillm.Ledger, options: Any, match: str
) -> None:
    client = claude()
    for call in (client.complete, client.stream):
        with pytest.raises(minillm.InvalidArgumentError, match=match):
            call("Hi", thinking_budget=2048, **options)
    assert server.requests == [] and ledger.count == 0


@pytest.mark.parametrize(
    "options",
    [
        {"temperature": 1},
        {"extra_body": {"top_p": 0.95}},
        {"tools": [{"name": "f"}], "tool_choice": "auto"},
    ],
)
def test_what_extended_thinking_takes_is_sent(
    server: ScriptedServer, claude: Callable[..., minillm.Client], options: Any
) -> None:
    server.reply(Reply.json(_message("ok")))
    assert claude().complete("Hi", thinking_budget=2048, **options).text == "ok"


def test_sampling_options_without_thinking_are_sent(
    server: ScriptedServer, claude: Callable[..., minillm.Client]
) -> None:
    server.reply(Reply.json(_message("ok")))
    claude().complete("Hi", temperature=0.2, extra_body={"top_k": 40, "top_p": 0.5})
    body = server.requests[0].json()
    assert (body["temperature"], body["top_k"], body["top_p"]) == (0.2, 40, 0.5)


@pytest.mark.parametrize("field", ["seed", "frequency_penalty", "presence_penalty", "logprobs", "n"])
def test_another_apis_field_in_extra_body_is_refused_before_sending(
    server: ScriptedServer, claude: Callable[..., minillm.Client], field: str
) -> None:
    with pytest.raises(
        minillm.InvalidArgumentError, match=f"Messages API has no {field} .*leave them out of extra_body"
    ):
        claude().complete("Hi", extra_body={field: 7})
    assert server.requests == []


def test_claude_on_vertex_refuses_the_same(server: ScriptedServer) -> None:
    client = minillm.Client(
        "vertex/claude-sonnet-4-5", api_key="ya29.t", base_url=server.url + "/v1/projects/p/locations/global"
    )
    with pytest.raises(minillm.InvalidArgumentError, match="temperature other than 1"):
        client.complete("Hi", thinking_budget=2048, temperature=0.5)
    assert server.requests == []


def test_a_stream_is_priced_from_input_cache_and_cumulative_output(
    server: ScriptedServer, claude: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(
        Reply.sse(anthropic_stream(["Hel", "lo"], input_tokens=4, cache_read=1000, cache_write=50, output_tokens=7))
    )
    with claude(price=PRICE).stream("Hi") as stream:
        assert "".join(stream.text_stream()) == "Hello"
    usage = stream.response.usage if stream.response else None
    assert usage == minillm.Usage(
        prompt_tokens=1054,
        completion_tokens=7,
        total_tokens=1061,
        cached_tokens=1000,
        cache_write_tokens=50,
        service_tier="standard",
    )
    cost = ledger.records[0][0]
    expected = (Decimal(54) * 3 + Decimal(1000) * Decimal("0.30") + 7 * 15) / 1_000_000
    assert (cost.usd, cost.resolution, cost.response_id) == (expected, Resolution.RESOLVED, "msg_test")


def test_thinking_streams_and_its_signed_block_is_kept_for_the_next_turn(
    server: ScriptedServer, claude: Callable[..., minillm.Client]
) -> None:
    server.reply(Reply.sse(anthropic_stream(["Answer"], thinking="Let me think.")))
    with claude().stream("Hi", thinking_budget=1024) as stream:
        chunks = list(stream)
    assert "".join(c.thinking for c in chunks) == "Let me think."
    assert stream.response is not None
    assert stream.response.reasoning_details == [{"type": "thinking", "thinking": "Let me think.", "signature": "sig"}]


def test_tool_calls_round_trip_through_tool_results(
    server: ScriptedServer, claude: Callable[..., minillm.Client]
) -> None:
    calls = [
        {"id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
        {"id": "toolu_2", "name": "time", "input": {}},
    ]
    server.reply(Reply.sse(anthropic_stream([], stop_reason="tool_use", tool_calls=calls, thinking="plan")))
    server.reply(Reply.sse(anthropic_stream(["Sunny, noon."])))
    tools: List[Dict[str, Any]] = [
        {"name": "weather", "description": "Weather", "parameters": {"type": "object"}},
        {"name": "time"},
    ]
    client = claude()
    conversation: list = [{"role": "user", "content": "Weather and time in Paris?"}]
    with client.stream(conversation, tools=tools, tool_choice="required") as stream:
        list(stream)
    response = stream.response
    assert response is not None and response.finish_reason == "tool_calls"
    assert response.tool_calls == [
        minillm.ToolCall(id="toolu_1", name="weather", arguments='{"city": "Paris"}'),
        minillm.ToolCall(id="toolu_2", name="time", arguments="{}"),
    ]
    first = server.requests[0].json()
    assert first["tools"][0] == {"name": "weather", "description": "Weather", "input_schema": {"type": "object"}}
    assert first["tool_choice"] == {"type": "any"}
    conversation += [
        response.to_message(),
        {"role": "tool", "tool_call_id": "toolu_1", "content": "Sunny"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "Noon"},
    ]
    with client.stream(conversation, tools=tools) as stream:
        list(stream)
    second = server.requests[1].json()["messages"]
    assert second[1] == {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "plan", "signature": "sig"},
            {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_2", "name": "time", "input": {}},
        ],
    }
    assert second[2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "Sunny"}]},
            {"type": "tool_result", "tool_use_id": "toolu_2", "content": [{"type": "text", "text": "Noon"}]},
        ],
    }


def test_complete_reads_the_message_body(
    server: ScriptedServer, claude: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(Reply.json(_message("Bonjour", stop_reason="max_tokens")))
    response = claude(price=PRICE).complete("Hi")
    assert (response.text, response.finish_reason, response.id) == ("Bonjour", "length", "msg_1")
    assert response.usage == minillm.Usage(prompt_tokens=12, completion_tokens=3, total_tokens=15)
    assert ledger.count == 1


def test_an_overloaded_error_after_output_is_a_server_error_and_a_stream_error_booked_as_failed(
    server: ScriptedServer, claude: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    overloaded = {"type": "error", "error": {"details": None, "type": "overloaded_error", "message": "Overloaded"}}
    server.reply(Reply.sse([*anthropic_stream(["par"], done=False)[:4], sse(overloaded, event="error")]))
    with pytest.raises(minillm.StreamError, match="Overloaded") as caught:
        with claude(price=PRICE).stream("Hi") as stream:
            list(stream)
    assert isinstance(caught.value, minillm.ServerError) and caught.value.status_code == 529
    assert caught.value.partial_text == "par"
    ((cost, _),) = ledger.records
    assert cost.failed and cost.resolution is Resolution.PARTIAL
    from minillm.providers import PROVIDERS, ProviderConfig

    adapter = PROVIDERS["anthropic"](ProviderConfig(provider="anthropic", model="m", base_url="http://x"))
    assert adapter.in_band_error(overloaded["error"]).status == 529
    assert adapter.in_band_error({"type": "rate_limit_error", "message": "slow"}).status == 429
    assert adapter.in_band_error({"type": "invalid_request_error", "message": "bad"}).status == 400


def test_an_in_band_rate_limit_is_a_rate_limit_error_and_a_stream_error(
    server: ScriptedServer, claude: Callable[..., minillm.Client]
) -> None:
    limited = {"type": "error", "error": {"type": "rate_limit_error", "message": "Number of requests exceeded"}}
    server.reply(Reply.sse([*anthropic_stream(["par"], done=False)[:4], sse(limited, event="error")]))
    with pytest.raises(minillm.RateLimitError) as caught:
        with claude().stream("Hi") as stream:
            list(stream)
    assert isinstance(caught.value, minillm.StreamError) and caught.value.status_code == 429


def test_a_prompt_too_long_is_a_context_overflow_with_its_counts(
    server: ScriptedServer, claude: Callable[..., minillm.Client]
) -> None:
    body = {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "prompt is too long: 210000 tokens > 200000 maximum"},
    }
    server.reply(Reply.json(body, status=400))
    with pytest.raises(minillm.ContextOverflowError) as caught:
        claude().complete("Hi")
    assert (caught.value.requested_tokens, caught.value.limit_tokens) == (210000, 200000)


def test_a_529_is_a_retried_server_error(
    server: ScriptedServer, claude: Callable[..., minillm.Client], sleeps: Any
) -> None:
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    server.reply(Reply.json(overloaded, status=529), Reply.json(_message("ok")))
    assert claude().complete("Hi").text == "ok"
    assert len(sleeps.calls) == 1


def test_a_stream_cancelled_after_message_start_books_the_input_usage_seen(
    server: ScriptedServer, claude: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(Reply.sse([*anthropic_stream(["a"], input_tokens=40, done=False)[:4], Hang()]))
    with claude(price=PRICE).stream("Hi") as stream:
        next(iter(stream))
    cost = ledger.records[0][0]
    # message_start's output count (1) is a placeholder, not a token generated:
    # the input is known, the output is what was seen -- nothing yet
    assert (cost.prompt_tokens, cost.completion_tokens, cost.cancelled) == (40, 0, True)
    assert cost.resolution is Resolution.PARTIAL and cost.usd == PRICE.cost(minillm.Usage(40, 0))


def test_a_stream_cancelled_after_many_deltas_counts_them_not_the_placeholder(
    server: ScriptedServer, claude: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    pieces = [f"t{i} " for i in range(500)]
    server.reply(Reply.sse([*anthropic_stream(pieces, input_tokens=40, done=False)[:-2], Hang()]))
    with claude(price=PRICE).stream("Hi") as stream:
        for count, _ in enumerate(stream.text_stream(), start=1):
            if count == 500:
                break
    ((cost, _),) = ledger.records
    assert (cost.prompt_tokens, cost.completion_tokens) == (40, 500)
    assert cost.resolution is Resolution.PARTIAL and cost.usd == PRICE.cost(minillm.Usage(40, 500))


def test_a_stream_without_message_stop_is_incomplete(
    server: ScriptedServer, claude: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    events = anthropic_stream(["cut"])
    server.reply(Reply.sse(events[:4]))  # message_start, ping, block start, one delta
    with pytest.raises(minillm.StreamError, match="ended before"):
        with claude(price=PRICE).stream("Hi") as stream:
            list(stream)
    ((cost, _),) = ledger.records
    assert cost.failed and cost.resolution is Resolution.PARTIAL and cost.completion_tokens == 1


def _message(text: str, stop_reason: str = "end_turn") -> Dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-test",
        "content": [{"type": "text", "text": text}],
        "stop_reason": stop_reason,
        "usage": {"input_tokens": 12, "output_tokens": 3},
    }


def test_images_are_sent_as_url_or_base64_sources(
    server: ScriptedServer, claude: Callable[..., minillm.Client]
) -> None:
    server.reply(Reply.json(_message("a cat")))
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ]
    claude().complete([{"role": "user", "content": content}])
    blocks = server.requests[0].json()["messages"][0]["content"]
    assert blocks[1] == {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}}
    assert blocks[2] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
    }
