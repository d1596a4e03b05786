"""Interpreter exit: pending look-ups are resolved or booked UNKNOWN with
their generation id, and streams still open are settled -- the sink is
called exactly once either way. Each case runs in a fresh interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

import minillm
from minillm.testing import (
    Hang,
    Reply,
    ScriptedServer,
    chat_chunk,
    chat_stream,
    chat_usage,
    openrouter_generation,
    sse,
)

ROOT = Path(__file__).resolve().parents[1]

# The server runs in the test process: at interpreter exit the child can no
# longer start threads (Python 3.12+), as a real provider would not need to.
PRELUDE = """
import json, os, threading
import minillm

def sink(cost, meta):
    print("BOOKED " + json.dumps({
        "resolution": cost.resolution.value, "usd": None if cost.usd is None else str(cost.usd),
        "response_id": cost.response_id, "cancelled": cost.cancelled, "meta": meta,
    }), flush=True)

def client(**kwargs):
    kwargs.setdefault("on_cost", sink)
    kwargs.setdefault("lookup", minillm.LookupPolicy(initial_delay=0.05, max_delay=0.05, timeout=30, exit_wait=10))
    return minillm.Client("openrouter/x/y", api_key="sk-or-exit", base_url=os.environ["SERVER_URL"],
                          **kwargs)
