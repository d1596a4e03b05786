"""Batch jobs on a Dask cluster (``minillm[cluster]``): a real
``LocalCluster`` of two worker processes runs ``minillm.batch.run`` through
``get_executor()``, booking into one PostgreSQL ledger with one budget --
every item booked once, the budget held across processes, and a worker
killed mid-job losing no item."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest

import minillm
from minillm.batch import BatchResult, run
from minillm.testing import Gate, Reply, ScriptedServer, chat_completion, chat_usage

from .conftest import import_or_skip
from .test_batch import answering, client_for, prompt_of

distributed: Any = import_or_skip(
    "dask.distributed",
    reason='Dask is in the test extra: pip install -e ".[test]" (or "minillm[cluster]")',
    required_by="MINILLM_REQUIRE_DASK",
)

#: What each answer costs: 3 tokens in at $1/M and 2 out at $2/M.
EACH = Decimal("0.000007")
MAX_TOKENS = 10


@pytest.fixture
def dask(tmp_path: Path) -> Iterator[Any]:
    """A client of a cluster of two worker processes with two threads each,
    on 127.0.0.1, closed after the test. Its own for each test: a worker
    learns about servers as this process does, and the environment it
    starts with is this test's (starting one costs about a second)."""
    with distributed.LocalCluster(
        n_workers=2,
        processes=True,
        threads_per_worker=2,
        host="127.0.0.1",
        dashboard_address=None,
        # No dashboard, but the scheduler serves its health and metrics
        # pages all the same: on a free port, not on 8787, which another
        # cluster on this machine may hold.
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        local_directory=str(tmp_path / "dask"),
    ) as cluster:
        with distributed.Client(cluster) as client:
            yield client


def items(count: int) -> List[Dict[str, Any]]:
    """Prompts of one length (so one worst case), each tagged in its meta."""
    return [{"prompt": f"item {n:02}", "max_tokens": MAX_TOKENS, "meta": {"tag": f"t{n:02}"}} for n in range(count)]


def worst_case_of(server: ScriptedServer) -> Decimal:
    """What a budget holds for one item before sending it: asked of a
    budget of nothing, which refuses it and says how much it needed."""
    with pytest.raises(minillm.BudgetExceeded) as refused:
        client_for(server, None).complete("item 00", max_tokens=MAX_TOKENS, budget=minillm.Budget(minillm.Ledger(), 0))
    requested = refused.value.requested
    assert isinstance(requested, Decimal)
    return requested


def tags_booked(ledger: minillm.PostgresLedger) -> Counter[str]:
    return Counter(meta["tag"] for _, meta in ledger.records)


