"""Process-wide state, all of it, and the one interpreter-exit hook.

minillm keeps exactly three things for the whole process:

* :data:`timers` -- one daemon thread that fires total deadlines and the
  read timeouts of in-process engines (callbacks that only ever interrupt);
* :data:`lookups` -- the out-of-band cost look-ups, timed on one daemon
  thread and run on a small daemon pool;
* the open calls -- every call whose attempts are not all booked yet, so
  that none is lost when the interpreter exits.

Threads start on first use, never at import. The exit hook runs, in this
order:

1. every open call is stopped (its socket shut down, which also wakes a
   daemon thread blocked reading it) and its attempt booked as cut short --
   this may queue look-ups;
2. the pending look-ups are attempted for a bounded time
   (:attr:`~minillm.LookupPolicy.exit_wait`), then what is left is booked
   ``UNKNOWN`` with its generation id, logged at ERROR;
3. the steps registered with :func:`at_exit` (in-process engines are
   cleaned up there), last because bookings may still need an engine's
   connection or file.
"""

from __future__ import annotations

import atexit
import logging
import threading
from typing import Callable, List, Protocol, Set

from .accounting.lookups import LookupService
from .scheduler import Scheduler

__all__ = ["Closeable", "at_exit", "lookups", "open_calls", "timers"]

log = logging.getLogger("minillm.runtime")


class Closeable(Protocol):
    """What the exit hook does with an open call."""

    def stop_at_exit(self) -> None:
        """Stop now and book what was spent."""


#: Fires deadlines and engine read timeouts.
timers = Scheduler("minillm-timers")

#: The out-of-band cost look-ups of this process.
lookups = LookupService()


class OpenCalls:
    """The calls not yet fully booked. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: Set[Closeable] = set()

    def add(self, call: Closeable) -> None:
        with self._lock:
            self._calls.add(call)

    def discard(self, call: Closeable) -> None:
        with self._lock:
            self._calls.discard(call)

    def snapshot(self) -> List[Closeable]:
        with self._lock:
            return list(self._calls)

    def __len__(self) -> int:
        with self._lock:
            return len(self._calls)


open_calls = OpenCalls()

_last_steps: List[Callable[[], None]] = []


def at_exit(step: Callable[[], None]) -> None:
    """Run ``step`` at interpreter exit, after every booking is made."""
    _last_steps.append(step)


def _stop_open_calls() -> None:
    for call in open_calls.snapshot():
        try:
            call.stop_at_exit()
        except Exception:  # pragma: no cover - exit must go on
            log.exception("settling an open call at exit failed")


@atexit.register
def _at_exit() -> None:
    _stop_open_calls()
    lookups.drain_at_exit()
    for step in _last_steps:
        try:
            step()
        except Exception:  # pragma: no cover - exit must go on
            log.exception("an exit step failed")
