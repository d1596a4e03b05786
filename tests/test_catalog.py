"""Maintained list prices (genai-prices): the third place money comes from,
for a provider's own service only."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
import responses

import minillm
from minillm.accounting.catalog import catalog_price
from minillm.accounting.pricing import Pricer
from minillm.testing import Reply, ScriptedServer, anthropic_stream

genai_prices: Any = pytest.importorskip("genai_prices", reason="genai-prices (minillm[prices]) needs Python 3.11+")

USAGE = minillm.Usage(prompt_tokens=1000, completion_tokens=100, total_tokens=1100, cached_tokens=200)


@pytest.fixture(autouse=True)
def _catalog_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MINILLM_PRICE_CATALOG", raising=False)


def list_price(model: str, provider: str, usage: minillm.Usage = USAGE) -> Decimal:
    counted = genai_prices.Usage(
        input_tokens=usage.prompt_tokens, cache_read_tokens=usage.cached_tokens, output_tokens=usage.completion_tokens
    )
    return Decimal(str(genai_prices.calc_price(counted, model, provider_id=provider).total_price))


def test_the_catalog_prices_known_models_and_knows_when_it_does_not() -> None:
    price = catalog_price("anthropic", "claude-haiku-4-5")
    assert price is not None
    usd = price(USAGE)
    assert isinstance(usd, Decimal) and usd == list_price("claude-haiku-4-5", "anthropic") and usd > 0
    unknown = catalog_price("anthropic", "claude-that-does-not-exist")
    assert unknown is not None and unknown(USAGE) is None
    assert catalog_price(None, "claude-haiku-4-5") is None  # a provider the catalog does not know


def test_the_catalog_can_be_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINILLM_PRICE_CATALOG", "off")
    assert catalog_price("anthropic", "claude-haiku-4-5") is None


def test_the_order_is_native_cost_then_token_price_then_the_catalog() -> None:
    catalog = catalog_price("openai", "gpt-4o-mini")
    own = minillm.TokenPrice(input_per_mtok="1", output_per_mtok="2")
    native = minillm.Usage(prompt_tokens=10, completion_tokens=1, total_tokens=11, cost=Decimal("0.5"))
    assert Pricer(own, catalog).money(native) == (Decimal("0.5"), "provider")
    assert Pricer(own, catalog).money(USAGE) == (own.cost(USAGE), "price")
    assert Pricer(None, catalog).money(USAGE) == (list_price("gpt-4o-mini", "openai"), "catalog")
    assert Pricer(None, None).money(USAGE) == (None, None)


@responses.activate
def test_a_call_to_the_providers_own_service_is_priced_from_the_catalog() -> None:
    body = b"".join(anthropic_stream(["Hi"], input_tokens=1000, cache_read=200, output_tokens=100))
    responses.add(
        responses.POST,
        "https://api.anthropic.com/v1/messages",
        body=body,
        headers={"Content-Type": "text/event-stream"},
    )
    ledger = minillm.Ledger()
    with minillm.Client("anthropic/claude-haiku-4-5", api_key="sk-ant-test", on_cost=ledger) as client:
        with client.stream("Hi") as stream:
            assert "".join(stream.text_stream()) == "Hi"
    cost = ledger.records[0][0]
    usage = minillm.Usage(prompt_tokens=1200, completion_tokens=100, total_tokens=1300, cached_tokens=200)
    assert cost.resolution is minillm.Resolution.RESOLVED
    assert cost.usd == list_price("claude-haiku-4-5", "anthropic", usage)
    assert json.loads(responses.calls[0].request.body or b"")["model"] == "claude-haiku-4-5"


def test_a_compatible_server_serving_a_namesake_model_is_not_priced_from_the_catalog(server: ScriptedServer) -> None:
    server.reply(Reply.sse(anthropic_stream(["Hi"], input_tokens=1000, output_tokens=100)))
    ledger = minillm.Ledger()
    with minillm.Client("anthropic/claude-haiku-4-5", base_url=server.url, api_key="k", on_cost=ledger) as client:
        with client.stream("Hi") as stream:
            stream.collect()
    cost = ledger.records[0][0]
    assert cost.resolution is minillm.Resolution.UNPRICED and cost.usd is None


# -- what the catalog prices beyond plain tokens (expected figures from the providers' pricing pages) ----


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        # Claude Sonnet 4.5: 100k tokens written to the cache for five minutes ($3.75/M) or an hour ($6/M), 100 out
        (minillm.Usage(prompt_tokens=100_000, cache_write_tokens=100_000, completion_tokens=100), Decimal("0.3765")),
        (
            minillm.Usage(
                prompt_tokens=100_000, cache_write_tokens=100_000, cache_write_1h_tokens=100_000, completion_tokens=100
            ),
            Decimal("0.6015"),
        ),
        # three web searches at $10 per 1,000
        (minillm.Usage(prompt_tokens=1000, completion_tokens=1000, web_search_requests=3), Decimal("0.048")),
        # above 200k prompt tokens every token is at $6 / $22.50
        (minillm.Usage(prompt_tokens=250_000, completion_tokens=1000), Decimal("1.5225")),
    ],
)
def test_the_catalog_prices_cache_writes_searches_and_long_context_as_anthropic_bills(
    usage: minillm.Usage, expected: Decimal
) -> None:
    price = catalog_price("anthropic", "claude-sonnet-4-5")
    assert price is not None and price(usage) == expected


@pytest.mark.parametrize(
    ("tier", "expected"), [(None, "0.01125"), ("flex", "0.005625"), ("priority", "0.0225"), ("batch", "0.005625")]
)
def test_the_catalog_prices_the_tier_openai_served(tier: Any, expected: str) -> None:
    # GPT-5: $1.25 / $10 per million; flex and batch half; priority $2.50 / $20
    price = catalog_price("openai", "gpt-5")
    assert price is not None
    assert price(minillm.Usage(prompt_tokens=1000, completion_tokens=1000, service_tier=tier)) == Decimal(expected)


def test_an_anthropic_batch_answer_is_priced_at_the_catalogs_batch_price() -> None:
    # Anthropic's batch results say service_tier "batch": Sonnet 4.5 at half of $3 / $15.
    price = catalog_price("anthropic", "claude-sonnet-4-5")
    assert price is not None
    batch = minillm.Usage(prompt_tokens=1000, completion_tokens=1000, service_tier="batch")
    standard = price(minillm.Usage(prompt_tokens=1000, completion_tokens=1000))
    assert standard is not None and price(batch) == Decimal("0.0090") == standard / 2