def until(condition: Callable[[], bool], within: float = 30.0) -> None:
    """Wait for ``condition``: for a state of the Dask scheduler, which
    sends no event the test could wait on."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"still not so after {within}s"
        time.sleep(0.01)


def test_a_dask_cluster_runs_the_job_and_books_each_item_once_in_a_shared_postgres_ledger(
    dask: Any, server: ScriptedServer, postgres_dsn: str
) -> None:
    answering(server)
    ledger = minillm.PostgresLedger(postgres_dsn)
    budget = minillm.Budget(ledger, "1")
    job = items(24)
    results = run(client_for(server, ledger), job, executor=dask.get_executor(), budget=budget)

    assert [r.index for r in results] == list(range(24))
    assert [r.text for r in results] == [f"ITEM {n:02}" for n in range(24)]
    assert all(r.ok and r.attempts == 1 and r.cost is not None for r in results)
    assert len(server.requests) == 24
    bookings = ledger.records
    assert len({cost.booking_id for cost, _ in bookings}) == 24
    assert tags_booked(ledger) == Counter(f"t{n:02}" for n in range(24))
    assert sorted(meta["batch_item"] for _, meta in bookings) == list(range(24))
    assert ledger.total() == EACH * 24 == sum(r.cost.usd for r in results if r.cost and r.cost.usd)
    assert {r.cost.booking_id for r in results if r.cost} == {cost.booking_id for cost, _ in bookings}
    assert budget.spent() == ledger.total()  # every hold was replaced by its booking


def test_a_budget_shared_through_postgres_holds_the_whole_cluster_to_its_limit(
    dask: Any, server: ScriptedServer, postgres_dsn: str
) -> None:
    answering(server)
    worst = worst_case_of(server)
    limit = worst * 3  # room for three in flight: some of the four threads' items are refused
    assert limit < EACH * 30  # and not enough for the whole job
    ledger = minillm.PostgresLedger(postgres_dsn)
    budget = minillm.Budget(ledger, limit)
    seen: List[Decimal] = []
    results = run(
        client_for(server, ledger),
        items(30),
        executor=dask.get_executor(),
        budget=budget,
        progress=lambda result: seen.append(budget.spent()),
    )

    assert [r.index for r in results] == list(range(30))
    done = [r for r in results if r.ok]
    refused = [r for r in results if not r.ok]
    assert done and refused
    assert all(r.error is not None and r.error.startswith("BudgetExceeded") and r.attempts == 1 for r in refused)
    assert len(server.requests) == len(done)  # a refused item is never sent
    assert tags_booked(ledger) == Counter(f"t{r.index:02}" for r in done)
    assert ledger.total() == EACH * len(done)
    assert max(seen) <= limit + worst and ledger.total() <= limit + worst  # what a budget promises
    assert max(seen) <= limit  # here, each answer costing less than its hold, not even that
    assert budget.spent() == ledger.total()  # no hold is left


def test_a_worker_killed_mid_job_loses_no_item_and_each_item_is_booked_once(
    dask: Any, server: ScriptedServer, postgres_dsn: str
) -> None:
    """A worker process is SIGKILLed while both its threads wait on the
    provider; Dask runs its items again on another worker.

    What the ledger shows, by the rule that every attempt the provider may
    bill is booked exactly once: each item has exactly one booking -- the
    attempt that finished it. The two attempts the dead worker had sent are
    not booked: their answers never reached it, and nothing runs in a
    process killed with SIGKILL to book what it learned. The provider may
    bill them all the same, so the budget keeps counting their worst case:
    the holds placed before they were sent stay, under their items' meta,
    until ``hold_seconds`` lets them lapse.
    """
    gate = Gate()
    answered: List[str] = []
    held: List[str] = []
    arrived = threading.Condition()

    def hold_from_the_sixth_on(prompt: str) -> Optional[Reply]:
        # Five answers go out; from the sixth request on, every reply waits
        # for the gate. Once four wait, each of the cluster's four threads
        # waits on one, so no worker is between an answer and its booking.
        with arrived:
            if len(answered) < 5 or gate.event.is_set():
                answered.append(prompt)
                return None
            held.append(prompt)
            arrived.notify_all()
        return Reply.json(chat_completion(prompt.upper(), usage=chat_usage(3, 2))).held(gate)

    answering(server, hold_from_the_sixth_on)
    ledger = minillm.PostgresLedger(postgres_dsn)
    budget = minillm.Budget(ledger, "1")
    worst = worst_case_of(server)
    results: List[BatchResult] = []
    job = threading.Thread(
        target=lambda: results.extend(
            run(client_for(server, ledger), items(16), executor=dask.get_executor(), budget=budget)
        ),
        daemon=True,
    )
    job.start()
    try:
        with arrived:
            assert arrived.wait_for(lambda: len(held) == 4, timeout=30), held
        # A finished item's result lives on its worker until the caller has
        # it and lets it go; Dask would run it again if that worker died.
        until(lambda: not dask.run_on_scheduler(_results_kept))
        pids = dask.run(os.getpid)
        port = next(r.client_address[1] for r in server.requests if prompt_of(r) == held[0])
        victim = next(pid for pid in pids.values() if _connected(pid, port, server.port))
        killed = {
            prompt_of(r)
            for r in server.requests
            if prompt_of(r) in held and _connected(victim, r.client_address[1], server.port)
        }
        assert len(killed) == 2 and held[0] in killed
        os.kill(victim, signal.SIGKILL)
    finally:
        gate.open()
    job.join(60)
    assert not job.is_alive()

    assert [r.text for r in results] == [f"ITEM {n:02}" for n in range(16)]
    assert all(r.ok for r in results)
    sent = Counter(prompt_of(r) for r in server.requests)
    assert sent == Counter({f"item {n:02}": 2 if f"item {n:02}" in killed else 1 for n in range(16)})
    bookings = ledger.records
    assert len({cost.booking_id for cost, _ in bookings}) == 16
    assert tags_booked(ledger) == Counter(f"t{n:02}" for n in range(16))
    assert ledger.total() == EACH * 16
    # The killed attempts: not booked, but still held against the budget.
    import psycopg

    with psycopg.connect(postgres_dsn) as connection:
        holds = connection.execute("SELECT meta ->> 'tag', usd FROM minillm_holds").fetchall()
    assert sorted(tag for tag, _ in holds) == sorted(f"t{prompt[-2:]}" for prompt in killed)
    assert all(usd == worst for _, usd in holds)
    assert budget.spent() == ledger.total() + 2 * worst


def _results_kept(dask_scheduler: Any) -> int:
    """Run on the scheduler: how many finished tasks' results it keeps."""
    return sum(1 for task in dask_scheduler.tasks.values() if task.state == "memory")


def _connected(pid: int, port: int, to: int) -> bool:
    """Whether process ``pid`` has a TCP connection from local ``port`` to port ``to``."""
    import psutil  # a dependency of distributed

    process = psutil.Process(pid)
    connections = getattr(process, "net_connections", None) or process.connections  # psutil < 6
    return any(c.laddr and c.raddr and (c.laddr.port, c.raddr.port) == (port, to) for c in connections(kind="tcp"))
