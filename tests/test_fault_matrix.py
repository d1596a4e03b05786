"""The fault-injection matrix: every way a provider can fail, for the
Chat Completions and the Anthropic wire formats, against the loopback
server; then every row of the settlement table (API section 4), for every
protocol the invoice-keeping server bills.

Each case asserts the exception class, the number of attempts the server
saw, the waits between them (recorded, never slept), and exactly what was
booked -- in the table's rows, against the provider's invoice.
"""

from __future__ import annotations

import email.utils
import socket
import threading
import time
from decimal import Decimal
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple

import attrs
import pytest

import minillm
from minillm.testing import (
    Billing,
    BillingServer,
    Drop,
    Gate,
    Hang,
    InvoiceLine,
    Pause,
    Plan,
    Reply,
    ScriptedServer,
    anthropic_stream,
    chat_chunk,
    chat_stream,
    chat_usage,
    sse,
)

from .conftest import SleepRecorder, collect_garbage, finishes
from .test_invoice import INPUT, OUTPUT, assert_booked_as_billed, client_options
from .test_invoice import PROTOCOLS as BILLED

PRICE = minillm.TokenPrice(input_per_mtok="1", output_per_mtok="2")
PIECES = ["Hel", "lo"]
#: 10 prompt tokens at $1/M and one output token per piece at $2/M
FULL_COST = Decimal("0.000014")


@attrs.frozen
class Format:
    """How one wire format says each thing the matrix needs."""

    name: str
    model: str
    path: str
    #: a whole successful stream of ``pieces`` (10 prompt tokens, one output token a piece)
    whole: Callable[[Sequence[str], str], List[bytes]]
    #: what comes before any output
    opening: List[bytes]
    #: output without the terminal event
    partial: Callable[[Sequence[str]], List[bytes]]
    #: a retryable error reported inside the body
    error_event: bytes
    #: an HTTP 400 saying the prompt is too long: (body, requested, limit)
    overflow: Tuple[Any, int, int]
    #: what an attempt cut short after ``n`` output pieces is known to have
    #: cost at least: the usage it had seen, with one output token a piece
    partial_cost: Callable[[int], Optional[Decimal]]


def chat_whole(pieces: Sequence[str], id: str = "chatcmpl-1") -> List[bytes]:  # noqa: A002
    return chat_stream(pieces, id=id, usage=chat_usage(10, len(pieces)))


def anthropic_whole(pieces: Sequence[str], id: str = "msg_1") -> List[bytes]:  # noqa: A002
    return anthropic_stream(pieces, id=id, input_tokens=10)


CHAT = Format(
    name="chat",
    model="openai/test-model",
    path="/chat/completions",
    whole=chat_whole,
    opening=[sse(chat_chunk(content=""))],
    partial=lambda pieces: chat_stream(pieces, finish_reason=None, done=False),
    # OpenRouter's shape of an upstream failure, sent with a 200 status.
    error_event=sse({"error": {"code": 502, "message": "Upstream overloaded"}}),
    overflow=(
        {
            "error": {
                "message": "This model's maximum context length is 8192 tokens. "
                "However, your messages resulted in 9000 tokens.",
                "type": "invalid_request_error",
                "code": "context_length_exceeded",
            }
        },
        9000,
        8192,
    ),
    # Chat Completions sends usage only at the end: the pieces seen, at $2/M
    partial_cost=lambda n: Decimal(2 * n) / 1_000_000 if n else None,
)

