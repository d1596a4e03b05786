"""Stop means stop: ``cancel()``, a token and a total deadline end a read
that is blocked on a stalled server -- whatever the framing of the body
(chunked, ``Content-Length``, read to the close), whether the server keeps
the connection alive or answers ``Connection: close``, over HTTP/1.1 or
HTTP/1.0, plain or TLS. Each case is checked for liveness (it returns, long
before the server would say anything more) and for what it books; how fast
it returns is measured by ``benchmarks/bench_cancel.py``, not here."""

from __future__ import annotations

import socket
import ssl
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Iterator, List, Tuple

import pytest

import minillm
from minillm.testing import Gate, Hang, Reply, ScriptedServer, chat_chunk, chat_stream, chat_usage, sse

from .conftest import finishes

PRICE = minillm.TokenPrice(input_per_mtok="1", output_per_mtok="2")
#: two pieces of output seen before the stall, at $2/M
SEEN = Decimal("0.000004")

#: (name, framing, keep_alive, HTTP version, TLS)
SHAPES: List[Tuple[str, str, bool, str, bool]] = [
    ("chunked keep-alive", "chunked", True, "1.1", False),
    ("chunked Connection: close", "chunked", False, "1.1", False),
    ("Content-Length keep-alive", "length", True, "1.1", False),
    ("Content-Length Connection: close", "length", False, "1.1", False),
    ("read to the close", "close", False, "1.1", False),
    ("HTTP/1.0 Content-Length", "length", False, "1.0", False),
    ("HTTP/1.0 read to the close", "close", False, "1.0", False),
    ("TLS chunked keep-alive", "chunked", True, "1.1", True),
    ("TLS chunked Connection: close", "chunked", False, "1.1", True),
    ("TLS HTTP/1.0 read to the close", "close", False, "1.0", True),
]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Tuple[ssl.SSLContext, Path]:
    """A server context for 127.0.0.1 and the file of the CA that signed it."""
    trustme = pytest.importorskip("trustme", reason="trustme (in the test extra) makes the loopback certificates")
    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    bundle = tmp_path_factory.mktemp("tls") / "ca.pem"
    authority.cert_pem.write_to_path(str(bundle))
    return context, bundle


@pytest.fixture(params=SHAPES, ids=[shape[0] for shape in SHAPES])
def shaped(
    request: pytest.FixtureRequest, certificate: Tuple[ssl.SSLContext, Path], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Tuple[ScriptedServer, Callable[[Reply], Reply]]]:
    """A server of one shape, and how to give a reply that shape."""
    _, framing, keep_alive, version, tls = request.param
    context, bundle = certificate
    if tls:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    with ScriptedServer(tls=context if tls else None) as server:
        yield server, lambda reply: reply.framed(framing, keep_alive=keep_alive, http_version=version)


def stalled() -> Reply:
    """Two pieces of output, then nothing until the client goes away. (The
    rest of the answer is never sent; with a ``Content-Length`` it counts in
    the length, as it would for a server that stalls mid-body.)"""
    rest = chat_stream(["never", "sent"], usage=chat_usage(1, 2))
    return Reply.sse([sse(chat_chunk(content="Hel")), sse(chat_chunk(content="lo")), Hang(), *rest])


def read_until_stalled(stream: minillm.TrackedStream, got_both: threading.Event) -> Callable[[], None]:
    def read() -> None:
        for _ in stream:
            if stream.text == "Hello":
                got_both.set()

    return read


@pytest.mark.parametrize("how", ["stream.cancel", "token.cancel", "token.pause"])
def test_stopping_a_stalled_read_from_another_thread_returns_and_books_what_was_seen(
    shaped: Tuple[ScriptedServer, Callable[[Reply], Reply]], ledger: minillm.Ledger, how: str
) -> None:
    server, shape = shaped
    server.reply(shape(stalled()))
    token = minillm.CancellationToken()
    client = minillm.Client("openai/m", base_url=server.url, price=PRICE, on_cost=ledger)
    got_both = threading.Event()
    with client.stream("Hi", cancel=token) as stream:
        stop = {"stream.cancel": stream.cancel, "token.cancel": token.cancel, "token.pause": token.pause}[how]

        def stop_when_stalled() -> None:
            if got_both.wait(10):
                stop()

        threading.Thread(target=stop_when_stalled, daemon=True).start()
        finishes(read_until_stalled(stream, got_both))
    assert stream.response is not None
    assert stream.response.finish_reason == ("paused" if how == "token.pause" else "cancelled")
    assert server.requests[0].disconnected.wait(10)  # the server was told, too
    ((cost, _),) = ledger.records
    assert (cost.cancelled, cost.failed, cost.resolution, cost.usd) == (True, False, minillm.Resolution.PARTIAL, SEEN)
    client.close()


