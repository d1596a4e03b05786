"""Every ledger -- in memory, SQLite, PostgreSQL -- books once per booking
id, answers the same queries in exact Decimal, holds money for budgets,
and stays exact under many threads and several processes."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest

import minillm
from minillm.accounting.ledgers import BaseLedger
from minillm.accounting.ledgers.base import Scope

ROOT = Path(__file__).resolve().parents[1]


def cost(usd: Any = "0.25", *, model: str = "m", provider: str = "p", booking_id: Any = None) -> minillm.CostInfo:
    money = None if usd is None else Decimal(usd)
    return minillm.CostInfo(
        usd=money,
        resolution=minillm.Resolution.RESOLVED if money is not None else minillm.Resolution.UNKNOWN,
        prompt_tokens=10,
        completion_tokens=5,
        total_tokens=15,
        model=model,
        provider=provider,
        response_id="gen-1",
        booking_id=booking_id,
    )


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BaseLedger]:
    made: BaseLedger
    if request.param == "memory":
        made = minillm.Ledger()
    elif request.param == "sqlite":
        made = minillm.SQLiteLedger(tmp_path / "costs.db")
    else:
        made = minillm.PostgresLedger(request.getfixturevalue("postgres_dsn"))
    yield made
    made.close()


def later_than(moment: datetime.datetime) -> datetime.datetime:
    """The time now, once the clock has moved past ``moment``."""
    while True:
        now = datetime.datetime.now(datetime.timezone.utc)
        if now > moment:
            return now


def test_entries_are_the_bookings_between_two_times_each_with_when_it_was_booked(ledger: BaseLedger) -> None:
    began = datetime.datetime.now(datetime.timezone.utc)
    ledger.record(cost("0.1"), {"n": 1})
    first = later_than(began)
    ledger.record(cost("0.2"), {"n": 2})
    second = later_than(first)
    ledger.record(cost(None), {"n": 3})
    ended = later_than(datetime.datetime.now(datetime.timezone.utc))

    def numbers(**bounds: Any) -> List[int]:
        return [entry.meta["n"] for entry in ledger.entries(**bounds)]

    assert numbers() == [1, 2, 3]
    assert numbers(since=first) == [2, 3] and numbers(until=first) == [1]
    assert numbers(since=first, until=second) == [2]
    assert numbers(since=first.isoformat(), until=second.replace(tzinfo=None)) == [2]  # naive is UTC
    assert numbers(since=ended) == [] and numbers(until=began) == []
    assert numbers(since=began.date(), until=str(ended.date() + datetime.timedelta(days=1))) == [1, 2, 3]
    in_paris = datetime.timezone(datetime.timedelta(hours=2))
    assert numbers(since=first.astimezone(in_paris)) == [2, 3]  # the same instant
    stamps = [entry.booked_at for entry in ledger.entries()]
    assert all(stamp.tzinfo is not None and stamp.utcoffset() == datetime.timedelta(0) for stamp in stamps)
    assert began <= stamps[0] <= first <= stamps[1] <= second <= stamps[2] <= ended
    assert [entry.cost.usd for entry in ledger.entries()] == [Decimal("0.1"), Decimal("0.2"), None]
    with pytest.raises(minillm.InvalidArgumentError, match="since must be a date"):
        ledger.entries(since="yesterday")
    with pytest.raises(minillm.InvalidArgumentError, match="until must be a date"):
        ledger.entries(until=3)


def test_bookings_come_back_whole_in_order(ledger: BaseLedger) -> None:
    first = cost("0.25", booking_id="b1")
    second = attrs_evolve(cost(None, booking_id="b2"), byok=True, cancelled=True, reasoning_tokens=3)
    ledger.record(first, {"user": 7, "team": "search"})
    ledger.record(second, {"user": "seven"})
    assert ledger.count == 2
    assert ledger.records == [(first, {"user": 7, "team": "search"}), (second, {"user": "seven"})]
    assert [c.booking_id for c, _ in ledger.records] == ["b1", "b2"]
    assert ledger.unresolved() == [(second, {"user": "seven"})]


def test_an_attempts_flags_number_and_source_come_back_whole(ledger: BaseLedger) -> None:
    partial = minillm.CostInfo(
        usd=Decimal("0.000014"),
        resolution=minillm.Resolution.PARTIAL,
        completion_tokens=7,
        total_tokens=7,
        failed=True,
        attempt=3,
        source="price",
        booking_id="p1",
    )
    looked_up = attrs_evolve(cost("0.25", booking_id="p2"), cancelled=True, source="lookup", attempt=2)
    ledger.record(partial, {})
    ledger.record(looked_up, {})
    assert [c for c, _ in ledger.records] == [partial, looked_up]
    assert [(c.failed, c.cancelled, c.attempt, c.source) for c, _ in ledger.records] == [
        (True, False, 3, "price"),
        (False, True, 2, "lookup"),
    ]
    assert ledger.unresolved() == [(partial, {})]


def test_cache_writes_and_the_served_tier_come_back_whole(ledger: BaseLedger) -> None:
    cached = attrs_evolve(cost("0.3765", booking_id="w1"), cache_write_tokens=100_000, service_tier="flex")
    plain = cost("0.1", booking_id="w2")
    ledger.record(cached, {})
    ledger.record(plain, {})
    assert [(c.cache_write_tokens, c.service_tier) for c, _ in ledger.records] == [(100_000, "flex"), (0, None)]
    assert [c for c, _ in ledger.records] == [cached, plain]


def attrs_evolve(value: minillm.CostInfo, **changes: Any) -> minillm.CostInfo:
    import attrs

    return attrs.evolve(value, **changes)


def test_a_booking_written_twice_is_booked_once(ledger: BaseLedger) -> None:
    booking = cost("0.10", booking_id="same")
    ledger.record(booking, {"n": 1})
    ledger.record(booking, {"n": 2})  # a retried write
    assert ledger.count == 1 and ledger.total() == Decimal("0.10")
    assert ledger.records[0][1] == {"n": 1}


def test_the_queries_add_up_exactly(ledger: BaseLedger) -> None:
    for i in range(100):
        ledger.record(cost("0.000001", model="a" if i % 2 else "b"), {"user": i % 3})
    ledger.record(cost(None), {"user": 9})  # unknown money never counts as 0
    ledger.record(cost("0.5", provider=""), {})
    assert ledger.total() == Decimal("0.5001")
    assert ledger.totals_by("user") == {
        0: Decimal("0.000034"),
        1: Decimal("0.000033"),
        2: Decimal("0.000033"),
        None: Decimal("0.5"),
    }
    assert ledger.totals_by_model() == {"p/a": Decimal("0.00005"), "p/b": Decimal("0.00005"), "m": Decimal("0.5")}
    today = datetime.datetime.now(datetime.timezone.utc).date()
    assert ledger.totals_by_day() == {today: Decimal("0.5001")}


BAD_META = {
    "a date": {"when": datetime.date(2026, 1, 2)},
    "NaN": {"score": float("nan")},
    "an infinity": {"deep": {"score": float("inf")}},
    "a non-string key": {7: "seven"},
    "a nested non-string key": {"user": {1: "one"}},
    "a Decimal": {"usd": Decimal("1")},
    "an object": {"who": object()},
}


@pytest.mark.parametrize("meta", list(BAD_META.values()), ids=list(BAD_META))
def test_every_ledger_refuses_the_same_meta_and_books_nothing_of_it(ledger: BaseLedger, meta: Any) -> None:
    with pytest.raises(minillm.InvalidArgumentError, match=r"meta"):
        ledger.record(cost(), meta)
    with pytest.raises(minillm.InvalidArgumentError, match=r"meta"):
        ledger.hold("h", Decimal(1), meta, Scope(), Decimal(10), 60)
    assert ledger.count == 0 and ledger.spent(Scope()) == 0
    ledger.record(cost("0.5"), {"user": 1})
    assert ledger.totals_by("user") == {1: Decimal("0.5")}  # nothing refused broke anything


def test_meta_comes_back_as_json_would_give_it_in_every_ledger(ledger: BaseLedger) -> None:
    ledger.record(cost(), {"tags": ("a", "b"), "n": {"x": [1, 2.5, None, True]}})
    assert ledger.records[0][1] == {"tags": ["a", "b"], "n": {"x": [1, 2.5, None, True]}}


@pytest.mark.parametrize("key", ["user.id", "user-id", "user_id"])
def test_meta_keys_with_dots_and_dashes_are_found_by_queries_and_budgets(ledger: BaseLedger, key: str) -> None:
    ledger.record(cost("0.25"), {key: 7})
    ledger.record(cost("0.5"), {key: 8, "user": {"id": 7}})
    assert ledger.totals_by(key) == {7: Decimal("0.25"), 8: Decimal("0.5")}
    assert ledger.spent(Scope(key, 7)) == Decimal("0.25")
    budget = minillm.Budget(ledger, "0.3", key=key)
    assert budget.spent(7) == Decimal("0.25") and budget.remaining(8) == 0


def test_a_bad_meta_key_to_group_by_is_refused(ledger: BaseLedger) -> None:
    with pytest.raises(minillm.InvalidArgumentError, match="plain name"):
        Scope("user'); DROP TABLE x; --", 1)
    if not isinstance(ledger, minillm.Ledger):
        with pytest.raises(minillm.InvalidArgumentError):
            ledger.totals_by("a'b")


# -- holds ------------------------------------------------------------------------------------


def test_a_budget_scope_matches_meta_values_the_same_way_in_every_ledger(ledger: BaseLedger) -> None:
    bookings: List[Tuple[str, Dict[str, Any]]] = [
        ("1", {"user": 1}),
        ("2", {"user": None}),
        ("4", {}),
        ("8", {"user": True}),
        ("16", {"user": "1"}),
    ]
    for usd, meta in bookings:
        ledger.record(cost(usd), meta)
    assert ledger.spent(Scope("user", 1)) == Decimal(1)
    assert ledger.spent(Scope("user", 1.0)) == Decimal(1)  # one JSON number
    assert ledger.spent(Scope("user", None)) == Decimal(6)  # null, or no such key
    assert ledger.spent(Scope("user", True)) == Decimal(8)  # not the number 1
    assert ledger.spent(Scope("user", "1")) == Decimal(16)
    assert ledger.spent(Scope()) == Decimal(31)


def test_a_hold_counts_until_its_booking_replaces_it(ledger: BaseLedger) -> None:
    everything = Scope()
    assert ledger.hold("r1", Decimal("0.4"), {}, everything, Decimal("1"), 60) == Decimal(0)
    assert ledger.spent(everything) == Decimal("0.4")
    ledger.record(cost("0.1", booking_id="r1"), {})
    assert ledger.spent(everything) == Decimal("0.1")  # the real cost replaced the worst case
    ledger.hold("r2", Decimal("0.5"), {}, everything, Decimal("1"), 60)
    ledger.release_hold("r2")
    ledger.release_hold("r2")  # idempotent
    assert ledger.spent(everything) == Decimal("0.1")


def test_a_lower_bound_counts_at_the_worst_case_held_for_it_until_it_is_larger(ledger: BaseLedger) -> None:
    everything = Scope()

    def partial(usd: str, booking_id: str) -> minillm.CostInfo:
        return minillm.CostInfo(usd=Decimal(usd), resolution=minillm.Resolution.PARTIAL, booking_id=booking_id)

    ledger.hold("low", Decimal("0.4"), {}, everything, Decimal("10"), 60)
    ledger.record(partial("0.1", "low"), {})
    assert ledger.spent(everything) == Decimal("0.4")  # it may have cost up to the worst case
    ledger.hold("high", Decimal("0.2"), {}, everything, Decimal("10"), 60)
    ledger.record(partial("0.3", "high"), {})
    assert ledger.spent(everything) == Decimal("0.7")  # a bound above the hold counts as itself
    ledger.record(partial("0.05", "unheld"), {})
    assert ledger.spent(everything) == Decimal("0.75")
    assert ledger.total() == Decimal("0.45")  # the total counts known money: the lower bounds


def test_a_hold_that_would_pass_the_limit_is_refused_with_the_figures(ledger: BaseLedger) -> None:
    scope = Scope("user", 7)
    ledger.record(cost("0.6"), {"user": 7})
    ledger.record(cost("5"), {"user": 8})  # another user's spending does not count
    with pytest.raises(minillm.BudgetExceeded) as caught:
        ledger.hold("r1", Decimal("0.5"), {"user": 7}, scope, Decimal("1"), 60)
    refused = caught.value
    assert (refused.limit, refused.spent, refused.requested, refused.key, refused.value) == (
        Decimal("1"), Decimal("0.6"), Decimal("0.5"), "user", 7,
    )  # fmt: skip
    assert ledger.hold("r2", Decimal("0.4"), {"user": 7}, scope, Decimal("1"), 60) == Decimal("0.6")
    assert ledger.spent(scope) == Decimal("1.0")


def test_many_holds_are_placed_together_or_not_at_all(ledger: BaseLedger) -> None:
    scope = Scope("user", 7)
    ledger.record(cost("0.5"), {"user": 7})
    holds = [(f"h{n}", Decimal("0.1"), {"user": 7}) for n in range(5)]
    with pytest.raises(minillm.BudgetExceeded) as caught:
        ledger.hold_many(holds, scope, Decimal("0.9"), 60)
    assert (caught.value.spent, caught.value.requested) == (Decimal("0.5"), Decimal("0.5"))
    assert "5 requests that may cost $0.5 would pass it" in str(caught.value)
    assert ledger.spent(scope) == Decimal("0.5")  # none of them is held
    assert ledger.hold_many(holds, scope, Decimal("1"), 60) == Decimal("0.5")
    assert ledger.spent(scope) == Decimal("1.0")
    ledger.record(cost("0.05", booking_id="h0"), {"user": 7})  # a booking replaces its own hold
    ledger.release_hold("h1")
    assert ledger.spent(scope) == Decimal("0.85")


def test_a_ledger_that_holds_one_at_a_time_lets_go_of_them_all_when_one_is_refused() -> None:
    class OneAtATime(minillm.Ledger):
        hold_many = BaseLedger.hold_many

    ledger = OneAtATime()
    holds: List[Tuple[str, Decimal, Dict[str, Any]]] = [(f"h{n}", Decimal("0.3"), {}) for n in range(4)]
    with pytest.raises(minillm.BudgetExceeded):
        ledger.hold_many(holds, Scope(), Decimal("1"), 60)
    assert ledger.spent(Scope()) == 0
    assert ledger.hold_many(holds[:3], Scope(), Decimal("1"), 60) == 0
    assert ledger.spent(Scope()) == Decimal("0.9")


def test_a_booking_of_unknown_money_counts_at_the_worst_case_held_for_it(ledger: BaseLedger) -> None:
    ledger.hold("r1", Decimal("0.3"), {}, Scope(), Decimal("1"), 60)
    ledger.record(cost(None, booking_id="r1"), {})
    assert ledger.total() == Decimal(0)  # no fake money in the totals ...
    assert ledger.spent(Scope()) == Decimal("0.3")  # ... but the budget stays on the safe side


def test_a_hold_from_a_process_that_died_lapses(ledger: BaseLedger) -> None:
    ledger.hold("r1", Decimal("0.9"), {}, Scope(), Decimal("1"), -1)  # already expired
    assert ledger.spent(Scope()) == Decimal(0)
    ledger.hold("r2", Decimal("0.9"), {}, Scope(), Decimal("1"), 60)


def correction(of: str, usd: str, **fields: Any) -> minillm.CostInfo:
    return minillm.CostInfo(
        usd=Decimal(usd),
        resolution=minillm.Resolution.RESOLVED,
        source="lookup",
        booking_id=f"{of}:correction",
        corrects=of,
        **fields,
    )


def test_a_correction_comes_back_whole_and_resolves_its_original(ledger: BaseLedger) -> None:
    unknown = cost(None, booking_id="u1")
    ledger.record(unknown, {"user": 7})
    fixed = correction("u1", "0.15", prompt_tokens=3, completion_tokens=-1, total_tokens=2, model="m", provider="p")
    assert ledger.record_once(fixed, {"user": 7}) is True
    assert ledger.record_once(fixed, {"user": 7}) is False  # once per booking id
    assert ledger.records == [(unknown, {"user": 7}), (fixed, {"user": 7})]
    assert ledger.records[1][0].corrects == "u1" and ledger.records[0][0].corrects is None
    assert [entry.cost for entry in ledger.entries()] == [unknown, fixed]
    assert ledger.unresolved() == []  # corrected: its money is known now
    assert ledger.total() == Decimal("0.15") and ledger.totals_by("user") == {7: Decimal("0.15")}


def test_a_correction_moves_what_a_budget_counts_from_the_worst_case_to_the_providers_figure(
    ledger: BaseLedger,
) -> None:
    seven, everything = Scope("user", 7), Scope()
    ledger.hold("u1", Decimal("0.4"), {"user": 7}, seven, Decimal("10"), 60)
    ledger.record(cost(None, booking_id="u1"), {"user": 7})
    ledger.hold("p1", Decimal("0.5"), {"user": 7}, seven, Decimal("10"), 60)
    lower = minillm.CostInfo(usd=Decimal("0.1"), resolution=minillm.Resolution.PARTIAL, booking_id="p1")
    ledger.record(lower, {"user": 7})
    ledger.record(attrs_evolve(lower, usd=Decimal("0.2"), booking_id="p2"), {"user": 8})
    assert ledger.spent(seven) == Decimal("0.9")  # the worst cases held
    ledger.record(correction("u1", "0.15"), {"user": 7})
    assert ledger.spent(seven) == Decimal("0.65")  # 0.15, not 0.4 + 0.15
    ledger.record(correction("p1", "0.05"), {"user": 7})  # the provider billed 0.15 in all
    ledger.record(correction("p1", "0.05"), {"user": 7})  # written again: moved once
    assert ledger.spent(seven) == Decimal("0.30")
    ledger.record(correction("p2", "-0.05"), {"user": 8})  # a lower bound above the bill
    assert ledger.spent(Scope("user", 8)) == Decimal("0.15") and ledger.spent(everything) == Decimal("0.45")
    assert ledger.total() == Decimal("0.45")


def test_a_correction_of_a_booking_the_ledger_does_not_have_is_refused(ledger: BaseLedger) -> None:
    with pytest.raises(minillm.LedgerError, match="'elsewhere', which this ledger does not have"):
        ledger.record(correction("elsewhere", "0.1"), {})
    assert ledger.count == 0 and ledger.spent(Scope()) == 0


# -- running totals: what a budget counts, without summing the ledger ----------------------------

MIXED_META: List[Dict[str, Any]] = [
    {"user": 7, "team": "a"},
    {"user": 7.0, "team": "b", "flag": True},
    {"user": "7", "flag": False},
    {"user": None, "tags": ["x", "y"], "flag": 1},
    {"team": "a", "nested": {"deep": 1}},
    {},
    {"user": 10, "team": "c"},
    {"user": 10.0},
]

SCOPES = [
    Scope(),
    Scope("user", 7),
    Scope("user", 7.0),
    Scope("user", "7"),
    Scope("user", None),
    Scope("team", "a"),
    Scope("team", None),
    Scope("flag", True),
    Scope("flag", False),
    Scope("flag", 1),
    Scope("tags", None),
    Scope("nested", None),
    Scope("absent", None),
    Scope("absent", 3),
    Scope("user", 10),
    Scope("user", 10.0),
]


def brute_force(records: List[Any], scope: Scope, counts: Dict[str, Decimal]) -> Decimal:
    return sum((counts[c.booking_id] for c, meta in records if scope.matches(meta)), Decimal(0))


def test_every_scope_reads_the_same_as_summing_its_bookings(ledger: BaseLedger) -> None:
    counts: Dict[str, Decimal] = {}
    for n, meta in enumerate(MIXED_META):
        exact = cost(f"0.{n + 1}", booking_id=f"x{n}")
        ledger.record(exact, meta)
        counts[exact.booking_id or ""] = exact.usd or Decimal(0)
        # a lower bound that counts at the larger worst case held for it
        ledger.hold(f"p{n}", Decimal("0.05"), meta, Scope(), Decimal(100), 60)
        partial = attrs_evolve(cost("0.01", booking_id=f"p{n}"), resolution=minillm.Resolution.PARTIAL)
        ledger.record(partial, meta)
        counts[f"p{n}"] = Decimal("0.05")
        ledger.record(cost(None, booking_id=f"u{n}"), meta)  # unknown money and nothing held: counts nothing
        counts[f"u{n}"] = Decimal(0)
    records = ledger.records
    for scope in SCOPES:
        assert ledger.spent(scope) == brute_force(records, scope, counts), scope


def test_bookings_made_before_any_budget_counted_are_all_counted_by_the_first(ledger: BaseLedger) -> None:
    # The in-memory ledger adds up its running totals when a budget first
    # asks, not on every booking: that first answer must be what summing
    # gives, lower bounds and corrections included.
    counts: Dict[str, Decimal] = {}
    for n, meta in enumerate(MIXED_META):
        exact = cost(f"0.{n + 1}", booking_id=f"x{n}")
        ledger.record(exact, meta)
        counts[f"x{n}"] = Decimal(f"0.{n + 1}")
        partial = attrs_evolve(cost("0.02", booking_id=f"p{n}"), resolution=minillm.Resolution.PARTIAL)
        ledger.record(partial, meta)
        ledger.record(correction(f"p{n}", "0.03"), {})  # the provider billed 0.05 in all
        counts[f"p{n}"] = Decimal("0.05")
    records = [(c, meta) for c, meta in ledger.records if c.corrects is None]
    for scope in SCOPES:
        assert ledger.spent(scope) == brute_force(records, scope, counts), scope
    ledger.record(cost("1", booking_id="late"), {"user": 7})  # and from then on, as it books
    assert ledger.spent(Scope("user", 7)) == brute_force(records, Scope("user", 7), counts) + 1


def test_a_budget_on_a_whole_number_beyond_64_bits_is_refused() -> None:
    # SQLite cannot compare with one, so no ledger is asked to.
    with pytest.raises(minillm.InvalidArgumentError, match="64 bits"):
        Scope("user", 2**63)
    assert Scope("user", 2**63 - 1).value == 2**63 - 1


def test_a_booking_written_again_does_not_count_again(ledger: BaseLedger) -> None:
    booking = cost("0.25", booking_id="again")
    for _ in range(3):
        ledger.record(booking, {"user": 1})
    assert ledger.spent(Scope()) == ledger.spent(Scope("user", 1)) == Decimal("0.25")


def test_a_sqlite_ledger_from_before_running_totals_adds_them_up_when_opened(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.db"
    ledger = minillm.SQLiteLedger(path)
    for n, meta in enumerate(MIXED_META):
        ledger.record(cost(f"0.{n + 1}", booking_id=f"x{n}"), meta)
    expected = {scope: ledger.spent(scope) for scope in SCOPES}
    ledger.close()
    old = sqlite3.connect(path)
    old.execute("DROP TABLE minillm_scope_totals")  # as a file written by an older minillm
    old.commit()
    old.close()
    reopened = minillm.SQLiteLedger(path)
    assert {scope: reopened.spent(scope) for scope in SCOPES} == expected
    reopened.record(cost("1", booking_id="new"), {"user": 7})
    assert reopened.spent(Scope("user", 7)) == expected[Scope("user", 7)] + 1
    reopened.close()


def test_a_postgres_ledger_from_before_running_totals_adds_them_up_when_opened(postgres_dsn: str) -> None:
    import psycopg

    ledger = minillm.PostgresLedger(postgres_dsn)
    for n, meta in enumerate(MIXED_META):
        ledger.record(cost(f"0.{n + 1}", booking_id=f"pg-old-{n}"), meta)
    expected = {scope: ledger.spent(scope) for scope in SCOPES}
    ledger.close()
    with psycopg.connect(postgres_dsn, autocommit=True) as connection:
        connection.execute("DROP TABLE minillm_scope_totals")
    reopened = minillm.PostgresLedger(postgres_dsn)
    assert {scope: reopened.spent(scope) for scope in SCOPES} == expected
    reopened.close()


# -- threads and processes -------------------------------------------------------------------


def test_thirty_two_threads_booking_at_once_lose_and_double_nothing(ledger: BaseLedger) -> None:
    def work(n: int) -> None:
        for i in range(40):
            booking = cost("0.000001", booking_id=f"{n}-{i}")
            ledger.record(booking, {"thread": n})
            if i % 10 == 0:
                ledger.record(booking, {"thread": n})  # a retried write

    threads = [threading.Thread(target=work, args=(n,)) for n in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert ledger.count == 32 * 40
    assert ledger.total() == Decimal("0.00128")
    assert set(ledger.totals_by("thread").values()) == {Decimal("0.00004")}
    # the running totals a budget reads agree, retried writes counted once
    assert ledger.spent(Scope()) == Decimal("0.00128")
    assert {ledger.spent(Scope("thread", n)) for n in range(32)} == {Decimal("0.00004")}


def run_workers(kind: str, target: str, mode: str, threads: int, count: int, *extra: str) -> List[Any]:
    """Start two worker processes, let them go at the same moment, and
    return what each reported."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    workers: List[subprocess.Popen[str]] = []
    try:
        for tag in ("A", "B"):
            workers.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "tests.ledger_worker",
                        kind,
                        target,
                        mode,
                        str(threads),
                        str(count),
                        tag,
                        *extra,
                    ],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                    env=env,
                    cwd=ROOT,
                )
            )
        for worker in workers:
            assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
        for worker in workers:  # every one is told before any is waited for
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        reports = []
        for worker in workers:
            out, _ = worker.communicate(timeout=120)
            assert worker.returncode == 0
            reports.append(json.loads(out))
        return reports
    finally:
        # A failed worker must not outlive the test (nor its pipes leak
        # into a later test's garbage collection).
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
            worker.communicate()


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_two_processes_of_eight_threads_lose_and_double_nothing(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    target = str(tmp_path / "shared.db") if kind == "sqlite" else request.getfixturevalue("postgres_dsn")
    run_workers(kind, target, "book", 8, 100)
    shared = minillm.SQLiteLedger(target) if kind == "sqlite" else minillm.PostgresLedger(target)
    assert shared.count == 2 * 8 * 100
    # each thread booked 100 costs of 1..7 micro-dollars: 14 full cycles (392) and 1..2 (3)
    assert shared.total() == Decimal("0.000001") * 395 * 16
    assert shared.totals_by("process") == {"A": Decimal("0.000001") * 395 * 8, "B": Decimal("0.000001") * 395 * 8}
    shared.close()


def test_a_sqlite_ledger_survives_its_process_and_is_shared_by_path(tmp_path: Path) -> None:
    path = tmp_path / "costs.db"
    minillm.SQLiteLedger(path).record(cost("0.3"), {"user": 1})
    again = minillm.SQLiteLedger(str(path))
    assert again.count == 1 and again.total() == Decimal("0.3")
    assert repr(again) == f"SQLiteLedger({str(path)!r})"


def test_many_connections_opening_one_new_sqlite_file_at_once_all_get_in(tmp_path: Path) -> None:
    # Switching a new file to WAL fails "database is locked" at once (no
    # busy wait) while another connection is doing the same; each ledger
    # here has its own connection, as another process would.
    for trial in range(40):
        path = tmp_path / f"new-{trial}.db"
        ledgers = [minillm.SQLiteLedger(path) for _ in range(16)]
        start = threading.Barrier(len(ledgers))
        errors: List[BaseException] = []

        def open_it(ledger: minillm.SQLiteLedger, start: threading.Barrier, errors: List[BaseException]) -> None:
            start.wait()
            try:
                ledger.record(cost("0.1"), {})
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=open_it, args=(ledger, start, errors)) for ledger in ledgers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert ledgers[0].count == 16
        for ledger in ledgers:
            ledger.close()


