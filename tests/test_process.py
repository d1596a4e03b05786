"""Accounting that survives the process model: the garbage collector
running on any thread, ``os.fork()`` (gunicorn --preload, uWSGI,
multiprocessing), Ctrl-C while a response is awaited, and the interpreter
exiting while a daemon thread is blocked reading."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import textwrap
import threading
import weakref
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, List

import pytest

import minillm
from minillm.testing import Gate, Hang, Reply, ScriptedServer, chat_chunk, chat_stream, chat_usage, sse

from .conftest import collect_garbage, finishes

ROOT = Path(__file__).resolve().parents[1]
needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")


def stalled() -> Reply:
    return Reply.sse([sse(chat_chunk(content="a")), Hang()])


# -- the collector, on any thread -----------------------------------------------------------------


class CollectingLock:
    """The ledger's lock, but the collector runs right after it is taken --
    as it may, at any allocation, on the thread that holds it."""

    def __init__(self, lock: Any) -> None:
        self.lock = lock
        self.armed = False

    def __enter__(self) -> CollectingLock:
        self.lock.acquire()
        if self.armed:
            self.armed = False
            gc.collect(0)  # the dropped stream is young: the cheap collection finds it
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.lock.release()


@pytest.mark.parametrize("query", ["records", "total", "totals_by", "count", "record"])
def test_a_stream_dropped_in_a_cycle_and_collected_inside_a_ledger_call_never_deadlocks(
    server: ScriptedServer, query: str
) -> None:
    ledger = minillm.Ledger()
    ledger.record(minillm.CostInfo(resolution=minillm.Resolution.UNKNOWN), {"user": 1})
    lock = CollectingLock(ledger._lock)
    ledger._lock = lock  # type: ignore[assignment]
    client = minillm.Client("openai/m", base_url=server.url, on_cost=ledger)
    server.route("POST", "/chat/completions", lambda request: stalled())
    asks: Callable[[], Any] = {
        "records": lambda: ledger.records,
        "total": ledger.total,
        "totals_by": lambda: ledger.totals_by("user"),
        "count": lambda: ledger.count,
        "record": lambda: ledger.record(minillm.CostInfo(resolution=minillm.Resolution.UNKNOWN), {}),
    }[query]
    gc.disable()  # only the armed lock collects
    try:
        for _ in range(20):
            stream = client.stream("Hi")
            next(iter(stream))
            stream.itself = stream  # type: ignore[attr-defined]  # a cycle: only the collector frees it
            alive = weakref.ref(stream)
            del stream
            lock.armed = True
            finishes(asks, within=10)
            assert alive() is None  # collected inside the ledger's call, on its thread, holding its lock
    finally:
        gc.enable()
    collect_garbage()
    dropped = [cost for cost, _ in ledger.records if cost.provider == "openai"]
    assert len(dropped) == 20 and all(cost.cancelled for cost in dropped)
    client.close()


# -- os.fork ----------------------------------------------------------------------------------------


def run_script(code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True, timeout=timeout, env=env
    )


#: A script that forks: ``argv`` is the server's URL and a SQLite ledger.
FORKING = """
import os, sys, time
import minillm

url, path = sys.argv[1], sys.argv[2]
ledger = minillm.SQLiteLedger(path)
client = minillm.Client(
    "openrouter/vendor/model", api_key="sk-or-test", base_url=url, on_cost=ledger,
    lookup=minillm.LookupPolicy(initial_delay=0.0, max_delay=0.05, timeout=20, exit_wait=0.5),
)
"""


def generations_gated(server: ScriptedServer, gate: Gate, cost: float = 0.0042) -> None:
    """/generation answers 404 until ``gate`` opens, then the record."""
    from minillm.testing import openrouter_generation

    def answer(request: Any) -> Reply:
        generation = request.query["id"][0]
        if not gate.event.is_set():
            return Reply.json({"error": {"message": "Generation not found", "code": 404}}, status=404)
        return Reply.json(openrouter_generation(generation, total_cost=cost))

    server.route("GET", "/generation", answer)


def control(server: ScriptedServer, gate: Gate) -> None:
    """``POST /open`` opens ``gate`` (so a script can say when)."""

    def open_gate(request: Any) -> Reply:
        gate.open()
        return Reply.json({})

    server.route("POST", "/open", open_gate)


@needs_fork
def test_a_forked_child_neither_books_nor_stops_what_the_parent_has_pending(
    server: ScriptedServer, tmp_path: Path
) -> None:
    gate = Gate()
    generations_gated(server, gate)
    control(server, gate)
    server.reply(Reply.sse([sse(chat_chunk(id="gen-cut", content="a")), Hang()]), path="/chat/completions")
    whole = chat_stream(["whole"], id="gen-open", usage=chat_usage(3, 1, cost=0.001))
    server.reply(Reply.sse([whole[0], Gate(gate.event), *whole[1:]]), path="/chat/completions")
    path = tmp_path / "costs.db"
    done = run_script(
        FORKING
        + """
