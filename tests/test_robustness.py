"""What real networks and odd servers do: wrong-shaped JSON, gzip bodies,
cancellation at every stage of a call, proxies, and races between threads."""

from __future__ import annotations

import gzip
import json
import sys
import threading
import time
from decimal import Decimal
from typing import Any, Callable, List

import pytest

import minillm
from minillm import Resolution
from minillm.testing import (
    Gate,
    Hang,
    Reply,
    ScriptedServer,
    chat_chunk,
    chat_completion,
    chat_stream,
    chat_usage,
    sse,
)
from minillm.transports.http import _shutdown

from .conftest import finishes

PRICE = minillm.TokenPrice(input_per_mtok="1", output_per_mtok="2")
USAGE = chat_usage(10, 3)


# -- valid JSON of the wrong shape is malformed, never a foreign exception --------------------


def chunk_with(**fields: Any) -> bytes:
    base = chat_chunk(content="x")
    base.update(fields)
    return sse(base)


WRONG_SHAPES = {
    "delta is a string": chunk_with(choices=[{"index": 0, "delta": "oops", "finish_reason": None}]),
    "choices is an object": chunk_with(choices={"0": {}}),
    "usage is a list": chunk_with(usage=[1, 2]),
    "usage details are a list": chunk_with(usage={"prompt_tokens": 1, "prompt_tokens_details": [0]}),
    "finish_reason is a list": chunk_with(choices=[{"index": 0, "delta": {}, "finish_reason": ["stop"]}]),
    "content is a number": chunk_with(choices=[{"index": 0, "delta": {"content": 42}, "finish_reason": None}]),
    "a chunk is a list": b"data: [1, 2, 3]\n\n",
    "nested beyond reason": b"data: " + b"[" * 100_000 + b"]" * 100_000 + b"\n\n",
}


