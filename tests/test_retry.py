"""RetryPolicy: what is retried, how long it waits, and that it reads each
attempt's own Retry-After -- unit tests, then against a real server."""

from __future__ import annotations

import email.utils
import logging
from typing import Any, Callable, List, Tuple

import pytest

import minillm
from minillm.retry import RETRYABLE_STATUSES, parse_retry_after
from minillm.testing import Gate, Reply, ScriptedServer, chat_completion, chat_stream, chat_usage

from .conftest import SleepRecorder


class Headers(dict):  # type: ignore[type-arg]
    """A case-insensitive mapping, as requests gives."""

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": " 1.5 "}, 1.5),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after-ms": "soon", "retry-after": "9"}, 9.0),
        ({"retry-after": "-3"}, 0.0),
        ({"retry-after": "whenever"}, None),
        ({}, None),
    ],
)
def test_retry_after_is_read_in_seconds_or_milliseconds(headers: dict, expected: Any) -> None:  # type: ignore[type-arg]
    assert parse_retry_after(Headers(headers)) == expected


def test_retry_after_may_be_an_http_date() -> None:
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(Headers({"retry-after": date}), now=now) == pytest.approx(30.0)
    past = email.utils.formatdate(now - 30, usegmt=True)
    assert parse_retry_after(Headers({"retry-after": past}), now=now) == 0.0


def api_error(status: int, retry_after: Any = None) -> minillm.APIError:
    cls = minillm.errors.error_class_for_status(status)
    return cls("x", status_code=status, retry_after=retry_after)


@pytest.mark.parametrize("status", sorted(RETRYABLE_STATUSES))
def test_the_documented_statuses_are_retried(status: int) -> None:
    assert minillm.RetryPolicy().should_retry(api_error(status))


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
def test_client_errors_are_not_retried(status: int) -> None:
    assert not minillm.RetryPolicy().should_retry(api_error(status))


def test_connection_errors_and_timeouts_before_the_body_are_retried_stream_errors_never() -> None:
    policy = minillm.RetryPolicy()
    assert policy.should_retry(minillm.APIConnectionError("refused"))
    assert policy.should_retry(minillm.APITimeoutError("slow"))
    assert not policy.should_retry(minillm.StreamError("mid-body"))
    assert not policy.should_retry(minillm.errors.StreamTimeoutError("mid-body"))
    assert not policy.should_retry(ValueError("not ours"))


def test_a_hint_longer_than_max_retry_after_is_not_waited_out() -> None:
    policy = minillm.RetryPolicy(max_retry_after=60)
    assert policy.should_retry(api_error(429, retry_after=60))
    assert not policy.should_retry(api_error(429, retry_after=61))


def test_backoff_grows_exponentially_with_bounded_jitter_up_to_the_cap() -> None:
    policy = minillm.RetryPolicy(initial_delay=0.5, multiplier=2, max_delay=3, jitter=0.25)
    for attempt, base in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (5, 3.0)]:
        for _ in range(50):
            assert base <= policy.delay(attempt, api_error(503)) <= min(base + 0.25, 3.0)


def test_a_429_without_a_hint_waits_at_least_the_floor_and_a_hint_is_used_exactly() -> None:
    policy = minillm.RetryPolicy(rate_limit_floor=5)
    assert policy.delay(1, api_error(429)) >= 5
    assert policy.delay(1, api_error(429, retry_after=1.25)) == 1.25
    assert policy.delay(1, api_error(503, retry_after=0.0)) == 0.0


@pytest.mark.parametrize(
    "kwargs", [{"max_attempts": 0}, {"max_attempts": 1.5}, {"initial_delay": -1}, {"jitter": "x"}, {"max_delay": None}]
)
def test_bad_policy_settings_are_rejected(kwargs: Any) -> None:
    with pytest.raises(minillm.InvalidArgumentError):
        minillm.RetryPolicy(**kwargs)


# -- against a server --------------------------------------------------------------------------------


