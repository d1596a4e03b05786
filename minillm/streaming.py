"""Tracked streaming: :class:`TrackedStream`, a context manager over a
plain generator of :class:`~minillm.Chunk`, whose cost is settled exactly
once however the stream ends.

Every way out reaches the same two steps -- *stop* (decide how the stream
ended, stop reading, release the connection) and *book* (settle once) --
under one lock, so they are exactly-once even when they race on different
threads:

* ``__exit__`` and :meth:`TrackedStream.close`;
* the generator's ``finally`` (read to the end, failed, or dropped);
* :meth:`TrackedStream.cancel` and a :class:`~minillm.CancellationToken`,
  from any thread -- the socket is shut down, which wakes a blocked read;
* :meth:`TrackedStream.settle` and :meth:`TrackedStream.reject`;
* a ``weakref.finalize`` on the stream, for streams that are abandoned;
* the interpreter-exit hook, for streams still open at exit.

The generator and the finalizer reference the stream's :class:`_StreamCore`,
never the :class:`TrackedStream` itself, so dropping the last reference to
a stream finalizes it at once (no reference cycle waits for the collector).
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Any, Callable, Iterator, List, NamedTuple, Optional, Set

from .accounting.lookups import run_before_exit
from .accounting.settlement import Booking, Ending, decide, release
from .accumulate import StreamState, accumulate
from .errors import MiniLLMError, StreamError
from .events import Event, ProviderError
from .models import Chunk, CostInfo, Response
from .transports.http import HTTPResponse, RequestInterruptedError

__all__ = ["TrackedStream"]

log = logging.getLogger("minillm.streaming")

#: Streams not yet settled, for the interpreter-exit hook.
_open_cores: Set[_StreamCore] = set()
_open_lock = threading.Lock()


def _settle_open_streams() -> None:
    with _open_lock:
        cores = list(_open_cores)
    for core in cores:
        core.stop(Ending.EARLY, "cancelled")
        core.book()


run_before_exit(_settle_open_streams)

RaiseProviderError = Callable[[ProviderError, StreamState], MiniLLMError]


class Opened(NamedTuple):
    """One attempt's response, ready to be read."""

    response: HTTPResponse
    events: Iterator[Event]
    generation_id: Optional[str]


#: Sends the request again after a retryable in-band error that came before
#: any output; None when the stream was stopped meanwhile.
Reopen = Callable[["_StreamCore", ProviderError], Optional[Opened]]