ANTHROPIC = Format(
    name="anthropic",
    model="anthropic/claude-test",
    path="/v1/messages",
    whole=anthropic_whole,
    opening=anthropic_stream([])[:2],  # message_start (input usage), ping
    partial=lambda pieces: anthropic_stream(pieces, input_tokens=10)[:-2],
    error_event=sse({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, event="error"),
    overflow=(
        {
            "type": "error",
            "error": {"type": "invalid_request_error", "message": "prompt is too long: 208000 tokens > 200000 maximum"},
        },
        208000,
        200000,
    ),
    # message_start carried the input usage (its one output token is a placeholder)
    partial_cost=lambda n: Decimal(10 + 2 * n) / 1_000_000,
)

FORMATS = [CHAT, ANTHROPIC]


def other(fmt: Format) -> Format:
    return ANTHROPIC if fmt is CHAT else CHAT


@pytest.fixture(params=FORMATS, ids=lambda f: f.name)
def fmt(request: pytest.FixtureRequest) -> Format:
    return request.param  # type: ignore[no-any-return]


class Harness:
    """A client of one format talking to the loopback server, with its
    attempts, waits and bookings on record."""

    def __init__(self, fmt: Format, server: ScriptedServer, ledger: minillm.Ledger, sleeps: SleepRecorder) -> None:
        self.fmt = fmt
        self.server = server
        self.ledger = ledger
        self.sleeps = sleeps
        self.retries: List[Tuple[int, BaseException, float]] = []
        #: called after each retry is recorded
        self.on_retry: Callable[[], object] = lambda: None
        self.clients: List[minillm.Client] = []

    def _record_retry(self, attempt: int, exc: BaseException, delay: float) -> None:
        self.retries.append((attempt, exc, delay))
        self.on_retry()

    def client(self, url: Optional[str] = None, **kwargs: Any) -> minillm.Client:
        kwargs.setdefault("retry", minillm.RetryPolicy(sleep=self.sleeps))
        kwargs.setdefault("timeout", minillm.Timeout(connect=5, read=10))
        client = minillm.Client(
            self.fmt.model,
            base_url=url or self.server.url,
            api_key="sk-test",
            on_cost=self.ledger,
            price=PRICE,
            on_retry=self._record_retry,
            **kwargs,
        )
        self.clients.append(client)
        return client

    def reply(self, *replies: Reply) -> None:
        self.server.reply(*replies, path=self.fmt.path)

    @staticmethod
    def stream_reply(events: Sequence[Any]) -> Reply:
        return Reply.sse(events)

    @property
    def attempts(self) -> int:
        return sum(1 for r in self.server.requests if r.path == self.fmt.path)

    def read(self, client: minillm.Client, **kwargs: Any) -> minillm.TrackedStream:
        with client.stream("Hi", **kwargs) as stream:
            for _ in stream:
                pass
        return stream

    def only_booking(self) -> minillm.CostInfo:
        assert self.ledger.count == 1, self.ledger.records
        return self.ledger.records[0][0]

    def bookings(self) -> List[minillm.CostInfo]:
        return [cost for cost, _ in self.ledger.records]

    def assert_cut_short(self, cost: minillm.CostInfo, pieces: int, *, failed: bool) -> None:
        """``cost`` is what an attempt stopped after ``pieces`` pieces of
        output books: a lower bound from what it saw (``PARTIAL``), or
        ``UNKNOWN`` when it saw nothing."""
        expected = self.fmt.partial_cost(pieces)
        assert (cost.failed, cost.cancelled) == (failed, not failed)
        assert cost.usd == expected
        assert cost.resolution is (minillm.Resolution.PARTIAL if expected else minillm.Resolution.UNKNOWN)


@pytest.fixture
def h(fmt: Format, server: ScriptedServer, ledger: minillm.Ledger, sleeps: SleepRecorder) -> Iterator[Harness]:
    harness = Harness(fmt, server, ledger, sleeps)
    yield harness
    for client in harness.clients:
        client.close()


def assert_backoff(waits: List[float]) -> None:
    """The default policy's exponential waits: 0.5s then 1s, each with up to 0.25s of jitter."""
    assert len(waits) == 2
    assert 0.5 <= waits[0] <= 0.75
    assert 1.0 <= waits[1] <= 1.25


# -- before the response ---------------------------------------------------------------------


def test_a_refused_connection_is_retried_then_raised(h: Harness) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connecting is refused
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
        with pytest.raises(minillm.APIConnectionError) as caught:
            h.client(url).stream("Hi")
    assert not isinstance(caught.value, minillm.APITimeoutError)
    assert len(h.retries) == 2 and all(isinstance(exc, minillm.APIConnectionError) for _, exc, _ in h.retries)
    assert_backoff(h.sleeps.calls)
    assert h.ledger.count == 0


def assert_unanswered(cost: minillm.CostInfo, attempt: int) -> None:
    """``cost`` books an attempt that was sent but got no response status."""
    assert (cost.resolution, cost.usd, cost.failed, cost.cancelled) == (minillm.Resolution.UNKNOWN, None, True, False)
    assert (cost.attempt, cost.response_id, cost.prompt_tokens, cost.completion_tokens) == (attempt, None, 0, 0)


def test_a_connection_reset_before_the_headers_is_retried(h: Harness) -> None:
    h.reply(Reply().held(Drop()), Reply().held(Drop()), h.stream_reply(h.fmt.whole(PIECES, "id-3")))
    stream = h.read(h.client())
    assert stream.text == "Hello"
    assert h.attempts == 3
    assert_backoff(h.sleeps.calls)
    # The server had the request when it reset: it may have billed it.
    first, second, served = h.bookings()
    assert_unanswered(first, 1)
    assert_unanswered(second, 2)
    assert (served.usd, served.attempt) == (FULL_COST, 3)


def http_date(seconds_from_now: float) -> str:
    return email.utils.formatdate(time.time() + seconds_from_now, usegmt=True)


@pytest.mark.parametrize(
    ("header", "value", "low", "high"),
    [
        ("Retry-After", lambda: "2", 2.0, 2.0),
        ("retry-after-ms", lambda: "1500", 1.5, 1.5),
        # an HTTP date has whole seconds: 30s from now is 29 to 30s away
        ("Retry-After", lambda: http_date(30), 28.0, 30.5),
    ],
    ids=["seconds", "milliseconds", "http-date"],
)
def test_a_429_waits_as_long_as_each_response_asks(
    h: Harness, header: str, value: Callable[[], str], low: float, high: float
) -> None:
    h.reply(
        Reply.json({"error": {"message": "slow down"}}, status=429, headers=[(header, value())]),
        h.stream_reply(h.fmt.whole(PIECES, "id-2")),
    )
    stream = h.read(h.client())
    assert stream.text == "Hello"
    assert h.attempts == 2
    assert len(h.sleeps.calls) == 1 and low <= h.sleeps.calls[0] <= high
    assert h.only_booking().usd == FULL_COST


def test_a_429_asking_for_too_long_a_wait_raises_at_once(h: Harness) -> None:
    h.reply(Reply.json({"error": {"message": "quota"}}, status=429, headers=[("Retry-After", "3600")]))
    with pytest.raises(minillm.RateLimitError) as caught:
        h.client().stream("Hi")
    assert caught.value.retry_after == 3600.0
    assert h.attempts == 1
    assert h.sleeps.calls == []
    assert h.ledger.count == 0


def test_server_errors_then_success_books_the_success_once(h: Harness) -> None:
    h.reply(
        Reply.json({"error": {"message": "boom"}}, status=500),
        Reply.json({"error": {"message": "overloaded"}}, status=529 if h.fmt is ANTHROPIC else 503),
        h.stream_reply(h.fmt.whole(PIECES, "id-3")),
    )
    stream = h.read(h.client())
    assert stream.text == "Hello"
    assert h.attempts == 3
    assert_backoff(h.sleeps.calls)
    cost = h.only_booking()
    assert (cost.usd, cost.response_id, cost.cancelled) == (FULL_COST, "id-3", False)


def test_server_errors_until_the_attempts_run_out(h: Harness) -> None:
    h.reply(*[Reply.json({"error": {"message": "bad gateway"}}, status=502)] * 3)
    with pytest.raises(minillm.ServerError) as caught:
        h.client().stream("Hi")
    assert caught.value.status_code == 502
    assert h.attempts == 3
    assert_backoff(h.sleeps.calls)
    assert h.ledger.count == 0


def test_an_html_error_page_is_a_server_error_with_a_short_excerpt(h: Harness) -> None:
    page = "<html><head><title>502 Bad Gateway</title></head><body>" + "nginx " * 2000 + "</body></html>"
    h.reply(*[Reply.text(page, status=502, content_type="text/html")] * 3)
    with pytest.raises(minillm.ServerError) as caught:
        h.client().stream("Hi")
    assert caught.value.status_code == 502
    assert "502 Bad Gateway" in str(caught.value) and len(str(caught.value)) < 1000
    assert h.attempts == 3
    assert h.ledger.count == 0


@pytest.mark.parametrize(
    ("content_type", "body", "shown"),
    [
        ("text/html", "<html><body>Please log in</body></html>", "an HTML page"),
        ("text/plain", "upstream connect error or disconnect/reset before headers", "Content-Type text/plain"),
    ],
)
@pytest.mark.parametrize("mode", ["stream", "complete"])
def test_a_success_status_with_something_other_than_the_protocol_is_malformed_books_nothing_and_is_not_retried(
    h: Harness, content_type: str, body: str, shown: str, mode: str
) -> None:
    """A proxy or a captive portal answered, not the API: nothing was billed.
    The same rule whether a stream or a whole answer was asked for."""
    h.reply(Reply.text(body, content_type=content_type))
    with pytest.raises(minillm.MalformedResponseError) as caught:
        getattr(h.client(), mode)("Hi")
    assert caught.value.status_code == 200
    assert shown in str(caught.value) and body[:20] in str(caught.value)
    assert h.attempts == 1
    assert h.ledger.count == 0


def test_a_stall_before_the_first_byte_is_a_timeout_that_is_retried(h: Harness) -> None:
    gate = Gate()  # never opened: the server says nothing
    h.reply(*[h.stream_reply(h.fmt.whole(PIECES, "id-1")).held(gate)] * 3)
    with pytest.raises(minillm.APITimeoutError) as caught:
        h.client(timeout=minillm.Timeout(read=0.2)).stream("Hi")
    assert not isinstance(caught.value, minillm.StreamError)
    assert isinstance(caught.value, TimeoutError)
    assert h.attempts == 3
    assert_backoff(h.sleeps.calls)
    # Sent, and never answered: each may have been billed.
    for number, cost in enumerate(h.bookings(), start=1):
        assert_unanswered(cost, number)
    assert h.ledger.count == 3


# -- errors reported inside the body ------------------------------------------------------------


def test_an_in_band_error_before_any_output_is_retried_transparently(h: Harness) -> None:
    h.reply(
        h.stream_reply([*h.fmt.opening, h.fmt.error_event]),
        h.stream_reply(h.fmt.whole(PIECES, "id-2")),
    )
    stream = h.read(h.client())
    assert stream.text == "Hello"
    assert stream.response is not None and stream.response.finish_reason == "stop"
    assert h.attempts == 2
    assert len(h.sleeps.calls) == 1 and 0.5 <= h.sleeps.calls[0] <= 0.75
    # The in-band error maps through the status table: an overload is a ServerError too.
    assert [attempt for attempt, _, _ in h.retries] == [1]
    assert all(isinstance(exc, (minillm.StreamError, minillm.ServerError)) for _, exc, _ in h.retries)
    failed, served = h.bookings()
    # The failed attempt had begun a response: it may be billed, and is booked.
    assert failed.attempt == 1 and failed.response_id not in (None, "id-2")  # the id it was seen to carry
    h.assert_cut_short(failed, 0, failed=True)
    assert (served.usd, served.response_id, served.cancelled, served.failed) == (FULL_COST, "id-2", False, False)
    assert (served.attempt, served.resolution) == (2, minillm.Resolution.RESOLVED)


def test_in_band_errors_before_any_output_until_the_attempts_run_out(h: Harness) -> None:
    h.reply(*[h.stream_reply([*h.fmt.opening, h.fmt.error_event])] * 3)
    with pytest.raises(minillm.StreamError) as caught:
        h.read(h.client())
    assert isinstance(caught.value, minillm.ServerError)
    assert caught.value.partial_text == ""
    assert h.attempts == 3
    assert_backoff(h.sleeps.calls)
    assert [cost.attempt for cost in h.bookings()] == [1, 2, 3]
    for cost in h.bookings():
        h.assert_cut_short(cost, 0, failed=True)


def test_an_in_band_error_after_output_is_never_retried(h: Harness) -> None:
    h.reply(h.stream_reply([*h.fmt.partial(PIECES), h.fmt.error_event]), h.stream_reply(h.fmt.whole(PIECES, "id-1")))
    with pytest.raises(minillm.StreamError) as caught:
        h.read(h.client())
    assert caught.value.partial_text == "Hello"
    assert h.attempts == 1
    assert h.sleeps.calls == []
    h.assert_cut_short(h.only_booking(), len(PIECES), failed=True)


def test_a_body_dropped_mid_stream_is_a_stream_error_booked_as_failed(h: Harness) -> None:
    h.reply(h.stream_reply([*h.fmt.partial(PIECES), Drop()]))
    with pytest.raises(minillm.StreamError) as caught:
        h.read(h.client())
    assert caught.value.partial_text == "Hello"
    assert h.attempts == 1
    h.assert_cut_short(h.only_booking(), len(PIECES), failed=True)


def test_a_body_that_ends_without_the_terminal_event_is_incomplete(h: Harness) -> None:
    h.reply(h.stream_reply(h.fmt.partial(PIECES)))
    with pytest.raises(minillm.StreamError, match="terminal event") as caught:
        h.read(h.client())
    assert caught.value.partial_text == "Hello"
    assert h.attempts == 1
    h.assert_cut_short(h.only_booking(), len(PIECES), failed=True)


def test_a_malformed_json_line_is_a_stream_error(h: Harness) -> None:
    h.reply(h.stream_reply([*h.fmt.partial(PIECES), b'data: {"half an object\n\n']))
    with pytest.raises(minillm.StreamError, match="could not be parsed") as caught:
        h.read(h.client())
    assert caught.value.partial_text == "Hello"
    assert h.attempts == 1
    h.assert_cut_short(h.only_booking(), len(PIECES), failed=True)


# -- deadlines --------------------------------------------------------------------------------


def test_silence_mid_stream_longer_than_read_is_a_timeout_booked_as_failed(h: Harness) -> None:
    h.reply(h.stream_reply([*h.fmt.partial(PIECES), Hang()]))
    with pytest.raises(minillm.APITimeoutError) as caught:
        h.read(h.client(timeout=minillm.Timeout(read=0.2)))
    assert isinstance(caught.value, minillm.StreamError) and caught.value.partial_text == "Hello"
    assert h.attempts == 1
    h.assert_cut_short(h.only_booking(), len(PIECES), failed=True)


def test_a_drip_that_outlasts_the_total_deadline_is_a_timeout_booked_as_failed(h: Harness) -> None:
    drip: List[Any] = list(h.fmt.partial(PIECES))
    for _ in range(400):
        drip += [Pause(0.01), h.fmt.partial(["."])[-1]]  # bytes keep coming, well within read
    h.reply(h.stream_reply(drip))
    with pytest.raises(minillm.APITimeoutError, match="total deadline") as caught:
        h.read(h.client(timeout=minillm.Timeout(read=5, total=0.5)))
    assert isinstance(caught.value, minillm.StreamError)
    assert h.attempts == 1
    pieces = len(PIECES) + caught.value.partial_text.count(".")
    h.assert_cut_short(h.only_booking(), pieces, failed=True)


# -- cancellation -----------------------------------------------------------------------------


def after(ready: Callable[[float], bool], action: Callable[[], None]) -> None:
    """Run ``action`` once ``ready`` (waited on for at most 10s) is true."""
    if ready(10):
        action()


@pytest.mark.parametrize("how", ["cancel", "pause", "stream.cancel"])
def test_stopping_from_another_thread_during_a_stall(h: Harness, how: str) -> None:
    h.reply(h.stream_reply([*h.fmt.partial(PIECES), Hang()]))
    token = minillm.CancellationToken()
    client = h.client()
    got_output = threading.Event()
    with client.stream("Hi", cancel=token) as stream:
        stopper = {
            "cancel": token.cancel,
            "pause": token.pause,
            "stream.cancel": stream.cancel,
        }[how]
        threading.Thread(target=after, args=(got_output.wait, stopper), daemon=True).start()

        def read() -> None:
            for _ in stream:
                if stream.text == "Hello":  # all the output before the stall
                    got_output.set()

        finishes(read)
    reason = "paused" if how == "pause" else "cancelled"
    assert stream.response is not None and stream.response.finish_reason == reason
    assert stream.text == "Hello"
    assert h.server.requests[0].disconnected.wait(10)
    assert h.attempts == 1
    h.assert_cut_short(h.only_booking(), len(PIECES), failed=False)


def test_cancelling_during_the_wait_before_an_in_band_retry_sends_nothing_more(h: Harness) -> None:
    h.reply(h.stream_reply([*h.fmt.opening, h.fmt.error_event]), h.stream_reply(h.fmt.whole(PIECES, "id-1")))
    token = minillm.CancellationToken()
    # The real sleep, which the token interrupts: cancelled as the wait begins.
    client = h.client(retry=minillm.RetryPolicy(initial_delay=60, max_delay=60))
    h.on_retry = token.cancel
    with client.stream("Hi", cancel=token) as stream:
        finishes(lambda: list(stream))
    assert stream.response is not None and stream.response.finish_reason == "cancelled"
    assert h.attempts == 1  # the retry was never sent
    h.assert_cut_short(h.only_booking(), 0, failed=True)  # the failed attempt alone


def test_cancelling_a_retry_that_awaits_its_headers_books_it_as_unknown(h: Harness) -> None:
    gate = Gate()
    h.reply(h.stream_reply([*h.fmt.opening, h.fmt.error_event]), h.stream_reply(h.fmt.whole(PIECES, "id-1")).held(gate))
    client = h.client()
    try:
        with client.stream("Hi") as stream:
            threading.Thread(
                target=after, args=(lambda timeout: h.server.wait_for_requests(2, timeout), stream.cancel), daemon=True
            ).start()
            finishes(lambda: list(stream))
    finally:
        gate.open()
    assert stream.response is not None and stream.response.finish_reason == "cancelled"
    assert h.attempts == 2
    failed, retry = h.bookings()
    h.assert_cut_short(failed, 0, failed=True)
    # the retry went out and may cost: booked, money unknown
    assert retry.cancelled and retry.usd is None and retry.resolution is minillm.Resolution.UNKNOWN
    assert (failed.attempt, retry.attempt) == (1, 2)


# -- fallbacks and overflow ---------------------------------------------------------------------


@pytest.fixture
def second_server() -> Iterator[ScriptedServer]:
    with ScriptedServer() as running:
        yield running


def fallback_client(h: Harness, server: ScriptedServer) -> minillm.Client:
    """A client of the other format on ``server``, ready to answer."""
    fmt = other(h.fmt)
    server.reply(Reply.sse(fmt.whole(["Fall", "back"], "fallback-id")), path=fmt.path)
    client = minillm.Client(fmt.model, base_url=server.url, api_key="sk-test", price=PRICE)
    h.clients.append(client)
    return client


def test_a_fallback_answers_once_the_primary_is_exhausted(h: Harness, second_server: ScriptedServer) -> None:
    h.reply(*[Reply.json({"error": {"message": "down"}}, status=503)] * 3)
    stream = h.read(h.client(fallbacks=[fallback_client(h, second_server)]))
    assert stream.text == "Fallback"
    assert h.attempts == 3 and len(second_server.requests) == 1
    cost = h.only_booking()  # once, against the model and provider that answered
    fallback = other(h.fmt)
    assert (cost.provider, cost.model) == tuple(fallback.model.split("/", 1))
    assert (cost.usd, cost.response_id) == (FULL_COST, "fallback-id")


def test_an_unconfigured_primary_goes_straight_to_its_fallback(h: Harness, second_server: ScriptedServer) -> None:
    # No key and the provider's real address: nothing may be sent to it.
    primary = minillm.Client(
        h.fmt.model,
        on_cost=h.ledger,
        retry=minillm.RetryPolicy(sleep=h.sleeps),
        fallbacks=[fallback_client(h, second_server)],
    )
    h.clients.append(primary)
    with primary.stream("Hi") as stream:
        assert "".join(stream.text_stream()) == "Fallback"
    assert h.sleeps.calls == []
    assert len(second_server.requests) == 1
    assert h.only_booking().provider == other(h.fmt).model.split("/", 1)[0]


def test_a_context_overflow_is_raised_at_once_without_retry_or_fallback(
    h: Harness, second_server: ScriptedServer
) -> None:
    body, requested, limit = h.fmt.overflow
    h.reply(Reply.json(body, status=400))
    with pytest.raises(minillm.ContextOverflowError) as caught:
        h.client(fallbacks=[fallback_client(h, second_server)]).stream("Hi")
    assert (caught.value.requested_tokens, caught.value.limit_tokens) == (requested, limit)
    assert h.attempts == 1 and h.sleeps.calls == []
    assert second_server.requests == []
    assert h.ledger.count == 0


# -- the settlement table, row by row, for every billing protocol --------------------------------
#
# Against BillingServer, which keeps the invoice each provider would send:
# every billed attempt is booked exactly once and nothing else is; RESOLVED
# is the invoice line to the digit; PARTIAL is never above it; UNKNOWN when
# nothing was seen.

#: the text a client has read when a plan's ``after=3`` tokens have arrived
SEEN = "t0 t1 t2 "
#: what an answer that stalls after three tokens is planned as
STALLS = Plan(tokens=40, ending="hang", after=3)


@pytest.fixture(params=sorted(BILLED), ids=str)
def protocol(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


class Billed:
    """Clients of one billed protocol, the ledger they book into and the
    provider's invoice."""

    def __init__(self, protocol: str, server: BillingServer, sleeps: SleepRecorder) -> None:
        self.protocol = protocol
        self.server = server
        self.invoice = server.bill(Billing(protocol, INPUT, OUTPUT, default=None))
        self.ledger = minillm.Ledger()
        self.sleeps = sleeps
        self.clients: List[minillm.Client] = []

    def client(self, **overrides: Any) -> minillm.Client:
        options = client_options(self.protocol, self.server, self.ledger)
        options.update(retry=minillm.RetryPolicy(sleep=self.sleeps), timeout=minillm.Timeout(connect=5, read=10))
        options.update(overrides)
        client = minillm.Client(BILLED[self.protocol][0], **options)
        self.clients.append(client)
        return client

    def settled(self) -> List[Tuple[minillm.CostInfo, InvoiceLine]]:
        """Once the provider knows how every request ended and every look-up
        has booked: each booking with the invoice line of its attempt, in
        order, checked against the rules every row keeps."""
        assert self.invoice.wait_final(10)
        for client in self.clients:
            assert client.flush(10)
        bookings = sorted(self.bookings(), key=lambda cost: cost.attempt)
        lines = sorted(self.invoice.lines, key=lambda line: line.arrival)
        # every invoiced attempt booked exactly once, and nothing else
        assert len(bookings) == len(lines), (bookings, lines)
        assert len({cost.attempt for cost in bookings}) == len(bookings)
        for cost, line in zip(bookings, lines):
            assert_booked_as_billed(cost, line)
            if cost.usd is None:
                assert cost.resolution is minillm.Resolution.UNKNOWN, cost
            if self.protocol == "openrouter" and cost.response_id:
                # OpenRouter's /generation look-up knows every generation it
                # was given the id of: never a lower bound there.
                assert cost.resolution is minillm.Resolution.RESOLVED, cost
        return list(zip(bookings, lines))

    def bookings(self) -> List[minillm.CostInfo]:
        return [cost for cost, _ in self.ledger.records]

    def assert_stopped_after_output(self, *, failed: bool) -> None:
        """One attempt, stopped after it streamed :data:`SEEN` (by the caller,
        or by a failure): ``cancelled`` xor ``failed``, and a lower bound that
        counts what streamed -- or, on OpenRouter, the look-up's figure."""
        [(cost, line)] = self.settled()
        assert (cost.cancelled, cost.failed, cost.attempt) == (not failed, failed, 1)
        assert line.completion_tokens == 3
        assert cost.response_id == (None if self.protocol == "ollama" else line.id)  # Ollama's carry no id
        if self.protocol == "openrouter":
            assert cost.resolution is minillm.Resolution.RESOLVED  # through the look-up
        else:
            assert cost.resolution is minillm.Resolution.PARTIAL
            assert cost.completion_tokens == 3
            # the prompt is counted where the provider reported it before the end
            assert cost.prompt_tokens in (0, line.prompt_tokens)


@pytest.fixture
def b(protocol: str, sleeps: SleepRecorder) -> Iterator[Billed]:
    with BillingServer() as server:
        billed = Billed(protocol, server, sleeps)
        yield billed
        for client in billed.clients:
            client.close()


def b_read(client: minillm.Client) -> List[str]:
    """The text pieces of a stream read to its end."""
    with client.stream("Hi") as stream:
        return list(stream.text_stream())


@pytest.mark.parametrize("mode", ["stream", "complete"])
def test_table_completed_is_resolved_to_the_invoice_line(b: Billed, mode: str) -> None:
    b.server.plan(Plan(prompt_tokens=17, tokens=6))
    client = b.client()
    if mode == "stream":
        assert "".join(b_read(client)) == "t0 t1 t2 t3 t4 t5 "
    else:
        assert client.complete("Hi").text == "t0 t1 t2 t3 t4 t5 "
    [(cost, line)] = b.settled()
    assert cost.resolution is minillm.Resolution.RESOLVED
    assert (cost.cancelled, cost.failed, cost.attempt, cost.response_id) == (
        False,
        False,
        1,
        None if b.protocol == "ollama" else line.id,  # Ollama's answers carry no id
    )


class Leave(Exception):  # noqa: N818 - the caller's own, not a failure of the call
    """Raised inside a stream's ``with`` body."""


def read_then(stream: minillm.TrackedStream, stop: Callable[[], None]) -> None:
    """Read ``stream``; once it has streamed :data:`SEEN` (and stalls), ``stop`` it from another thread."""
    seen = threading.Event()
    threading.Thread(target=after, args=(seen.wait, stop), daemon=True).start()

    def read() -> None:
        for _ in stream:
            if stream.text == SEEN:
                seen.set()

    finishes(read)


def cut_by_cancel(client: minillm.Client) -> None:
    with client.stream("Hi") as stream:
        read_then(stream, stream.cancel)
    assert stream.response is not None and stream.response.finish_reason == "cancelled"


def cut_by_token(how: str, reason: str) -> Callable[[minillm.Client], None]:
    def cut(client: minillm.Client) -> None:
        token = minillm.CancellationToken()
        with client.stream("Hi", cancel=token) as stream:
            read_then(stream, getattr(token, how))
        assert stream.response is not None and stream.response.finish_reason == reason

    return cut


def cut_by_break(client: minillm.Client) -> None:
    with client.stream("Hi") as stream:
        for _ in stream.text_stream():
            if stream.text == SEEN:
                break  # and so out of the with block


def cut_by_exception(client: minillm.Client) -> None:
    with pytest.raises(Leave), client.stream("Hi") as stream:
        for _ in stream.text_stream():
            if stream.text == SEEN:
                raise Leave()


def cut_by_close(client: minillm.Client) -> None:
    stream = client.stream("Hi")
    for _ in stream:
        if stream.text == SEEN:
            stream.close()  # the loop then ends by itself
    assert stream.text == SEEN


def cut_by_dropping(client: minillm.Client) -> None:
    def read() -> None:
        stream = client.stream("Hi")
        for _ in stream.text_stream():
            if stream.text == SEEN:
                return  # the stream is dropped, unsettled

    read()
    collect_garbage()


@pytest.mark.parametrize(
    "cut",
    [
        cut_by_cancel,
        cut_by_token("cancel", "cancelled"),
        cut_by_token("pause", "paused"),
        cut_by_break,
        cut_by_exception,
        cut_by_close,
        cut_by_dropping,
    ],
    ids=["cancel", "token.cancel", "token.pause", "break", "exception", "close", "dropped"],
)
def test_table_cut_short_by_the_caller_is_a_cancelled_lower_bound(
    b: Billed, cut: Callable[[minillm.Client], None]
) -> None:
    b.server.plan(STALLS)
    cut(b.client())
    assert b.server.requests[0].disconnected.wait(10)
    b.assert_stopped_after_output(failed=False)
    assert b.invoice.lines[0].disconnected


@pytest.mark.parametrize(
    ("plan", "timeout", "error", "match"),
    [
        (STALLS, minillm.Timeout(read=10, total=0.3), minillm.APITimeoutError, "total deadline"),
        (STALLS, minillm.Timeout(read=0.2), minillm.APITimeoutError, "no data arrived"),
        (Plan(tokens=9, ending="drop", after=3), None, minillm.StreamError, "connection failed"),
        (Plan(tokens=9, ending="error", after=3), None, minillm.ServerError, "error mid-stream"),
        (Plan(tokens=9, ending="malformed", after=3), None, minillm.StreamError, "could not be parsed"),
    ],
    ids=["total deadline", "idle timeout", "dropped", "in-band error", "malformed event"],
)
def test_table_a_failure_after_output_is_a_failed_lower_bound(
    b: Billed, plan: Plan, timeout: Optional[minillm.Timeout], error: type, match: str
) -> None:
    b.server.plan(plan)
    client = b.client(**({"timeout": timeout} if timeout else {}))
    with pytest.raises(error, match=match) as caught:
        b_read(client)
    assert isinstance(caught.value, minillm.StreamError) and caught.value.partial_text == SEEN
    assert b.server.requests[0].finished.wait(10)
    b.assert_stopped_after_output(failed=True)


def test_table_sent_but_never_answered_is_unknown_and_failed(b: Billed) -> None:
    b.server.plan(Plan(prompt_tokens=12, ending="hang"))  # a whole answer: no status line until the client leaves
    client = b.client(timeout=minillm.Timeout(read=0.1), retry=minillm.RetryPolicy(max_attempts=1))
    with pytest.raises(minillm.APITimeoutError) as caught:
        client.complete("Hi")
    assert not isinstance(caught.value, minillm.StreamError)
    [(cost, line)] = b.settled()
    # Nothing came back, not even OpenRouter's X-Generation-Id header: no look-up.
    assert (cost.resolution, cost.usd, cost.response_id, cost.prompt_tokens) == (
        minillm.Resolution.UNKNOWN,
        None,
        None,
        0,
    )
    assert (cost.cancelled, cost.failed, cost.attempt) == (False, True, 1)
    assert (line.prompt_tokens, line.completion_tokens, line.disconnected) == (12, 0, True)


def test_table_never_reaching_the_provider_books_nothing(b: Billed) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connecting is refused
        client = b.client(base_url=f"http://127.0.0.1:{closed.getsockname()[1]}")
        with pytest.raises(minillm.APIConnectionError):
            b_read(client)
    assert len(b.sleeps.calls) == 2  # three attempts, none of them billable
    assert b.settled() == []
    assert b.server.requests == []


def test_table_an_error_status_books_nothing(b: Billed) -> None:
    # (a retried 503 books nothing either: see the retry row below)
    b.server.plan(Plan(ending="status", status=400))
    with pytest.raises(minillm.BadRequestError) as caught:
        b_read(b.client())
    assert caught.value.status_code == 400
    assert b.server.wait_for_requests(1)
    assert b.settled() == []


@pytest.mark.parametrize("when", ["while reading", "after collect"])
def test_table_reject_books_nothing_though_the_provider_bills(b: Billed, when: str) -> None:
    b.server.plan(STALLS if when == "while reading" else Plan(tokens=6))
    with b.client().stream("Hi") as stream:
        if when == "while reading":
            for _ in stream:
                if stream.text == SEEN:
                    stream.reject()
        else:
            stream.collect()
            stream.reject()
    assert stream.cost is None
    assert b.invoice.wait_final(10)
    for client in b.clients:
        assert client.flush(10)
    assert b.ledger.count == 0
    [line] = b.invoice.lines  # the caller's choice: the provider bills it all the same
    assert line.completion_tokens == (3 if when == "while reading" else 6)


#: what an attempt that failed with an in-band error before any output
#: books: what it saw before the error
FAILED_BEFORE_OUTPUT = {
    # the error chunk carries the usage and cost of what was sent
    "openrouter": minillm.Resolution.RESOLVED,
    # message_start carried the input usage
    "anthropic": minillm.Resolution.PARTIAL,
    # nothing but the error: nothing known
    "openai_chat": minillm.Resolution.UNKNOWN,
    "openai_responses": minillm.Resolution.UNKNOWN,
    "gemini": minillm.Resolution.UNKNOWN,
    "ollama": minillm.Resolution.UNKNOWN,
}


def test_table_a_retried_attempt_books_both_attempts(b: Billed) -> None:
    b.server.plan(Plan(ending="error", after=0), Plan(prompt_tokens=7, tokens=6))
    assert "".join(b_read(b.client())) == "t0 t1 t2 t3 t4 t5 "
    (failed, _), (served, _) = b.settled()
    assert (failed.attempt, failed.failed, failed.cancelled) == (1, True, False)
    assert (served.attempt, served.failed, served.cancelled) == (2, False, False)
    assert served.resolution is minillm.Resolution.RESOLVED
    assert failed.resolution is FAILED_BEFORE_OUTPUT[b.protocol]


def test_table_an_error_status_then_a_retry_books_the_second_attempt_alone(b: Billed) -> None:
    b.server.plan(Plan(ending="status", status=503), Plan(tokens=6))
    assert "".join(b_read(b.client())) == "t0 t1 t2 t3 t4 t5 "
    [(served, _)] = b.settled()
    assert (served.attempt, served.resolution, served.failed) == (2, minillm.Resolution.RESOLVED, False)


def test_table_a_fallback_books_the_primary_and_the_fallback(b: Billed) -> None:
    b.server.plan(Plan(ending="error", after=0), Plan(prompt_tokens=7, tokens=6))
    fallback = b.client(on_cost=None)  # the call books into the primary's sink
    primary = b.client(retry=minillm.RetryPolicy(max_attempts=1), fallbacks=[fallback])
    assert "".join(b_read(primary)) == "t0 t1 t2 t3 t4 t5 "
    assert b.sleeps.calls == []  # no retry: the fallback took over at once
    (failed, _), (served, _) = b.settled()
    assert (failed.attempt, failed.failed, failed.resolution) == (1, True, FAILED_BEFORE_OUTPUT[b.protocol])
    assert (served.attempt, served.failed, served.resolution) == (2, False, minillm.Resolution.RESOLVED)
