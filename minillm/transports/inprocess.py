"""The transport of ``local/<engine>``: requests answered in this process.

:class:`InProcessTransport` hands each request to the same
:class:`~minillm.serve.app.OpenAIApp` that ``minillm serve`` runs, and
returns its answer as an :class:`~minillm.transports.base.HTTPResponse`, so a
local engine goes through every step a remote model does -- the adapter,
the framing, the fold, settlement -- except the socket.

Interrupting (a cancel, a token, a deadline) stops the engine's generation
through its context, with the :class:`~minillm.cancellation.Stop` that
interrupted it; a reader waiting on the engine wakes as soon as the engine
notices (engines poll between outputs). The read timeout bounds the silence
between two pieces of the body, as it does on a socket; running out of it
stops the engine as ``Stop.DEADLINE`` does -- a time limit passed, which
nobody chose.

What the caller sees follows from the reason, not from what the engine
answers once stopped: a cancel or a pause ends the answer, a deadline or a
read timeout fails it as a timeout, as on a socket.
"""

from __future__ import annotations

import threading
import time
from typing import Iterator, Mapping, Optional, Tuple

from .. import runtime
from ..cancellation import Stop
from ..engines.base import Engine, GenerationContext
from ..errors import APITimeoutError, StreamError, StreamTimeoutError
from ..redaction import Redactor
from ..serve.app import AppReply, OpenAIApp
from .base import Exchange, HTTPRequest, HTTPResponse, Interrupted, Transport, endpoint_of

__all__ = ["InProcessTransport"]


class _Headers(Mapping[str, str]):
    """Response headers, looked up case-insensitively."""

    def __init__(self, pairs: Tuple[Tuple[str, str], ...]) -> None:
        self._items = {name.lower(): value for name, value in pairs}

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


class InProcessTransport(Transport):
    """Answers requests with ``engine``, in this process. Thread-safe.

    :param aliases: model names the engine answers to besides its own.
    """

    def __init__(self, engine: Engine, *, redactor: Redactor, aliases: Tuple[str, ...] = ()) -> None:
        self._engine = engine
        self._app = OpenAIApp(engine, aliases=aliases)
        self._redactor = redactor

    def send(
        self, request: HTTPRequest, *, timeouts: Tuple[float, float], exchange: Optional[Exchange] = None
    ) -> HTTPResponse:
        from urllib.parse import urlsplit

        if exchange is None:
            exchange = Exchange()
        exchange.check()
        ctx = GenerationContext()
        # Handed to the engine: from here on it may spend. The wait for the
        # "headers" is the wait for the first output (all of them, for a
        # whole answer): a stop aborts the generation.
        exchange.mark_sent()

        def stopped() -> None:
            reason = exchange.stopped
            assert reason is not None  # set before the exchange calls back
            self._engine.abort(ctx, reason)

        exchange.waiting(stopped)
        silent = threading.Event()

        def too_slow() -> None:
            silent.set()
            self._engine.abort(ctx, Stop.DEADLINE)

        timer = runtime.timers.call_at(time.monotonic() + timeouts[1], too_slow)
        try:
            reply = self._app.handle(request.method, urlsplit(request.url).path, request.body or b"", ctx)
        finally:
            if timer is not None:
                timer.cancel()
            exchange.done_waiting()
        if exchange.stopped is not None:
            _close(reply.body)
            raise Interrupted(exchange.stopped, sent=True)
        if silent.is_set():
            _close(reply.body)
            raise APITimeoutError(f"the {self._engine.name} engine sent no response within {timeouts[1]:g}s")
        response = _LocalResponse(reply, ctx, self._engine, endpoint_of(request.url), timeouts[1])
        exchange.attach(response)
        return response

    def close(self) -> None:
        """Nothing to let go: the engine is shared, and cleaned up at exit."""


class _LocalResponse(HTTPResponse):
    """An in-process answer. One thread reads it; :meth:`interrupt` and
    :meth:`close` may come from any thread."""

    def __init__(self, reply: AppReply, ctx: GenerationContext, engine: Engine, endpoint: str, read_timeout: float):
        self.status = reply.status
        self.headers = _Headers(reply.headers)
        self.endpoint = endpoint
        self._body = reply.body
        self._ctx = ctx
        self._engine = engine
        self._read_timeout = read_timeout
        # Held while the reader is inside the body, so that nobody closes the
        # body under it ("generator already executing").
        self._lock = threading.Lock()
        self._in_body = False
        self._reason: Optional[Stop] = None
        #: the read timeout passed (the engine was aborted for it)
        self._idle = False
        self._finished = False
        self.last_piece = time.monotonic()

    @property
    def interrupted(self) -> Optional[Stop]:
        return self._reason

    def interrupt(self, reason: Stop) -> bool:
        with self._lock:
            if self._finished or self._reason is not None or self._idle:
                return False
            self._reason = reason
        self._engine.abort(self._ctx, reason)  # the reader wakes when the engine notices
        return True

    def _stopped(self) -> bool:
        return self._reason is not None or self._idle

    def went_silent(self) -> None:
        """The read timeout passed: stop the engine, and fail the read."""
        with self._lock:
            if self._finished or self._reason is not None or self._idle:
                return
            self._idle = True
        self._engine.abort(self._ctx, Stop.DEADLINE)

    def iter_bytes(self) -> Iterator[bytes]:
        timer = _ReadTimer(self) if self._read_timeout > 0 else None
        try:
            while True:
                with self._lock:
                    if self._finished or self._reason is not None or self._idle:
                        break
                    self._in_body = True
                try:
                    piece = next(self._body)
                except StopIteration:
                    break
                except Exception as exc:  # the application turns engine failures into data
                    raise StreamError(f"the engine's answer could not be read: {type(exc).__name__}: {exc}") from exc
                finally:
                    with self._lock:
                        self._in_body = False
                if self._stopped():  # by another thread meanwhile
                    break  # what the engine said after it was stopped is not for the reader
                self.last_piece = time.monotonic()
                yield piece
        finally:
            if timer is not None:
                timer.cancel()
            self.close()
        if self._reason is Stop.DEADLINE:
            raise StreamTimeoutError("the total deadline passed while reading the response")
        if self._idle:
            raise StreamTimeoutError(f"no data arrived for {self._read_timeout:g}s while reading the response")

    def close(self) -> None:
        with self._lock:
            if self._finished:
                return
            if self._in_body:
                # The reader is inside the body: stopping the generation ends
                # its loop, and it closes the body on its way out.
                stop = True
            else:
                stop = False
                self._finished = True
                _close(self._body)
        if stop:
            self._engine.abort(self._ctx, Stop.CANCELLED)


class _ReadTimer:
    """Interrupts a body that has been silent for its read timeout. One
    timer at a time, re-armed from the last piece's time rather than per
    piece."""

    def __init__(self, response: _LocalResponse) -> None:
        self._response = response
        self._lock = threading.Lock()
        self._cancelled = False
        self._handle = runtime.timers.call_at(time.monotonic() + response._read_timeout, self._check)

    def _check(self) -> None:
        response = self._response
        due = response.last_piece + response._read_timeout
        if time.monotonic() >= due:
            response.went_silent()
            return
        with self._lock:
            if not self._cancelled:
                self._handle = runtime.timers.call_at(due, self._check)

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            handle = self._handle
        if handle is not None:
            handle.cancel()


def _close(body: Iterator[bytes]) -> None:
    close = getattr(body, "close", None)
    if close is not None:
        close()