class _StreamCore:
    """The state of one tracked stream, shared by its generator, its
    finalizer, and whichever threads stop or settle it."""

    def __init__(
        self,
        *,
        events: Iterator[Event],
        booking: Booking,
        response: Optional[HTTPResponse],
        generation_id: Optional[str],
        to_error: RaiseProviderError,
        scrub: Callable[[str], str] = str,
        reopen: Optional[Reopen] = None,
    ) -> None:
        self.lock = threading.RLock()
        self.state = StreamState()
        self.events = events
        self.booking = booking
        self.http = response
        self.header_id = generation_id
        self.to_error = to_error
        self.scrub = scrub
        self.reopen = reopen
        #: between attempts, no request of this stream is out: stopping now
        #: costs nothing
        self.unsent = False
        self._release_hooks: List[Callable[[], object]] = []
        #: how the stream ended; None while it runs
        self.ending: Optional[Ending] = None
        #: the finish reason forced by the caller ("cancelled", "paused")
        self.stop_reason: Optional[str] = None
        self.result: Optional[Response] = None
        self.cost: Optional[CostInfo] = None
        #: what made the stream fail, to raise again from collect()
        self.error: Optional[MiniLLMError] = None
        self.booked = False
        #: collect() drains without settling
        self.deferred = False
        self.released = False
        self.gen: Optional[Iterator[Chunk]] = _run(self)
        with _open_lock:
            _open_cores.add(self)

    # -- ending -------------------------------------------------------------

    def end(self, ending: Ending, reason: Optional[str] = None) -> bool:
        """Record how the stream ended (the first call wins).

        Stopping a stream whose provider already said it was complete (a
        finish reason and usage, waiting only for ``[DONE]``) is not an
        early end: nothing was cut short.
        """
        with self.lock:
            if self.ending is not None:
                return False
            if ending is Ending.EARLY and self.state.is_terminal:
                ending, reason = Ending.COMPLETED, None
            self.ending = ending
            self.stop_reason = reason
            self.result = self.state.to_response(finish_reason=reason)
            return True

    def stop(self, ending: Ending, reason: str) -> None:
        """End the stream now, from any thread: stop reading and release
        the connection. A no-op once the stream has ended."""
        if self.end(ending, reason):
            self.release(interrupt=True)

    def interrupt(self, reason: str) -> None:
        """Interrupt the response being read (a total deadline passed)."""
        http = self.http
        if http is not None:
            http.interrupt(reason)

    def on_release(self, hook: Callable[[], object]) -> None:
        """Run ``hook`` when the stream releases its connection (at once if
        it already has)."""
        with self.lock:
            if not self.released:
                self._release_hooks.append(hook)
                return
        hook()

    def release(self, *, interrupt: bool) -> None:
        """Stop reading and let the connection go. Runs once; never raises."""
        with self.lock:
            if self.released:
                return
            self.released = True
            steps = list(self._release_hooks)
            self._release_hooks = []
            # The generator is never closed from here: a thread about to
            # resume it would get "generator already executing". Dropping
            # our reference frees it at once when nobody is iterating it (its
            # finally then runs on this thread); a thread that is iterating it
            # sees the stream stopped, or the interrupted socket, and ends it.
            gen, self.gen = self.gen, None
        http = self.http
        if http is not None:
            if interrupt:
                steps.append(lambda: http.interrupt("cancel"))
            steps.append(http.close)
        for step in steps:
            try:
                step()
            except Exception:  # pragma: no cover - releasing must finish
                log.exception("releasing a stream failed")
        del gen

    # -- booking ------------------------------------------------------------

    def book(self) -> Optional[CostInfo]:
        """Settle once; later calls return what the first one booked.

        The decision and the recording of the cost happen under the lock, so
        a racing caller sees the cost; the sink is called outside it.
        """
        with self.lock:
            if self.booked:
                return self.cost
            if self.ending is None:
                return None
            self.booked = True
            ending = Ending.REJECTED if self.unsent and self.ending is Ending.EARLY else self.ending
            decision = decide(self.booking, self.state, ending, generation_id=self.header_id, on_booked=self._on_booked)
            if decision.now is not None:
                self._on_booked(decision.now)
        with _open_lock:
            _open_cores.discard(self)
        decision.carry_out()
        return decision.now

    def _on_booked(self, cost: CostInfo) -> None:
        self.cost = cost
        if self.result is not None:
            self.result.cost = cost

    def reject(self) -> None:
        with self.lock:
            if self.booked:
                return
            self.booked = True
        with _open_lock:
            _open_cores.discard(self)
        release(self.booking)
        self.stop(Ending.REJECTED, "cancelled")

    def finish(self) -> Optional[CostInfo]:
        """Stop if still running, then settle: what ``__exit__``, ``close()``,
        ``settle()`` and the finalizer do."""
        self.stop(Ending.EARLY, "cancelled")
        return self.book()

    # -- the generator's side -------------------------------------------------

    def try_again(self, error: ProviderError) -> bool:
        """After a retryable in-band error that came before any output, send
        the request again and carry on reading the new response.

        The failed attempt is forgotten: it books nothing (an in-band error
        is a failure), and nothing of it reached the caller.

        :returns: False when the stream cannot go on (no retry is possible,
            or it was stopped meanwhile).
        :raises MiniLLMError: the retries ran out.
        """
        if self.reopen is None:
            return False
        with self.lock:
            if self.ending is not None:
                return False
            old_http, old_events = self.http, self.events
            self.http, self.events, self.header_id = None, iter(()), None
            self.state = StreamState()
            self.unsent = True
        _close_events(old_events)
        if old_http is not None:
            old_http.close()
        opened = self.reopen(self, error)
        if opened is None:
            return False
        with self.lock:
            if not self.released:
                self.http, self.events, self.header_id = opened
                return True
        opened.response.close()
        _close_events(opened.events)
        return False

    def sending(self) -> None:
        """A retry is about to go out: from now on stopping may cost.

        :raises RequestInterruptedError: the stream was stopped during the wait.
        """
        with self.lock:
            if self.ending is not None:
                raise RequestInterruptedError("the stream was stopped before its retry", sent=False)
            self.unsent = False

    def attempt_failed(self) -> None:
        """A retry failed with an error (a failed attempt costs nothing)."""
        with self.lock:
            if self.ending is None:
                self.unsent = True

    def fail(self, exc: MiniLLMError) -> None:
        self.error = exc
        if isinstance(exc, StreamError):
            exc.partial_text = self.state.text
            exc.partial_response = self.state.to_response(finish_reason="error")
        if self.end(Ending.FAILED, "error"):
            release(self.booking)  # a failure books nothing, ever: a budget need not wait for it

    def body_ended(self) -> None:
        if self.ending is not None:
            return
        if not self.state.is_terminal:
            text = self.state.text
            raise StreamError(
                f"the response ended before {self.booking.provider}'s terminal event "
                f"(after {len(text)} characters): the answer is incomplete",
                provider=self.booking.provider,
            )
        self.end(Ending.COMPLETED)


