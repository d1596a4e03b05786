"""Budgeted requests per second as a ledger grows: does a hold cost the same
with a thousand bookings as with a million?

For each ledger, the bookings already there are written first -- for the
durable ledgers in bulk, as rows of a ledger from before the running totals
existed, so that opening it adds them up once (that time is printed too) --
then one thread does ``hold`` + ``record`` for a budget per user, the path
every budgeted request takes.

``python benchmarks/bench_budget_scale.py`` (1k, 100k and 1M bookings;
``--sizes`` to choose). PostgreSQL as in :mod:`bench_ledgers`.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sqlite3
import tempfile
import time
from decimal import Decimal
from typing import Callable, Iterator, List, Sequence, Tuple

from bench_ledgers import _cost, _postgres

from minillm import Budget, Ledger, PostgresLedger, SQLiteLedger
from minillm.accounting.ledgers import BaseLedger

SIZES = (1_000, 100_000, 1_000_000)
USERS = 1000
LIMIT = Decimal(10**9)


def _rows(count: int) -> Iterator[Tuple[object, ...]]:
    """Booking rows for bulk loading, in the columns both SQL ledgers share."""
    for n in range(count):
        meta = json.dumps({"user_id": n % USERS, "job": "seed"}, separators=(",", ":"), sort_keys=True)
        yield (f"seed-{n}", "2026-01-01T00:00:00+00:00", "0.000042", "resolved", 120, 40, 160, 0, 0, "bench",
               "openai", None, False, False, meta)  # fmt: skip


_SEED_COLUMNS = (
    "booking_id, booked_at, usd, resolution, prompt_tokens, completion_tokens, total_tokens, cached_tokens, "
    "reasoning_tokens, model, provider, response_id, byok, cancelled, meta"
)


def seed_memory(count: int) -> Tuple[BaseLedger, float]:
    ledger = Ledger()
    began = time.perf_counter()
    for n in range(count):
        ledger.record(_cost(f"seed-{n}"), {"user_id": n % USERS, "job": "seed"})
    return ledger, time.perf_counter() - began


def seed_sqlite(path: str, count: int) -> Tuple[BaseLedger, float]:
    fresh = SQLiteLedger(path)
    fresh.count  # noqa: B018 - opening creates the tables
    fresh.close()
    connection = sqlite3.connect(path)
    with connection:
        connection.executemany(
            f"INSERT INTO minillm_bookings ({_SEED_COLUMNS}) VALUES ({', '.join('?' * 15)})", _rows(count)
        )
        connection.execute("DROP TABLE minillm_scope_totals")  # as written before running totals
    connection.close()
    began = time.perf_counter()
    ledger = SQLiteLedger(path)
    ledger.count  # noqa: B018 - opening adds the running totals up
    return ledger, time.perf_counter() - began


def seed_postgres(dsn: str, count: int) -> Tuple[BaseLedger, float]:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute("DROP TABLE IF EXISTS minillm_bookings, minillm_holds, minillm_scope_totals")
    fresh = PostgresLedger(dsn)
    fresh.count  # noqa: B018 - opening creates the tables
    fresh.close()
    with psycopg.connect(dsn) as connection:
        with connection.cursor().copy(f"COPY minillm_bookings ({_SEED_COLUMNS}) FROM STDIN") as copy:
            for row in _rows(count):
                copy.write_row(row)
        connection.execute("DROP TABLE minillm_scope_totals")
    began = time.perf_counter()
    ledger = PostgresLedger(dsn)
    ledger.count  # noqa: B018
    return ledger, time.perf_counter() - began


def holds_per_second(ledger: BaseLedger, rounds: int) -> Tuple[float, float]:
    """Holds + records per second, and the seconds it took to set the budget
    (the in-memory ledger adds up its running totals then)."""
    began = time.perf_counter()
    budget = Budget(ledger, LIMIT, key="user_id")
    set_up = time.perf_counter() - began
    began = time.perf_counter()
    for n in range(rounds):
        meta = {"user_id": n % USERS}
        cost = _cost()
        assert cost.booking_id is not None
        budget.hold(cost.booking_id, Decimal("0.001"), meta)
        ledger.record(cost, meta)
    return rounds / (time.perf_counter() - began), set_up


def main(sizes: Sequence[int] = SIZES, rounds: int = 2000) -> None:
    print(f"budgeted hold + record per second, one thread, with N bookings already in the ledger ({rounds} rounds)")
    print(f"{'ledger':<10}" + "".join(f" {f'{size:,}':>14}" for size in sizes) + f" {'last/first':>11}")
    with tempfile.TemporaryDirectory() as folder:
        ledgers: List[Tuple[str, Callable[[int], Tuple[BaseLedger, float]]]] = [
            ("Ledger", seed_memory),
            ("SQLite", lambda n: seed_sqlite(os.path.join(folder, f"seeded-{n}.db"), n)),
        ]
        postgres = _postgres()
        dsn, note = next(postgres)
        if dsn is not None:
            ledgers.append(("Postgres", functools.partial(seed_postgres, dsn)))
        opened: List[str] = []
        for name, seed in ledgers:
            rates = []
            for size in sizes:
                ledger, seconds = seed(size)
                rate, set_up = holds_per_second(ledger, rounds)
                opened.append(f"{name} {size:,}: {seconds:.2f}s + {set_up:.2f}s")
                rates.append(rate)
                ledger.close()
            print(f"{name:<10}" + "".join(f" {r:>14,.0f}" for r in rates) + f" {rates[-1] / rates[0]:>10.2f}x")
        print(
            "seeding + setting the budget (memory: record() each, then adding up the running totals when the"
            " budget is set; SQL ledgers: adding up the running totals when opened): " + "; ".join(opened)
        )
        if dsn is None:
            print(f"Postgres skipped: {note}")
        else:
            print(f"(PostgreSQL: {note})")
        for _ in postgres:  # stop the throwaway server
            pass


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES), help="existing bookings, comma-separated")
    parser.add_argument("--rounds", type=int, default=2000, help="hold + record rounds per measurement")
    args = parser.parse_args()
    main([int(s) for s in args.sizes.split(",")], args.rounds)
