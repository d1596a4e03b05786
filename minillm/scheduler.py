"""Background daemon threads: :class:`Scheduler` runs callables at given
monotonic times on one lazily started thread; :class:`DaemonPool` runs
blocking work on a few.

minillm's deadlines run on a scheduler (they only ever shut sockets down, so
they never block it). Out-of-band cost look-ups are timed by another
scheduler and run on a pool, so one slow look-up never holds up the rest.
All threads are daemons: they never keep the interpreter from exiting.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import threading
import time
from typing import Callable, List, Optional, Tuple

__all__ = ["DaemonPool", "Scheduled", "Scheduler"]

log = logging.getLogger("minillm.scheduler")


def _nothing() -> None:
    pass


class Scheduled:
    """A handle on a scheduled call; :meth:`cancel` stops it if not yet run."""

    __slots__ = ("_owner", "cancelled", "fn", "when")

    def __init__(self, when: float, fn: Callable[[], object], owner: Scheduler) -> None:
        self.when = when
        self.fn = fn
        self.cancelled = False
        self._owner = owner

    def cancel(self) -> None:
        """Never run. What the call referenced is let go at once, not when
        its time comes (a cancelled deadline must not keep a response alive)."""
        if not self.cancelled:
            self.cancelled = True
            self.fn = _nothing
            self._owner._cancelled_one()


class Scheduler:
    """Runs callables at monotonic times, in order, on one daemon thread.

    Thread-safe. A callable that raises is logged and does not stop the
    thread. If the thread cannot be started (the interpreter is shutting
    down), :meth:`call_at` returns None and the caller must cope.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._cond = threading.Condition(threading.Lock())
        self._heap: List[Tuple[float, int, Scheduled]] = []
        self._counter = itertools.count()
        self._thread: Optional[threading.Thread] = None
        self._cancelled = 0

    def call_at(self, when: float, fn: Callable[[], object]) -> Optional[Scheduled]:
        """Run ``fn`` at ``time.monotonic()`` instant ``when``."""
        item = Scheduled(when, fn, self)
        with self._cond:
            if not self._ensure_thread():
                return None
            heapq.heappush(self._heap, (when, next(self._counter), item))
            self._cond.notify()
        return item

    def _cancelled_one(self) -> None:
        # Far-off deadlines are mostly cancelled long before they are due:
        # drop them once they are the bulk of the heap, so it stays small.
        with self._cond:
            self._cancelled += 1
            if self._cancelled > 64 and self._cancelled * 2 > len(self._heap):
                self._heap = [entry for entry in self._heap if not entry[2].cancelled]
                heapq.heapify(self._heap)
                self._cancelled = 0

    def __len__(self) -> int:
        with self._cond:
            return len(self._heap)

    def _ensure_thread(self) -> bool:
        thread = self._thread
        if thread is not None and thread.is_alive():
            return True
        thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        try:
            thread.start()
        except RuntimeError:  # "can't create new thread at interpreter shutdown"
            return False
        self._thread = thread
        return True

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if not self._heap:
                        self._cond.wait()
                        continue
                    when, _, item = self._heap[0]
                    delay = when - time.monotonic()
                    if delay > 0:
                        self._cond.wait(min(delay, threading.TIMEOUT_MAX))
                        continue
                    heapq.heappop(self._heap)
                    if item.cancelled:
                        self._cancelled = max(self._cancelled - 1, 0)
                    break
            if item.cancelled:
                continue
            try:
                item.fn()
            except Exception:
                log.exception("a scheduled call on %s failed", self._name)


class DaemonPool:
    """Runs submitted callables on up to ``size`` daemon threads, started on
    demand. Thread-safe. A callable that raises is logged.

    Every queued callable is matched to a thread when it is submitted (an
    idle one, a new one, or the next to finish), so work never waits behind
    a slow callable while a thread could still be started.
    """

    def __init__(self, name: str, size: int) -> None:
        self._name = name
        self._size = size
        self._queue: queue.SimpleQueue[Callable[[], object]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: List[threading.Thread] = []
        self._idle = 0  # threads waiting with nothing promised to them
        self._backlog = 0  # callables waiting for a busy thread to finish

    def submit(self, fn: Callable[[], object]) -> bool:
        """Queue ``fn``; False when no thread can run it (at interpreter shutdown)."""
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            if self._idle > 0:
                self._idle -= 1
            elif len(self._threads) < self._size and self._start_thread():
                pass
            elif self._threads:
                self._backlog += 1
            else:
                return False
            self._queue.put(fn)
        return True

    def _start_thread(self) -> bool:
        thread = threading.Thread(target=self._work, name=f"{self._name}-{len(self._threads)}", daemon=True)
        try:
            thread.start()
        except RuntimeError:  # "can't create new thread at interpreter shutdown"
            return False
        self._threads.append(thread)
        return True

    def _work(self) -> None:
        while True:
            fn = self._queue.get()
            try:
                fn()
            except Exception:
                log.exception("background work on %s failed", self._name)
            with self._lock:
                if self._backlog > 0:
                    self._backlog -= 1
                else:
                    self._idle += 1