def _run(core: _StreamCore) -> Iterator[Chunk]:
    """The stream's one generator: fold every event, yield the chunks."""
    state = core.state
    try:
        again = True
        while again:
            again = False
            state = core.state
            for event in core.events:
                accumulate(state, event)
                if type(event) is Chunk:
                    if core.ending is not None:
                        break  # stopped from another thread
                    yield event
                elif state.error is not None:
                    reported = state.error
                    if reported.retryable and not state.content_seen and core.try_again(reported):
                        again = True
                        break
                    raise core.to_error(reported, state)
            else:
                core.body_ended()
    except Exception as exc:
        if core.ending is not None:
            return  # stopped first (we shut the connection down): not a failure
        if state.is_terminal and state.error is None:
            # The provider had already said the answer was complete (finish
            # reason and usage); losing the connection while waiting for
            # [DONE] takes nothing away from it.
            core.end(Ending.COMPLETED)
            return
        if isinstance(exc, MiniLLMError):
            core.fail(exc)
            raise
        # Anything else is a body we could not make sense of: still a
        # StreamError, never a foreign exception, and nothing is booked.
        error = StreamError(
            core.scrub(f"the response from {core.booking.provider} could not be read: {type(exc).__name__}: {exc}"),
            provider=core.booking.provider,
        )
        core.fail(error)
        raise error from None
    finally:
        core.gen = None
        core.end(Ending.EARLY, "cancelled")  # closed by the caller before the end
        core.release(interrupt=False)
        _close_events(core.events)
        if not core.deferred:
            core.book()


