"""The transport: sending, reading bodies, translating failures, and
interrupting a read that is blocked on the network."""

from __future__ import annotations

import threading
from typing import Callable, List, Union

import pytest

import minillm
from minillm.cancellation import Stop
from minillm.errors import StreamTimeoutError
from minillm.redaction import Redactor
from minillm.testing import Drop, Gate, Hang, Pause, Reply, ScriptedServer, chat_chunk, chat_stream, chat_usage, sse
from minillm.transports import HTTPRequest, endpoint_of
from minillm.transports.http import HTTPTransport

from .conftest import finishes


def post(server: ScriptedServer, path: str = "/x") -> HTTPRequest:
    return HTTPRequest(method="POST", url=server.url + path, headers={"Content-Type": "application/json"}, body=b"{}")


@pytest.fixture
def transport() -> HTTPTransport:
    return HTTPTransport(redactor=Redactor(["sk-canary-transport"]))


def test_the_body_arrives_piece_by_piece_as_sent(server: ScriptedServer, transport: HTTPTransport) -> None:
    server.reply(Reply(body=[b"one", b"two", b"three"]))
    response = transport.send(post(server), timeouts=(5, 5))
    assert response.status == 200
    assert b"".join(response.iter_bytes()) == b"onetwothree"
    response.close()


def test_interrupt_wakes_a_read_blocked_on_a_silent_server(server: ScriptedServer, transport: HTTPTransport) -> None:
    server.reply(Reply(body=[b"first", Hang()]))
    response = transport.send(post(server), timeouts=(5, 30))
    received: List[bytes] = []
    got_first = threading.Event()

    def read() -> None:
        for piece in response.iter_bytes():
            received.append(piece)
            got_first.set()

    reader = threading.Thread(target=read)
    reader.start()
    assert got_first.wait(10)
    finishes(lambda: response.interrupt(Stop.CANCELLED))
    reader.join(10)
    assert not reader.is_alive()
    assert received == [b"first"] and response.interrupted is Stop.CANCELLED
    response.close()
    assert server.requests[0].disconnected.wait(10)


def test_interrupting_a_finished_response_leaves_the_pooled_connection_alone(
    server: ScriptedServer, transport: HTTPTransport
) -> None:
    server.reply(Reply(body=[b"done"]), Reply(body=[b"again"]))
    first = transport.send(post(server), timeouts=(5, 5))
    assert first.read() == b"done"
    assert first.interrupt(Stop.CANCELLED) is False  # already back in the pool: not ours to shut
    first.close()
    second = transport.send(post(server), timeouts=(5, 5))
    assert second.read() == b"again"
    second.close()
    assert server.requests[0].client_address == server.requests[1].client_address


def test_a_deadline_interrupt_is_a_timeout_error(server: ScriptedServer, transport: HTTPTransport) -> None:
    server.reply(Reply(body=[b"first", Hang()]))
    response = transport.send(post(server), timeouts=(5, 30))
    pieces = response.iter_bytes()
    assert next(pieces) == b"first"
    threading.Timer(0.05, lambda: response.interrupt(Stop.DEADLINE)).start()
    with pytest.raises(StreamTimeoutError, match="total deadline"):
        next(pieces)
    response.close()


def test_a_connection_dropped_mid_body_is_a_stream_error(server: ScriptedServer, transport: HTTPTransport) -> None:
    server.reply(Reply(body=[b"partial", Drop()]))
    response = transport.send(post(server), timeouts=(5, 5))
    with pytest.raises(minillm.StreamError, match="connection failed while reading"):
        response.read()
    response.close()


def test_silence_mid_body_longer_than_the_read_timeout_is_a_timeout_and_a_stream_error(
    server: ScriptedServer, transport: HTTPTransport
) -> None:
    gate = Gate()
    server.reply(Reply(body=[b"first", gate, b"too late"]))
    response = transport.send(post(server), timeouts=(5, 0.2))
    try:
        with pytest.raises(minillm.APITimeoutError) as caught:
            response.read()
    finally:
        gate.open()
    assert isinstance(caught.value, minillm.StreamError)
    assert isinstance(caught.value, TimeoutError)
    response.close()


def test_a_server_that_never_answers_is_a_timeout_before_the_first_byte(
    server: ScriptedServer, transport: HTTPTransport
) -> None:
    gate = Gate()
    server.reply(Reply(body=[b"late"]).held(gate))
    try:
        with pytest.raises(minillm.APITimeoutError, match=r"sent no response within 0\.2s") as caught:
            transport.send(post(server), timeouts=(5, 0.2))
    finally:
        gate.open()
    assert not isinstance(caught.value, minillm.StreamError)


