"""Cache writes, the served tier and search fees, read from every provider
that reports them and priced the way each bills."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, Callable, Dict

import pytest

import minillm
from minillm.providers.anthropic import usage_from_anthropic
from minillm.providers.openai_chat import usage_from_chat
from minillm.providers.openai_responses import usage_from_responses
from minillm.testing import Reply, ScriptedServer, anthropic_stream, chat_completion, chat_stream, chat_usage

from .test_token_price import SONNET


def test_anthropic_cache_writes_split_by_lifetime_searches_and_tier_are_read() -> None:
    usage = usage_from_anthropic(
        {
            "input_tokens": 10,
            "cache_read_input_tokens": 500,
            "cache_creation_input_tokens": 300,
            "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 200},
            "output_tokens": 20,
            "server_tool_use": {"web_search_requests": 2},
            "service_tier": "priority",
        }
    )
    assert usage is not None
    assert (usage.prompt_tokens, usage.cached_tokens, usage.cache_write_tokens, usage.cache_write_1h_tokens) == (
        810,
        500,
        300,
        200,
    )
    assert (usage.web_search_requests, usage.service_tier) == (2, "priority")


def test_a_one_hour_count_larger_than_the_writes_is_capped_by_them() -> None:
    usage = usage_from_anthropic(
        {"input_tokens": 1, "cache_creation_input_tokens": 5, "cache_creation": {"ephemeral_1h_input_tokens": 50}}
    )
    assert usage is not None and usage.cache_write_1h_tokens == 5


def test_an_anthropic_stream_with_one_hour_writes_and_searches_is_priced_as_billed(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    events = anthropic_stream(
        ["Hi"], input_tokens=0, cache_write=100_000, cache_write_1h=100_000, output_tokens=100, web_searches=3
    )
    server.reply(Reply.sse(events))
    with make_client("anthropic/claude-sonnet-4-5", api_key="k", price=SONNET).stream("Hi") as stream:
        list(stream)
    ((cost, _),) = ledger.records
    # 0.1 M one-hour writes x $6 + 100 output x $15/M + 3 searches x $10/1,000
    assert cost.usd == Decimal("0.6015") + Decimal("0.03")
    assert (cost.cache_write_tokens, cost.service_tier, cost.resolution) == (
        100_000,
        "standard",
        minillm.Resolution.RESOLVED,
    )


def test_openrouter_cache_writes_are_read_from_the_prompt_details() -> None:
    usage = usage_from_chat(
        {
            "prompt_tokens": 1000,
            "completion_tokens": 5,
            "prompt_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 400},
        },
        reasoning_in_completion=True,
    )
    assert usage is not None and (usage.cached_tokens, usage.cache_write_tokens) == (100, 400)


@pytest.mark.parametrize("mode", ["stream", "complete"])
def test_the_tier_an_openai_answer_says_it_was_served_at_prices_it(
    mode: str, server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    if mode == "stream":
        body = [
            piece.replace(b'"model"', b'"service_tier": "flex", "model"')
            for piece in chat_stream(["a"], usage=chat_usage(1000, 1000))
        ]
        server.reply(Reply.sse(body))
    else:
        server.reply(Reply.json({**chat_completion("a", usage=chat_usage(1000, 1000)), "service_tier": "flex"}))
    price = minillm.TokenPrice("1.25", "10", tiers={"flex": "0.5"})
    client = make_client("openai/gpt-5", price=price)
    if mode == "stream":
        with client.stream("Hi", extra_body={"service_tier": "flex"}) as stream:
            list(stream)
    else:
        client.complete("Hi", extra_body={"service_tier": "flex"})
    ((cost, _),) = ledger.records
    assert (cost.service_tier, cost.usd) == ("flex", Decimal("0.005625"))  # half of $0.01125
    assert json.loads(server.requests[0].body)["service_tier"] == "flex"


def test_a_responses_answer_counts_its_web_searches_and_names_its_tier() -> None:
    from minillm.providers import APIS, ProviderConfig

    responses = next(cls for cls in APIS["openai"] if cls.api == "responses")
    adapter = responses(ProviderConfig(provider="openai", model="m", base_url="http://127.0.0.1:9"))
    body: Dict[str, Any] = {
        "id": "resp_1",
        "object": "response",
        "status": "completed",
        "model": "gpt-5",
        "service_tier": "priority",
        "output": [
            {"type": "web_search_call", "id": "ws_1", "status": "completed"},
            {"type": "web_search_call", "id": "ws_2", "status": "completed"},
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Found it."}],
            },
        ],
        "usage": {"input_tokens": 10, "output_tokens": 3, "total_tokens": 13},
    }
    (usage,) = [e.usage for e in adapter.parse_body(body) if isinstance(e, minillm.Chunk) and e.usage is not None]
    assert (usage.web_search_requests, usage.service_tier) == (2, "priority")
    plain = usage_from_responses({"input_tokens": 1, "output_tokens": 1})
    assert plain is not None and (plain.web_search_requests, plain.service_tier) == (0, None)


def test_a_tier_that_is_not_text_is_not_a_tier() -> None:
    usage = usage_from_chat({"prompt_tokens": 1, "completion_tokens": 1}, reasoning_in_completion=True, service_tier=7)
    assert usage is not None and usage.service_tier is None