class TrackedStream:
    """A streamed response whose cost is booked exactly once.

    Use it as a context manager and iterate it for :class:`~minillm.Chunk`
    objects; leaving the block settles the cost. Without ``with``, the cost
    settles when the stream is read to the end or closed, or -- for a stream
    that is broken out of or never read -- when it is dropped (garbage
    collected). Breaking out of a loop does not end the stream by itself: a
    later loop continues where the first stopped.

    One thread iterates a stream; :meth:`cancel`, :meth:`settle` and
    :meth:`reject` may be called from any thread.
    """

    def __init__(self, core: _StreamCore, *, model: str) -> None:
        self._core = core
        self._model = model
        self._finalizer = weakref.finalize(self, core.finish)

    @classmethod
    def _stopped(
        cls, booking: Booking, reason: str, *, model: str, sent: bool, generation_id: Optional[str] = None
    ) -> TrackedStream:
        """An empty stream whose call was stopped before a response arrived.

        Nothing was spent if the request never went out: it books nothing.
        A request that did go out may cost: it is booked as an early end
        (looked up by its generation id when there is one, else ``UNKNOWN``).
        """
        core = _StreamCore(
            events=iter(()),
            booking=booking,
            response=None,
            generation_id=generation_id,
            to_error=_no_errors,
        )
        if not sent:
            core.reject()
        core.stop(Ending.EARLY, reason)
        if core.result is not None:
            core.result.finish_reason = reason
        core.book()
        return cls(core, model=model)

    # -- iteration ------------------------------------------------------------

    def __iter__(self) -> Iterator[Chunk]:
        # A fresh wrapper per loop: breaking out of one loop does not end the
        # stream (a later loop continues), and the wrapper keeps this object
        # alive while it is being iterated.
        gen = self._core.gen
        if gen is None:
            return
        try:
            for chunk in gen:  # noqa: UP028 - "yield from" would end the stream on break
                yield chunk
        except ValueError as exc:
            # The generator turns every failure into a StreamError; this can
            # only be "generator already executing".
            raise MiniLLMError("a stream is being read by another thread: read it from one thread at a time") from exc

    def text_stream(self) -> Iterator[str]:
        """The text pieces only."""
        for chunk in self:
            if chunk.text:
                yield chunk.text

    def collect(self) -> Response:
        """Read to the end and return the :class:`~minillm.Response`.

        Books nothing: call :meth:`settle` (or leave the ``with`` block) to
        book, or :meth:`reject` to book nothing.
        """
        core = self._core
        core.deferred = True
        for _ in self:
            pass
        if core.error is not None:
            raise core.error
        result = core.result
        assert result is not None
        return result

    # -- settlement -----------------------------------------------------------

    def settle(self) -> Optional[CostInfo]:
        """Book now (stopping the stream if it is still running). Idempotent.

        :returns: the :class:`~minillm.CostInfo` booked, or None when nothing
            is booked (a failed or rejected stream) or the cost is still being
            looked up.
        """
        return self._core.finish()

    def reject(self) -> None:
        """Book nothing, ever, for this stream (and stop reading it)."""
        self._core.reject()

    def cancel(self) -> None:
        """Stop the stream from any thread -- also while another thread is
        blocked reading it -- and settle it as a cancellation."""
        core = self._core
        core.stop(Ending.EARLY, "cancelled")
        core.book()

    def close(self) -> None:
        """Stop reading and settle; what leaving the ``with`` block does."""
        self._core.finish()

    def __enter__(self) -> TrackedStream:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._core.finish()

    # -- what is known so far -------------------------------------------------

    @property
    def text(self) -> str:
        """The text received so far."""
        return self._core.state.text

    @property
    def thinking(self) -> str:
        """The thinking received so far."""
        return self._core.state.thinking

    @property
    def response(self) -> Optional[Response]:
        """The :class:`~minillm.Response` once the stream has ended, else None."""
        return self._core.result

    @property
    def cost(self) -> Optional[CostInfo]:
        """The booked :class:`~minillm.CostInfo` once settled, else None."""
        return self._core.cost

    @property
    def id(self) -> Optional[str]:
        """The provider's generation id, once seen."""
        return self._core.header_id or self._core.state.id

    def __repr__(self) -> str:
        core = self._core
        status = core.ending.value if core.ending is not None else "open"
        return f"<TrackedStream {self._model} id={self.id!r} {status}>"


def _close_events(events: Iterator[Event]) -> None:
    close = getattr(events, "close", None)
    if close is not None:
        try:
            close()
        except Exception:  # pragma: no cover - the events are being dropped anyway
            log.debug("closing a stream's events failed", exc_info=True)


def _no_errors(error: ProviderError, state: StreamState) -> MiniLLMError:  # pragma: no cover
    raise AssertionError("a prevented stream has no body")
