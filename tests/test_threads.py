"""Stress: many threads share one client, one OpenRouter client and one
ledger; a random mix of outcomes; the ledger's count and Decimal total are
exactly what the outcomes imply."""

from __future__ import annotations

import random
import threading
from decimal import Decimal
from typing import Any, Callable, Dict, List, Optional, Tuple

import minillm
from minillm.testing import (
    Drop,
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

from .conftest import collect_garbage

THREADS = 12
STREAMS_PER_THREAD = 15
PRICE = minillm.TokenPrice(input_per_mtok="3", output_per_mtok="15")

#: one output token, seen before the attempt was cut short: its lower bound
ONE_TOKEN = PRICE.cost(minillm.Usage(completion_tokens=1))

#: outcome -> (booked?, money for prompt tokens n: None when unknown)
OUTCOMES: Dict[str, Tuple[bool, Callable[[int], Optional[Decimal]]]] = {
    "complete": (True, lambda n: PRICE.cost(minillm.Usage(prompt_tokens=n, completion_tokens=2))),
    "break_after_usage": (True, lambda n: PRICE.cost(minillm.Usage(prompt_tokens=n, completion_tokens=2))),
    "break_before_usage": (True, lambda n: ONE_TOKEN),
    "cancel_from_another_thread": (True, lambda n: ONE_TOKEN),
    "abandon": (True, lambda n: None),
    "reject": (False, lambda n: None),
    "collect_then_settle": (True, lambda n: PRICE.cost(minillm.Usage(prompt_tokens=n, completion_tokens=2))),
    "dropped_connection": (True, lambda n: ONE_TOKEN),
    "in_band_error": (True, lambda n: ONE_TOKEN),
    "retried_then_complete": (True, lambda n: PRICE.cost(minillm.Usage(prompt_tokens=n, completion_tokens=2))),
    "bad_request": (False, lambda n: None),
    "openrouter_looked_up": (True, lambda n: Decimal(n) / 10**6),
}
#: the outcomes that failed after they may have been billed
FAILED = {"dropped_connection", "in_band_error"}


def reply_for(outcome: str, n: int, attempts: Dict[str, int], lock: threading.Lock) -> Reply:
    usage = chat_usage(n, 2)
    if outcome in ("complete", "collect_then_settle"):
        return Reply.sse(chat_stream(["a", "b"], usage=usage))
    if outcome == "break_after_usage":
        return Reply.sse([sse(chat_chunk(content="a", usage=usage)), Hang()])
    if outcome in ("break_before_usage", "cancel_from_another_thread", "abandon", "reject"):
        return Reply.sse([sse(chat_chunk(content="a")), Hang()])
    if outcome == "dropped_connection":
        return Reply.sse([sse(chat_chunk(content="a")), Drop()])
    if outcome == "in_band_error":
        return Reply.sse([sse(chat_chunk(content="a")), sse({"error": {"message": "boom", "code": 500}})])
    if outcome == "retried_then_complete":
        with lock:
            attempts[f"{outcome}:{n}"] = attempts.get(f"{outcome}:{n}", 0) + 1
            first = attempts[f"{outcome}:{n}"] == 1
        if first:
            return Reply.json({"error": {"message": "overloaded"}}, status=503)
        return Reply.sse(chat_stream(["a", "b"], usage=usage))
    if outcome == "bad_request":
        return Reply.json({"error": {"message": "bad"}}, status=400)
    if outcome == "openrouter_looked_up":
        return Reply.sse(
            [sse(chat_chunk(id=f"gen-{n}", content="a")), Hang()], headers=[("X-Generation-Id", f"gen-{n}")]
        )
    raise AssertionError(outcome)


def drive(client: minillm.Client, outcome: str, n: int) -> None:
    prompt = f"{outcome}:{n}"
    meta = {"n": n, "outcome": outcome}
    if outcome == "bad_request":
        try:
            client.stream(prompt, meta=meta)
        except minillm.BadRequestError:
            return
        raise AssertionError("expected a BadRequestError")
    if outcome in ("complete", "retried_then_complete"):
        with client.stream(prompt, meta=meta) as stream:
            assert "".join(stream.text_stream()) == "ab"
    elif outcome in ("break_after_usage", "break_before_usage", "openrouter_looked_up"):
        with client.stream(prompt, meta=meta) as stream:
            for _ in stream:
                break
    elif outcome == "cancel_from_another_thread":
        stream = client.stream(prompt, meta=meta)
        first = threading.Event()

        def cancel_when_reading(stream: minillm.TrackedStream = stream) -> None:
            first.wait(10)
            stream.cancel()

        canceller = threading.Thread(target=cancel_when_reading)
        canceller.start()
        for _ in stream:
            first.set()
        canceller.join(10)
    elif outcome == "abandon":
        client.stream(prompt, meta=meta)
    elif outcome == "reject":
        with client.stream(prompt, meta=meta) as stream:
            next(iter(stream))
            stream.reject()
    elif outcome == "collect_then_settle":
        stream = client.stream(prompt, meta=meta)
        stream.collect()
        stream.settle()
        stream.settle()
    elif outcome in ("dropped_connection", "in_band_error"):
        try:
            with client.stream(prompt, meta=meta) as stream:
                list(stream)
        except minillm.StreamError:
            return
        raise AssertionError("expected a StreamError")


def test_many_threads_many_streams_one_client_one_ledger_exact_totals(server: ScriptedServer) -> None:
    rng = random.Random(20261121)
    plan: List[List[Tuple[str, int]]] = [
        [(rng.choice(sorted(OUTCOMES)), 1000 + t * 100 + i) for i in range(STREAMS_PER_THREAD)] for t in range(THREADS)
    ]
    attempts: Dict[str, int] = {}
    lock = threading.Lock()

    def handle(request: RecordedRequest) -> Reply:
        outcome, n = request.json()["messages"][0]["content"].split(":")
        return reply_for(outcome, int(n), attempts, lock)

    def generation(request: RecordedRequest) -> Reply:
        n = int(request.query["id"][0].split("-")[1])
        return Reply.json(openrouter_generation(f"gen-{n}", total_cost=n / 10**6))

    server.route("POST", "/chat/completions", handle)
    server.route("GET", "/generation", generation)
    ledger = minillm.Ledger()
    no_sleep = minillm.RetryPolicy(sleep=lambda seconds: None)
    policy = minillm.LookupPolicy(initial_delay=0.0, max_delay=0.01, timeout=20)
    chat = minillm.Client("openai/m", base_url=server.url, price=PRICE, on_cost=ledger, retry=no_sleep)
    router = minillm.Client(
        "openrouter/x/y", api_key="sk-or", base_url=server.url, on_cost=ledger, retry=no_sleep, lookup=policy
    )
    errors: List[BaseException] = []
    start = threading.Barrier(THREADS)

    def worker(items: List[Tuple[str, int]]) -> None:
        try:
            start.wait(10)
            for outcome, n in items:
                drive(router if outcome == "openrouter_looked_up" else chat, outcome, n)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(items,)) for items in plan]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    collect_garbage()
    assert router.flush(timeout=30) and chat.flush(timeout=30)

    expected = [(o, n) for items in plan for o, n in items if OUTCOMES[o][0]]
    assert ledger.count == len(expected)
    by_n = {meta["n"]: (cost, meta) for cost, meta in ledger.records}
    assert sorted(by_n) == sorted(n for _, n in expected)  # each booked once, none missing
    total = Decimal(0)
    for outcome, n in expected:
        cost, meta = by_n[n]
        money = OUTCOMES[outcome][1](n)
        assert cost.usd == money, (outcome, n, cost)
        assert meta["outcome"] == outcome
        assert cost.failed == (outcome in FAILED), (outcome, cost)
        assert cost.attempt == (2 if outcome == "retried_then_complete" else 1), (outcome, cost)
        total += money or Decimal(0)
    assert ledger.total() == total
    assert len({o for items in plan for o, _ in items}) == len(OUTCOMES)  # the mix covers every outcome
    chat.close()
    router.close()


