"""The ledger against the invoice: a seeded random workload, over many
threads, against a loopback provider that bills the way real ones do
(:class:`minillm.testing.BillingServer`), for every protocol.

Every ending a request can have is in the mix -- answered whole or
streamed, broken out of, cancelled from another thread, abandoned, cut by
a total deadline or an idle timeout, dropped, an in-band error before or
after output, a malformed event after output, an error status then a retry, an answer that came after the
client stopped waiting. Then, request by request:

* every invoiced attempt is booked exactly once, and nothing else is;
* a ``RESOLVED`` booking is the invoice line to the digit;
* a ``PARTIAL`` booking is never above it.
"""

from __future__ import annotations

import gc
import random
import threading
from collections import defaultdict
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import attrs
import pytest

import minillm
from minillm.testing import Billing, BillingServer, Invoice, InvoiceLine, Plan

PROTOCOLS = {
    # protocol -> (model, api)
    "openai_chat": ("openai/invoiced", None),
    "openai_responses": ("openai/invoiced", "responses"),
    "anthropic": ("anthropic/invoiced", None),
    "gemini": ("gemini/invoiced", None),
    "ollama": ("ollama/invoiced", None),
    "openrouter": ("openrouter/vendor/invoiced", None),
}
INPUT, OUTPUT = "3", "15"
PRICE = minillm.TokenPrice(input_per_mtok=INPUT, output_per_mtok=OUTPUT)
THREADS = 8
#: each ending this many times per protocol, in a seeded random order
ROUNDS = 3


#: What the caller does with a request: (client, prompt, options for the call).
Act = Callable[[minillm.Client, str, Dict[str, Any]], None]


@attrs.frozen
class Ending:
    """One way a request can end: what the server is told, and what the caller does."""

    plans: Tuple[Plan, ...]
    #: which client (how patient) sends it: "normal", "impatient" or "deadline"
    client: str
    act: Act


def stream_all(client: minillm.Client, prompt: str, options: Dict[str, Any]) -> None:
    with client.stream(prompt, **options) as stream:
        for _ in stream:
            pass


def complete(client: minillm.Client, prompt: str, options: Dict[str, Any]) -> None:
    client.complete(prompt, **options)


def break_after(count: int) -> Act:
    def act(client: minillm.Client, prompt: str, options: Dict[str, Any]) -> None:
        with client.stream(prompt, **options) as stream:
            for seen, _ in enumerate(stream.text_stream(), start=1):
                if seen == count:
                    break

    return act


def cancel_from_another_thread(client: minillm.Client, prompt: str, options: Dict[str, Any]) -> None:
    stream = client.stream(prompt, **options)
    output = threading.Event()

    def cancel() -> None:
        output.wait(10)
        stream.cancel()

    canceller = threading.Thread(target=cancel)
    canceller.start()
    for chunk in stream:
        if chunk.text:
            output.set()
    output.set()
    canceller.join(10)


def abandon(client: minillm.Client, prompt: str, options: Dict[str, Any]) -> None:
    client.stream(prompt, **options)  # dropped at once: its finalizer settles it


def expect(error: type) -> Callable[[Act], Callable[..., None]]:
    def wrap(act: Act) -> Callable[..., None]:
        def run(client: minillm.Client, prompt: str, options: Dict[str, Any]) -> None:
            with pytest.raises(error):
                act(client, prompt, options)

        return run

    return wrap


ENDINGS: Dict[str, Ending] = {
    "streamed whole": Ending((Plan(tokens=6),), "normal", stream_all),
    "answered whole": Ending((Plan(tokens=6),), "normal", complete),
    "broken out of": Ending((Plan(tokens=40),), "normal", break_after(3)),
    "cancelled from another thread": Ending(
        (Plan(tokens=40, ending="hang", after=4),), "normal", cancel_from_another_thread
    ),
    "abandoned": Ending((Plan(tokens=40, ending="hang", after=2),), "normal", abandon),
    "idle timeout": Ending(
        (Plan(tokens=40, ending="hang", after=3),), "impatient", expect(minillm.StreamError)(stream_all)
    ),
    "total deadline": Ending(
        (Plan(tokens=200, ending="drip", after=2, delay=0.02),), "deadline", expect(minillm.APITimeoutError)(stream_all)
    ),
    "dropped": Ending((Plan(tokens=40, ending="drop", after=3),), "normal", expect(minillm.StreamError)(stream_all)),
    "in-band error after output": Ending(
        (Plan(tokens=40, ending="error", after=3),), "normal", expect(minillm.StreamError)(stream_all)
    ),
    "malformed event after output": Ending(
        (Plan(tokens=40, ending="malformed", after=3),), "normal", expect(minillm.StreamError)(stream_all)
    ),
    "in-band error before output, retried": Ending(
        (Plan(ending="error", after=0), Plan(tokens=5)), "normal", stream_all
    ),
    "error status, retried": Ending((Plan(ending="status", status=503), Plan(tokens=5)), "normal", stream_all),
    "answered after the client stopped waiting, retried": Ending(
        (Plan(tokens=5, ending="late", delay=0.6), Plan(tokens=5)), "impatient", stream_all
    ),
}


