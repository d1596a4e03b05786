"""Bookings per second for each ledger, with 1, 8 and 32 threads booking at
once into one ledger object -- and, for the durable ledgers, the budgeted
path (hold the worst case, then book in its place).

PostgreSQL: ``MINILLM_BENCH_POSTGRES`` names a server; else a throwaway
one is started from the machine's binaries (with durability off, as in the
tests -- a real server with fsync pays a disk flush per commit), else that
row is skipped with the reason.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import threading
import time
from decimal import Decimal
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

from minillm import Budget, CostInfo, Ledger, PostgresLedger, Resolution, SQLiteLedger
from minillm.accounting.ledgers import BaseLedger
from minillm.ids import new_booking_id

THREADS = (1, 8, 32)
LIMIT = Decimal(10**9)


def _cost(booking_id: Optional[str] = None) -> CostInfo:
    return CostInfo(
        usd=Decimal("0.000042"),
        resolution=Resolution.RESOLVED,
        prompt_tokens=120,
        completion_tokens=40,
        total_tokens=160,
        model="bench",
        provider="openai",
        booking_id=booking_id or new_booking_id(),
    )


def _book(ledger: BaseLedger, n: int) -> None:
    ledger.record(_cost(), {"user_id": n % 10})


def _budgeted(budget: Budget) -> Callable[[BaseLedger, int], None]:
    def hold_then_book(ledger: BaseLedger, n: int) -> None:
        # What a budgeted request does: reserve its worst case (checked
        # against all its user has spent), then book the real cost in its place.
        meta = {"user_id": n % 10}
        cost = _cost()
        assert cost.booking_id is not None
        budget.hold(cost.booking_id, Decimal("0.001"), meta)
        ledger.record(cost, meta)

    return hold_then_book


def rate(ledger: BaseLedger, threads: int, per_thread: int, work: Callable[[BaseLedger, int], None]) -> float:
    """Bookings per second with ``threads`` threads booking ``per_thread`` each."""
    start = threading.Barrier(threads + 1)
    errors: List[BaseException] = []

    def run() -> None:
        start.wait()
        try:
            for n in range(per_thread):
                work(ledger, n)
        except BaseException as exc:  # reported below
            errors.append(exc)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    start.wait()
    began = time.perf_counter()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - began
    if errors:
        raise errors[0]
    return threads * per_thread / elapsed


def _postgres() -> Iterator[Tuple[Optional[str], str]]:
    dsn = os.environ.get("MINILLM_BENCH_POSTGRES")
    if dsn:
        yield dsn, "MINILLM_BENCH_POSTGRES"
        return
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        from tests.postgres_server import LocalPostgres
    except ImportError as exc:  # pragma: no cover - run outside the source tree
        yield None, f"no server: {exc}"
        return
    server, reason = LocalPostgres.start()
    if server is None:
        yield None, reason
        return
    try:
        yield server.dsn, "a throwaway local server, fsync off"
    finally:
        server.stop()


def main(total: int = 4000, threads: Sequence[int] = THREADS) -> None:
    print("ledger bookings per second (one ledger object shared by the threads)")
    print(f"{'ledger':<12} {'path':<16}" + "".join(f" {f'{t} thr':>10}" for t in threads))
    with tempfile.TemporaryDirectory() as folder:

        def line(name: str, make: Callable[[], BaseLedger], path: str) -> None:
            ledger = make()
            _book(ledger, 0)  # open it (and create its tables) before timing
            work = _budgeted(Budget(ledger, LIMIT, key="user_id")) if path.startswith("hold") else _book
            rates = [rate(ledger, t, max(total // t, 1), work) for t in threads]
            ledger.close()
            print(f"{name:<12} {path:<16}" + "".join(f" {r:>10,.0f}" for r in rates))

        line("Ledger", Ledger, "record")
        line("Ledger", Ledger, "hold + record")
        line("SQLite", lambda: SQLiteLedger(os.path.join(folder, "book.db")), "record")
        line("SQLite", lambda: SQLiteLedger(os.path.join(folder, "hold.db")), "hold + record")
        for dsn, note in _postgres():
            if dsn is None:
                print(f"{'Postgres':<12} skipped: {note}")
                continue
            for path in ("record", "hold + record"):
                line("Postgres", functools.partial(PostgresLedger, dsn), path)
            print(f"(PostgreSQL: {note})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bookings", type=int, default=4000, help="bookings per measurement")
    args = parser.parse_args()
    main(args.bookings)