def test_a_ledger_shared_by_many_threads_loses_nothing() -> None:
    ledger = minillm.Ledger()
    cost = minillm.CostInfo(usd=Decimal("0.000001"), resolution=minillm.Resolution.RESOLVED)

    def book(thread: int) -> None:
        for i in range(500):
            ledger.record(cost, {"thread": thread, "i": i})

    threads: List[Any] = [threading.Thread(target=book, args=(t,)) for t in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert ledger.count == 32 * 500
    assert ledger.total() == Decimal("0.016")
    assert ledger.totals_by("thread") == {t: Decimal("0.0005") for t in range(32)}


def test_cancels_racing_completion_never_break_a_connection_another_request_uses(server: ScriptedServer) -> None:
    """Streams cancelled by timers at random moments -- before, during and
    after their last byte -- on one client: every stream is booked once, and
    no other request ever fails or is re-sent because a cancel reached a
    connection that had gone back to the pool."""
    rng = random.Random(7)
    server.route(
        "POST",
        "/chat/completions",
        lambda request: Reply.sse(chat_stream([f"p{i}" for i in range(rng.randint(0, 40))], usage=chat_usage(3, 1))),
    )
    ledger = minillm.Ledger()
    client = minillm.Client(
        "openai/m", base_url=server.url, price=PRICE, on_cost=ledger, retry=minillm.RetryPolicy(max_attempts=1)
    )
    errors: List[BaseException] = []
    per_thread = 40

    def worker(seed: int) -> None:
        local = random.Random(seed)
        for _ in range(per_thread):
            try:
                stream = client.stream("Hi")
                timer = threading.Timer(local.random() * 0.004, stream.cancel)
                timer.start()
                for _ in stream:
                    pass
                timer.join(10)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert len(server.requests) == 6 * per_thread  # nothing was re-sent
    assert ledger.count == 6 * per_thread  # and everything was booked once
    client.close()
