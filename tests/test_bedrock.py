"""AWS Bedrock's Converse API against the loopback server: the request
(path, credentials, body), the binary event stream split anywhere, usage
with the prompt cache, exceptions inside the stream, HTTP errors, SigV4
signatures that verify, and secrets that never show."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import traceback
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Callable, Dict, Iterable, List, Optional

import pytest

import minillm
from minillm import Resolution
from minillm.accumulate import StreamState, accumulate
from minillm.events import Event
from minillm.eventstream import encode_message
from minillm.providers import PROVIDERS, ProviderConfig
from minillm.providers.bedrock import BedrockAdapter, sigv4_headers, usage_from_bedrock
from minillm.request import build_chat_request
from minillm.testing import (
    Hang,
    RecordedRequest,
    Reply,
    ScriptedServer,
    bedrock_converse,
    bedrock_event,
    bedrock_stream,
    bedrock_usage,
)

MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
ENCODED = "us.anthropic.claude-sonnet-4-5-20250929-v1%3A0"
STREAM_PATH = f"/model/{ENCODED}/converse-stream"
CONVERSE_PATH = f"/model/{ENCODED}/converse"
API_KEY = "bedrock-api-key-test"
REQUEST_ID = "5b2d2c4e-0f6a-4c1e-9d3a-1f0e2d3c4b5a"
#: Claude Sonnet 4.5 through a regional (``us.``) inference profile: AWS's
#: list prices, 10% above the global profile's (input, output, cache read,
#: five-minute write, one-hour write).
PRICE = minillm.TokenPrice(
    input_per_mtok="3.30",
    output_per_mtok="16.50",
    cached_input_per_mtok="0.33",
    cache_write_per_mtok="4.125",
    cache_write_1h_per_mtok="6.60",
)
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYcanary7f3a9c"
TOKEN = "IQoJb3JpZ2luX2VjEcanary-session-token-5b2d4680"


def stream_reply(frames: Iterable[Any], **kwargs: Any) -> Reply:
    return Reply.eventstream(frames, headers=(("x-amzn-RequestId", REQUEST_ID),), **kwargs)


def aws_error(status: int, kind: str, message: str) -> Reply:
    """An HTTP error as Bedrock sends it: ``{"message"}`` and the kind in ``x-amzn-ErrorType``."""
    return Reply.json(
        {"message": message},
        status=status,
        headers=(
            ("x-amzn-ErrorType", f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"),
            ("x-amzn-RequestId", REQUEST_ID),
        ),
    )


def exception_frame(kind: str, message: str, **fields: Any) -> bytes:
    return bedrock_event(kind, {"message": message, **fields}, exception=True)


@pytest.fixture
def bedrock(make_client: Callable[..., minillm.Client]) -> Callable[..., minillm.Client]:
    """A Bedrock client for the loopback server, with a Bedrock API key."""

    def make(model: str = MODEL, **kwargs: Any) -> minillm.Client:
        kwargs.setdefault("api_key", API_KEY)
        return make_client(f"bedrock/{model}", **kwargs)

    return make


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake AWS credentials in the environment (the conftest points the AWS
    config files at an empty file and keeps botocore off the instance
    metadata address)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_REGION", "us-west-2")


def adapter(model: str = MODEL, base_url: str = "http://127.0.0.1:9", api_key: Optional[str] = "k") -> BedrockAdapter:
    made = PROVIDERS["bedrock"](ProviderConfig(provider="bedrock", model=model, base_url=base_url, api_key=api_key))
    assert isinstance(made, BedrockAdapter)
    return made


def fold(events: Iterable[Event]) -> StreamState:
    state = StreamState()
    for event in events:
        accumulate(state, event)
    return state


# -- the request ------------------------------------------------------------------------------------


def test_a_stream_goes_to_converse_stream_with_the_model_id_encoded_and_the_api_key_as_a_bearer_token(
    server: ScriptedServer, bedrock: Callable[..., minillm.Client]
) -> None:
    server.reply(stream_reply(bedrock_stream(["Hi"])), Reply.json(bedrock_converse("Hi")))
    client = bedrock()
    with client.stream("Hello") as stream:
        assert stream.collect().text == "Hi"
    assert client.complete("Hello").text == "Hi"
    streamed, whole = server.requests
    assert (streamed.method, streamed.path, whole.path) == ("POST", STREAM_PATH, CONVERSE_PATH)
    assert streamed.headers["authorization"] == f"Bearer {API_KEY}"
    assert streamed.headers["content-type"] == "application/json"
    assert streamed.headers["accept"] == "application/vnd.amazon.eventstream"
    assert whole.headers["accept"] == "application/json"
    assert "x-amz-date" not in streamed.headers  # a key is not signed for
    assert streamed.json() == {"messages": [{"role": "user", "content": [{"text": "Hello"}]}]}


def test_an_arn_is_one_path_segment_encoded_as_botocore_encodes_it(
    server: ScriptedServer, bedrock: Callable[..., minillm.Client]
) -> None:
    arn = f"arn:aws:bedrock:us-east-1:123456789012:inference-profile/{MODEL}"
    server.reply(Reply.json(bedrock_converse("ok")))
    bedrock(arn).complete("Hi")
    assert server.requests[0].path == (
        f"/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2F{ENCODED}/converse"
    )


@pytest.mark.parametrize("model", ["", " ", "has space", "tab\there", "new\nline", ".", "..", "x" * 2049])
def test_a_model_id_that_is_no_model_id_is_refused_when_the_client_is_made(model: str) -> None:
    with pytest.raises(minillm.ConfigurationError):
        minillm.Client(f"bedrock/{model}", api_key="k", base_url="http://127.0.0.1:9")


def test_the_body_carries_system_inference_config_tools_and_extra_fields(
    server: ScriptedServer, bedrock: Callable[..., minillm.Client]
) -> None:
    server.reply(*[Reply.json(bedrock_converse("ok")) for _ in range(3)])
    tools: List[Dict[str, Any]] = [
        {"name": "weather", "description": "Weather", "parameters": {"type": "object"}},
        {"name": "time", "description": ""},
    ]
    client = bedrock()
    client.complete(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}],
        system="You are terse.",
        max_tokens=300,
        temperature=0.5,
        stop=["END"],
        tools=tools,
        tool_choice="required",
        extra_body={
            "inferenceConfig": {"topP": 0.9},
            "additionalModelRequestFields": {"top_k": 5},
            "performanceConfig": {"latency": "optimized"},
        },
    )
    client.complete("Hi", tools=tools, tool_choice="weather")
    client.complete("Hi", tools=tools, tool_choice="auto")
    body = server.requests[0].json()
    assert body["system"] == [{"text": "You are terse.\n\nBe brief."}]
    assert body["messages"] == [{"role": "user", "content": [{"text": "Hello"}]}]
    assert body["inferenceConfig"] == {"maxTokens": 300, "temperature": 0.5, "stopSequences": ["END"], "topP": 0.9}
    assert body["additionalModelRequestFields"] == {"top_k": 5}
    assert body["performanceConfig"] == {"latency": "optimized"}
    assert body["toolConfig"] == {
        "tools": [
            {"toolSpec": {"name": "weather", "description": "Weather", "inputSchema": {"json": {"type": "object"}}}},
            # an empty description is left out: Bedrock refuses one
            {"toolSpec": {"name": "time", "inputSchema": {"json": {"type": "object", "properties": {}}}}},
        ],
        "toolChoice": {"any": {}},
    }
    assert server.requests[1].json()["toolConfig"]["toolChoice"] == {"tool": {"name": "weather"}}
    assert server.requests[2].json()["toolConfig"]["toolChoice"] == {"auto": {}}


def test_a_thinking_budget_becomes_anthropic_thinking_with_room_for_the_answer(
    server: ScriptedServer, bedrock: Callable[..., minillm.Client]
) -> None:
    server.reply(*[Reply.json(bedrock_converse("ok")) for _ in range(3)])
    client = bedrock()
    client.complete("Hi", thinking_budget=2000)
    client.complete("Hi", thinking_budget=100, max_tokens=5000)
    client.complete("Hi", thinking_budget=0)
    first, second, third = (r.json() for r in server.requests)
    assert first["additionalModelRequestFields"] == {"thinking": {"type": "enabled", "budget_tokens": 2000}}
    assert first["inferenceConfig"] == {"maxTokens": 6096}
    assert second["additionalModelRequestFields"]["thinking"]["budget_tokens"] == 1024  # Anthropic's minimum
    assert second["inferenceConfig"] == {"maxTokens": 5000}
    assert "additionalModelRequestFields" not in third and "inferenceConfig" not in third


def test_images_are_inline_bytes_or_s3_locations(
    server: ScriptedServer, bedrock: Callable[..., minillm.Client]
) -> None:
    server.reply(Reply.json(bedrock_converse("a cat")))
    bedrock().complete(
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                    {"type": "image_url", "image_url": {"url": "s3://bucket/cats/tabby.JPG"}},
                ],
            }
        ]
    )
    assert server.requests[0].json()["messages"][0]["content"] == [
        {"text": "What is this?"},
        # a blob is base64 text in JSON: the data URL's data as it is
        {"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}},
        {"image": {"format": "jpeg", "source": {"s3Location": {"uri": "s3://bucket/cats/tabby.JPG"}}}},
    ]


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"tool_choice": "none", "tools": [{"name": "f"}]}, "no tool_choice 'none'"),
        ({"messages": [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}, "not web URLs"),
        ({"messages": [{"type": "image_url", "image_url": {"url": "data:image/bmp;base64,Qk0="}}]}, "image/bmp"),
        ({"messages": [{"type": "image_url", "image_url": {"url": "s3://bucket/cat"}}]}, "s3://"),
    ],
)
def test_what_converse_cannot_take_is_refused_before_anything_is_sent_and_books_nothing(
    options: Dict[str, Any],
    match: str,
    server: ScriptedServer,
    bedrock: Callable[..., minillm.Client],
    ledger: minillm.Ledger,
) -> None:
    parts = options.pop("messages", None)
    messages = [{"role": "user", "content": parts}] if parts else "Hi"
    with pytest.raises(minillm.InvalidArgumentError, match=re.escape(match)):
        bedrock().complete(messages, **options)
    assert server.requests == [] and ledger.count == 0


LONG = "A long document. " * 50
EPHEMERAL = {"type": "ephemeral"}
ONE_HOUR = {"type": "ephemeral", "ttl": "1h"}


def test_cache_control_markers_become_cache_points_right_after_what_they_mark(
    server: ScriptedServer, bedrock: Callable[..., minillm.Client]
) -> None:
    server.reply(Reply.json(bedrock_converse("ok")))
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    bedrock().complete(
        [
            {
                "role": "system",
                "content": [
                    {"type": "text", "text": "You are terse."},
                    {"type": "text", "text": LONG, "cache_control": ONE_HOUR},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": LONG, "cache_control": EPHEMERAL},
                    {"type": "text", "text": "Summarise it."},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}],
            },
            {
                "role": "tool",
                "tool_call_id": "t1",
                "content": [{"type": "text", "text": LONG, "cache_control": EPHEMERAL}],
            },
        ],
        system="First.",
        tools=[{**tool, "cache_control": EPHEMERAL}],
    )
    body = server.requests[0].json()
    assert body["system"] == [
        {"text": "First."},
        {"text": "You are terse."},
        {"text": LONG},
        {"cachePoint": {"type": "default", "ttl": "1h"}},
    ]
    assert body["messages"][0] == {
        "role": "user",
        "content": [{"text": LONG}, {"cachePoint": {"type": "default"}}, {"text": "Summarise it."}],
    }
    # a tool result cannot hold a cache point: it follows the result
    assert body["messages"][2] == {
        "role": "user",
        "content": [
            {"toolResult": {"toolUseId": "t1", "content": [{"text": LONG}]}},
            {"cachePoint": {"type": "default"}},
        ],
    }
    assert body["toolConfig"]["tools"] == [
        {"toolSpec": {"name": "lookup", "inputSchema": {"json": {"type": "object"}}}},
        {"cachePoint": {"type": "default"}},
    ]


def test_without_markers_there_are_no_cache_points(
    server: ScriptedServer, bedrock: Callable[..., minillm.Client]
) -> None:
    server.reply(Reply.json(bedrock_converse("ok")))
    bedrock().complete(
        [{"role": "system", "content": [{"type": "text", "text": "Be terse."}]}, {"role": "user", "content": "Hi"}],
        system="First.",
        tools=[{"name": "lookup"}],
    )
    body = server.requests[0].json()
    assert body["system"] == [{"text": "First.\n\nBe terse."}]
    assert "cachePoint" not in server.requests[0].body.decode()


def test_tool_calls_and_reasoning_round_trip_into_the_next_turn(
    server: ScriptedServer, bedrock: Callable[..., minillm.Client]
) -> None:
    calls: List[Dict[str, Any]] = [
        {"id": "t1", "name": "weather", "input": {"city": "Paris"}},
        {"id": "t2", "name": "time"},
    ]
    server.reply(stream_reply(bedrock_stream([], stop_reason="tool_use", tool_calls=calls, reasoning="plan")))
    server.reply(stream_reply(bedrock_stream(["Sunny, noon."])))
    client = bedrock()
    conversation: List[Dict[str, Any]] = [{"role": "user", "content": "Weather and time in Paris?"}]
    tools: List[Dict[str, Any]] = [{"name": "weather", "parameters": {"type": "object"}}, {"name": "time"}]
    with client.stream(conversation, tools=tools) as stream:
        assert [chunk.thinking for chunk in stream if chunk.thinking] == ["plan"]
    response = stream.response
    assert response is not None and response.finish_reason == "tool_calls"
    assert response.tool_calls == [
        minillm.ToolCall(id="t1", name="weather", arguments='{"city": "Paris"}'),
        minillm.ToolCall(id="t2", name="time", arguments="{}"),
    ]
    assert response.reasoning_details == [{"type": "bedrock.reasoning", "text": "plan", "signature": "sig"}]
    conversation += [
        response.to_message(),
        {"role": "tool", "tool_call_id": "t1", "content": "Sunny"},
        {"role": "tool", "tool_call_id": "t2", "content": "Noon"},
        {"role": "user", "content": "And tomorrow?"},
    ]
    with client.stream(conversation, tools=tools) as stream:
        list(stream)
    assert server.requests[1].json()["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {"reasoningContent": {"reasoningText": {"text": "plan", "signature": "sig"}}},
                {"toolUse": {"toolUseId": "t1", "name": "weather", "input": {"city": "Paris"}}},
                {"toolUse": {"toolUseId": "t2", "name": "time", "input": {}}},
            ],
        },
        # Converse wants the roles to alternate: the results and the next
        # question are one user turn
        {
            "role": "user",
            "content": [
                {"toolResult": {"toolUseId": "t1", "content": [{"text": "Sunny"}]}},
                {"toolResult": {"toolUseId": "t2", "content": [{"text": "Noon"}]}},
                {"text": "And tomorrow?"},
            ],
        },
    ]


def test_redacted_reasoning_is_kept_and_sent_back_as_it_came() -> None:
    frames = [
        bedrock_event("messageStart", {"role": "assistant"}),
        bedrock_event(
            "contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {"redactedContent": "ZW5j"}}}
        ),
        bedrock_event(
            "contentBlockDelta",
            {"contentBlockIndex": 0, "delta": {"reasoningContent": {"redactedContent": "cnlwdGVk"}}},
        ),
        bedrock_event("contentBlockStop", {"contentBlockIndex": 0}),
    ]
    state = fold(adapter().stream_events(frames))
    assert state.reasoning_details() == [{"type": "bedrock.redacted_reasoning", "data": "ZW5jcnlwdGVk"}]
    turn = {"role": "assistant", "content": "ok", "reasoning_details": state.reasoning_details()}
    assert adapter().messages([turn]) == [
        {"role": "assistant", "content": [{"reasoningContent": {"redactedContent": "ZW5jcnlwdGVk"}}, {"text": "ok"}]}
    ]


# -- the answer -------------------------------------------------------------------------------------


def test_a_stream_split_at_every_byte_decodes_the_same() -> None:
    frames = bedrock_stream(
        ["Hel", "lo ", "wörld"],
        reasoning="think",
        tool_calls=[{"id": "t1", "name": "f", "input": {"a": [1, 2]}}],
        cache_read=3,
        service_tier="flex",
    )
    body = b"".join(frames)
    whole = list(adapter().stream_events([body]))
    state = fold(whole)
    assert (state.text, state.thinking, state.done) == ("Hello wörld", "think", True)
    for cut in range(len(body) + 1):
        assert list(adapter().stream_events([body[:cut], b"", body[cut:]])) == whole, cut


def test_a_stream_that_arrives_a_byte_at_a_time_is_read_whole_and_priced(
    server: ScriptedServer, bedrock: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    body = b"".join(bedrock_stream(["Hel", "lo"], input_tokens=7, output_tokens=2))
    server.reply(stream_reply([body[i : i + 1] for i in range(len(body))]))
    with bedrock(price=PRICE).stream("Hi") as stream:
        assert "".join(stream.text_stream()) == "Hello"
        assert stream.id == REQUEST_ID
    ((cost, _),) = ledger.records
    assert (cost.resolution, cost.response_id, cost.failed) == (Resolution.RESOLVED, REQUEST_ID, False)
    assert cost.usd == (7 * Decimal("3.30") + 2 * Decimal("16.50")) / 1_000_000


def test_usage_counts_cache_reads_and_writes_into_the_prompt_and_prices_each_at_its_rate(
    server: ScriptedServer, bedrock: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(
        stream_reply(
            bedrock_stream(
                ["Hi"], input_tokens=1000, output_tokens=500, cache_read=2000, cache_write=300, cache_write_1h=100
            )
        )
    )
    with bedrock(price=PRICE).stream("Hi") as stream:
        list(stream)
    assert stream.response is not None
    assert stream.response.usage == minillm.Usage(
        prompt_tokens=3300,
        completion_tokens=500,
        total_tokens=3800,
        cached_tokens=2000,
        cache_write_tokens=300,
        cache_write_1h_tokens=100,
    )
    ((cost, _),) = ledger.records
    # 1000 x 3.30 + 2000 x 0.33 + 200 x 4.125 + 100 x 6.60 + 500 x 16.50, per million
    assert cost.usd == Decimal("0.013695") and cost.resolution is Resolution.RESOLVED
    assert (cost.prompt_tokens, cost.cached_tokens, cost.cache_write_tokens) == (3300, 2000, 300)


def test_the_served_tier_is_booked_and_priced_by_the_tiers_multiplier(
    server: ScriptedServer, bedrock: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(Reply.json(bedrock_converse("ok", input_tokens=1000, output_tokens=100, service_tier="flex")))
    price = minillm.TokenPrice(input_per_mtok="3", output_per_mtok="15", tiers={"flex": "0.5"})
    assert bedrock(price=price).complete("Hi").usage.service_tier == "flex"  # type: ignore[union-attr]
    ((cost, _),) = ledger.records
    assert (cost.service_tier, cost.usd) == ("flex", Decimal("0.00225"))


def test_usage_reads_the_documented_fields_and_ignores_the_rest() -> None:
    # B2 of the research notes: a real body with the legacy ...Count names beside the current ones
    real = {
        "cacheReadInputTokenCount": 0,
        "cacheReadInputTokens": 0,
        "cacheWriteInputTokenCount": 0,
        "cacheWriteInputTokens": 0,
        "inputTokens": 14,
        "outputTokens": 27,
        "totalTokens": 41,
        "serverToolUsage": {},
    }
    assert usage_from_bedrock(real) == minillm.Usage(prompt_tokens=14, completion_tokens=27, total_tokens=41)
    assert usage_from_bedrock({"metrics": {}}) is None
    # 1h writes never exceed the writes
    assert usage_from_bedrock(
        {
            "inputTokens": 1,
            "outputTokens": 1,
            "cacheWriteInputTokens": 5,
            "cacheDetails": [{"ttl": "1h", "inputTokens": 9}],
        }
    ) == minillm.Usage(
        prompt_tokens=6, completion_tokens=1, total_tokens=7, cache_write_tokens=5, cache_write_1h_tokens=5
    )


def test_a_whole_answer_carries_text_tools_reasoning_and_usage(
    server: ScriptedServer, bedrock: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    body = bedrock_converse(
        "Let me check.",
        reasoning="need weather",
        tool_calls=[{"id": "t1", "name": "weather", "input": {"city": "Paris"}}],
        stop_reason="tool_use",
        input_tokens=20,
        output_tokens=9,
    )
    server.reply(Reply.json(body, headers=(("x-amzn-RequestId", REQUEST_ID),)))
    response = bedrock(price=PRICE).complete("Weather?", tools=[{"name": "weather"}])
    assert (response.text, response.thinking, response.finish_reason) == ("Let me check.", "need weather", "tool_calls")
    assert response.tool_calls == [minillm.ToolCall(id="t1", name="weather", arguments='{"city": "Paris"}')]
    assert response.reasoning_details == [{"type": "bedrock.reasoning", "text": "need weather", "signature": "sig"}]
    assert response.model == MODEL and response.raw == body
    assert response.cost is not None and response.cost.response_id == REQUEST_ID
    assert response.cost.usd == (20 * Decimal("3.30") + 9 * Decimal("16.50")) / 1_000_000


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("guardrail_intervened", "content_filter"),
        ("content_filtered", "content_filter"),
        ("malformed_model_output", "error"),
        ("malformed_tool_use", "error"),
        ("a_reason_yet_unknown", "stop"),
    ],
)
def test_stop_reasons_become_finish_reasons_in_streams_and_whole_answers(stop_reason: str, finish_reason: str) -> None:
    streamed = fold(adapter().stream_events(bedrock_stream(["x"], stop_reason=stop_reason)))
    whole = fold(adapter().body_events(bedrock_converse("x", stop_reason=stop_reason)))
    assert streamed.finish_reason == whole.finish_reason == finish_reason


def test_the_real_converse_body_from_the_research_notes_reads(
    server: ScriptedServer, bedrock: Callable[..., minillm.Client]
) -> None:
    # B1: a botocore debug log's body, unmodeled keys and all
    body = (
        b'{"metrics":{"latencyMs":433},"output":{"message":{"content":[{"text":"Done."}],"role":"assistant"}},'
        b'"stopReason":"end_turn","usage":{"inputTokens":257,"outputTokens":56,"serverToolUsage":{},"totalTokens":313}}'
    )
    server.reply(Reply(headers=(("Content-Type", "application/json"),), body=(body,)))
    response = bedrock().complete("Hi")
    assert response.text == "Done." and response.usage == minillm.Usage(257, 56, 313)


# -- completeness -----------------------------------------------------------------------------------


def test_the_stream_is_complete_only_once_both_the_stop_and_the_usage_are_here_in_either_order() -> None:
    frames = bedrock_stream(["Hi"])
    stop, metadata = frames[-2], frames[-1]
    without_usage = fold(adapter().stream_events(frames[:-1]))
    assert not without_usage.done and without_usage.usage is None and without_usage.finish_reason is None
    assert not fold(adapter().stream_events([*frames[:-2], metadata])).done
    reordered = fold(adapter().stream_events([*frames[:-2], metadata, stop]))
    assert reordered.done and reordered.finish_reason == "stop" and reordered.usage is not None


def test_a_stream_that_ends_after_message_stop_without_its_usage_is_incomplete_and_booked_as_failed(
    server: ScriptedServer, bedrock: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(stream_reply(bedrock_stream(["one", "two"], metadata=False)))
    with pytest.raises(minillm.StreamError, match="ended before") as caught:
        with bedrock(price=PRICE).stream("Hi") as stream:
            list(stream)
    assert caught.value.partial_text == "onetwo"
    ((cost, _),) = ledger.records
    # a lower bound: two deltas are at least two output tokens
    assert cost.failed and cost.resolution is Resolution.PARTIAL and cost.completion_tokens == 2
    assert cost.usd == 2 * Decimal("16.50") / 1_000_000


def test_nothing_after_the_terminal_metadata_is_read_into_the_answer(
    server: ScriptedServer, bedrock: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    late = bedrock_event("contentBlockDelta", {"contentBlockIndex": 9, "delta": {"text": "late"}})
    server.reply(stream_reply([*bedrock_stream(["Hi"]), late, Hang()]))
    with bedrock().stream("Hi") as stream:
        assert stream.collect().text == "Hi"
    assert ledger.records[0][0].resolution is Resolution.UNPRICED and not ledger.records[0][0].cancelled


def test_a_stream_cancelled_mid_answer_books_the_output_seen(
    server: ScriptedServer, bedrock: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(stream_reply([*bedrock_stream(["a", "b", "c"])[:4], Hang()]))  # messageStart, three deltas
    with bedrock(price=PRICE).stream("Hi") as stream:
        for _ in stream.text_stream():
            break
    ((cost, _),) = ledger.records
    assert cost.cancelled and cost.resolution is Resolution.PARTIAL and cost.completion_tokens >= 1


# -- errors inside the stream ----------------------------------------------------------------------


def test_a_throttling_exception_before_any_output_is_retried_like_a_429(
    server: ScriptedServer, bedrock: Callable[..., minillm.Client], ledger: minillm.Ledger, sleeps: Any
) -> None:
    throttled = [
        bedrock_event("messageStart", {"role": "assistant"}),
        exception_frame("throttlingException", "Too many"),
    ]
    server.reply(stream_reply(throttled), stream_reply(bedrock_stream(["ok"], input_tokens=4, output_tokens=1)))
    with bedrock(price=PRICE).stream("Hi") as stream:
        assert stream.collect().text == "ok"
    assert len(server.requests) == 2 and len(sleeps.calls) == 1 and sleeps.calls[0] >= 5  # the rate-limit floor
    first, second = (cost for cost, _ in ledger.records)
    assert (first.attempt, first.failed, first.resolution) == (1, True, Resolution.UNKNOWN)
    assert (second.attempt, second.failed, second.resolution) == (2, False, Resolution.RESOLVED)


@pytest.mark.parametrize(
    ("kind", "fields", "error_class", "status"),
    [
        (
            "modelStreamErrorException",
            {"originalStatusCode": 529, "originalMessage": "Overloaded"},
            minillm.ServerError,
            529,
        ),
        ("modelStreamErrorException", {}, minillm.ServerError, 500),
        ("internalServerException", {}, minillm.ServerError, 500),
        ("serviceUnavailableException", {}, minillm.ServerError, 503),
        ("throttlingException", {}, minillm.RateLimitError, 429),
        ("validationException", {}, minillm.BadRequestError, 400),
        # the class its kind has over HTTP too, whatever status carries it
        ("serviceQuotaExceededException", {}, minillm.RateLimitError, 400),
        ("accessDeniedException", {}, minillm.AuthenticationError, 403),
    ],
)
def test_an_exception_after_output_is_the_error_its_status_means_and_a_stream_error_booked_as_failed(
    kind: str,
    fields: Dict[str, Any],
    error_class: type,
    status: int,
    server: ScriptedServer,
    bedrock: Callable[..., minillm.Client],
    ledger: minillm.Ledger,
) -> None:
    frames = [*bedrock_stream(["par", "tial"])[:2], exception_frame(kind, "The model failed", **fields)]
    server.reply(stream_reply(frames))
    with pytest.raises(minillm.StreamError, match="The model failed") as caught:
        with bedrock(price=PRICE).stream("Hi") as stream:
            list(stream)
    assert isinstance(caught.value, error_class) and caught.value.status_code == status  # type: ignore[attr-defined]
    assert caught.value.partial_text == "par" and len(server.requests) == 1  # never retried after output
    ((cost, _),) = ledger.records
    assert cost.failed and cost.resolution is Resolution.PARTIAL and cost.completion_tokens == 1


def test_a_prompt_too_long_in_the_stream_is_a_context_overflow_with_its_counts(
    server: ScriptedServer, bedrock: Callable[..., minillm.Client]
) -> None:
    message = "The model returned the following errors: prompt is too long: 210000 tokens > 200000 maximum"
    server.reply(stream_reply([exception_frame("validationException", message)]))
    with pytest.raises(minillm.ContextOverflowError) as caught:
        with bedrock().stream("Hi") as stream:
            list(stream)
    assert isinstance(caught.value, minillm.StreamError) and len(server.requests) == 1
    assert (caught.value.requested_tokens, caught.value.limit_tokens) == (210000, 200000)


def test_an_unmodeled_error_message_is_an_error_of_its_code(
    server: ScriptedServer, bedrock: Callable[..., minillm.Client]
) -> None:
    error = encode_message(
        {":message-type": "error", ":error-code": "InternalFailure", ":error-message": "Something broke"}
    )
    server.reply(stream_reply([*bedrock_stream(["a"])[:3], error]))
    with pytest.raises(minillm.ServerError, match="Something broke") as caught:
        with bedrock().stream("Hi") as stream:
            list(stream)
    assert isinstance(caught.value, minillm.StreamError) and caught.value.status_code == 500


def test_a_corrupt_message_mid_stream_is_a_stream_error_and_the_attempt_is_booked(
    server: ScriptedServer, bedrock: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    frames = bedrock_stream(["one", "two", "three"])
    corrupt = bytearray(frames[2])  # the second delta: a payload byte flipped
    corrupt[-10] ^= 0xFF
    server.reply(stream_reply([*frames[:2], bytes(corrupt), *frames[3:]]))
    with pytest.raises(minillm.StreamError, match="CRC") as caught:
        with bedrock(price=PRICE).stream("Hi") as stream:
            list(stream)
    assert caught.value.partial_text == "one"
    ((cost, _),) = ledger.records
    assert cost.failed and cost.resolution is Resolution.PARTIAL and cost.completion_tokens == 1


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[1, 2]",
        b'{"contentBlockIndex": 0}',
        b'{"contentBlockIndex": 0, "delta": {"toolUse": {"input": "{"}}}',
    ],
)
def test_an_event_of_the_wrong_shape_is_a_stream_error(
    payload: bytes, server: ScriptedServer, bedrock: Callable[..., minillm.Client]
) -> None:
    headers = {":event-type": "contentBlockDelta", ":content-type": "application/json", ":message-type": "event"}
    server.reply(stream_reply([*bedrock_stream(["a"])[:2], encode_message(headers, payload)]))
    with pytest.raises(minillm.StreamError, match="could not be parsed"):
        with bedrock().stream("Hi") as stream:
            list(stream)


# -- HTTP errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind", "message", "error_class"),
    [
        (400, "ValidationException", "Input is too long for requested model.", minillm.ContextOverflowError),
        (400, "ValidationException", "The model returned the following errors: max_tokens: 0", minillm.BadRequestError),
        (403, "AccessDeniedException", "You don't have access to the model.", minillm.AuthenticationError),
        (
            403,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
            minillm.AuthenticationError,
        ),
        (
            400,
            "IncompleteSignatureException",
            "Authorization header requires 'Signature'.",
            minillm.AuthenticationError,
        ),
        (400, "ThrottlingException", "Rate exceeded", minillm.RateLimitError),
        (404, "ResourceNotFoundException", "Model not found.", minillm.NotFoundError),
        (424, "ModelErrorException", "The model failed.", minillm.APIError),
        (503, "ServiceUnavailableException", "Bedrock is unavailable.", minillm.ServerError),
    ],
)
def test_an_error_status_is_the_class_its_kind_means_and_books_nothing(
    status: int,
    kind: str,
    message: str,
    error_class: type,
    server: ScriptedServer,
    bedrock: Callable[..., minillm.Client],
    ledger: minillm.Ledger,
) -> None:
    server.reply(aws_error(status, kind, message))
    with pytest.raises(minillm.APIError) as caught:
        bedrock(retry=minillm.RetryPolicy(max_attempts=1)).stream("Hi")
    assert type(caught.value) is error_class and caught.value.status_code == status
    assert message in str(caught.value) and caught.value.provider == "bedrock"
    assert ledger.count == 0


def test_a_429_throttling_is_retried_and_the_answer_booked_as_the_second_attempt(
    server: ScriptedServer, bedrock: Callable[..., minillm.Client], ledger: minillm.Ledger, sleeps: Any
) -> None:
    server.reply(aws_error(429, "ThrottlingException", "Too many requests"), stream_reply(bedrock_stream(["ok"])))
    with bedrock().stream("Hi") as stream:
        assert stream.collect().text == "ok"
    assert len(sleeps.calls) == 1
    ((cost, _),) = ledger.records
    assert cost.attempt == 2


def test_a_prompt_too_long_error_status_carries_its_counts(
    server: ScriptedServer, bedrock: Callable[..., minillm.Client]
) -> None:
    server.reply(
        aws_error(
            400,
            "ValidationException",
            "The model returned the following errors: prompt is too long: 250000 tokens > 200000 maximum",
        )
    )
    with pytest.raises(minillm.ContextOverflowError) as caught:
        bedrock().complete("Hi")
    assert (caught.value.requested_tokens, caught.value.limit_tokens) == (250000, 200000)


# -- configuration ----------------------------------------------------------------------------------


def test_the_endpoint_is_the_regions_from_aws_region_else_aws_default_region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    client = minillm.Client(f"bedrock/{MODEL}", api_key="k")
    assert client._routes[0].base_url == "https://bedrock-runtime.eu-west-1.amazonaws.com"
    monkeypatch.setenv("AWS_REGION", "ap-southeast-2")
    client = minillm.Client(f"bedrock/{MODEL}", api_key="k")
    assert client._routes[0].base_url == "https://bedrock-runtime.ap-southeast-2.amazonaws.com"
    monkeypatch.setenv("BEDROCK_BASE_URL", "https://vpce-0abc.bedrock-runtime.us-east-1.vpce.amazonaws.com")
    client = minillm.Client(f"bedrock/{MODEL}", api_key="k")
    assert client._routes[0].base_url == "https://vpce-0abc.bedrock-runtime.us-east-1.vpce.amazonaws.com"
    assert client._routes[0].adapter.region == "us-east-1"  # type: ignore[attr-defined]  # the host's, to sign for


def test_a_region_that_is_no_region_name_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "evil.example.com/x")
    with pytest.raises(minillm.ConfigurationError, match="not an AWS region"):
        minillm.Client(f"bedrock/{MODEL}", api_key="k")


def test_without_a_region_the_route_is_unusable_and_a_fallback_serves(
    server: ScriptedServer, make_client: Callable[..., minillm.Client]
) -> None:
    with pytest.raises(minillm.ConfigurationError, match="AWS_REGION"):
        minillm.Client(f"bedrock/{MODEL}", api_key="k")
    server.reply(Reply.json(bedrock_converse("from the fallback")))
    fallback = make_client(f"bedrock/{MODEL}", api_key="k")  # a named endpoint needs no region
    client = minillm.Client(f"bedrock/{MODEL}", api_key="k", fallbacks=[fallback])
    assert client.complete("Hi").text == "from the fallback"


def test_without_botocore_or_a_key_the_route_is_unusable_and_says_what_to_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "botocore" else real(name, *a))
    with pytest.raises(minillm.ConfigurationError) as caught:
        minillm.Client(f"bedrock/{MODEL}", base_url="http://127.0.0.1:9")
    assert "AWS_BEARER_TOKEN_BEDROCK" in str(caught.value) and "minillm[bedrock]" in str(caught.value)
    minillm.Client(f"bedrock/{MODEL}", api_key="k", base_url="http://127.0.0.1:9")  # a key needs no botocore


def test_the_api_key_comes_from_aws_bearer_token_bedrock(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "from-the-environment")
    server.reply(Reply.json(bedrock_converse("ok")))
    minillm.Client(f"bedrock/{MODEL}", base_url=server.url).complete("Hi")
    assert server.requests[0].headers["authorization"] == "Bearer from-the-environment"


# -- SigV4 ------------------------------------------------------------------------------------------


_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[a-z0-9-]+)/bedrock/aws4_request, "
    r"SignedHeaders=(?P<signed>[a-z0-9;-]+), Signature=(?P<signature>[0-9a-f]{64})"
)


def recomputed_signature(
    recorded: RecordedRequest, root: str, *, region: str, token: Optional[str] = None, body: Optional[bytes] = None
) -> str:
    """The signature botocore makes for the request the server received:
    its method, URL, the headers the signature names, and its body."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    match = _AUTHORIZATION.fullmatch(recorded.headers["authorization"])
    assert match is not None, recorded.headers["authorization"]
    headers = {name: recorded.headers[name] for name in match["signed"].split(";")}
    request = AWSRequest(
        method=recorded.method,
        url=root + recorded.path,
        headers=headers,
        data=recorded.body if body is None else body,
    )
    request.context["timestamp"] = recorded.headers["x-amz-date"]
    auth = SigV4Auth(Credentials(match["key"], SECRET, token), "bedrock", region)
    return str(auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request))


