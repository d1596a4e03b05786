"""Stopping a call from any thread: :class:`CancellationToken`, and
:class:`Stop`, the reasons a call can be stopped before its end.

A token passed as ``cancel=`` stops the call it was given to -- also one
blocked waiting on the network, whose socket is shut down -- and a token
cancelled before a request is sent prevents the request.
"""

from __future__ import annotations

import enum
import threading
from typing import Callable, List

__all__ = ["CancellationToken", "Stop"]


class Stop(enum.Enum):
    """Why a call was stopped before it ended on its own."""

    #: the caller: ``cancel()``, a token's cancel, leaving the ``with`` block
    #: early, ``close()``, a dropped stream, the interpreter's exit
    CANCELLED = "cancelled"
    #: the caller, through a token's ``pause()``
    PAUSED = "paused"
    #: the total deadline (``Timeout(total=)``) passed: a failure, not a choice
    DEADLINE = "deadline"

    @property
    def by_caller(self) -> bool:
        """Whether the caller chose to stop (the attempt is then *cancelled*, not *failed*)."""
        return self is not Stop.DEADLINE


RUNNING = "running"
CANCELLED = "cancelled"
PAUSED = "paused"


class CancellationToken:
    """A flag that stops streams, settable from any thread.

    ``pause()`` stops a stream just like ``cancel()`` does; the difference is
    recorded as the stream's finish reason (``"paused"`` rather than
    ``"cancelled"``) so that callers can resume the work later. A cancel
    overrides a pause; a pause never overrides a cancel.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._disposition = RUNNING
        self._listeners: List[Callable[[], object]] = []

    @property
    def disposition(self) -> str:
        """``"running"``, ``"cancelled"`` or ``"paused"``."""
        return self._disposition

    @property
    def is_cancelled(self) -> bool:
        """True once cancelled *or* paused: the stream stops either way."""
        return self._disposition != RUNNING

    def cancel(self) -> None:
        """Stop every stream this token was given to."""
        self._set(CANCELLED)

    def pause(self) -> None:
        """Stop every stream this token was given to, recording a pause."""
        self._set(PAUSED)

    @property
    def stop(self) -> Stop:
        """The :class:`~minillm.cancellation.Stop` this token's state means (``CANCELLED`` while running)."""
        return Stop.PAUSED if self._disposition == PAUSED else Stop.CANCELLED

    def _set(self, disposition: str) -> None:
        with self._lock:
            if self._disposition == CANCELLED or self._disposition == disposition:
                return
            self._disposition = disposition
            listeners = list(self._listeners)
        for listener in listeners:
            listener()

    def _subscribe(self, listener: Callable[[], object]) -> Callable[[], None]:
        """Call ``listener`` (once per change) when the token stops; returns
        an unsubscribe function. Called at once if already stopped."""
        with self._lock:
            stopped = self._disposition != RUNNING
            if not stopped:
                self._listeners.append(listener)
        if stopped:
            listener()

        def unsubscribe() -> None:
            with self._lock:
                try:
                    self._listeners.remove(listener)
                except ValueError:
                    pass

        return unsubscribe

    def __repr__(self) -> str:
        return f"CancellationToken({self._disposition!r})"