#: the endings whose last attempt got the whole answer
COMPLETED = {
    "streamed whole",
    "answered whole",
    "in-band error before output, retried",
    "error status, retried",
    "answered after the client stopped waiting, retried",
}


@pytest.fixture(params=sorted(PROTOCOLS))
def protocol(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def billed(protocol: str) -> Iterator[Tuple[BillingServer, Invoice]]:
    with BillingServer() as server:
        invoice = server.bill(Billing(protocol, INPUT, OUTPUT, default=None))
        yield server, invoice


def client_options(protocol: str, server: BillingServer, ledger: minillm.Ledger) -> Dict[str, Any]:
    """What a client of ``protocol`` on ``server`` is made with (but its model
    and timeout), booking into ``ledger``; retries never sleep."""
    return {
        "base_url": server.url,
        "api_key": "sk-invoiced",
        "api": PROTOCOLS[protocol][1],
        "on_cost": ledger,
        # OpenRouter's money is its own; every other provider's is tokens x price
        "price": None if protocol == "openrouter" else PRICE,
        "retry": minillm.RetryPolicy(sleep=lambda seconds: None),
        "lookup": minillm.LookupPolicy(initial_delay=0.0, max_delay=0.05, timeout=20, exit_wait=1),
    }


def make_clients(protocol: str, server: BillingServer, ledger: minillm.Ledger) -> Dict[str, minillm.Client]:
    model = PROTOCOLS[protocol][0]
    common = client_options(protocol, server, ledger)
    return {
        "normal": minillm.Client(model, timeout=minillm.Timeout(read=10), **common),
        "impatient": minillm.Client(model, timeout=minillm.Timeout(read=0.3), **common),
        "deadline": minillm.Client(model, timeout=minillm.Timeout(read=10, total=0.4), **common),
    }


def assert_booked_as_billed(cost: minillm.CostInfo, line: InvoiceLine, *context: Any) -> None:
    """``cost`` against the invoice line of its attempt: ``RESOLVED`` is the
    line to the digit, ``PARTIAL`` never above it, anything else has no money."""
    if cost.resolution is minillm.Resolution.RESOLVED:
        assert (cost.usd, cost.prompt_tokens, cost.completion_tokens) == (
            line.usd,
            line.prompt_tokens,
            line.completion_tokens,
        ), (*context, cost, line)
    elif cost.resolution is minillm.Resolution.PARTIAL:
        assert cost.usd is not None and cost.usd <= line.usd, (*context, cost, line)
        assert cost.completion_tokens <= line.completion_tokens, (*context, cost, line)
    else:
        assert cost.usd is None, (*context, cost)


def test_the_ledger_matches_the_invoice_request_by_request(
    protocol: str, billed: Tuple[BillingServer, Invoice]
) -> None:
    server, invoice = billed
    rng = random.Random(f"invoice-{protocol}")
    work = [name for name in sorted(ENDINGS) for _ in range(ROUNDS)]
    rng.shuffle(work)
    tags = [f"r{n}" for n in range(len(work))]
    for name, tag in zip(work, tags):
        for plan in ENDINGS[name].plans:
            server.plan(attrs.evolve(plan, tag=tag, prompt_tokens=rng.randint(5, 50)))
    ledger = minillm.Ledger()
    clients = make_clients(protocol, server, ledger)
    errors: List[BaseException] = []
    queue = list(zip(work, tags))
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                if not queue:
                    return
                name, tag = queue.pop()
            ending = ENDINGS[name]
            try:
                options = {"extra_headers": {"X-Test-Tag": tag}, "meta": {"tag": tag}}
                ending.act(clients[ending.client], f"{name} ({tag})", options)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(AssertionError(f"{name} ({tag}): {type(exc).__name__}: {exc}"))

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    gc.collect()  # abandoned streams settle from their finalizers
    assert invoice.wait_final(timeout=30)
    for client in clients.values():
        assert client.flush(timeout=30)

    lines: Dict[Optional[str], List[InvoiceLine]] = defaultdict(list)
    for line in invoice.lines:
        lines[line.tag].append(line)
    bookings: Dict[str, List[minillm.CostInfo]] = defaultdict(list)
    for cost, meta in ledger.records:
        bookings[meta["tag"]].append(cost)
    assert set(bookings) <= set(tags)
    for name, tag in zip(work, tags):
        billed_lines = sorted(lines[tag], key=lambda line: line.arrival)
        booked = sorted(bookings[tag], key=lambda cost: cost.attempt)
        # every invoiced attempt booked exactly once, none extra
        assert len(booked) == len(billed_lines), (name, tag, booked, billed_lines)
        for cost, line in zip(booked, billed_lines):
            assert_booked_as_billed(cost, line, name)
        # An answer that arrived whole is known to the digit; on OpenRouter,
        # every attempt with a generation id is, through its look-up.
        last = booked[-1] if booked else None
        if name in COMPLETED or (protocol == "openrouter" and last is not None and last.response_id):
            assert last is not None and last.resolution is minillm.Resolution.RESOLVED, (name, last)
    for client in clients.values():
        client.close()