def test_a_sqlite_ledger_dropped_without_close_closes_its_connection(tmp_path: Path) -> None:
    import gc
    import sqlite3

    ledger = minillm.SQLiteLedger(tmp_path / "dropped.db")
    ledger.record(cost(), {})
    connection = ledger._connection
    assert connection is not None
    del ledger
    gc.collect()
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        connection.execute("SELECT 1")


def test_a_ledger_that_cannot_be_opened_says_so(tmp_path: Path) -> None:
    with pytest.raises(minillm.LedgerError, match="cannot open the ledger"):
        minillm.SQLiteLedger(tmp_path / "missing-dir" / "costs.db").total()
    with pytest.raises(minillm.LedgerError, match="cannot open the PostgreSQL ledger") as caught:
        minillm.PostgresLedger("postgresql://minillm:s3cret-pw@127.0.0.1:1/db").total()
    assert "s3cret-pw" not in str(caught.value)
    assert "s3cret-pw" not in repr(minillm.PostgresLedger("postgresql://minillm:s3cret-pw@127.0.0.1:1/db"))


def test_a_postgres_ledger_reconnects_after_its_connection_is_killed(postgres_dsn: str) -> None:
    import psycopg

    ledger = minillm.PostgresLedger(postgres_dsn)
    ledger.record(cost("0.1", booking_id="before"), {})
    pid = ledger._connect().info.backend_pid
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    ledger.record(cost("0.2", booking_id="after"), {})
    assert ledger.count == 2 and ledger.total() == Decimal("0.3")
    ledger.close()


