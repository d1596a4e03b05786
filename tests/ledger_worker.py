"""A worker process for the multi-process ledger tests: books, or spends
under a budget, from many threads, into a ledger shared with other processes
-- or resolves its pending bookings against a scripted OpenRouter.

    python -m tests.ledger_worker LEDGER_KIND LEDGER_TARGET MODE THREADS COUNT TAG [LIMIT | SERVER_URL]

Prints "ready", waits for a line on stdin (so that all workers start at
once), then prints one JSON line: what it booked and what the budget refused.
"""

from __future__ import annotations

import json
import sys
import threading
from decimal import Decimal
from typing import Any, Dict, List

import minillm
from minillm.accounting.ledgers import BaseLedger


def ledger_of(kind: str, target: str) -> BaseLedger:
    return minillm.SQLiteLedger(target) if kind == "sqlite" else minillm.PostgresLedger(target)


def book(ledger: BaseLedger, threads: int, count: int, tag: str) -> Dict[str, Any]:
    def work(n: int) -> None:
        for i in range(count):
            cost = minillm.CostInfo(
                usd=Decimal("0.000001") * (i % 7 + 1),
                resolution=minillm.Resolution.RESOLVED,
                model="m",
                provider="p",
                booking_id=f"{tag}-{n}-{i}",
            )
            ledger.record(cost, {"process": tag, "thread": n})

    run(threads, work)
    return {"booked": threads * count}


def spend(ledger: BaseLedger, threads: int, count: int, tag: str, limit: str) -> Dict[str, Any]:
    budget = minillm.Budget(ledger, Decimal(limit), default_max_tokens=8)
    price = minillm.TokenPrice(input_per_mtok="1", output_per_mtok="1")
    client = minillm.Client("local/echo", on_cost=ledger, price=price, budget=budget)
    refused: List[int] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        for i in range(count):
            try:
                client.complete(f"{tag} thread {n} request {i} says hello")
            except minillm.BudgetExceeded:
                with lock:
                    refused.append(1)

    run(threads, work)
    return {"refused": len(refused)}


def resolve(ledger: BaseLedger, url: str) -> Dict[str, Any]:
    client = minillm.Client("openrouter/x/y", api_key="sk-or-test", base_url=url)
    resolved = ledger.resolve_pending(client)
    client.close()
    return {
        "corrected": [cost.corrects for cost in resolved.corrected],
        "still_pending": len(resolved.still_pending),
        "usd": str(resolved.usd),
    }


def run(threads: int, work: Any) -> None:
    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def main(argv: List[str]) -> None:
    kind, target, mode, threads, count, tag = argv[:6]
    ledger = ledger_of(kind, target)
    ledger.count  # noqa: B018 - open the ledger (and its tables) before the start
    # Start together with the other workers: say so, then wait for "go".
    print("ready", flush=True)
    sys.stdin.readline()
    if mode == "book":
        result = book(ledger, int(threads), int(count), tag)
    elif mode == "resolve":
        result = resolve(ledger, argv[6])
    else:
        result = spend(ledger, int(threads), int(count), tag, argv[6])
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
