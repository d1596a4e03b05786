"""TokenPrice against the providers' published arithmetic: each expected
figure is worked out from the provider's pricing page, not from the code."""

from __future__ import annotations

import pickle
from decimal import Decimal
from typing import Any, Dict

import pytest

import minillm
from minillm import TokenPrice, Usage

#: Claude Sonnet 4.5 (anthropic.com/pricing): $3 input, $15 output, cache
#: reads 0.1x, five-minute writes 1.25x, one-hour writes 2x; above 200k
#: prompt tokens $6 / $22.50 with the same multipliers; web search $10 per
#: 1,000 searches.
SONNET = TokenPrice(
    "3",
    "15",
    cached_input_per_mtok="0.30",
    cache_write_per_mtok="3.75",
    cache_write_1h_per_mtok="6",
    long_context_threshold=200_000,
    long_context=TokenPrice(
        "6", "22.50", cached_input_per_mtok="0.60", cache_write_per_mtok="7.50", cache_write_1h_per_mtok="12"
    ),
    web_search_per_k="10",
)


def test_anthropic_cache_writes_are_priced_at_their_own_rate() -> None:
    # 100,000 tokens written to the cache, 100 output tokens.
    five_minutes = Usage(prompt_tokens=100_000, cache_write_tokens=100_000, completion_tokens=100)
    assert SONNET.cost(five_minutes) == Decimal("0.3765")  # 0.1 M x $3.75 + 100 x $15/M
    one_hour = Usage(
        prompt_tokens=100_000, cache_write_tokens=100_000, cache_write_1h_tokens=100_000, completion_tokens=100
    )
    assert SONNET.cost(one_hour) == Decimal("0.6015")  # 0.1 M x $6 + $0.0015
    mixed = Usage(
        prompt_tokens=150_000,
        cached_tokens=20_000,
        cache_write_tokens=100_000,
        cache_write_1h_tokens=40_000,
        completion_tokens=1_000,
    )
    # 30k plain x $3 + 20k reads x $0.30 + 60k 5m writes x $3.75 + 40k 1h writes x $6 + 1k out x $15
    assert SONNET.cost(mixed) == Decimal("0.09") + Decimal("0.006") + Decimal("0.225") + Decimal("0.24") + Decimal(
        "0.015"
    )


def test_without_write_rates_cache_writes_cost_the_input_rate() -> None:
    plain = TokenPrice("3", "15")
    usage = Usage(
        prompt_tokens=100_000, cache_write_tokens=100_000, cache_write_1h_tokens=50_000, completion_tokens=100
    )
    assert plain.cost(usage) == Decimal("0.3015")
    # a one-hour rate missing falls back to the five-minute write rate
    five_only = TokenPrice("3", "15", cache_write_per_mtok="3.75")
    assert five_only.cost(usage) == Decimal("0.3765")


def test_above_the_threshold_the_whole_request_is_priced_at_the_long_context_rates() -> None:
    at_threshold = Usage(prompt_tokens=200_000, completion_tokens=1_000)
    assert SONNET.cost(at_threshold) == Decimal("0.6") + Decimal("0.015")
    above = Usage(prompt_tokens=200_001, completion_tokens=1_000)
    assert SONNET.cost(above) == Decimal("1.200006") + Decimal("0.0225")  # every token at $6 / $22.50
    cached_above = Usage(prompt_tokens=300_000, cached_tokens=100_000, cache_write_tokens=100_000, completion_tokens=0)
    assert SONNET.cost(cached_above) == Decimal("0.6") + Decimal("0.06") + Decimal("0.75")


def test_gemini_long_context_prices() -> None:
    # Gemini 2.5 Pro (ai.google.dev/pricing): $1.25 / $10 up to 200k prompt tokens, $2.50 / $15 above.
    pro = TokenPrice("1.25", "10", long_context_threshold=200_000, long_context=TokenPrice("2.50", "15"))
    assert pro.cost(Usage(prompt_tokens=100_000, completion_tokens=10_000)) == Decimal("0.225")
    assert pro.cost(Usage(prompt_tokens=250_000, completion_tokens=10_000)) == Decimal("0.775")