def test_ledgers_can_be_pickled_for_other_processes(tmp_path: Path) -> None:
    import pickle

    ledger = minillm.SQLiteLedger(tmp_path / "costs.db")
    ledger.record(cost("0.1"), {})
    copy = pickle.loads(pickle.dumps(ledger))
    assert copy.total() == Decimal("0.1") and copy is not ledger


def test_a_ledger_file_written_before_attempts_were_booked_is_brought_up_to_date(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript(
        """
        CREATE TABLE minillm_bookings (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, booking_id TEXT NOT NULL UNIQUE, booked_at TEXT NOT NULL,
            usd TEXT, resolution TEXT NOT NULL, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
            total_tokens INTEGER NOT NULL, cached_tokens INTEGER NOT NULL, reasoning_tokens INTEGER NOT NULL,
            model TEXT NOT NULL, provider TEXT NOT NULL, response_id TEXT, byok INTEGER NOT NULL,
            cancelled INTEGER NOT NULL, meta TEXT NOT NULL, held_usd TEXT
        );
        INSERT INTO minillm_bookings VALUES
            (1, 'old', '2026-01-01T00:00:00+00:00', '0.5', 'resolved', 1, 2, 3, 0, 0, 'm', 'p', NULL, 0, 0, '{}', NULL);
        """
    )
    old.commit()
    old.close()
    ledger = minillm.SQLiteLedger(path)
    ledger.record(cost("0.25", booking_id="new"), {})
    (first, _), (second, _) = ledger.records
    assert (first.usd, first.attempt, first.failed, first.source) == (Decimal("0.5"), 1, False, None)
    assert (first.cache_write_tokens, first.service_tier, first.corrects) == (0, None, None)
    assert second.booking_id == "new" and ledger.total() == Decimal("0.75")
    ledger.record(correction("new", "0.01"), {})
    assert ledger.records[-1][0].corrects == "new" and ledger.total() == Decimal("0.76")
    ledger.close()
