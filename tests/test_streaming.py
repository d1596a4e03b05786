"""TrackedStream against a real loopback server: every row of the
settlement table, every way a stream can end, and exactly-once booking."""

from __future__ import annotations

import logging
import threading
from decimal import Decimal
from typing import Any, Callable, Dict, List

import pytest

import minillm
from minillm import Resolution, runtime
from minillm.testing import (
    Drop,
    Gate,
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

from .conftest import collect_garbage, finishes

PRICE = minillm.TokenPrice(input_per_mtok="1", output_per_mtok="2")
USAGE = chat_usage(10, 3)
EXPECTED_USD = Decimal(10 * 1 + 3 * 2) / 1_000_000


def full_reply(pieces: List[str] = ["Hel", "lo", "!"], **kwargs: Any) -> Reply:  # noqa: B006
    return Reply.sse(chat_stream(pieces, usage=USAGE, **kwargs))


def hanging_reply(pieces: List[str] = ["a", "b"], headers: Any = ()) -> Reply:  # noqa: B006
    """Some chunks, then silence until the client goes away."""
    return Reply.sse([*chat_stream(pieces, finish_reason=None, done=False), Hang()], headers=headers)


def only_record(ledger: minillm.Ledger) -> minillm.CostInfo:
    # A dropped stream is handed to the settler's thread: wait for it.
    assert runtime.settler.wait(10)
    assert ledger.count == 1
    return ledger.records[0][0]


# -- the provider's terminal event arrived with usage ---------------------------------


def test_a_completed_stream_books_its_usage_once_when_the_block_exits(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(full_reply())
    client = make_client(price=PRICE, meta={"team": "a", "user_id": 1})
    with client.stream("Hi", meta={"user_id": 7}) as stream:
        assert stream.response is None
        assert [c.text for c in stream if c.text] == ["Hel", "lo", "!"]
    cost = only_record(ledger)
    assert (cost.usd, cost.resolution, cost.cancelled) == (EXPECTED_USD, Resolution.RESOLVED, False)
    assert (cost.prompt_tokens, cost.completion_tokens, cost.model, cost.provider) == (10, 3, "test-model", "openai")
    assert ledger.records[0][1] == {"team": "a", "user_id": 7}
    assert stream.cost is cost and stream.response is not None and stream.response.cost is cost
    assert stream.response.text == "Hello!" and stream.response.finish_reason == "stop"


def test_bare_iteration_to_the_end_books_once_without_a_with_block(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(full_reply())
    stream = make_client(price=PRICE).stream("Hi")
    assert "".join(c.text for c in stream) == "Hello!"
    assert only_record(ledger).usd == EXPECTED_USD
    stream.settle()
    del stream
    collect_garbage()
    assert ledger.count == 1


def test_a_stream_sends_its_request_before_it_is_returned(
    server: ScriptedServer, make_client: Callable[..., minillm.Client]
) -> None:
    server.reply(full_reply())
    stream = make_client().stream("Hi", max_tokens=5)
    assert len(server.requests) == 1
    body = server.requests[0].json()
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["messages"] == [{"role": "user", "content": "Hi"}] and body["max_tokens"] == 5
    stream.close()


# -- ended early by the caller ------------------------------------------------------------


def test_breaking_out_of_bare_iteration_and_dropping_the_stream_books_once_as_cancelled(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(hanging_reply())
    for chunk in make_client().stream("Hi"):
        assert chunk.text == "a"
        break
    # No reference cycle holds the stream: it is handed over to be settled the moment it is dropped.
    cost = only_record(ledger)
    assert (cost.resolution, cost.usd, cost.cancelled) == (Resolution.UNKNOWN, None, True)
    assert server.requests[0].disconnected.wait(10)


def test_a_stream_created_and_never_iterated_books_once_when_dropped(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(hanging_reply())
    make_client().stream("Hi")
    cost = only_record(ledger)
    assert (cost.resolution, cost.cancelled, cost.response_id) == (Resolution.UNKNOWN, True, None)
    assert server.requests[0].disconnected.wait(10)


def test_an_exception_in_the_with_body_propagates_and_books_once(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(hanging_reply())
    with pytest.raises(KeyError), make_client().stream("Hi") as stream:
        for _ in stream:
            raise KeyError("the caller's own bug")
    assert only_record(ledger).cancelled
    assert stream.response is not None and stream.response.finish_reason == "cancelled"
    assert stream.response.text == "a"


def test_an_early_end_after_a_running_usage_books_it_as_a_lower_bound(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    # Some hosts attach usage to chunks that still carry content: until the
    # response says it is finished, that is a running count, never final.
    server.reply(Reply.sse([sse(chat_chunk(content="partial", usage=USAGE)), Hang()]))
    with make_client(price=PRICE).stream("Hi") as stream:
        next(iter(stream))
    cost = only_record(ledger)
    assert (cost.usd, cost.resolution, cost.cancelled) == (EXPECTED_USD, Resolution.PARTIAL, True)


def test_usage_that_arrives_with_the_finish_reason_is_final_even_if_the_caller_stops_before_done(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(Reply.sse([sse(chat_chunk(content="all", finish_reason="stop", usage=USAGE)), Hang()]))
    with make_client(price=PRICE).stream("Hi") as stream:
        next(iter(stream))
    cost = only_record(ledger)
    assert (cost.usd, cost.resolution, cost.cancelled) == (EXPECTED_USD, Resolution.RESOLVED, False)


def test_stopping_after_finish_and_usage_but_before_done_is_not_an_early_end(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(Reply.sse([*chat_stream(["x"], usage=USAGE, done=False), Hang()]))
    with make_client(price=PRICE).stream("Hi") as stream:
        for chunk in stream:
            if chunk.usage is not None:
                break
    cost = only_record(ledger)
    assert (cost.usd, cost.cancelled) == (EXPECTED_USD, False)
    assert stream.response is not None and stream.response.finish_reason == "stop"


@pytest.mark.parametrize("after", ["dropped", "silent"])
def test_a_transport_failure_after_finish_and_usage_does_not_undo_a_complete_answer(
    after: str, server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    gate = Gate()
    tail: Any = Drop() if after == "dropped" else gate
    server.reply(Reply.sse([*chat_stream(["all ", "here"], usage=USAGE, done=False), tail]))
    try:
        with make_client(price=PRICE, timeout=minillm.Timeout(read=0.2)).stream("Hi") as stream:
            assert "".join(stream.text_stream()) == "all here"
    finally:
        gate.open()
    cost = only_record(ledger)
    assert (cost.usd, cost.cancelled) == (EXPECTED_USD, False)
    assert stream.response is not None and stream.response.finish_reason == "stop"


def test_cancel_from_another_thread_unblocks_a_blocked_read_and_settles_as_a_cancellation(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(hanging_reply())
    stream = make_client().stream("Hi")
    first = threading.Event()
    seen: List[str] = []
    errors: List[BaseException] = []

    def read() -> None:
        try:
            for chunk in stream:
                seen.append(chunk.text)
                if len(seen) == 2:
                    first.set()  # the next read blocks: the server sends nothing more
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    assert first.wait(10)
    finishes(stream.cancel)
    reader.join(10)
    assert not reader.is_alive() and not errors
    assert seen == ["a", "b"]
    assert stream.response is not None and stream.response.finish_reason == "cancelled"
    assert only_record(ledger).cancelled
    assert server.requests[0].disconnected.wait(10)


def test_closing_a_stream_stops_reading_and_settles(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(hanging_reply())
    stream = make_client().stream("Hi")
    stream.close()
    assert only_record(ledger).cancelled
    assert list(stream) == []


def test_breaking_out_of_a_loop_inside_with_lets_a_later_loop_continue(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(full_reply())
    with make_client().stream("Hi") as stream:
        for chunk in stream:  # noqa: B007 - the first chunk is the point
            break
        rest = [c.text for c in stream if c.text]
    assert chunk.text == "Hel" and rest == ["lo", "!"]
    assert only_record(ledger).cancelled is False


# -- no usage: look-up or UNKNOWN ----------------------------------------------------------


def generation_route(server: ScriptedServer, answers: List[Reply], gate: Gate | None = None) -> List[RecordedRequest]:
    seen: List[RecordedRequest] = []

    def handler(request: RecordedRequest) -> Reply:
        seen.append(request)
        if gate is not None:
            gate.event.wait(10)
        return answers.pop(0) if len(answers) > 1 else answers[0]

    server.route("GET", "/generation", handler)
    return seen


def test_an_openrouter_stream_cancelled_before_usage_is_looked_up_without_blocking_the_exit(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(hanging_reply(headers=[("X-Generation-Id", "gen-123")]))
    not_yet = Reply.json({"error": {"message": "Generation gen-123 not found", "code": 404}}, status=404)
    found = Reply.json(
        openrouter_generation("gen-123", total_cost=0.00042, native_tokens_prompt=9, native_tokens_completion=2)
    )
    gate = Gate()
    lookups = generation_route(server, [not_yet, not_yet, found], gate)
    client = make_client("openrouter/anthropic/claude-haiku-4.5", api_key="sk-or-test")
    with client.stream("Hi", meta={"user_id": 7}) as stream:
        assert stream.id == "gen-123"
        next(iter(stream))
    # __exit__ returned while the look-up is held at the gate: it never blocks.
    assert ledger.count == 0 and stream.cost is None
    gate.open()
    assert client.flush(timeout=10)
    cost = only_record(ledger)
    assert (cost.usd, cost.resolution, cost.response_id) == (Decimal("0.00042"), Resolution.RESOLVED, "gen-123")
    assert (cost.prompt_tokens, cost.completion_tokens, cost.cancelled) == (9, 2, True)
    assert ledger.records[0][1] == {"user_id": 7}
    assert stream.cost is cost
    assert len(lookups) == 3
    assert lookups[0].query == {"id": ["gen-123"]}
    assert lookups[0].headers["authorization"] == "Bearer sk-or-test"


def test_a_look_up_that_never_finds_the_generation_books_unknown_with_its_id(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(hanging_reply(headers=[("X-Generation-Id", "gen-404")]))
    generation_route(server, [Reply.json({"error": {"message": "not found", "code": 404}}, status=404)])
    client = make_client("openrouter/x/y", lookup=minillm.LookupPolicy(timeout=0.2, initial_delay=0.0, max_delay=0.02))
    client.stream("Hi").cancel()
    assert client.flush(timeout=10)
    cost = only_record(ledger)
    assert (cost.resolution, cost.usd, cost.response_id, cost.cancelled) == (Resolution.UNKNOWN, None, "gen-404", True)


def test_without_the_header_the_generation_id_comes_from_the_first_chunk(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(Reply.sse([sse(chat_chunk(id="gen-from-chunk", content="a")), Hang()]))
    lookups = generation_route(server, [Reply.json(openrouter_generation("gen-from-chunk", total_cost=0.001))])
    client = make_client("openrouter/x/y")
    with client.stream("Hi") as stream:
        next(iter(stream))
        assert stream.id == "gen-from-chunk"
    assert client.flush(timeout=10)
    assert only_record(ledger).usd == Decimal("0.001")
    assert lookups[0].query == {"id": ["gen-from-chunk"]}


def test_a_completed_stream_without_usage_and_without_a_look_up_books_a_lower_bound(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(Reply.sse(chat_stream(["Hi", " there"], usage=None)))
    with make_client(price=PRICE).stream("Hi") as stream:
        assert "".join(stream.text_stream()) == "Hi there"
    cost = only_record(ledger)
    # two pieces of output came: at least two tokens, at least their price
    assert (cost.resolution, cost.completion_tokens, cost.cancelled) == (Resolution.PARTIAL, 2, False)
    assert cost.usd == PRICE.cost(minillm.Usage(completion_tokens=2))


def test_usage_without_a_price_is_unpriced(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(full_reply())
    with make_client().stream("Hi") as stream:
        list(stream)
    cost = only_record(ledger)
    assert (cost.resolution, cost.usd, cost.prompt_tokens) == (Resolution.UNPRICED, None, 10)


# -- failures after the response began are booked as failed ------------------------------------------


def assert_failed(ledger: minillm.Ledger, pieces: int) -> None:
    """One booking: a failed attempt that produced ``pieces`` pieces of output
    (a lower bound of its tokens, no price here to make it money)."""
    cost = only_record(ledger)
    assert (cost.failed, cost.cancelled, cost.resolution) == (True, False, Resolution.UNKNOWN)
    assert (cost.usd, cost.completion_tokens) == (None, pieces)


def test_a_connection_dropped_mid_stream_raises_a_stream_error_booked_as_failed(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(Reply.sse([*chat_stream(["par", "tial"], finish_reason=None, done=False), Drop()]))
    with pytest.raises(minillm.StreamError) as caught, make_client().stream("Hi") as stream:
        for _ in stream:
            pass
    assert caught.value.partial_text == "partial"
    assert_failed(ledger, 2)
    assert stream.response is not None and stream.response.finish_reason == "error"


def test_an_in_band_error_raises_a_stream_error_with_the_partial_text_booked_as_failed(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    error = {"error": {"code": 502, "message": "Upstream overloaded"}}
    server.reply(Reply.sse([*chat_stream(["so far"], finish_reason=None, done=False), sse(error), sse("[DONE]")]))
    with pytest.raises(minillm.StreamError, match="Upstream overloaded") as caught:
        with make_client().stream("Hi") as stream:
            list(stream)
    assert caught.value.partial_text == "so far"
    assert caught.value.body == error["error"]
    assert isinstance(caught.value, minillm.ServerError) and caught.value.status_code == 502
    assert_failed(ledger, 1)


def test_an_overflow_reported_in_the_stream_is_a_context_overflow_and_a_stream_error(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    error = {"error": {"code": "context_length_exceeded", "message": "This model's maximum context length is 8192"}}
    server.reply(Reply.sse([sse(error)]))
    with pytest.raises(minillm.ContextOverflowError) as caught, make_client().stream("Hi") as stream:
        list(stream)
    assert isinstance(caught.value, minillm.StreamError)
    only_record(ledger)  # a 200 answer: booked, its money unknown
    assert ledger.records[0][0].resolution is Resolution.UNKNOWN


def test_malformed_json_in_the_stream_is_a_stream_error(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(Reply.sse([sse(chat_chunk(content="ok")), b"data: {not json\n\n", sse("[DONE]")]))
    with pytest.raises(minillm.StreamError, match="could not be parsed: malformed data") as caught:
        list(make_client().stream("Hi"))
    assert caught.value.partial_text == "ok"
    assert_failed(ledger, 1)


def test_a_body_that_ends_without_the_terminal_event_is_incomplete_not_complete(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(Reply.sse(chat_stream(["cut ", "short"], finish_reason=None, done=False)))
    with pytest.raises(minillm.StreamError, match="ended before") as caught:
        list(make_client().stream("Hi"))
    assert caught.value.partial_text == "cut short"
    assert_failed(ledger, 2)


def test_an_http_error_raises_from_stream_itself_and_books_nothing(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(Reply.json({"error": {"message": "bad model"}}, status=400))
    with pytest.raises(minillm.BadRequestError, match="bad model") as caught:
        make_client().stream("Hi")
    assert caught.value.status_code == 400 and caught.value.provider == "openai"
    assert ledger.count == 0


def test_a_request_the_provider_cannot_be_sent_is_refused_before_sending_and_books_nothing(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    # Arguments that only the provider's translation refuses (Anthropic
    # wants a tool call's arguments as an object) are found while building
    # the request: nothing was sent, nothing may be billed.
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "not json"}}
    messages: List[Dict[str, Any]] = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
    ]
    with pytest.raises(minillm.InvalidArgumentError, match="not a JSON object"):
        make_client("anthropic/claude-test", api_key="k").stream(messages)
    assert server.requests == [] and ledger.count == 0


# -- reject, collect, settle --------------------------------------------------------------------


def test_reject_books_nothing_ever(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(hanging_reply())
    with make_client().stream("Hi") as stream:
        next(iter(stream))
        stream.reject()
        assert stream.settle() is None
    del stream
    collect_garbage()
    assert ledger.count == 0
    assert server.requests[0].disconnected.wait(10)


def test_collect_books_nothing_and_settle_books_once_however_often_it_is_called(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(full_reply())
    stream = make_client(price=PRICE).stream("Hi")
    response = stream.collect()
    assert response.text == "Hello!" and response.cost is None and ledger.count == 0
    first = stream.settle()
    assert first is not None and stream.settle() is first
    assert only_record(ledger) is first and response.cost is first


def test_collect_then_reject_books_nothing(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(full_reply())
    with make_client().stream("Hi") as stream:
        stream.collect()
        stream.reject()
    assert ledger.count == 0


@pytest.mark.parametrize("booked_by", ["reading to the end", "settle", "close"])
def test_reject_after_the_stream_was_booked_is_an_error_and_the_booking_stands(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger, booked_by: str
) -> None:
    server.reply(full_reply())
    stream = make_client(price=PRICE).stream("Hi")
    if booked_by == "reading to the end":
        assert "".join(stream.text_stream()) == "Hello!"
    elif booked_by == "settle":
        stream.settle()
    else:
        stream.close()
    with pytest.raises(minillm.InvalidArgumentError, match=r"reject\(\) came after this stream was booked"):
        stream.reject()
    assert ledger.count == 1 and stream.cost is only_record(ledger)


def test_reject_is_idempotent_and_fine_when_nothing_was_booked(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(full_reply())
    stream = make_client(price=PRICE).stream("Hi")
    stream.collect()
    stream.reject()
    stream.reject()
    stream.close()
    assert ledger.count == 0


def test_collected_and_then_abandoned_streams_still_book_once(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(full_reply())
    make_client(price=PRICE).stream("Hi").collect()
    assert only_record(ledger).usd == EXPECTED_USD


def test_settling_from_many_threads_at_once_books_exactly_once(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    client = make_client()
    rounds = 15
    for _ in range(rounds):
        server.reply(hanging_reply())
    for _ in range(rounds):
        stream = client.stream("Hi")
        barrier = threading.Barrier(12)
        actions = [stream.settle, stream.cancel, stream.close, stream.__exit__] * 3

        def run(action: Callable[..., Any], barrier: threading.Barrier = barrier) -> None:
            barrier.wait(10)
            action(*([None] * 3 if action.__name__ == "__exit__" else []))

        threads = [threading.Thread(target=run, args=(a,)) for a in actions]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
    assert ledger.count == rounds


def test_a_sink_that_raises_is_logged_with_every_field_and_does_not_break_the_stream(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], caplog: pytest.LogCaptureFixture
) -> None:
    calls: List[minillm.CostInfo] = []

    def broken_sink(cost: minillm.CostInfo, meta: dict) -> None:
        calls.append(cost)
        raise RuntimeError("database is down")

    server.reply(full_reply())
    with caplog.at_level(logging.ERROR, logger="minillm"):
        with make_client(price=PRICE, on_cost=broken_sink).stream("Hi", meta={"user_id": 7}) as stream:
            assert "".join(stream.text_stream()) == "Hello!"
        assert stream.settle() is calls[0]
    assert len(calls) == 1
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    message = record.getMessage()
    for field in (
        '"usd": "0.000016"',
        '"resolution": "resolved"',
        '"prompt_tokens": 10',
        '"completion_tokens": 3',
        '"response_id": "chatcmpl-test"',
        '"model": "test-model"',
        '"provider": "openai"',
        '"cancelled": false',
        '"byok": false',
        "'user_id': 7",
    ):
        assert field in message, field
    assert record.exc_info is not None


def test_a_recording_object_is_used_through_its_record_method(
    server: ScriptedServer, make_client: Callable[..., minillm.Client]
) -> None:
    class Recorder:
        def __init__(self) -> None:
            self.booked: List[Any] = []

        def record(self, cost: minillm.CostInfo, meta: dict) -> None:
            self.booked.append((cost, meta))

    recorder = Recorder()
    server.reply(full_reply())
    with make_client(on_cost=recorder).stream("Hi") as stream:
        list(stream)
    assert len(recorder.booked) == 1


# -- cancellation tokens -------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["cancel", "pause"])
def test_a_token_stops_a_blocked_stream_from_another_thread(
    how: str, server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(hanging_reply())
    token = minillm.CancellationToken()
    stream = make_client().stream("Hi", cancel=token)
    arrived = threading.Event()

    def stop_when_blocked() -> None:
        arrived.wait(10)
        finishes(getattr(token, how))

    stopper = threading.Thread(target=stop_when_blocked)
    stopper.start()
    texts = []
    for chunk in stream:
        texts.append(chunk.text)
        if len(texts) == 2:
            arrived.set()
    stopper.join(10)
    expected = "cancelled" if how == "cancel" else "paused"
    assert stream.response is not None and stream.response.finish_reason == expected
    assert token.disposition == expected and token.is_cancelled
    assert only_record(ledger).cancelled


def test_a_token_cancelled_before_the_call_prevents_the_request(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    token = minillm.CancellationToken()
    token.cancel()
    client = make_client()
    with client.stream("Hi", cancel=token) as stream:
        assert list(stream) == []
    assert stream.response is not None and stream.response.finish_reason == "cancelled"
    assert client.complete("Hi", cancel=token).finish_reason == "cancelled"
    assert server.requests == [] and ledger.count == 0


# -- what is visible while streaming ---------------------------------------------------------------


def test_text_thinking_and_id_are_visible_while_streaming(
    server: ScriptedServer, make_client: Callable[..., minillm.Client]
) -> None:
    server.reply(
        Reply.sse(
            [
                sse(chat_chunk(id="chatcmpl-9", reasoning="thinking...")),
                *chat_stream(["Hel", "lo"], id="chatcmpl-9", usage=USAGE),
            ]
        )
    )
    seen = []
    with make_client().stream("Hi") as stream:
        for _ in stream:
            seen.append((stream.text, stream.thinking, stream.id))
    assert seen[0] == ("", "thinking...", "chatcmpl-9")
    assert seen[2] == ("Hello", "thinking...", "chatcmpl-9")
    assert stream.response is not None and stream.response.thinking == "thinking..."


def test_think_tags_in_the_text_become_thinking_unless_switched_off(
    server: ScriptedServer, make_client: Callable[..., minillm.Client]
) -> None:
    pieces = ["<thi", "nk>plan</th", "ink>\n\nAnswer"]
    server.reply(Reply.sse(chat_stream(pieces, usage=USAGE)), Reply.sse(chat_stream(pieces, usage=USAGE)))
    with make_client().stream("Hi") as stream:
        list(stream)
    assert stream.response is not None
    assert (stream.response.text, stream.response.thinking) == ("Answer", "plan")
    with make_client(think_tags=False).stream("Hi") as raw:
        list(raw)
    assert raw.response is not None and raw.response.text == "".join(pieces)


def test_a_repr_names_the_model_and_the_state(
    server: ScriptedServer, make_client: Callable[..., minillm.Client]
) -> None:
    server.reply(full_reply())
    with make_client().stream("Hi") as stream:
        assert repr(stream) == "<TrackedStream openai/test-model id=None open>"
        list(stream)
    assert repr(stream) == "<TrackedStream openai/test-model id='chatcmpl-test' completed>"


def test_a_completed_stream_returns_its_connection_to_the_pool(
    server: ScriptedServer, make_client: Callable[..., minillm.Client]
) -> None:
    server.reply(full_reply(), full_reply(), hanging_reply(), full_reply())
    client = make_client()
    for _ in range(2):
        with client.stream("Hi") as stream:
            list(stream)
    client.stream("Hi").cancel()  # a cancelled stream's connection is not reused...
    with client.stream("Hi") as stream:  # ...and the next request still succeeds
        list(stream)
    ports = [r.client_address[1] for r in server.requests]
    assert ports[0] == ports[1]
    assert ports[3] != ports[2]


# -- which id, which usage ---------------------------------------------------------------------------


def test_the_header_generation_id_wins_over_the_bodys_everywhere(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(
        Reply.sse(
            chat_stream(["a"], id="gen-body", usage=chat_usage(1, 1, cost=0.001)),
            headers=[("X-Generation-Id", "gen-header")],
        )
    )
    with make_client("openrouter/x/y").stream("Hi") as stream:
        list(stream)
    assert stream.id == "gen-header"
    assert ledger.records[0][0].response_id == "gen-header"


def test_an_id_that_first_appears_in_a_later_chunk_is_still_found(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    first = chat_chunk(content="a")
    del first["id"]
    server.reply(Reply.sse([sse(first), sse(chat_chunk(id="gen-late", content="b")), Hang()]))
    generation_route(server, [Reply.json(openrouter_generation("gen-late", total_cost=0.002))])
    client = make_client("openrouter/x/y")
    with client.stream("Hi") as stream:
        for chunk in stream:
            if chunk.text == "b":
                break
    assert stream.id == "gen-late"
    assert client.flush(timeout=10)
    assert only_record(ledger).usd == Decimal("0.002")


def test_a_usage_object_without_counts_is_not_priced_as_zero(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(Reply.sse(chat_stream(["a"], usage={"queue_time": 0.01})))
    with make_client(price=PRICE).stream("Hi") as stream:
        list(stream)
    cost = only_record(ledger)
    # no counts: what was seen (one piece of output) is a lower bound, never a fake $0
    assert (cost.resolution, cost.prompt_tokens, cost.completion_tokens) == (Resolution.PARTIAL, 0, 1)
    assert cost.usd == PRICE.cost(minillm.Usage(completion_tokens=1)) > 0


def test_an_abandoned_stream_that_had_seen_usage_books_that_usage(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(Reply.sse([sse(chat_chunk(content="a", usage=USAGE)), Hang()]))
    stream = make_client(price=PRICE).stream("Hi")
    next(iter(stream))
    del stream  # dropped mid-stream: the finalizer settles it
    cost = only_record(ledger)
    assert (cost.usd, cost.cancelled) == (EXPECTED_USD, True)


def test_settling_with_debug_logging_books_and_meta_no_ledger_could_keep_is_refused_first(
    server: ScriptedServer,
    make_client: Callable[..., minillm.Client],
    ledger: minillm.Ledger,
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Unprintable:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    server.reply(full_reply())
    with caplog.at_level(logging.DEBUG, logger="minillm"):
        with make_client(meta={"team": "a"}).stream("Hi", meta={"ünï": ["cödé", {"n": 1}]}) as stream:
            list(stream)
        with pytest.raises(minillm.InvalidArgumentError, match="meta"):
            make_client().stream("Hi", meta={7: "mixed keys"})  # type: ignore[dict-item]
        with pytest.raises(minillm.InvalidArgumentError, match="meta"):
            make_client().stream("Hi", meta={"odd": Unprintable()})
    assert ledger.count == 1 and len(server.requests) == 1
    assert "booked unpriced openai/test-model attempt 1" in caplog.text


def test_collect_after_a_failure_raises_the_failure_again(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(Reply.sse([sse(chat_chunk(content="a")), Drop()]))
    stream = make_client().stream("Hi")
    with pytest.raises(minillm.StreamError) as first:
        stream.collect()
    with pytest.raises(minillm.StreamError) as second:
        stream.collect()
    # The same failure: its class, its message, what it had received.
    assert type(second.value) is type(first.value) and str(second.value) == str(first.value)
    assert second.value.partial_text == first.value.partial_text == "a"
    assert ledger.count == 0  # collect() books nothing
    stream.settle()
    assert ledger.records[0][0].failed
