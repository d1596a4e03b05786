"""Pins on the money path: each test here kills a change to the code that
the rest of the suite once let through (found by mutation testing; see
``tests/mutation.py``)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Callable

import pytest

import minillm
from minillm.accounting.budget import estimate_prompt_tokens, worst_case
from minillm.accounting.ledgers.sqlite import _decimal_add
from minillm.accounting.pricing import MalformedMoneyError, Pricer
from minillm.providers import PROVIDERS, ProviderConfig
from minillm.providers.anthropic import usage_from_anthropic
from minillm.providers.gemini import usage_from_gemini
from minillm.providers.openai_chat import usage_from_chat
from minillm.providers.openai_responses import usage_from_responses
from minillm.request import build_chat_request
from minillm.testing import (
    Hang,
    RecordedRequest,
    Reply,
    ScriptedServer,
    anthropic_stream,
    chat_chunk,
    chat_completion,
    chat_usage,
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


# -- pins from the mutation run ------------------------------------------------------------------


def test_a_cut_short_anthropic_attempt_counts_its_deltas_in_the_total_too(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    events = anthropic_stream(["one ", "two ", "three ", "four "], input_tokens=10)
    server.reply(Reply.sse([*events[:6], Hang()]))  # message_start (output 1, a placeholder), three deltas
    client = make_client("anthropic/claude-test", api_key="k", price=PRICE)
    with client.stream("Hi") as stream:
        for n, _ in enumerate(stream.text_stream()):
            if n == 2:
                break
    ((cost, _),) = ledger.records
    assert (cost.prompt_tokens, cost.completion_tokens, cost.total_tokens) == (10, 3, 13)
    assert cost.usd == Decimal(10 * 1 + 3 * 2) / 1_000_000


def test_a_budget_books_into_its_own_ledger_when_the_sink_is_another() -> None:
    budget_ledger, sink = minillm.Ledger(), minillm.Ledger()
    with ScriptedServer() as server:
        server.reply(Reply.json(chat_completion("ok", usage=chat_usage(3, 2))))
        client = minillm.Client(
            "openai/m",
            api_key="k",
            base_url=server.url,
            price=PRICE,
            on_cost=sink,
            budget=minillm.Budget(budget_ledger, "1"),
        )
        client.complete("Hi", max_tokens=5)
    assert sink.count == 1 and budget_ledger.count == 1
    assert budget_ledger.total() == sink.total() == Decimal(3 + 2 * 2) / 1_000_000


def test_the_worst_case_without_a_thinking_budget_is_the_prompt_and_max_tokens() -> None:
    request = build_chat_request("m", "x" * 300, max_tokens=100)
    assert worst_case(request, pricer=Pricer(PRICE), model="m") == Decimal(142 * 1 + 100 * 2) / 1_000_000
    asked = []

    def catalog(usage: minillm.Usage) -> Decimal:
        asked.append(usage)
        return Decimal("0.5")

    assert worst_case(request, pricer=Pricer(None, catalog), model="m") == Decimal("0.5")
    assert (asked[0].prompt_tokens, asked[0].completion_tokens, asked[0].total_tokens) == (142, 100, 242)


def test_a_worst_case_needs_max_tokens() -> None:
    with pytest.raises(minillm.ConfigurationError, match="max_tokens"):
        worst_case(build_chat_request("m", "x"), pricer=Pricer(PRICE), model="m")


def test_the_prompt_estimate_counts_characters_not_escapes() -> None:
    # 100 non-ASCII letters are 100 characters, not 600 (\u00e9 each)
    request = build_chat_request("m", "\u00e9" * 100)
    assert estimate_prompt_tokens(request) == estimate_prompt_tokens(build_chat_request("m", "e" * 100))


def test_the_catalog_prices_what_no_provider_figure_or_price_did() -> None:
    usage = minillm.Usage(prompt_tokens=1, completion_tokens=1, total_tokens=2)
    assert Pricer(None, lambda u: Decimal("0.5")).money(usage) == (Decimal("0.5"), "catalog")
    assert Pricer(None, lambda u: None).money(usage) == (None, None)


def test_a_free_model_is_priced_at_zero_exactly() -> None:
    free = minillm.TokenPrice(input_per_mtok=0, output_per_mtok=0)
    assert free.cost(minillm.Usage(prompt_tokens=10, completion_tokens=5)) == Decimal(0)


def test_cached_tokens_without_a_prompt_cost_nothing_extra() -> None:
    cached = minillm.TokenPrice("1", "2", cached_input_per_mtok="0.5")
    assert cached.cost(minillm.Usage(prompt_tokens=0, cached_tokens=5, completion_tokens=1)) == Decimal("0.000002")


@pytest.mark.parametrize(
    ("figure", "accepted"),
    [(Decimal(100_000), True), (Decimal("99999.99"), True), (Decimal("100000.000001"), False), (Decimal(-1), False)],
)
def test_one_attempt_may_cost_up_to_a_hundred_thousand_dollars_and_not_a_cent_more(
    figure: Decimal, accepted: bool
) -> None:
    usage = minillm.Usage(prompt_tokens=1, completion_tokens=1, total_tokens=2, cost=figure)
    if accepted:
        assert Pricer().money(usage) == (figure, "provider")
    else:
        with pytest.raises(MalformedMoneyError):
            Pricer().money(usage)


def test_the_sum_of_two_sqlite_amounts_is_exact_and_knows_none() -> None:
    assert _decimal_add(None, "0.5") == "0.5"
    assert _decimal_add("0.5", None) == "0.5"
    assert _decimal_add(None, None) is None
    assert _decimal_add("0.1", "0.2") == "0.3"


def test_a_provider_cost_wins_over_cost_ticks_when_both_are_sent() -> None:
    usage = usage_from_chat(
        {"prompt_tokens": 1, "completion_tokens": 1, "cost": 0.5, "cost_in_usd_ticks": 10**10},
        reasoning_in_completion=True,
    )
    assert usage is not None and usage.cost == Decimal("0.5")


def test_anthropic_usage_with_compaction_iterations_is_their_sum() -> None:
    usage = usage_from_anthropic(
        {
            "input_tokens": 999,
            "output_tokens": 999,
            "iterations": [
                {"input_tokens": 5, "cache_read_input_tokens": 3, "cache_creation_input_tokens": 2, "output_tokens": 4},
                {"input_tokens": 1, "output_tokens": 1},
            ],
        }
    )
    assert usage is not None
    assert (usage.prompt_tokens, usage.cached_tokens, usage.completion_tokens, usage.total_tokens) == (11, 3, 5, 16)
    plain = usage_from_anthropic({"input_tokens": 10, "output_tokens": 2, "iterations": []})
    assert plain is not None and (plain.prompt_tokens, plain.total_tokens) == (10, 12)


def test_gemini_output_is_candidates_plus_thoughts_and_the_total_adds_up_when_missing() -> None:
    usage = usage_from_gemini({"promptTokenCount": 10, "candidatesTokenCount": 3, "thoughtsTokenCount": 4})
    assert usage is not None
    assert (usage.completion_tokens, usage.reasoning_tokens, usage.total_tokens) == (7, 4, 17)
    given = usage_from_gemini({"promptTokenCount": 10, "candidatesTokenCount": 3, "totalTokenCount": 20})
    assert given is not None and given.total_tokens == 20


def test_responses_usage_reads_every_detail() -> None:
    usage = usage_from_responses(
        {
            "input_tokens": 10,
            "output_tokens": 5,
            "input_tokens_details": {"cached_tokens": 4},
            "output_tokens_details": {"reasoning_tokens": 2},
            "is_byok": True,
        }
    )
    assert usage is not None
    assert (usage.total_tokens, usage.cached_tokens, usage.reasoning_tokens, usage.is_byok) == (15, 4, 2, True)
    plain = usage_from_responses({"input_tokens": 1, "output_tokens": 1})
    assert plain is not None and plain.is_byok is False


def test_an_openrouter_record_is_used_only_from_a_200_and_adds_its_tokens_up() -> None:
    adapter = PROVIDERS["openrouter"](ProviderConfig(provider="openrouter", model="x/y", base_url="http://x"))
    record = openrouter_generation("gen-1", total_cost=0.01, native_tokens_prompt=7, native_tokens_completion=3)
    assert adapter.parse_lookup(404, record) is None
    usage = adapter.parse_lookup(200, record)
    assert usage is not None and (usage.total_tokens, usage.is_byok) == (10, False)
    byok = adapter.parse_lookup(200, openrouter_generation("gen-1", total_cost=0.01, is_byok=True))
    assert byok is not None and byok.is_byok is True