@pytest.mark.parametrize("frame", list(WRONG_SHAPES.values()), ids=list(WRONG_SHAPES))
def test_a_stream_chunk_of_the_wrong_shape_is_a_stream_error_booked_as_failed(
    frame: bytes, server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(Reply.sse([sse(chat_chunk(content="ok ")), frame, *chat_stream(["more"], usage=USAGE)]))
    with pytest.raises(minillm.StreamError, match="could not be parsed") as caught:
        with make_client().stream("Hi") as stream:
            list(stream)
    assert caught.value.partial_text == "ok "
    ((cost, _),) = ledger.records  # the answer had begun: it may be billed
    assert cost.failed and cost.completion_tokens == 1 and cost.resolution is minillm.Resolution.UNKNOWN


@pytest.mark.parametrize(
    "body",
    [
        {"choices": "none"},
        {"choices": [{"message": "oops"}]},
        {"choices": [{"message": {"content": "x"}, "finish_reason": "stop"}], "usage": "lots"},
        {"choices": [{"message": {"content": "x", "tool_calls": [{"function": "f"}]}}]},
        [1, 2],
    ],
)
def test_a_complete_body_of_the_wrong_shape_is_malformed_and_booked_as_failed(
    body: Any, server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(Reply.json(body))
    with pytest.raises(minillm.MalformedResponseError):
        make_client().complete("Hi")
    # The API answered with a success status: the request may be billed.
    ((cost, _),) = ledger.records
    assert cost.failed and cost.resolution is minillm.Resolution.UNKNOWN


@pytest.mark.parametrize(
    ("mode", "content_type"), [("stream", "text/plain"), ("complete", "text/plain"), ("complete", "")]
)
def test_a_whole_json_answer_under_a_media_type_that_does_not_say_json_is_read_and_booked(
    mode: str,
    content_type: str,
    server: ScriptedServer,
    make_client: Callable[..., minillm.Client],
    ledger: minillm.Ledger,
) -> None:
    """Some compatible servers label JSON ``text/plain`` or not at all; a
    body that parses is the API's answer, billed like any other."""
    body = json.dumps(chat_completion("fine", usage=USAGE)).encode()
    server.reply(Reply(headers=(("Content-Type", content_type),) if content_type else (), body=[body]))
    client = make_client()
    if mode == "stream":
        with client.stream("Hi") as stream:
            assert "".join(stream.text_stream()) == "fine"
    else:
        assert client.complete("Hi").text == "fine"
    ((cost, _),) = ledger.records
    assert (cost.prompt_tokens, cost.completion_tokens, cost.failed) == (10, 3, False)


def test_content_given_as_typed_parts_is_read_as_text_and_thinking(
    server: ScriptedServer, make_client: Callable[..., minillm.Client]
) -> None:
    parts = [{"type": "thinking", "thinking": [{"type": "text", "text": "hmm "}]}, {"type": "text", "text": "Hi!"}]
    server.reply(
        Reply.sse(
            [
                sse(chat_chunk(content=None) | {"choices": [{"index": 0, "delta": {"content": parts}}]}),
                *chat_stream([], usage=USAGE),
            ]
        )
    )
    with make_client().stream("Hi") as stream:
        list(stream)
    assert stream.response is not None
    assert (stream.response.text, stream.response.thinking) == ("Hi!", "hmm ")


def test_tool_call_indexes_that_are_not_integers_fall_back_to_their_position(
    server: ScriptedServer, make_client: Callable[..., minillm.Client]
) -> None:
    calls = [{"index": "1", "id": "c1", "function": {"name": "f", "arguments": "{}"}}]
    server.reply(Reply.sse([sse(chat_chunk(tool_calls=calls)), *chat_stream([], usage=USAGE)]))
    with make_client().stream("Hi") as stream:
        list(stream)
    assert stream.response is not None
    assert stream.response.tool_calls == [minillm.ToolCall(id="c1", name="f", arguments="{}")]


def test_an_empty_data_event_is_legal_and_ignored(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(Reply.sse([b"data:\n\n", *chat_stream(["fine"], usage=USAGE)]))
    with make_client().stream("Hi") as stream:
        assert "".join(stream.text_stream()) == "fine"
    assert ledger.count == 1


def test_a_request_that_is_not_json_is_an_invalid_argument(
    server: ScriptedServer, make_client: Callable[..., minillm.Client]
) -> None:
    with pytest.raises(minillm.InvalidArgumentError, match="cannot be sent as JSON"):
        make_client().complete("Hi", extra_body={"budget": Decimal("1.5")})
    with pytest.raises(minillm.InvalidArgumentError, match="cannot be sent as JSON"):
        make_client().complete("Hi", extra_body={"seed": float("nan")})
    assert server.requests == []


# -- bodies as real servers send them ------------------------------------------------------------


def test_a_gzip_body_with_a_content_length_is_decompressed(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    body = gzip.compress(json.dumps(chat_completion("unzipped", usage=USAGE)).encode())
    server.reply(
        Reply(
            headers=(("Content-Type", "application/json"), ("Content-Encoding", "gzip")), body=[body], framing="length"
        )
    )
    assert make_client(price=PRICE).complete("Hi").text == "unzipped"
    assert ledger.records[0][0].usd == Decimal("0.000016")


def test_a_stream_sent_with_a_content_length_instead_of_chunks_parses_the_same(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(
        Reply(
            headers=(("Content-Type", "text/event-stream"),),
            body=chat_stream(["a", "b"], usage=USAGE),
            framing="length",
        )
    )
    with make_client().stream("Hi") as stream:
        assert "".join(stream.text_stream()) == "ab"
    assert ledger.count == 1


# -- cancellation at every stage ----------------------------------------------------------------


def test_a_token_cancels_a_complete_call_still_waiting_for_its_response(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    gate = Gate()
    server.reply(Reply.json(chat_completion("too late", usage=USAGE)).held(gate))
    token = minillm.CancellationToken()
    results: List[minillm.Response] = []
    caller = threading.Thread(target=lambda: results.append(make_client().complete("Hi", cancel=token)))
    caller.start()
    assert server.wait_for_requests(1)
    finishes(token.cancel)
    caller.join(10)
    gate.open()
    assert not caller.is_alive()
    assert results[0].finish_reason == "cancelled" and results[0].text == ""
    assert server.requests[0].disconnected.wait(10) or server.requests[0].finished.wait(10)
    cost = ledger.records[0][0]  # the request went out: it may cost, so it is booked
    assert (ledger.count, cost.resolution, cost.cancelled) == (1, Resolution.UNKNOWN, True)


def test_a_token_cancels_a_stream_still_waiting_for_its_headers(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    gate = Gate()
    server.reply(Reply.sse(chat_stream(["late"], usage=USAGE)).held(gate))
    token = minillm.CancellationToken()
    streams: List[minillm.TrackedStream] = []
    caller = threading.Thread(target=lambda: streams.append(make_client().stream("Hi", cancel=token)))
    caller.start()
    assert server.wait_for_requests(1)
    token.pause()
    caller.join(10)
    gate.open()
    assert not caller.is_alive()
    [stream] = streams
    assert list(stream) == []
    assert stream.response is not None and stream.response.finish_reason == "paused"
    assert ledger.count == 1 and ledger.records[0][0].cancelled


def test_a_token_cancels_a_retry_backoff_without_sending_again(server: ScriptedServer, ledger: minillm.Ledger) -> None:
    server.reply(Reply.json({"error": {"message": "busy"}}, status=503, headers=(("Retry-After", "30"),)))
    token = minillm.CancellationToken()
    backing_off = threading.Event()
    client = minillm.Client(  # the real, interruptible sleep
        "openai/m", base_url=server.url, on_cost=ledger, on_retry=lambda *args: backing_off.set()
    )
    results: List[minillm.Response] = []
    caller = threading.Thread(target=lambda: results.append(client.complete("Hi", cancel=token)))
    caller.start()
    assert backing_off.wait(10)
    started = time.monotonic()
    token.cancel()
    caller.join(10)
    assert not caller.is_alive() and time.monotonic() - started < 10
    assert results[0].finish_reason == "cancelled"
    assert len(server.requests) == 1 and ledger.count == 0  # the failed attempt cost nothing


def test_cancelling_while_the_reader_is_between_chunks_never_breaks_the_reader(
    server: ScriptedServer, make_client: Callable[..., minillm.Client]
) -> None:
    booked = threading.Event()

    def slow_sink(cost: minillm.CostInfo, meta: dict) -> None:  # type: ignore[type-arg]
        booked.wait(2)  # the canceller is inside the stream's settlement for a while

    for _ in range(5):
        booked.clear()
        server.reply(Reply.sse([*(sse(chat_chunk(content=str(n))) for n in range(50)), Hang()]))
        stream = make_client(on_cost=slow_sink).stream("Hi")
        errors: List[BaseException] = []
        canceller = threading.Thread(target=stream.cancel)
        try:
            for n, _ in enumerate(stream):
                if n == 3:
                    canceller.start()
        except BaseException as exc:  # pragma: no cover - the failure being tested for
            errors.append(exc)
        booked.set()
        canceller.join(10)
        assert errors == []


# -- races ----------------------------------------------------------------------------------------


def test_every_racing_settle_returns_the_same_cost(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    client = make_client(price=PRICE)
    for _ in range(10):
        server.reply(Reply.sse([sse(chat_chunk(content="a", usage=USAGE)), Hang()]))
        stream = client.stream("Hi")
        next(iter(stream))
        barrier = threading.Barrier(8)
        returned: List[Any] = []

        def settle(
            stream: minillm.TrackedStream = stream, barrier: threading.Barrier = barrier, returned: List[Any] = returned
        ) -> None:
            barrier.wait(10)
            returned.append(stream.settle())

        threads = [threading.Thread(target=settle) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert len(returned) == 8 and returned[0] is not None
        assert all(cost is returned[0] for cost in returned)
    assert ledger.count == 10


def test_two_threads_learning_that_a_server_rejects_stream_options_both_succeed(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    rejection = Reply.json({"error": {"message": "Unknown parameter: 'stream_options'."}}, status=400)
    gates = [Gate(), Gate()]
    server.reply(rejection.held(gates[0]), rejection.held(gates[1]))
    server.route("POST", "/chat/completions", lambda request: Reply.sse(chat_stream(["ok"], usage=None)))
    client = make_client()
    errors: List[BaseException] = []

    def read() -> None:
        try:
            with client.stream("Hi") as stream:
                list(stream)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(2)]
    for thread in threads:
        thread.start()
    assert server.wait_for_requests(2)  # both were sent with stream_options
    for gate in gates:
        gate.open()
    for thread in threads:
        thread.join(10)
    assert errors == [] and ledger.count == 2


def test_reading_the_text_from_another_thread_loses_nothing() -> None:
    from minillm.accumulate import StreamState, accumulate

    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        state = StreamState()
        done = threading.Event()

        def poll() -> None:
            while not done.is_set():
                _ = state.text

        poller = threading.Thread(target=poll)
        poller.start()
        for n in range(20_000):
            accumulate(state, minillm.Chunk(text=f"{n},"))
        done.set()
        poller.join(10)
    finally:
        sys.setswitchinterval(previous)
    assert state.text == "".join(f"{n}," for n in range(20_000))


# -- keys, proxies, tunnels ----------------------------------------------------------------------


def test_a_key_read_from_a_file_with_its_newline_works(server: ScriptedServer) -> None:
    server.reply(Reply.json(chat_completion("ok")))
    minillm.Client("openai/m", api_key="sk-from-file\n", base_url=server.url).complete("Hi")
    assert server.requests[0].headers["authorization"] == "Bearer sk-from-file"


def test_a_key_with_whitespace_inside_is_refused_without_repeating_it() -> None:
    with pytest.raises(minillm.ConfigurationError) as caught:
        minillm.Client("openai/m", api_key="sk-canary-ws\nX-Injected: 1")
    assert "canary" not in str(caught.value) and "whitespace" in str(caught.value)


def test_a_foreign_error_quoting_a_secret_is_not_chained(server: ScriptedServer) -> None:
    import traceback

    key = "-".join(["sk", "canary", "chain", "0042"])  # never literally in a traceback's source lines
    client = minillm.Client("openai/m", api_key=key, base_url=server.url)
    with pytest.raises(minillm.InvalidArgumentError) as caught:
        client.complete("Hi", extra_headers={"X-Echo": key + "\r\nInjected: 1"})
    printed = "".join(traceback.format_exception(type(caught.value), caught.value, caught.value.__traceback__))
    assert key not in printed


def test_loopback_never_goes_through_a_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from minillm.demo import run_demo

    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert run_demo(io.StringIO(), delay=0).count == 1


def test_a_tunnelled_tls_socket_is_shut_down_through_the_socket_it_wraps() -> None:
    calls: List[int] = []

    class RealSocket:
        def shutdown(self, how: int) -> None:
            calls.append(how)

    class Tunnel:  # like urllib3's SSLTransport: no shutdown of its own
        socket = RealSocket()

    _shutdown(Tunnel())
    _shutdown(object())  # nothing to shut down: no error either
    assert len(calls) == 1


# -- bad input is a minillm error, never a foreign one ----------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"base_url": 5}, "base_url must be a string"),
        ({"base_url": "http://127.0.0.1:9/v1?api_key=sk-canary-q"}, "query string"),
        ({"base_url": "http://user:sk-canary-u@127.0.0.1:9/v1"}, "credentials"),
        ({"base_url": "http://127.0.0.1:9/v1#frag"}, "fragment"),
        ({"timeout": 1e12}, "up to a year"),
        ({"timeout": minillm.Timeout}, "timeout must be"),
    ],
)
def test_bad_client_arguments_are_configuration_errors_that_never_show_a_key(kwargs: Any, match: str) -> None:
    with pytest.raises(minillm.ConfigurationError, match=match) as caught:
        minillm.Client("openai/m", api_key="sk-canary-q", **kwargs)
    assert "canary" not in str(caught.value)


def test_deadlines_beyond_a_year_are_refused_before_they_reach_a_timer() -> None:
    with pytest.raises(minillm.InvalidArgumentError):
        minillm.Timeout(total=1e300)


def test_flush_wants_a_number(make_client: Callable[..., minillm.Client]) -> None:
    with pytest.raises(minillm.InvalidArgumentError):
        make_client().flush("soon")  # type: ignore[arg-type]


def test_two_threads_reading_one_stream_get_a_clear_error(
    server: ScriptedServer, make_client: Callable[..., minillm.Client]
) -> None:
    gate = Gate()
    server.reply(Reply.sse([sse(chat_chunk(content="a")), gate, *chat_stream(["b"], usage=USAGE)]))
    stream = make_client().stream("Hi")
    first = iter(stream)
    assert next(first).text == "a"
    reader = threading.Thread(target=lambda: list(first))
    reader.start()
    generator = stream._call.gen
    assert generator is not None
    try:
        # Wait (bounded) until the reader is inside the generator, blocked at the gate.
        deadline = time.monotonic() + 10
        while not generator.gi_running and time.monotonic() < deadline:  # type: ignore[attr-defined]
            time.sleep(0.001)
        with pytest.raises(minillm.MiniLLMError, match="another thread"):
            list(iter(stream))
    finally:
        gate.open()
        reader.join(10)
