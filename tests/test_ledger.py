"""The in-memory Ledger, sinks, and the plain-data form of a CostInfo."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any, Dict, List

import pytest

import minillm
from minillm import CostInfo, Resolution
from minillm.accounting.sinks import as_sink, deliver
from minillm.serialization import cost_from_dict, cost_to_dict, cost_to_json

PAID = CostInfo(usd=Decimal("0.25"), resolution=Resolution.RESOLVED, model="m", provider="p", prompt_tokens=3)
UNKNOWN = CostInfo(resolution=Resolution.UNKNOWN, model="m", provider="p", response_id="gen-1", cancelled=True)


def test_totals_count_only_known_money_and_group_by_meta() -> None:
    ledger = minillm.Ledger()
    ledger.record(PAID, {"user": "a"})
    ledger.record(PAID, {"user": "b"})
    ledger.record(UNKNOWN, {"user": "a"})
    ledger.record(UNKNOWN, {"user": "only-unknown"})
    ledger.record(PAID, {})
    ledger.record(PAID, {"user": ["not", "hashable"]})
    assert ledger.count == len(ledger) == 6
    assert ledger.total() == Decimal("1.00")
    # A group with no known money is absent, never a fake 0.
    assert ledger.totals_by("user") == {
        "a": Decimal("0.25"),
        "b": Decimal("0.25"),
        None: Decimal("0.25"),
        "['not', 'hashable']": Decimal("0.25"),
    }
    assert [meta["user"] for _, meta in ledger.unresolved()] == ["a", "only-unknown"]


def test_records_are_copies_that_callers_cannot_corrupt() -> None:
    ledger = minillm.Ledger()
    meta = {"user": "a"}
    ledger.record(PAID, meta)
    meta["user"] = "changed"
    ledger.records[0][1]["user"] = "also changed"
    assert ledger.records == [(PAID, {"user": "a"})]


def test_a_ledger_refuses_what_is_not_a_cost() -> None:
    with pytest.raises(TypeError):
        minillm.Ledger().record({"usd": 1}, {})  # type: ignore[arg-type]


def test_an_objects_record_method_wins_over_it_being_callable() -> None:
    calls: List[str] = []

    class Both:
        def __call__(self, cost: CostInfo, meta: Dict[str, Any]) -> None:
            calls.append("call")

        def record(self, cost: CostInfo, meta: Dict[str, Any]) -> None:
            calls.append("record")

    sink = as_sink(Both())
    assert sink is not None
    sink(PAID, {})
    assert calls == ["record"]
    assert as_sink(None) is None
    with pytest.raises(minillm.ConfigurationError):
        as_sink("not a sink")  # type: ignore[arg-type]


def test_a_failing_sink_is_logged_with_every_field_and_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    def broken(cost: CostInfo, meta: Dict[str, Any]) -> None:
        raise OSError("disk full")

    with caplog.at_level(logging.ERROR, logger="minillm"):
        deliver(broken, UNKNOWN, {"user": "a"})
    [record] = caplog.records
    message = record.getMessage()
    for field in cost_to_dict(UNKNOWN):
        assert f'"{field}"' in message
    assert "'user': 'a'" in message


def test_a_cost_becomes_plain_data_and_back_without_losing_a_digit() -> None:
    cost = CostInfo(
        usd=Decimal("0.0076509169000000005"),
        resolution=Resolution.RESOLVED,
        prompt_tokens=1,
        completion_tokens=2,
        total_tokens=3,
        cached_tokens=1,
        reasoning_tokens=1,
        model="m",
        provider="p",
        response_id="r",
        byok=True,
        cancelled=True,
    )
    data = cost_to_dict(cost)
    assert data["usd"] == "0.0076509169000000005" and data["resolution"] == "resolved"
    assert cost_from_dict(data) == cost
    assert '"usd": null' in cost_to_json(UNKNOWN)


def test_the_ledger_repr_summarises() -> None:
    ledger = minillm.Ledger()
    ledger.record(PAID, {})
    assert repr(ledger) == "Ledger(count=1, total=0.25)"
