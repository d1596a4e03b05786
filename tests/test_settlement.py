"""The settlement table (API section 4), row by row, without the network:
what one attempt books from how it ended and what it saw."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, List, Optional

import pytest

import minillm
from minillm.accounting.pricing import Pricer
from minillm.accounting.settlement import Booking, Outcome, decide
from minillm.accumulate import StreamState, accumulate
from minillm.events import STREAM_DONE, ResponseInfo, ToolCallDelta
from minillm.models import Chunk, Usage

PRICE = minillm.TokenPrice(input_per_mtok="1", output_per_mtok="2")
FINAL = Usage(prompt_tokens=10, completion_tokens=4, total_tokens=14)


def booking(price: Optional[minillm.TokenPrice] = PRICE, lookup: Any = None) -> Booking:
    return Booking(provider="p", model="m", pricer=Pricer(price), sink=None, meta={}, attempt=2, lookup=lookup)


def state(*events: Any) -> StreamState:
    folded = StreamState()
    for event in (ResponseInfo(id="gen-1"), *events):
        accumulate(folded, event)
    return folded


COMPLETE = (Chunk("a"), Chunk("b"), Chunk(finish_reason="stop", usage=FINAL), STREAM_DONE)


@pytest.mark.parametrize("outcome", [Outcome.COMPLETED, Outcome.CUT_SHORT, Outcome.FAILED])
def test_the_final_usage_is_resolved_however_the_attempt_ended(outcome: Outcome) -> None:
    cost = decide(booking(), outcome, state(*COMPLETE)).now
    assert cost is not None and cost.resolution is minillm.Resolution.RESOLVED
    assert (cost.usd, cost.source, cost.attempt, cost.response_id) == (Decimal("0.000018"), "price", 2, "gen-1")
    assert (cost.cancelled, cost.failed) == (outcome is Outcome.CUT_SHORT, outcome is Outcome.FAILED)


def test_the_final_usage_without_a_price_is_unpriced() -> None:
    cost = decide(booking(price=None), Outcome.COMPLETED, state(*COMPLETE)).now
    assert cost is not None and (cost.resolution, cost.usd, cost.source) == (minillm.Resolution.UNPRICED, None, None)
    assert cost.prompt_tokens == 10


def test_the_providers_own_figure_wins_and_says_so() -> None:
    native = Usage(prompt_tokens=10, completion_tokens=4, total_tokens=14, cost=Decimal("0.5"))
    cost = decide(booking(), Outcome.COMPLETED, state(Chunk(finish_reason="stop", usage=native))).now
    assert cost is not None and (cost.usd, cost.source) == (Decimal("0.5"), "provider")


@pytest.mark.parametrize("outcome", [Outcome.CUT_SHORT, Outcome.FAILED])
def test_a_running_usage_is_a_lower_bound(outcome: Outcome) -> None:
    running = Usage(prompt_tokens=10, completion_tokens=3, total_tokens=13)
    cost = decide(booking(), outcome, state(Chunk("a", usage=running))).now
    assert cost is not None and cost.resolution is minillm.Resolution.PARTIAL
    assert (cost.prompt_tokens, cost.completion_tokens, cost.usd) == (10, 3, Decimal("0.000016"))


def test_output_is_counted_from_the_deltas_when_the_usage_seen_counts_fewer() -> None:
    placeholder = Usage(prompt_tokens=10, total_tokens=10)  # the input known, the output not yet
    pieces: List[Any] = [Chunk(usage=placeholder)] + [Chunk(f"t{i}") for i in range(7)]
    pieces += [
        ToolCallDelta(index=0, id="c", name="f"),
        ToolCallDelta(index=0, arguments='{"a"'),
        ToolCallDelta(index=0, arguments=":1}"),
    ]
    cost = decide(booking(), Outcome.CUT_SHORT, state(*pieces)).now
    assert cost is not None and (cost.prompt_tokens, cost.completion_tokens) == (10, 9)
    assert cost.usd == Decimal(10 * 1 + 9 * 2) / 1_000_000


def test_a_chunk_with_both_text_and_thinking_is_one_delta() -> None:
    cost = decide(booking(), Outcome.CUT_SHORT, state(Chunk("a", "hmm"), Chunk("b"))).now
    assert cost is not None and cost.completion_tokens == 2


def test_output_seen_without_any_usage_is_a_lower_bound_on_output_alone() -> None:
    cost = decide(booking(), Outcome.FAILED, state(Chunk("a"), Chunk("b"))).now
    assert cost is not None and cost.resolution is minillm.Resolution.PARTIAL
    assert (cost.prompt_tokens, cost.completion_tokens, cost.usd) == (0, 2, Decimal("0.000004"))


def test_a_completed_attempt_without_usage_is_a_lower_bound_too() -> None:
    cost = decide(booking(), Outcome.COMPLETED, state(Chunk("a"), Chunk(finish_reason="stop"), STREAM_DONE)).now
    assert cost is not None and (cost.resolution, cost.completion_tokens) == (minillm.Resolution.PARTIAL, 1)


def test_what_was_seen_without_a_price_is_unknown_money_with_its_tokens() -> None:
    cost = decide(booking(price=None), Outcome.CUT_SHORT, state(Chunk("a"))).now
    assert cost is not None and (cost.resolution, cost.usd, cost.completion_tokens) == (
        minillm.Resolution.UNKNOWN,
        None,
        1,
    )


@pytest.mark.parametrize("outcome", [Outcome.CUT_SHORT, Outcome.FAILED, Outcome.UNANSWERED])
def test_nothing_seen_is_unknown(outcome: Outcome) -> None:
    seen = state() if outcome is not Outcome.UNANSWERED else None
    cost = decide(booking(), outcome, seen).now
    assert cost is not None and (cost.resolution, cost.usd, cost.total_tokens) == (minillm.Resolution.UNKNOWN, None, 0)
    assert cost.failed == (outcome is not Outcome.CUT_SHORT)


@pytest.mark.parametrize("outcome", [Outcome.UNBILLED, Outcome.REJECTED])
def test_an_attempt_the_provider_cannot_bill_books_nothing(outcome: Outcome) -> None:
    decision = decide(booking(), outcome, state(*COMPLETE))
    assert decision.now is None and decision.later is None


@pytest.mark.parametrize("outcome", [Outcome.CUT_SHORT, Outcome.FAILED, Outcome.COMPLETED])
def test_without_final_usage_a_provider_with_a_look_up_is_looked_up_with_what_was_seen_as_fallback(
    outcome: Outcome,
) -> None:
    found = Usage(prompt_tokens=10, completion_tokens=9, total_tokens=19, cost=Decimal("0.0042"))
    asked: List[str] = []

    def lookup(generation_id: str) -> Optional[Usage]:
        asked.append(generation_id)
        return found

    decision = decide(booking(lookup=lookup), outcome, state(Chunk("a")))
    assert decision.now is None and decision.later is not None
    fallback = decision.later.fallback
    assert (fallback.resolution, fallback.completion_tokens) == (minillm.Resolution.PARTIAL, 1)
    looked_up = decision.later.fetch()
    assert asked == ["gen-1"] and looked_up is not None
    assert (looked_up.usd, looked_up.source, looked_up.resolution) == (
        Decimal("0.0042"),
        "lookup",
        minillm.Resolution.RESOLVED,
    )
    assert looked_up.booking_id == fallback.booking_id  # one booking, whichever is booked


def test_a_look_up_needs_an_id() -> None:
    decision = decide(booking(lookup=lambda generation_id: None), Outcome.UNANSWERED, None)
    assert decision.later is None and decision.now is not None and decision.now.failed


def test_deltas_beyond_a_lagging_running_count_replace_it_in_the_total_too() -> None:
    # The last usage snapshot said 1 output token; 4 content deltas arrived since.
    lagging = Usage(prompt_tokens=10, completion_tokens=1, total_tokens=11)
    cost = decide(
        booking(), Outcome.CUT_SHORT, state(Chunk("a", usage=lagging), Chunk("b"), Chunk("c"), Chunk("d"))
    ).now
    assert cost is not None and cost.resolution is minillm.Resolution.PARTIAL
    assert (cost.prompt_tokens, cost.completion_tokens, cost.total_tokens) == (10, 4, 14)
    assert cost.usd == Decimal(10 + 4 * 2) / 1_000_000


@pytest.mark.parametrize(
    ("outcome", "seen"),
    [(Outcome.COMPLETED, COMPLETE), (Outcome.CUT_SHORT, (Chunk("a"),)), (Outcome.UNANSWERED, ())],
)
def test_the_attempts_duration_goes_on_what_it_books(outcome: Outcome, seen: Any) -> None:
    cost = decide(booking(), outcome, state(*seen) if seen else None, duration=1.25).now
    assert cost is not None and cost.duration_s == 1.25


def test_a_look_up_books_the_attempts_duration_not_its_own_wait() -> None:
    found = Usage(prompt_tokens=1, completion_tokens=1, total_tokens=2, cost=Decimal("0.1"))
    decision = decide(booking(lookup=lambda generation_id: found), Outcome.CUT_SHORT, state(Chunk("a")), duration=0.5)
    assert decision.later is not None and decision.later.fallback.duration_s == 0.5
    looked_up = decision.later.fetch()
    assert looked_up is not None and looked_up.duration_s == 0.5


def test_a_duration_is_a_measurement_not_part_of_what_was_booked() -> None:
    timed = decide(booking(), Outcome.COMPLETED, state(*COMPLETE), duration=2.0).now
    untimed = decide(booking(), Outcome.COMPLETED, state(*COMPLETE)).now
    assert timed is not None and untimed is not None
    assert untimed.duration_s is None
    # A ledger that keeps what was billed (not how long it took) reads back an equal booking.
    assert timed == untimed