def test_a_refused_connection_is_a_connection_error(transport: HTTPTransport) -> None:
    import socket

    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    request = HTTPRequest(method="GET", url=f"http://127.0.0.1:{port}/x")
    with pytest.raises(minillm.APIConnectionError, match=f"could not reach 127.0.0.1:{port}") as caught:
        transport.send(request, timeouts=(5, 5))
    assert not isinstance(caught.value, minillm.APITimeoutError)


def test_a_malformed_url_is_a_configuration_error(transport: HTTPTransport) -> None:
    with pytest.raises(minillm.ConfigurationError):
        transport.send(HTTPRequest(method="GET", url="http://[::1"), timeouts=(1, 1))


def test_a_header_with_a_line_break_is_an_invalid_argument(server: ScriptedServer, transport: HTTPTransport) -> None:
    request = HTTPRequest(method="GET", url=server.url + "/x", headers={"X-Bad": "a\r\nInjected: yes"})
    with pytest.raises(minillm.InvalidArgumentError):
        transport.send(request, timeouts=(1, 1))


def test_the_transport_stays_usable_after_close(server: ScriptedServer, transport: HTTPTransport) -> None:
    server.reply(Reply(body=[b"a"]), Reply(body=[b"b"]))
    assert transport.send(post(server), timeouts=(5, 5)).read() == b"a"
    transport.close()
    assert transport.send(post(server), timeouts=(5, 5)).read() == b"b"


def test_endpoints_never_carry_the_query_string() -> None:
    assert endpoint_of("https://h.example/v1/x?key=secret#frag") == "https://h.example/v1/x"


def test_a_request_repr_hides_headers_and_body() -> None:
    request = HTTPRequest(method="POST", url="https://h/x", headers={"Authorization": "Bearer sk-1"}, body=b"secret")
    assert "sk-1" not in repr(request) and "secret" not in repr(request)


# -- deadlines through the client ------------------------------------------------------------------


def test_a_total_deadline_stops_a_stream_that_keeps_dripping(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    drip: List[Union[bytes, Pause]] = []
    for n in range(400):
        drip += [sse(chat_chunk(content=f"{n} ")), Pause(0.01)]
    server.reply(Reply.sse(drip))
    client = make_client(timeout=minillm.Timeout(read=5, total=0.5))
    with pytest.raises(minillm.APITimeoutError) as caught:
        with client.stream("Hi") as stream:
            for _ in stream:
                pass
    assert isinstance(caught.value, minillm.StreamError) and caught.value.partial_text.startswith("0 1 ")
    # The provider billed what it generated: the attempt is booked as failed,
    # with the output it was seen to produce (one token a chunk, at least).
    ((cost, _),) = ledger.records
    seen = len(caught.value.partial_text.split())
    assert cost.failed and not cost.cancelled and cost.resolution is minillm.Resolution.UNKNOWN
    assert cost.completion_tokens == seen


def test_silence_mid_stream_is_a_timeout_and_books_what_was_seen(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    gate = Gate()
    server.reply(Reply.sse([sse(chat_chunk(content="hello")), gate, *chat_stream(["late"], usage=chat_usage(1, 1))]))
    client = make_client(timeout=minillm.Timeout(read=0.2))
    try:
        with pytest.raises(minillm.APITimeoutError, match=r"no data arrived for 0\.2s") as caught:
            with client.stream("Hi") as stream:
                list(stream)
    finally:
        gate.open()
    assert caught.value.partial_text == "hello"  # type: ignore[attr-defined]
    ((cost, _),) = ledger.records
    assert cost.failed and cost.resolution is minillm.Resolution.UNKNOWN and cost.completion_tokens == 1


def test_a_number_as_timeout_is_the_read_timeout() -> None:
    assert minillm.Timeout.coerce(3) == minillm.Timeout(read=3.0)
    assert minillm.Timeout.coerce(None) == minillm.Timeout()
    with pytest.raises(minillm.InvalidArgumentError):
        minillm.Timeout(read=0)
    with pytest.raises(minillm.InvalidArgumentError):
        minillm.Timeout(total=-1)
    with pytest.raises(minillm.InvalidArgumentError):
        minillm.Timeout.coerce("5")  # type: ignore[arg-type]