def overloaded(retry_after: str = "") -> Reply:
    headers = (("Retry-After", retry_after),) if retry_after else ()
    return Reply.json({"error": {"message": "overloaded"}}, status=503, headers=headers)


def test_each_attempt_waits_for_its_own_responses_retry_after(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], sleeps: SleepRecorder
) -> None:
    server.reply(overloaded("1"), overloaded("2"), Reply.json(chat_completion("finally")))
    client = make_client(retry=minillm.RetryPolicy(max_attempts=3, sleep=sleeps))
    assert client.complete("Hi").text == "finally"
    assert sleeps.calls == [1.0, 2.0]
    assert len(server.requests) == 3


def test_a_stream_is_retried_before_its_body_begins(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger, sleeps: SleepRecorder
) -> None:
    server.reply(overloaded(), Reply.sse(chat_stream(["ok"], usage=chat_usage(1, 1))))
    with make_client().stream("Hi") as stream:
        assert "".join(stream.text_stream()) == "ok"
    assert len(sleeps.calls) == 1 and ledger.count == 1


def test_a_rate_limit_hint_beyond_the_maximum_raises_at_once_with_the_hint(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], sleeps: SleepRecorder
) -> None:
    server.reply(Reply.json({"error": {"message": "slow down"}}, status=429, headers=(("Retry-After", "3600"),)))
    with pytest.raises(minillm.RateLimitError) as caught:
        make_client().complete("Hi")
    assert caught.value.retry_after == 3600.0
    assert sleeps.calls == [] and len(server.requests) == 1


def test_exhausted_retries_raise_the_last_attempts_error(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], sleeps: SleepRecorder
) -> None:
    server.reply(overloaded(), overloaded(), Reply.json({"error": {"message": "the last one"}}, status=502))
    with pytest.raises(minillm.ServerError, match="the last one") as caught:
        make_client().complete("Hi")
    assert caught.value.status_code == 502
    assert len(server.requests) == 3 and len(sleeps.calls) == 2


def test_a_bad_request_is_not_retried(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], sleeps: SleepRecorder
) -> None:
    server.reply(Reply.json({"error": {"message": "nope"}}, status=400))
    with pytest.raises(minillm.BadRequestError):
        make_client().complete("Hi")
    assert len(server.requests) == 1 and sleeps.calls == []


def test_every_retry_is_logged_and_reported_without_secrets(
    server: ScriptedServer,
    make_client: Callable[..., minillm.Client],
    sleeps: SleepRecorder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: List[Tuple[int, str, float]] = []
    server.reply(overloaded("0.5"), Reply.json(chat_completion("ok", usage=chat_usage(1, 1, cost=0.0001))))
    client = make_client(
        "openrouter/x/y",
        api_key="sk-or-canary-retry",
        on_retry=lambda attempt, exc, delay: seen.append((attempt, type(exc).__name__, delay)),
    )
    with caplog.at_level(logging.WARNING, logger="minillm"):
        client.complete("Hi")
    assert seen == [(1, "ServerError", 0.5)]
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage() == "retrying openrouter request (attempt 1 of 3 failed: HTTP 503) in 0.50s"


def test_a_timeout_before_the_first_byte_is_retried(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], sleeps: SleepRecorder
) -> None:
    gate = Gate()
    server.reply(Reply.json(chat_completion("late")).held(gate), Reply.json(chat_completion("on time")))
    client = make_client(timeout=minillm.Timeout(read=0.2))
    try:
        assert client.complete("Hi").text == "on time"
    finally:
        gate.open()
    assert len(sleeps.calls) == 1


def test_no_retry_starts_that_would_end_after_the_total_deadline(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], sleeps: SleepRecorder
) -> None:
    server.reply(overloaded("30"), Reply.json(chat_completion("never reached")))
    client = make_client(timeout=minillm.Timeout(total=5))
    with pytest.raises(minillm.ServerError):
        client.complete("Hi")
    assert sleeps.calls == [] and len(server.requests) == 1