import requests
cut = client.stream("Hi")
next(iter(cut))
cut.cancel()                # cut short: looked up, and the look-up waits (404) across the fork
held = client.stream("Hi")  # open, its body not yet sent, across the fork
child = os.fork()
if child == 0:
    sys.exit(0)             # a normal exit: the child's exit hook runs
os.waitpid(child, 0)
requests.post(url + "/open")  # now the body comes, and the look-up finds the cost
print("".join(held.text_stream()))
held.close()
print(client.flush(timeout=30))
""",
        server.url,
        str(path),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["whole", "True"], done.stderr
    costs = {cost.response_id: cost for cost, _ in minillm.SQLiteLedger(path).records}
    assert set(costs) == {"gen-cut", "gen-open"}  # the child booked nothing of the parent's
    assert (costs["gen-cut"].usd, costs["gen-cut"].source) == (Decimal("0.0042"), "lookup")
    assert (costs["gen-open"].usd, costs["gen-open"].cancelled) == (Decimal("0.001"), False)


@needs_fork
def test_a_forked_child_looks_up_its_own_costs_with_threads_of_its_own(server: ScriptedServer, tmp_path: Path) -> None:
    gate = Gate()
    gate.open()
    generations_gated(server, gate)
    server.route(
        "POST", "/chat/completions", lambda request: Reply.sse([sse(chat_chunk(id="gen-x", content="a")), Hang()])
    )
    path = tmp_path / "costs.db"
    done = run_script(
        FORKING
        + """
def cut_short():
    stream = client.stream("Hi")
    next(iter(stream))
    stream.cancel()

cut_short()
assert client.flush(timeout=10)   # the parent's look-up threads ran, and wait idle
child = os.fork()
if child == 0:
    cut_short()                   # the child's own look-up: its own threads must run it
    os._exit(0 if client.flush(timeout=10) else 3)
_, status = os.waitpid(child, 0)
print(os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else status >> 8)
""",
        server.url,
        str(path),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0"], done.stderr
    records = minillm.SQLiteLedger(path).records
    assert len(records) == 2 and all(cost.source == "lookup" for cost, _ in records)


# -- Ctrl-C, SystemExit, and the interpreter's exit --------------------------------------------------

INTERRUPTIBLE = """
import os, signal, sys, threading
import minillm

signal.signal(signal.SIGINT, signal.default_int_handler)  # whatever the test run was started with
signal.signal(signal.SIGTERM, lambda *args: sys.exit(3))
url, path = sys.argv[1], sys.argv[2]
ledger = minillm.SQLiteLedger(path)
client = minillm.Client("openai/m", base_url=url, on_cost=ledger)
"""


@pytest.mark.parametrize(("how", "raised", "code"), [("SIGINT", "KeyboardInterrupt", 0), ("SIGTERM", None, 3)])
@pytest.mark.parametrize("call", ["complete", "stream"])
def test_ctrl_c_or_an_exit_while_waiting_for_the_response_books_the_sent_attempt(
    server: ScriptedServer, tmp_path: Path, how: str, raised: Any, code: int, call: str
) -> None:
    gate = Gate()  # never opened: no response headers come
    server.reply(Reply.sse(chat_stream(["late"], usage=chat_usage(1, 1))).held(gate))
    path = tmp_path / "costs.db"
    script = (
        INTERRUPTIBLE
        + f"""
from minillm.transports.base import Exchange

marked = Exchange.mark_sent

def announced(self):  # say when the request is out (once): the signal must come after
    first = not self.sent
    marked(self)
    if first:
        print("sent", flush=True)

Exchange.mark_sent = announced
try:
    client.{call}("Hi")
except KeyboardInterrupt:
    print("KeyboardInterrupt")
