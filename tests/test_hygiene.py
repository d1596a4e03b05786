"""Hygiene under failure: streams that are cancelled, fail or are abandoned
give back their sockets, threads and pool slots."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

import minillm
from minillm.testing import Drop, Hang, Reply, ScriptedServer, chat_stream, chat_usage

from .conftest import collect_garbage, finishes

FD_DIR = Path(f"/proc/{os.getpid()}/fd")
needs_proc = pytest.mark.skipif(not FD_DIR.is_dir(), reason="counting open files needs /proc (Linux)")


def open_fds() -> int:
    return len(os.listdir(FD_DIR))


def settled(server: ScriptedServer) -> None:
    """Wait until the server has finished with every request, so its own
    sockets and threads are not counted as ours, and collect what earlier
    tests dropped, so its closing is not counted either."""
    for request in list(server.requests):
        assert request.finished.wait(10), f"the server is still busy with {request!r}"
    collect_garbage()


def stalled() -> Reply:
    return Reply.sse([*chat_stream(["first"], finish_reason=None, done=False), Hang()])


@needs_proc
def test_a_thousand_streams_cancelled_after_their_first_chunk_leak_nothing(
    server: ScriptedServer, ledger: minillm.Ledger
) -> None:
    server.route("POST", "/chat/completions", lambda request: stalled())
    client = minillm.Client("openai/test-model", base_url=server.url, on_cost=ledger)
    with client.stream("warm up") as stream:
        next(iter(stream))
    settled(server)
    fds, threads = open_fds(), threading.active_count()

    for _ in range(1000):
        stream = client.stream("go")
        assert next(iter(stream)).text == "first"
        stream.cancel()

    settled(server)
    assert open_fds() <= fds
    assert threading.active_count() <= threads
    assert ledger.count == 1001 and all(cost.cancelled for cost, _ in ledger.records)
    # The pool is not exhausted: a whole answer still comes back at once.
    server.reply(Reply.sse(chat_stream(["fine"], usage=chat_usage(1, 1))), path="/chat/completions")
    finishes(lambda: client.stream("again").collect())
    client.close()


@needs_proc
def test_failed_and_abandoned_streams_leak_no_socket(server: ScriptedServer, ledger: minillm.Ledger) -> None:
    client = minillm.Client("openai/test-model", base_url=server.url, on_cost=ledger)
    server.reply(Reply.sse(chat_stream(["warm"], usage=chat_usage(1, 1))))
    client.stream("warm up").collect()
    settled(server)
    fds = open_fds()

    for _ in range(100):
        server.reply(Reply.sse([*chat_stream(["a"], finish_reason=None, done=False), Drop()]))
        with pytest.raises(minillm.StreamError):
            client.stream("fails").collect()
        server.reply(stalled())
        next(iter(client.stream("abandoned")))  # dropped at once: the finalizer settles it

    settled(server)
    assert client.flush(timeout=10)  # the abandoned streams are settled on the settler's thread
    assert open_fds() <= fds + 1  # at most the one pooled keep-alive connection
    # the warm-up, the failures as failed, and the abandoned ones as cancellations
    assert ledger.count == 201
    assert sum(cost.failed for cost, _ in ledger.records) == 100
    assert sum(cost.cancelled for cost, _ in ledger.records) == 100
    client.close()


def test_a_failed_stream_that_is_dropped_is_freed_and_booked(server: ScriptedServer, ledger: minillm.Ledger) -> None:
    import weakref

    client = minillm.Client("openai/test-model", base_url=server.url, on_cost=ledger)
    server.reply(Reply.sse([*chat_stream(["a"], finish_reason=None, done=False), Drop()]))
    stream = client.stream("fails")
    alive = weakref.ref(stream)
    with pytest.raises(minillm.StreamError):
        stream.collect()
    del stream
    collect_garbage()
    # Its error (kept to raise again) must not keep it alive: then its
    # finalizer, which books it, would never run.
    assert alive() is None
    ((cost, _),) = ledger.records
    assert cost.failed
    client.close()