@pytest.mark.parametrize(
    ("method", "signature"),
    [
        ("GET", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
        ("POST", "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
    ],
)
def test_the_signer_gives_the_known_answers_of_awss_signature_test_suite(method: str, signature: str) -> None:
    # get-vanilla and post-vanilla of the AWS Signature Version 4 test suite
    headers = sigv4_headers(
        method,
        "https://example.amazonaws.com/",
        {},
        b"",
        access_key="AKIDEXAMPLE",
        secret_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        token=None,
        region="us-east-1",
        service="service",
        now=datetime(2015, 8, 30, 12, 36, 0, tzinfo=timezone.utc),
    )
    assert headers == {
        "X-Amz-Date": "20150830T123600Z",
        "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        f"SignedHeaders=host;x-amz-date, Signature={signature}",
    }


@pytest.mark.usefixtures("aws_credentials")
def test_without_a_key_each_send_is_signed_with_sigv4_and_the_signature_verifies(
    server: ScriptedServer, make_client: Callable[..., minillm.Client]
) -> None:
    server.reply(stream_reply(bedrock_stream(["Hi"])))
    client = make_client(f"bedrock/{MODEL}")
    with client.stream("Hello", max_tokens=10, extra_headers={"X-Trace": "abc"}) as stream:
        assert stream.collect().text == "Hi"
    (recorded,) = server.requests
    match = _AUTHORIZATION.fullmatch(recorded.headers["authorization"])
    assert match is not None
    assert (match["key"], match["region"]) == ("AKIDEXAMPLE", "us-west-2")
    assert match["date"] == recorded.headers["x-amz-date"][:8]
    signed = match["signed"].split(";")
    # what the request says is signed: its host, type, date, and the caller's headers
    assert {"host", "content-type", "accept", "x-amz-date", "x-trace"} <= set(signed)
    assert "x-amz-security-token" not in recorded.headers  # no session token
    assert match["signature"] == recomputed_signature(recorded, server.url, region="us-west-2")
    # ...and the check is a check: another body would not verify
    assert match["signature"] != recomputed_signature(recorded, server.url, region="us-west-2", body=b"{}")


@pytest.mark.usefixtures("aws_credentials")
def test_a_retried_send_is_signed_afresh(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    from minillm.providers import bedrock

    moments = iter(
        [datetime(2026, 11, 30, 12, 0, 0, tzinfo=timezone.utc), datetime(2026, 11, 30, 12, 0, 7, tzinfo=timezone.utc)]
    )
    monkeypatch.setattr(bedrock, "_utcnow", lambda: next(moments))
    server.reply(aws_error(503, "ServiceUnavailableException", "Try again"), stream_reply(bedrock_stream(["ok"])))
    with make_client(f"bedrock/{MODEL}").stream("Hi") as stream:
        assert stream.collect().text == "ok"
    first, second = server.requests
    assert (first.headers["x-amz-date"], second.headers["x-amz-date"]) == ("20261130T120000Z", "20261130T120007Z")
    assert first.headers["authorization"] != second.headers["authorization"]
    for recorded in (first, second):
        signature = _AUTHORIZATION.fullmatch(recorded.headers["authorization"])["signature"]  # type: ignore[index]
        assert signature == recomputed_signature(recorded, server.url, region="us-west-2")


@pytest.mark.usefixtures("aws_credentials")
def test_a_session_token_is_sent_and_signed(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    server.reply(Reply.json(bedrock_converse("ok")))
    make_client(f"bedrock/{MODEL}").complete("Hi")
    (recorded,) = server.requests
    assert recorded.headers["x-amz-security-token"] == TOKEN
    assert "x-amz-security-token" in recorded.headers["authorization"]
    signature = _AUTHORIZATION.fullmatch(recorded.headers["authorization"])["signature"]  # type: ignore[index]
    assert signature == recomputed_signature(recorded, server.url, region="us-west-2", token=TOKEN)


@pytest.mark.usefixtures("aws_credentials")
def test_the_signature_names_the_region_of_the_endpoint_it_is_for() -> None:
    for base_url, region in [
        ("https://bedrock-runtime.eu-central-1.amazonaws.com", "eu-central-1"),
        ("https://bedrock-runtime-fips.us-gov-west-1.amazonaws.com", "us-gov-west-1"),
        ("https://vpce-0123.bedrock-runtime.ap-northeast-1.vpce.amazonaws.com", "ap-northeast-1"),
        ("https://my-proxy.internal", "us-west-2"),  # a host that does not say: AWS_REGION
    ]:
        made = adapter(base_url=base_url, api_key=None)
        request = made.build_request(build_chat_request(MODEL, "Hi"), stream=False)
        signed = made.credentials().authorize(request)  # no network: signing is arithmetic
        assert f"/{region}/bedrock/aws4_request" in signed.headers["Authorization"]
        assert signed.url == request.url and signed.body == request.body


def test_with_botocore_but_no_credentials_the_call_says_what_to_set_and_sends_nothing(
    server: ScriptedServer,
    make_client: Callable[..., minillm.Client],
    ledger: minillm.Ledger,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    client = make_client(f"bedrock/{MODEL}")
    with pytest.raises(minillm.ConfigurationError) as caught:
        client.complete("Hi")
    message = str(caught.value)
    assert "AWS_BEARER_TOKEN_BEDROCK" in message and "AWS_ACCESS_KEY_ID" in message and "minillm[bedrock]" in message
    assert server.requests == [] and ledger.count == 0


def test_a_profile_that_does_not_exist_is_a_configuration_error(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    with pytest.raises(minillm.ConfigurationError, match="no-such-profile"):
        make_client(f"bedrock/{MODEL}").complete("Hi")
    assert server.requests == []


# -- secrets ----------------------------------------------------------------------------------------


def everything_about(exc: BaseException) -> str:
    return "\n".join(
        ["".join(traceback.format_exception(type(exc), exc, exc.__traceback__)), repr(exc), str(vars(exc))]
    )


@pytest.mark.usefixtures("aws_credentials")
def test_no_aws_secret_shows_in_any_error_repr_or_log_line(
    server: ScriptedServer,
    make_client: Callable[..., minillm.Client],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)

    def echo(request: RecordedRequest) -> Reply:
        # a front end that repeats what it was sent, and the secret key for good measure
        told = f"{request.headers.get('x-amz-security-token')} {request.headers.get('authorization')} {SECRET}"
        return aws_error(403, "UnrecognizedClientException", f"The security token is invalid: {told}")

    server.route("POST", CONVERSE_PATH, echo)
    echoed = exception_frame("validationException", f"bad token {TOKEN} for {SECRET}")
    server.reply(stream_reply([*bedrock_stream(["a"])[:3], echoed]), path=STREAM_PATH)
    malformed = encode_message(
        {":event-type": "contentBlockDelta", ":message-type": "event"}, f"{{{TOKEN}{SECRET}".encode()
    )
    server.reply(stream_reply([malformed]), path=STREAM_PATH)
    client = make_client(f"bedrock/{MODEL}", retry=minillm.RetryPolicy(max_attempts=1))
    errors: List[BaseException] = []
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(minillm.AuthenticationError) as denied:
            client.complete("Hi")
        errors.append(denied.value)
        for _ in range(2):
            with pytest.raises(minillm.StreamError) as failed:
                with client.stream("Hi") as stream:
                    list(stream)
            errors.append(failed.value)
        monkeypatch.setenv("AWS_PROFILE", "missing")  # a new client searches the chain: and fails
        with pytest.raises(minillm.ConfigurationError) as unconfigured:
            make_client(f"bedrock/{MODEL}").complete("Hi")
        errors.append(unconfigured.value)
    assert TOKEN in server.requests[0].headers["x-amz-security-token"]  # it was sent, and echoed
    shown = [everything_about(error) for error in errors]
    shown += [caplog.text, repr(client), repr(client._routes[0]), repr(vars(client._routes[0].adapter))]
    shown += [str(getattr(error, "body", "")) for error in errors]
    for text in shown:
        assert SECRET not in text and TOKEN not in text


# -- imports and the catalog ------------------------------------------------------------------------


def test_botocore_is_imported_only_to_sign() -> None:
    code = (
        "import sys, minillm; "
        "minillm.Client('openai/x', api_key='k', base_url='http://127.0.0.1:9'); "
        "minillm.Client('bedrock/m', api_key='k', base_url='http://127.0.0.1:9'); "
        "minillm.Client('bedrock/m', base_url='http://127.0.0.1:9'); "
        "print('botocore' in sys.modules, 'minillm.providers.bedrock' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]
    code = (
        "import sys, minillm; minillm.Client('openai/x', api_key='k'); "
        "print('minillm.providers.bedrock' in sys.modules)"
    )
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
        == "False"
    )


def test_the_catalog_prices_inference_profiles_at_awss_published_rates(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch, ledger: minillm.Ledger
) -> None:
    pytest.importorskip("genai_prices", reason="genai-prices (minillm[prices]) needs Python 3.11+")
    monkeypatch.delenv("MINILLM_PRICE_CATALOG", raising=False)
    usage: Dict[str, Any] = {
        "input_tokens": 1000,
        "output_tokens": 500,
        "cache_read": 2000,
        "cache_write": 300,
        "cache_write_1h": 100,
    }
    models = [
        MODEL,
        "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3",
    ]
    for model in models:
        server.reply(stream_reply(bedrock_stream(["Hi"], **usage)))
        with minillm.Client(f"bedrock/{model}", api_key="k", base_url=server.url, on_cost=ledger) as client:
            with client.stream("Hi") as stream:
                list(stream)
    booked = [(cost.usd, cost.source, cost.resolution) for cost, _ in ledger.records]
    assert booked == [
        # a regional profile: 10% above the global one (as in PRICE)
        (Decimal("0.013695"), "catalog", Resolution.RESOLVED),
        # 1000 x 3 + 2000 x 0.30 + 200 x 3.75 + 100 x 6 + 500 x 15, per million
        (Decimal("0.01245"), "catalog", Resolution.RESOLVED),
        (None, None, Resolution.UNPRICED),  # an application profile's model is its owner's secret
    ]


def test_bedrock_usage_builds_what_converse_reports() -> None:
    assert bedrock_usage(10, 5, cache_read=1, cache_write=4, cache_write_1h=3) == {
        "inputTokens": 10,
        "outputTokens": 5,
        "totalTokens": 20,
        "cacheReadInputTokens": 1,
        "cacheWriteInputTokens": 4,
        "cacheDetails": [{"ttl": "1h", "inputTokens": 3}, {"ttl": "5m", "inputTokens": 1}],
    }
