"""Pins on the money path: each test here kills a change to the code that
the rest of the suite once let through (found by mutation testing; see
``tests/mutation.py``)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Callable

import pytest

import minillm
from minillm.accounting.budget import estimate_prompt_tokens, worst_case
from minillm.accounting.pricing import Pricer
from minillm.providers import PROVIDERS, ProviderConfig
from minillm.providers.gemini import usage_from_gemini
from minillm.providers.openai_responses import usage_from_responses
from minillm.request import build_chat_request
from minillm.testing import (
    Hang,
    RecordedRequest,
    Reply,
    ScriptedServer,
    chat_chunk,
    gemini_stream,
    openrouter_generation,
    sse,
)

PRICE = minillm.TokenPrice(input_per_mtok="1", output_per_mtok="2")


def test_a_looked_up_cost_replaces_the_budgets_hold_under_the_same_booking_id(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(Reply.sse([sse(chat_chunk(id="gen-b", content="a")), Hang()]), path="/chat/completions")

    def generation(request: RecordedRequest) -> Reply:
        return Reply.json(openrouter_generation("gen-b", total_cost=0.0042))

    server.route("GET", "/generation", generation)
    budget = minillm.Budget(ledger, "1")
    client = make_client("openrouter/x/y", price=PRICE)
    with client.stream("Hi", budget=budget, max_tokens=100) as stream:
        next(iter(stream))
    assert client.flush(timeout=10)
    ((cost, _),) = ledger.records
    assert (cost.usd, cost.source) == (Decimal("0.0042"), "lookup")
    # Booked under the attempt's own id, the look-up replaced the hold: counted once.
    assert budget.spent() == Decimal("0.0042")


def test_a_stream_stopped_while_waiting_to_retry_holds_only_the_failed_attempts_worst_case(
    server: ScriptedServer, ledger: minillm.Ledger
) -> None:
    server.reply(Reply.sse([sse(chat_chunk(content="")), sse({"error": {"message": "overloaded", "code": 503}})]))
    budget = minillm.Budget(ledger, "1")
    token = minillm.CancellationToken()
    client = minillm.Client(
        "openai/test-model",
        base_url=server.url,
        price=PRICE,
        on_cost=ledger,
        retry=minillm.RetryPolicy(initial_delay=60, max_delay=60),
        on_retry=lambda attempt, exc, delay: token.cancel(),  # stopped as the wait begins
    )
    with client.stream("Hi", budget=budget, max_tokens=10, cancel=token) as stream:
        list(stream)
    one = worst_case(build_chat_request("test-model", "Hi", max_tokens=10), pricer=Pricer(PRICE), model="m")
    ((failed, _),) = ledger.records
    assert failed.failed and len(server.requests) == 1
    assert budget.spent() == one  # the failed attempt's worst case; no hold left for the retry never sent


@pytest.mark.parametrize(
    ("normalise", "empty"),
    [(usage_from_gemini, {"totalTokenCount": 0}), (usage_from_responses, {"total_tokens": 0})],
)
def test_a_usage_object_without_token_counts_is_no_usage_never_a_zero(normalise: Any, empty: Any) -> None:
    assert normalise(empty) is None


def test_a_gemini_stream_with_counts_missing_from_its_usage_is_never_a_zero_resolved(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    body = gemini_stream(["a", "b"])
    server.reply(Reply.sse([piece.replace(b'"usageMetadata"', b'"ignored"') for piece in body]))
    with pytest.raises(minillm.StreamError, match="terminal"):  # no usage: never complete
        with make_client("gemini/test", api_key="k", price=PRICE).stream("Hi") as stream:
            list(stream)
    ((cost, _),) = ledger.records
    assert cost.resolution is not minillm.Resolution.RESOLVED and cost.usd != 0


def test_gemini_bills_the_prompt_the_tools_fed_back() -> None:
    usage = usage_from_gemini({"promptTokenCount": 10, "toolUsePromptTokenCount": 7, "candidatesTokenCount": 3})
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (17, 3)


def test_an_openrouter_record_without_total_cost_is_priced_from_its_usage_field() -> None:
    adapter = PROVIDERS["openrouter"](ProviderConfig(provider="openrouter", model="x/y", base_url="http://x"))
    record = {"data": {"id": "gen-1", "usage": 0.003, "native_tokens_prompt": 5, "native_tokens_completion": 2}}
    usage = adapter.parse_lookup(200, record)
    assert usage is not None and (usage.cost, usage.prompt_tokens, usage.completion_tokens) == (Decimal("0.003"), 5, 2)
    assert adapter.parse_lookup(200, {"data": {"id": "gen-1"}}) is None  # no money: not recorded yet


def test_zero_prompt_or_cached_tokens_price_exactly() -> None:
    assert PRICE.cost(minillm.Usage(prompt_tokens=0, completion_tokens=3)) == Decimal("0.000006")
    cached = minillm.TokenPrice("1", "2", cached_input_per_mtok="0.5")
    assert cached.cost(minillm.Usage(prompt_tokens=10, cached_tokens=0)) == Decimal("0.00001")
    assert cached.cost(minillm.Usage(prompt_tokens=10, cached_tokens=4)) == Decimal("0.000008")
    assert cached.cost(minillm.Usage(prompt_tokens=4, cached_tokens=10)) == Decimal("0.000002")  # capped by the prompt


def test_the_budgets_hold_estimate_is_pinned() -> None:
    request = build_chat_request("m", "x" * 300, max_tokens=100, thinking_budget=50)
    # the JSON of the system prompt, messages and tools: 378 characters, 3 a token, plus 16
    assert estimate_prompt_tokens(request) == 142
    assert worst_case(request, pricer=Pricer(PRICE), model="m") == Decimal(142 * 1 + 150 * 2) / 1_000_000


def test_the_first_booking_of_an_id_wins_in_every_ledger(tmp_path: Any) -> None:
    first = minillm.CostInfo(usd=Decimal("0.1"), resolution=minillm.Resolution.RESOLVED, booking_id="same")
    second = minillm.CostInfo(usd=Decimal("0.9"), resolution=minillm.Resolution.RESOLVED, booking_id="same")
    for ledger in (minillm.Ledger(), minillm.SQLiteLedger(tmp_path / "costs.db")):
        ledger.record(first, {"n": 1})
        ledger.record(second, {"n": 2})
        assert ledger.records == [(first, {"n": 1})] and ledger.total() == Decimal("0.1")
        ledger.close()