"""

NOT_FOUND = Reply.json({"error": {"message": "Generation not found", "code": 404}}, status=404)


def hanging(generation_id: str) -> Reply:
    return Reply.sse(
        [sse(chat_chunk(id=generation_id, content="a")), Hang()], headers=[("X-Generation-Id", generation_id)]
    )


def run_child(server: ScriptedServer, body: str) -> Tuple[List[Dict[str, Any]], str]:
    code = PRELUDE + textwrap.dedent(body)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "NO_PROXY": "127.0.0.1",
        "no_proxy": "127.0.0.1",
        "SERVER_URL": server.url,
    }
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    booked = [json.loads(line[len("BOOKED ") :]) for line in result.stdout.splitlines() if line.startswith("BOOKED ")]
    return booked, result.stderr


def test_a_pending_look_up_is_resolved_before_the_interpreter_exits(server: ScriptedServer) -> None:
    answers = [NOT_FOUND, NOT_FOUND, Reply.json(openrouter_generation("gen-exit-1", total_cost=0.0025))]
    server.route("GET", "/generation", lambda request: answers.pop(0) if len(answers) > 1 else answers[0])
    server.reply(hanging("gen-exit-1"))
    booked, _ = run_child(
        server,
        """
        stream = client().stream("Hi", meta={"job": 1})
        next(iter(stream))
        stream.cancel()
        # no flush(): the exit hook must finish the look-up
        """,
    )
    assert booked == [
        {"resolution": "resolved", "usd": "0.0025", "response_id": "gen-exit-1", "cancelled": True, "meta": {"job": 1}}
    ]


def test_a_look_up_still_pending_after_the_exit_wait_is_booked_unknown_with_its_id_and_logged(
    server: ScriptedServer,
) -> None:
    server.route("GET", "/generation", lambda request: NOT_FOUND)
    server.reply(hanging("gen-exit-2"))
    booked, stderr = run_child(
        server,
        """
        import logging
        logging.basicConfig(level=logging.ERROR)
        policy = minillm.LookupPolicy(initial_delay=0.05, max_delay=0.05, timeout=300, exit_wait=0.3)
        client(lookup=policy).stream("Hi").cancel()
        """,
    )
    assert booked == [
        {"resolution": "unknown", "usd": None, "response_id": "gen-exit-2", "cancelled": True, "meta": {}}
    ]
    assert "ERROR:minillm.accounting:interpreter exiting: cost of generation gen-exit-2" in stderr


def test_a_look_up_pending_at_exit_after_output_is_booked_unknown_not_a_lower_bound(server: ScriptedServer) -> None:
    # What streamed would price as a lower bound; at exit the contract books
    # what is still pending UNKNOWN, with its id, all the same.
    server.route("GET", "/generation", lambda request: NOT_FOUND)
    server.reply(hanging("gen-exit-3"))
    booked, _ = run_child(
        server,
        """
        policy = minillm.LookupPolicy(initial_delay=0.05, max_delay=0.05, timeout=300, exit_wait=0.3)
        stream = client(lookup=policy, price=minillm.TokenPrice("1", "1")).stream("Hi")
        next(iter(stream))
        stream.cancel()
        """,
    )
    assert booked == [
        {"resolution": "unknown", "usd": None, "response_id": "gen-exit-3", "cancelled": True, "meta": {}}
    ]


def test_a_stream_still_open_at_exit_is_settled_once(server: ScriptedServer) -> None:
    record = Reply.json(openrouter_generation("gen-open", total_cost=0.001))
    server.route("GET", "/generation", lambda request: record)
    server.reply(hanging("gen-open"))
    booked, _ = run_child(
        server,
        """
        kept_open = client().stream("Hi")   # referenced by a global until the very end
        next(iter(kept_open))
        """,
    )
    assert booked == [
        {"resolution": "resolved", "usd": "0.001", "response_id": "gen-open", "cancelled": True, "meta": {}}
    ]


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_cost_settled_at_exit_reaches_a_durable_ledger(
    kind: str, server: ScriptedServer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # Two ways to lose this booking: a finalizer closing the ledger's
    # connection at exit (it is opened after the stream exists, so it
    # would run first), or the exit drain returning while the look-up
    # thread is still writing the booking (a slow database write).
    record = Reply.json(openrouter_generation("gen-durable", total_cost=0.002))
    server.route("GET", "/generation", lambda request: record)
    server.reply(hanging("gen-durable"))
    target = str(tmp_path / "costs.db") if kind == "sqlite" else request.getfixturevalue("postgres_dsn")
    opening = "SQLiteLedger" if kind == "sqlite" else "PostgresLedger"
    _, stderr = run_child(
        server,
        f"""
        ledger = minillm.{opening}({target!r})
        kept_open = client(on_cost=ledger).stream("Hi")
        next(iter(kept_open))
        ledger.count   # opens the connection now
        """,
    )
    assert "ERROR" not in stderr, stderr
    ledger = minillm.SQLiteLedger(target) if kind == "sqlite" else minillm.PostgresLedger(target)
    assert [(c.usd, c.response_id, c.cancelled) for c, _ in ledger.records] == [(Decimal("0.002"), "gen-durable", True)]
    ledger.close()


def test_a_daemon_thread_blocked_mid_stream_at_exit_is_settled_once(server: ScriptedServer) -> None:
    record = Reply.json(openrouter_generation("gen-daemon", total_cost=0.002))
    server.route("GET", "/generation", lambda request: record)
    server.reply(hanging("gen-daemon"))
    booked, _ = run_child(
        server,
        """
        started = threading.Event()
        def reader():
            for _ in client().stream("Hi"):
                started.set()
        threading.Thread(target=reader, daemon=True).start()
        started.wait(10)
        """,
    )
    assert booked == [
        {"resolution": "resolved", "usd": "0.002", "response_id": "gen-daemon", "cancelled": True, "meta": {}}
    ]


@pytest.mark.parametrize("outcome", ["completed", "abandoned"])
def test_streams_settled_before_exit_are_not_booked_again_by_the_exit_hook(
    outcome: str, server: ScriptedServer
) -> None:
    server.reply(Reply.sse(chat_stream(["done"], usage=chat_usage(3, 1, cost=0.0003))))
    server.route("GET", "/generation", lambda request: Reply.json(openrouter_generation("x", total_cost=0.001)))
    booked, _ = run_child(
        server,
        f"""
        stream = client().stream("Hi")
        if {outcome!r} == "completed":
            list(stream)
        else:
            del stream
        """,
    )
    assert len(booked) == 1
