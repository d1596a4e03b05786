"""Process-wide state, all of it, and the one interpreter-exit hook.

minillm keeps exactly five things for the whole process:

* :data:`!timers` -- one daemon thread that fires total deadlines and the
  read timeouts of in-process engines (callbacks that only ever interrupt);
* :data:`!lookups` -- the out-of-band cost look-ups, timed on one daemon
  thread and run on a small daemon pool;
* :data:`!settler` -- one daemon thread that settles the calls whose streams
  were dropped: a finalizer runs on whatever thread the garbage collector
  happens to run on -- perhaps one inside a ledger, holding its lock -- so
  it only hands the call over, and the booking is made from here;
* the open calls -- every call whose attempts are not all booked yet, so
  that none is lost when the interpreter exits;
* :data:`!deliveries` -- how many bookings are decided but not yet written
  to their sink, on any thread (a daemon thread is frozen mid-write when
  the interpreter shuts down).

Threads start on first use, never at import. The exit hook runs, in this
order:

1. the settlements the settler has queued are run, on the exiting thread;
2. every open call is stopped (its socket shut down, which also wakes a
   daemon thread blocked reading it) and its attempt booked as cut short --
   this may queue look-ups;
3. the bookings other threads are still delivering are waited for, at most
   :data:`!DELIVERY_EXIT_WAIT` seconds (what is still being written then is
   logged at ERROR);
4. the pending look-ups are attempted for a bounded time
   (``exit_wait`` of :class:`~minillm.LookupPolicy`), then what is left is booked
   ``UNKNOWN`` with its generation id, logged at ERROR;
5. the steps registered with :func:`!at_exit` (in-process engines are
   cleaned up there), last because bookings may still need an engine's
   connection or file.

After ``os.fork()`` (gunicorn ``--preload``, uWSGI, multiprocessing) the
child starts afresh: the parent's threads did not survive the fork, and
its pending look-ups, open calls and queued settlements are the parent's
to finish -- a child that booked them would book them twice, and one that
stopped them would shut down the parent's sockets. So the child gets new,
empty state (and new locks: the parent's may have been held by a thread
that no longer exists), and starts its own threads when it first needs
them. A call made in the parent does nothing when the child stops or
settles its copy.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
from typing import Callable, List, Optional, Protocol, Set

from .accounting.lookups import LookupService
from .ids import new_process
from .scheduler import Scheduler

__all__ = ["Closeable", "Settler", "at_exit", "lookups", "open_calls", "settler", "timers"]

log = logging.getLogger("minillm.runtime")


class Closeable(Protocol):
    """What the exit hook does with an open call."""

    def stop_at_exit(self) -> None:
        """Stop now and book what was spent."""


#: Fires deadlines and engine read timeouts.
timers = Scheduler("minillm-timers")

#: The out-of-band cost look-ups of this process.
lookups = LookupService()

#: The process this state belongs to (a call remembers it too).
pid = os.getpid()


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


class Settler:
    """Runs what finalizers hand over, on a daemon thread of its own.

    :meth:`later` may be called from anywhere -- a finalizer, while any lock
    is held -- and does nothing but queue. The thread is started by
    :meth:`ready`, from ordinary code (never from a finalizer: starting a
    thread takes locks of its own).
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Callable[[], object]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None

    def ready(self) -> None:
        """Start the thread, if it is not running."""
        thread = self._thread
        if thread is not None and thread.is_alive():
            return
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            thread = threading.Thread(target=self._run, name="minillm-settler", daemon=True)
            try:
                thread.start()
            except RuntimeError:  # "can't create new thread at interpreter shutdown"
                return  # what is queued is run at exit
            self._thread = thread

    def later(self, work: Callable[[], object]) -> None:
        """Queue ``work`` (safe from a finalizer)."""
        self._queue.put(work)

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait until what was handed over before this call is done.

        :returns: False if ``timeout`` passed first.
        """
        self.ready()
        done = threading.Event()
        self._queue.put(done.set)  # in order: everything before it is done first
        return done.wait(timeout)

    def _run(self) -> None:
        while True:
            self._do(self._queue.get())

    @staticmethod
    def _do(work: Callable[[], object]) -> None:
        try:
            work()
        except Exception:
            log.exception("settling a dropped stream failed")

    def drain(self) -> None:
        """Run what is queued, on this thread (at exit)."""
        while True:
            try:
                work = self._queue.get_nowait()
            except queue.Empty:
                return
            self._do(work)


settler = Settler()


class Deliveries:
    """Bookings decided and not yet delivered to their sink, on any thread.

    A reader on a daemon thread may have decided its booking (so the exit
    hook finds nothing left to book) and be writing it to a ledger when the
    interpreter exits: daemon threads are frozen mid-write at shutdown. The
    exit hook waits for these, within a bound. Counted from the moment a
    booking is decided, under the call's lock, so there is no gap between
    "decided" and "being delivered" in which the exit could slip through.
    """

    def __init__(self) -> None:
        self._count = 0
        self._changed = threading.Condition()

    def begin(self) -> None:
        with self._changed:
            self._count += 1

    def end(self) -> None:
        with self._changed:
            self._count -= 1
            self._changed.notify_all()

    def wait(self, timeout: float) -> bool:
        """Wait until none is in flight; False when ``timeout`` passed first."""
        with self._changed:
            return self._changed.wait_for(lambda: self._count <= 0, timeout)

    def __len__(self) -> int:
        return self._count


deliveries = Deliveries()

#: How long the exit waits for bookings other threads are delivering.
DELIVERY_EXIT_WAIT = 10.0


def _after_fork_in_child() -> None:
    """A forked child forgets the parent's work and starts its own."""
    global timers, lookups, open_calls, settler, deliveries, pid
    timers = Scheduler("minillm-timers")
    lookups = LookupService()
    open_calls = OpenCalls()
    settler = Settler()
    deliveries = Deliveries()
    pid = os.getpid()
    new_process()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

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
    settler.drain()
    _stop_open_calls()
    if not deliveries.wait(DELIVERY_EXIT_WAIT):
        log.error(
            "%d booking(s) were still being delivered to their sink %gs into the exit: they may be lost",
            len(deliveries),
            DELIVERY_EXIT_WAIT,
        )
    lookups.drain_at_exit()
    for step in _last_steps:
        try:
            step()
        except Exception:  # pragma: no cover - exit must go on
            log.exception("an exit step failed")