"""
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen(
        [sys.executable, "-c", script, server.url, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None and process.stdout.readline() == "sent\n"
        process.send_signal(getattr(signal, how))
        out, err = process.communicate(timeout=30)
    finally:
        gate.open()
        if process.poll() is None:  # pragma: no cover - only when the test fails
            process.kill()
            process.communicate()
    assert process.returncode == code, err
    assert [line for line in out.split() if line != "sent"] == ([raised] if raised else []), err
    ((cost, _),) = minillm.SQLiteLedger(path).records  # it went out: it may be billed
    assert (cost.resolution, cost.failed) == (minillm.Resolution.UNKNOWN, True)


def test_the_exit_stops_a_daemon_thread_blocked_on_a_stalled_connection_close_server(
    server: ScriptedServer, tmp_path: Path
) -> None:
    server.reply(stalled().framed("chunked", keep_alive=False))
    path = tmp_path / "costs.db"
    done = run_script(
        INTERRUPTIBLE
        + """
reading = threading.Event()

def read():
    with client.stream("Hi") as stream:
        for _ in stream:
            reading.set()

threading.Thread(target=read, daemon=True).start()
assert reading.wait(10)
print("exiting")
""",
        server.url,
        str(path),
        timeout=15,  # the server would stall for 30s: the exit must not wait for it
    )
    assert done.returncode == 0 and done.stdout.split() == ["exiting"], done.stderr
    ((cost, _),) = minillm.SQLiteLedger(path).records
    assert cost.cancelled and cost.completion_tokens == 1
    assert server.requests[0].disconnected.wait(10)


def test_the_exit_waits_for_a_booking_another_thread_is_still_writing(server: ScriptedServer, tmp_path: Path) -> None:
    """A reader on a daemon thread has decided its booking and is inside the
    sink when the interpreter exits: nothing is left for the exit hook to
    book, and a daemon thread is frozen at shutdown -- unless the exit waits."""
    server.reply(Reply.sse(chat_stream(["a"], usage=chat_usage(1, 1))))
    path = tmp_path / "costs.db"
    done = run_script(
        """
import atexit, sys, threading
import minillm

url, path = sys.argv[1], sys.argv[2]
ledger = minillm.SQLiteLedger(path)
delivering, exiting = threading.Event(), threading.Event()

def slow_sink(cost, meta):
    delivering.set()
    assert exiting.wait(10)  # still writing when the exit begins
    ledger.record(cost, meta)

client = minillm.Client("openai/m", base_url=url, on_cost=slow_sink)

def read():
    with client.stream("Hi") as stream:
        list(stream)

threading.Thread(target=read, daemon=True).start()
assert delivering.wait(10)
atexit.register(exiting.set)  # after minillm's own exit hook: so it runs first
print("exiting")
""",
        server.url,
        str(path),
        timeout=30,
    )
    assert done.returncode == 0 and done.stdout.split() == ["exiting"], done.stderr
    ((cost, _),) = minillm.SQLiteLedger(path).records
    assert (cost.completion_tokens, cost.failed, cost.cancelled) == (1, False, False)


@pytest.mark.parametrize("stop", ["deadline", "cancel"])
def test_a_total_deadline_or_a_cancel_ends_a_wait_for_headers_that_drip_in(
    server: ScriptedServer, ledger: minillm.Ledger, stop: str
) -> None:
    headers = [(f"X-Drip-{n}", "x") for n in range(40)]  # one line every 0.25s: 10s in all
    server.reply(
        Reply.sse(chat_stream(["late"], usage=chat_usage(1, 1)), headers=headers).__class__(
            status=200,
            headers=(("Content-Type", "text/event-stream"), *headers),
            body=chat_stream(["late"], usage=chat_usage(1, 1)),
            header_pause=0.25,
        )
    )
    total = 0.6 if stop == "deadline" else None
    client = minillm.Client(
        "openai/m", base_url=server.url, on_cost=ledger, timeout=minillm.Timeout(read=5, total=total)
    )
    token = minillm.CancellationToken()
    if stop == "cancel":

        def cancel_once_sent() -> None:
            if server.wait_for_requests(1, 10):
                token.cancel()

        threading.Thread(target=cancel_once_sent, daemon=True).start()
    outcome: List[Any] = []

    def call() -> None:
        try:
            outcome.append(client.complete("Hi", cancel=token))
        except minillm.APITimeoutError as exc:
            outcome.append(exc)

    finishes(call, within=5)
    ((cost, _),) = ledger.records  # sent, never answered: it may be billed
    if stop == "deadline":
        assert isinstance(outcome[0], minillm.APITimeoutError) and "total deadline" in str(outcome[0])
        assert (cost.failed, cost.resolution) == (True, minillm.Resolution.UNKNOWN)
    else:
        assert outcome[0].finish_reason == "cancelled"
        assert (cost.cancelled, cost.resolution) == (True, minillm.Resolution.UNKNOWN)
    client.close()