def test_a_total_deadline_ends_a_stalled_read_as_a_timeout_and_books_what_was_seen(
    shaped: Tuple[ScriptedServer, Callable[[Reply], Reply]], ledger: minillm.Ledger
) -> None:
    server, shape = shaped
    server.reply(shape(stalled()))
    client = minillm.Client(
        "openai/m", base_url=server.url, price=PRICE, on_cost=ledger, timeout=minillm.Timeout(read=30, total=0.5)
    )
    caught: List[BaseException] = []

    def read() -> None:
        try:
            with client.stream("Hi") as stream:
                list(stream)
        except minillm.APITimeoutError as exc:
            caught.append(exc)

    finishes(read)
    (error,) = caught
    assert isinstance(error, minillm.StreamError) and error.partial_text == "Hello"
    assert "total deadline" in str(error)
    ((cost, _),) = ledger.records
    assert (cost.cancelled, cost.failed, cost.resolution, cost.usd) == (False, True, minillm.Resolution.PARTIAL, SEEN)
    client.close()


def test_a_read_timeout_clamped_by_the_deadline_is_reported_as_the_deadline(
    server: ScriptedServer, ledger: minillm.Ledger
) -> None:
    """The read timeout is cut to what is left of the deadline; when the
    socket gives up before the deadline's timer has fired, it is still the
    deadline that ended the call. The timer thread is held busy to make that
    race certain."""
    from minillm import runtime

    server.reply(stalled())
    client = minillm.Client(
        "openai/m", base_url=server.url, price=PRICE, on_cost=ledger, timeout=minillm.Timeout(read=30, total=0.5)
    )
    timers_free = threading.Event()
    runtime.timers.call_at(0, lambda: timers_free.wait(30))
    try:
        with pytest.raises(minillm.APITimeoutError, match=r"total deadline of 0\.5s") as caught:
            with client.stream("Hi") as stream:
                list(stream)
    finally:
        timers_free.set()
    assert isinstance(caught.value, minillm.StreamError) and caught.value.partial_text == "Hello"
    ((cost, _),) = ledger.records
    assert (cost.failed, cost.resolution, cost.usd) == (True, minillm.Resolution.PARTIAL, SEEN)
    client.close()


def test_a_cancel_while_waiting_for_the_headers_returns_and_books_the_sent_request(
    shaped: Tuple[ScriptedServer, Callable[[Reply], Reply]], ledger: minillm.Ledger
) -> None:
    server, shape = shaped
    server.reply(shape(Reply.sse([sse(chat_chunk(content="late"))]).held(Gate())))
    token = minillm.CancellationToken()
    client = minillm.Client("openai/m", base_url=server.url, price=PRICE, on_cost=ledger)

    def cancel_once_sent() -> None:
        if server.wait_for_requests(1, 10):
            token.cancel()

    threading.Thread(target=cancel_once_sent, daemon=True).start()
    result: List[Any] = []
    finishes(lambda: result.append(client.complete("Hi", cancel=token)))
    assert result[0].finish_reason == "cancelled"
    ((cost, _),) = ledger.records  # it had gone out: it may be billed
    assert (cost.cancelled, cost.resolution, cost.usd) == (True, minillm.Resolution.UNKNOWN, None)
    client.close()


# -- never reached: nothing is booked ----------------------------------------------------------


def test_a_server_whose_certificate_is_not_trusted_was_never_reached_and_books_nothing(
    certificate: Tuple[ssl.SSLContext, Path],
) -> None:
    # The handshake fails before a byte of the request is written: the
    # provider never saw it, so there is nothing it could bill.
    context, _ = certificate
    ledger = minillm.Ledger()
    with ScriptedServer(tls=context) as server:
        server.reply(Reply.sse(chat_stream(["never"], usage=chat_usage(1, 1))))
        client = minillm.Client("openai/m", base_url=server.url, api_key="k", on_cost=ledger, max_retries=0)
        with pytest.raises(minillm.APIConnectionError) as caught:
            client.complete("Hi")
        client.close()
        assert server.requests == []
    assert not isinstance(caught.value, minillm.APITimeoutError)
    assert ledger.count == 0


def test_a_handshake_that_never_finishes_is_a_connect_timeout_and_books_nothing() -> None:
    # A TLS server that accepts the connection and never answers the hello:
    # the request is never written, however long the client waits.
    ledger = minillm.Ledger()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        url = f"https://127.0.0.1:{listener.getsockname()[1]}"
        client = minillm.Client(
            "openai/m",
            base_url=url,
            api_key="k",
            on_cost=ledger,
            max_retries=0,
            timeout=minillm.Timeout(connect=0.2, read=30),
        )
        with pytest.raises(minillm.APITimeoutError):
            finishes(lambda: client.complete("Hi"))
        client.close()
    assert ledger.count == 0
