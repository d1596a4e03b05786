"""A timer thread: :class:`Scheduler` runs callables at given monotonic times
on one lazily started daemon thread.

minillm keeps two: one enforces total deadlines (it only ever shuts sockets
down, so it never blocks), the other runs out-of-band cost look-ups (which
block on HTTP and must not delay a deadline).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from typing import Callable, List, Optional, Tuple

__all__ = ["Scheduled", "Scheduler"]

log = logging.getLogger("minillm.scheduler")


class Scheduled:
    """A handle on a scheduled call; :meth:`cancel` stops it if not yet run."""

    __slots__ = ("cancelled", "fn", "when")

    def __init__(self, when: float, fn: Callable[[], object]) -> None:
        self.when = when
        self.fn = fn
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


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

    def call_at(self, when: float, fn: Callable[[], object]) -> Optional[Scheduled]:
        """Run ``fn`` at ``time.monotonic()`` instant ``when``."""
        item = Scheduled(when, fn)
        with self._cond:
            if not self._ensure_thread():
                return None
            heapq.heappush(self._heap, (when, next(self._counter), item))
            self._cond.notify()
        return item

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
                        self._cond.wait(delay)
                        continue
                    heapq.heappop(self._heap)
                    break
            if item.cancelled:
                continue
            try:
                item.fn()
            except Exception:
                log.exception("a scheduled call on %s failed", self._name)