def test_web_searches_are_a_fee_per_thousand() -> None:
    usage = Usage(prompt_tokens=1_000, completion_tokens=500, web_search_requests=3)
    assert SONNET.cost(usage) == Decimal("0.003") + Decimal("0.0075") + Decimal("0.03")
    assert TokenPrice("3", "15").cost(usage) == Decimal("0.0105")  # no fee given: none charged


@pytest.mark.parametrize(
    ("tier", "expected"),
    [
        ("flex", Decimal("0.005625")),
        ("batch", Decimal("0.005625")),
        ("priority", Decimal("0.0225")),
        ("default", Decimal("0.01125")),
        (None, Decimal("0.01125")),
    ],
)
def test_a_served_tier_multiplies_the_whole_price(tier: Any, expected: Decimal) -> None:
    # GPT-5 (openai.com/api/pricing): $1.25 / $10 standard; flex and batch half; priority $2.50 / $20.
    gpt5 = TokenPrice("1.25", "10", tiers={"flex": "0.5", "batch": 0.5, "priority": 2})
    usage = Usage(prompt_tokens=1_000, completion_tokens=1_000, service_tier=tier)
    assert gpt5.cost(usage) == expected


def test_a_tier_multiplies_fees_too() -> None:
    price = TokenPrice("1", "1", web_search_per_k="10", tiers={"batch": "0.5"})
    assert price.cost(Usage(web_search_requests=1, service_tier="batch")) == Decimal("0.005")


def test_a_single_token_of_each_kind_is_priced_at_its_own_rate() -> None:
    million = 1_000_000
    assert SONNET.cost(Usage(prompt_tokens=1)) == Decimal("3") / million
    assert SONNET.cost(Usage(prompt_tokens=1, cached_tokens=1)) == Decimal("0.30") / million
    assert SONNET.cost(Usage(prompt_tokens=1, cache_write_tokens=1)) == Decimal("3.75") / million
    one_hour = Usage(prompt_tokens=2, cache_write_tokens=1, cache_write_1h_tokens=1)
    assert SONNET.cost(one_hour) == (Decimal("3") + Decimal("6")) / million
    assert SONNET.cost(Usage(completion_tokens=1)) == Decimal("15") / million


def test_counts_that_exceed_the_prompt_are_capped_never_charged_twice() -> None:
    odd = Usage(prompt_tokens=10, cached_tokens=8, cache_write_tokens=50, cache_write_1h_tokens=99)
    # 8 reads, the 2 tokens left written (one hour), nothing plain
    assert SONNET.cost(odd) == (8 * Decimal("0.30") + 2 * Decimal("6")) / 1_000_000


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"long_context_threshold": 200_000}, "together"),
        ({"long_context": TokenPrice(1, 1)}, "together"),
        ({"long_context_threshold": -1, "long_context": TokenPrice(1, 1)}, "whole number"),
        ({"long_context_threshold": 1.5, "long_context": TokenPrice(1, 1)}, "whole number"),
        ({"long_context_threshold": 1, "long_context": {"input": 1}}, "TokenPrice"),
        ({"long_context_threshold": 1, "long_context": SONNET}, "of its own"),
        ({"tiers": {"flex": "-0.5"}}, "non-negative"),
        ({"tiers": {"flex": "half"}}, "non-negative"),
        ({"tiers": {1: "0.5"}}, "strings"),
        ({"tiers": ["flex"]}, "map"),
        ({"web_search_per_k": "-10"}, "non-negative"),
        ({"cache_write_per_mtok": float("nan")}, "non-negative"),
    ],
)
def test_a_price_that_cannot_be_right_is_refused(kwargs: Dict[str, Any], match: str) -> None:
    with pytest.raises(minillm.InvalidArgumentError, match=match):
        TokenPrice("1", "1", **kwargs)


def test_a_price_is_a_value_floats_convert_through_their_repr() -> None:
    price = TokenPrice(0.15, 0.6, cache_write_per_mtok=0.1875, tiers={"flex": 0.5})
    assert price.cache_write_per_mtok == Decimal("0.1875") and price.tiers == {"flex": Decimal("0.5")}
    same = TokenPrice("0.15", "0.6", cache_write_per_mtok="0.1875", tiers={"flex": "0.5"})
    assert price == same and hash(price) == hash(same)
    assert pickle.loads(pickle.dumps(SONNET)) == SONNET
    assert "flex" in repr(price)
