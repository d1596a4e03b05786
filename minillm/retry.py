"""Retries: :class:`RetryPolicy`, built on tenacity, and ``Retry-After`` parsing.

What is retried: connection errors, timeouts before the first byte, the
statuses in :data:`!RETRYABLE_STATUSES`, and errors a provider reports inside
a response before any output -- an Anthropic ``overloaded_error``, an
OpenRouter ``error`` frame, Groq's ``event: error``, or an error object in a
200 body -- whose status (from their code or kind) is one of those. A
stream hit by such an error sends its request again and carries on reading
the new response, invisibly to the caller; the failed attempt is booked
like any other that may have been billed. Nothing is retried once any
output has reached the caller: that is a :class:`~minillm.StreamError` with
``.partial_text``.

How long to wait: the provider's own hint (``retry-after-ms``, then
``Retry-After`` in seconds or as an HTTP date) read from the failed
attempt's response; otherwise exponential backoff with jitter, capped at
``max_delay``, and at least ``rate_limit_floor`` for a 429. A hint above
``max_retry_after`` is not waited out: the error is raised at once (with
``.retry_after`` set) rather than blocking a worker for minutes.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from typing import Any, Callable, Dict, Mapping, Optional, TypeVar

import attrs

from .errors import APIConnectionError, APIError, InvalidArgumentError, StreamError

__all__ = ["RETRYABLE_STATUSES", "RetryPolicy", "parse_retry_after"]

log = logging.getLogger("minillm.retry")

T = TypeVar("T")

#: HTTP statuses worth another attempt.
RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})


def parse_retry_after(headers: Mapping[str, str], now: Optional[float] = None) -> Optional[float]:
    """Seconds the server asked us to wait, from ``retry-after-ms`` or
    ``Retry-After`` (seconds or an HTTP date); None when it did not say.

    ``headers`` must be case-insensitive (as ``requests`` gives them).
    """
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            value = float(raw_ms) / 1000.0
        except ValueError:
            value = math.nan
        if math.isfinite(value):
            return max(value, 0.0)
    raw = headers.get("retry-after")
    if not raw:
        return None
    raw = raw.strip()
    try:
        value = float(raw)
    except ValueError:
        import email.utils  # only an HTTP-date hint needs it: keep it off import

        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        current = time.time() if now is None else now
        return max(when.timestamp() - current, 0.0)
    return max(value, 0.0) if math.isfinite(value) else None


def _non_negative(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise InvalidArgumentError(f"RetryPolicy.{attribute.name} must be a non-negative number, not {value!r}")


def _attempts(instance: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(f"RetryPolicy.max_attempts must be an integer >= 1, not {value!r}")


@attrs.frozen
class RetryPolicy:
    """When and how long to retry a request that failed before its body began.

    :param max_attempts: attempts in all, the first included (1 = never retry).
    :param initial_delay: the first backoff, in seconds.
    :param max_delay: the cap on any computed backoff.
    :param multiplier: the growth factor between backoffs.
    :param jitter: up to this many seconds of random delay added to a backoff.
    :param rate_limit_floor: the least wait after a 429 that gave no hint.
    :param max_retry_after: a server hint above this raises at once.
    :param sleep: how to wait; tests inject a recorder so they never sleep.
    """

    max_attempts: int = attrs.field(default=3, validator=_attempts)
    initial_delay: float = attrs.field(default=0.5, validator=_non_negative)
    max_delay: float = attrs.field(default=8.0, validator=_non_negative)
    multiplier: float = attrs.field(default=2.0, validator=_non_negative)
    jitter: float = attrs.field(default=0.25, validator=_non_negative)
    rate_limit_floor: float = attrs.field(default=5.0, validator=_non_negative)
    max_retry_after: float = attrs.field(default=60.0, validator=_non_negative)
    sleep: Callable[[float], None] = attrs.field(default=time.sleep, kw_only=True, eq=False, repr=False)

    def should_retry(self, exc: BaseException) -> bool:
        """Whether ``exc`` is worth another attempt: a connection error or a
        timeout before the body, or a retryable status -- an HTTP error's, or
        that of an error the provider reported inside the body before any
        output (the caller only asks then). A failure while reading a body
        (a dropped connection, a timeout) is never retried."""
        if isinstance(exc, StreamError) and not isinstance(exc, APIError):
            return False
        if isinstance(exc, APIConnectionError):
            return True
        if isinstance(exc, APIError):
            if exc.status_code not in RETRYABLE_STATUSES:
                return False
            hint = getattr(exc, "retry_after", None)
            return hint is None or hint <= self.max_retry_after
        return False

    def delay(self, attempt: int, exc: Optional[BaseException]) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (from 1)."""
        hint = getattr(exc, "retry_after", None)
        if hint is not None:
            return float(hint)
        backoff = self.initial_delay * (self.multiplier ** (attempt - 1))
        wait = min(self.max_delay, backoff + random.uniform(0.0, self.jitter))
        if isinstance(exc, APIError) and exc.status_code == 429:
            wait = max(wait, self.rate_limit_floor)
        return wait

    def call(
        self,
        fn: Callable[[], T],
        *,
        attempts: Optional[Callable[[], int]] = None,
        failed: Optional[BaseException] = None,
        deadline: Optional[float] = None,
        on_retry: Optional[Callable[[int, BaseException, float], None]] = None,
        wake: Optional[threading.Event] = None,
    ) -> T:
        """Run ``fn`` under this policy and return its result: the one retry loop.

        :param attempts: how many attempts have been made so far (they count
            against ``max_attempts``; default: the attempts of this loop).
        :param failed: the error that ended the last attempt, when the loop
            carries on after one made elsewhere (a retryable error reported
            inside a response before any output): it is waited after as if
            ``fn`` had just raised it.
        :param deadline: a ``time.monotonic()`` instant; no retry is started
            whose wait would end after it.
        :param on_retry: called as ``on_retry(attempt, exc, delay)`` before
            each wait.
        :param wake: an event that ends a backoff early (a cancellation);
            used with the default sleep -- an injected ``sleep`` is trusted
            to do its own waiting.
        :raises: the last attempt's own error.
        """
        import tenacity

        pending = [failed]

        def attempt() -> T:
            error = pending[0]
            if error is not None:
                pending[0] = None
                raise error
            return fn()

        def made(state: tenacity.RetryCallState) -> int:
            return attempts() if attempts is not None else state.attempt_number

        # One delay per failed attempt, drawn once (it has jitter) and shared
        # by wait, stop and before_sleep -- whichever order the installed
        # tenacity calls them in.
        delays: Dict[int, float] = {}

        def wait(state: tenacity.RetryCallState) -> float:
            number = made(state)
            if number not in delays:
                exc = state.outcome.exception() if state.outcome else None
                delays[number] = self.delay(number, exc)
            return delays[number]

        def stop(state: tenacity.RetryCallState) -> bool:
            if made(state) >= self.max_attempts:
                return True
            return deadline is not None and time.monotonic() + wait(state) >= deadline

        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            if on_retry is not None and exc is not None:
                on_retry(made(state), exc, wait(state))

        retrying = tenacity.Retrying(
            stop=stop,
            wait=wait,
            retry=tenacity.retry_if_exception(self.should_retry),
            reraise=True,
            sleep=lambda seconds: self._pause(seconds, wake),
            before_sleep=before_sleep,
        )
        return retrying(attempt)

    def _pause(self, seconds: float, wake: Optional[threading.Event]) -> None:
        # The default sleep waits on ``wake`` so a cancellation ends it
        # early; an injected sleep is trusted to do its own waiting.
        if wake is not None and self.sleep is time.sleep:
            wake.wait(seconds)
        else:
            self.sleep(seconds)
