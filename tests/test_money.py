"""Money that cannot be negative, absurd or poisoned: a provider's figure
that is not money is a malformed response -- logged, and the attempt booked
``UNKNOWN`` with its tokens -- never a booking that reopens a budget."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any, Callable, Dict

import pytest

import minillm
from minillm.testing import (
    Hang,
    RecordedRequest,
    Reply,
    ScriptedServer,
    chat_chunk,
    chat_stream,
    chat_usage,
    openrouter_generation,
    sse,
)

PRICE = minillm.TokenPrice(input_per_mtok="1", output_per_mtok="2")


def usage_with(**money: Any) -> Dict[str, Any]:
    usage = chat_usage(10, 2)
    usage.update(money)
    return usage


POISONED = {
    "a negative cost": usage_with(cost=-100),
    "an absurd cost": usage_with(cost="1e999"),
    "a BYOK negative upstream cost": usage_with(
        cost=0.0001, is_byok=True, cost_details={"upstream_inference_cost": -0.0001}
    ),
}


@pytest.mark.parametrize("usage", list(POISONED.values()), ids=list(POISONED))
def test_a_native_cost_that_is_not_money_is_booked_unknown_with_its_tokens(
    server: ScriptedServer,
    make_client: Callable[..., minillm.Client],
    ledger: minillm.Ledger,
    caplog: pytest.LogCaptureFixture,
    usage: Dict[str, Any],
) -> None:
    server.reply(Reply.sse(chat_stream(["ok"], usage=usage)))
    budget = minillm.Budget(ledger, "1")
    with caplog.at_level(logging.ERROR, logger="minillm"):
        with make_client("openrouter/x/y", price=PRICE).stream("Hi", budget=budget, max_tokens=10) as stream:
            list(stream)
    ((cost, _),) = ledger.records
    assert (cost.resolution, cost.usd, cost.source) == (minillm.Resolution.UNKNOWN, None, None)
    assert (cost.prompt_tokens, cost.completion_tokens) == (10, 2)
    assert "malformed response" in caplog.text and "not money" in caplog.text
    assert budget.spent() > 0  # the worst case held for it still counts; nothing reopened the budget


def test_a_negative_looked_up_cost_is_booked_unknown_with_its_tokens(
    server: ScriptedServer,
    make_client: Callable[..., minillm.Client],
    ledger: minillm.Ledger,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server.reply(Reply.sse([sse(chat_chunk(id="gen-neg", content="a")), Hang()]), path="/chat/completions")

    def generation(request: RecordedRequest) -> Reply:
        return Reply.json(
            openrouter_generation("gen-neg", total_cost=-0.5, native_tokens_prompt=7, native_tokens_completion=3)
        )

    server.route("GET", "/generation", generation)
    client = make_client("openrouter/x/y")
    with caplog.at_level(logging.ERROR, logger="minillm"):
        with client.stream("Hi") as stream:
            next(iter(stream))
        assert client.flush(timeout=10)
    ((cost, _),) = ledger.records
    assert (cost.resolution, cost.usd, cost.response_id) == (minillm.Resolution.UNKNOWN, None, "gen-neg")
    assert (cost.prompt_tokens, cost.completion_tokens, cost.cancelled) == (7, 3, True)
    assert "not money" in caplog.text


def test_no_cost_is_ever_negative_or_infinite() -> None:
    for usd in (Decimal("-0.01"), Decimal("Infinity"), Decimal("NaN")):
        with pytest.raises(ValueError, match="money"):
            minillm.CostInfo(usd=usd, resolution=minillm.Resolution.RESOLVED)
    assert minillm.CostInfo(usd=Decimal(0), resolution=minillm.Resolution.RESOLVED).usd == 0  # free is real


def test_only_a_correction_may_take_money_off_and_it_is_always_resolved() -> None:
    down = minillm.CostInfo(usd=Decimal("-0.01"), resolution=minillm.Resolution.RESOLVED, corrects="b1")
    assert down.usd == Decimal("-0.01") and down.to_dict()["corrects"] == "b1"
    with pytest.raises(ValueError, match="money is finite"):
        minillm.CostInfo(usd=Decimal("-Infinity"), resolution=minillm.Resolution.RESOLVED, corrects="b1")
    with pytest.raises(ValueError, match="RESOLVED"):
        minillm.CostInfo(usd=Decimal("0.01"), resolution=minillm.Resolution.PARTIAL, corrects="b1")
    with pytest.raises(ValueError, match="booking id"):
        minillm.CostInfo(usd=Decimal("0.01"), resolution=minillm.Resolution.RESOLVED, corrects="")
