"""Tracked streaming: :class:`TrackedStream`, a context manager over the
call's one reader (:func:`minillm.call.drive`), whose attempts are booked
exactly once however the stream ends.

Every way out reaches the same two steps -- *stop* (decide how the call
ended, stop reading, let the connection go) and *book* (settle the last
attempt once) -- under the call's lock, so they are exactly-once even when
they race on different threads:

* ``__exit__`` and :meth:`TrackedStream.close`;
* the reader's ``finally`` (read to the end, failed, or dropped);
* :meth:`TrackedStream.cancel` and a :class:`~minillm.CancellationToken`,
  from any thread -- the socket is shut down, which wakes a blocked read;
* :meth:`TrackedStream.settle` and :meth:`TrackedStream.reject`;
* a ``weakref.finalize`` on the stream, for streams that are abandoned;
* the interpreter-exit hook, for calls still open at exit.

The reader and the finalizer reference the :class:`~minillm.call.Call`,
never the :class:`TrackedStream` itself, so dropping the last reference to
a stream finalizes it at once (no reference cycle waits for the collector).
"""

from __future__ import annotations

import weakref
from typing import Any, Iterator, Optional

from . import runtime
from .boundary import kept, shortened
from .call import Call
from .errors import MiniLLMError
from .models import Chunk, CostInfo, Response

__all__ = ["TrackedStream"]


class TrackedStream:
    """A streamed response whose cost is booked exactly once.

    Use it as a context manager and iterate it for :class:`~minillm.Chunk`
    objects; leaving the block settles the cost. Without ``with``, the cost
    settles when the stream is read to the end or closed, or -- for a stream
    that is broken out of or never read -- when it is dropped (garbage
    collected). Breaking out of a loop does not end the stream by itself: a
    later loop continues where the first stopped.

    Each attempt of the request is booked on its own: a retry that happened
    before the first chunk was booked as it failed; this stream books the
    attempt it reads.

    One thread iterates a stream; :meth:`cancel`, :meth:`settle` and
    :meth:`reject` may be called from any thread.
    """

    def __init__(self, call: Call, *, model: str) -> None:
        self._call = call
        self._model = model
        # Dropped, it is settled on the settler's thread: the collector may
        # run on any thread, holding any lock (a ledger's, say). At exit the
        # exit hook settles what is still open.
        runtime.settler.ready()
        self._finalizer = weakref.finalize(self, runtime.settler.later, call.finish)
        self._finalizer.atexit = False

    # -- iteration ------------------------------------------------------------

    def __iter__(self) -> Iterator[Chunk]:
        # A fresh wrapper per loop: breaking out of one loop does not end the
        # stream (a later loop continues), and the wrapper keeps this object
        # alive while it is being iterated.
        call = self._call
        gen = call.gen
        if gen is None:
            return
        try:
            for chunk in gen:  # noqa: UP028 - "yield from" would end the stream on break
                yield chunk
        except MiniLLMError as exc:
            _keep_for_collect(call, exc)
            raise shortened(exc) from exc.__cause__
        except ValueError as exc:
            # The reader turns every failure into a StreamError; this can
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

        :raises MiniLLMError: what made the stream fail (again, as an equal
            exception, when it failed before).
        """
        call = self._call
        call.deferred = True
        for _ in self:
            pass
        if call.error is not None:
            error = call.error
            _keep_for_collect(call, error)
            raise error
        result = call.result
        assert result is not None
        return result

    # -- settlement -----------------------------------------------------------

    def settle(self) -> Optional[CostInfo]:
        """Book now (stopping the stream if it is still running). Idempotent.

        :returns: the :class:`~minillm.CostInfo` booked, or None when nothing
            is booked (a rejected stream, a call stopped before it was
            answered) or the cost is still being looked up.
        """
        return self._call.finish()

    def reject(self) -> None:
        """Book nothing, ever, for the attempt this stream reads (and stop
        reading it). Attempts that failed before it are booked already.
        Idempotent; to decide after reading, read with :meth:`collect`.

        :raises InvalidArgumentError: the stream was booked already (read
            to its end by iterating, settled, or closed): a booking is
            never taken back.
        """
        self._call.reject()

    def cancel(self) -> None:
        """Stop the stream from any thread -- also while another thread is
        blocked reading it -- and settle it as a cancellation."""
        self._call.finish()

    def close(self) -> None:
        """Stop reading and settle; what leaving the ``with`` block does."""
        self._call.finish()

    def __enter__(self) -> TrackedStream:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._call.finish()

    # -- what is known so far -------------------------------------------------

    @property
    def text(self) -> str:
        """The text received so far."""
        attempt = self._call.attempt
        return attempt.state.text if attempt is not None else ""

    @property
    def thinking(self) -> str:
        """The thinking received so far."""
        attempt = self._call.attempt
        return attempt.state.thinking if attempt is not None else ""

    @property
    def response(self) -> Optional[Response]:
        """The :class:`~minillm.Response` once the stream has ended, else None."""
        return self._call.result

    @property
    def cost(self) -> Optional[CostInfo]:
        """The booked :class:`~minillm.CostInfo` once settled, else None."""
        return self._call.cost

    @property
    def id(self) -> Optional[str]:
        """The provider's generation id, once seen."""
        attempt = self._call.attempt
        if attempt is None:
            return None
        return attempt.header_id or attempt.state.id

    def __repr__(self) -> str:
        ending = self._call.ending
        status = ending.value if ending is not None else "open"
        return f"<TrackedStream {self._model} id={self.id!r} {status}>"


def _keep_for_collect(call: Call, error: MiniLLMError) -> None:
    """Keep ``error`` on the call, to raise again from a later
    :meth:`TrackedStream.collect` -- as a twin without the frames that hold
    the stream (see ``minillm.boundary.kept``)."""
    call.error = kept(error)
