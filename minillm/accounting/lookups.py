"""Out-of-band cost look-ups (OpenRouter's ``/generation``), run on a
background daemon thread, never dropped.

A look-up is needed when an attempt ended without its final usage (cut
short, or failed) but the provider can still tell what it charged. The
record is eventually consistent -- ``/generation`` answers 404 for several
seconds after a generation, longer after an interrupted one -- so a job
backs off until :attr:`LookupPolicy.timeout`, then books what was known
without it (``PARTIAL`` or ``UNKNOWN``, with the generation id).

At interpreter exit (see :mod:`minillm.runtime`) the pending look-ups are
attempted on the exiting thread for at most :attr:`LookupPolicy.exit_wait`,
then what is left is booked without them, logged at ERROR. Every job is
finished exactly once, whichever thread gets there first.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Dict, List, Optional

import attrs

from ..errors import InvalidArgumentError
from ..models import CostInfo, Resolution
from ..scheduler import DaemonPool, Scheduler

__all__ = ["LookupJob", "LookupPolicy", "LookupService"]

log = logging.getLogger("minillm.accounting")


def _positive(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise InvalidArgumentError(f"LookupPolicy.{attribute.name} must be a non-negative number, not {value!r}")


@attrs.frozen
class LookupPolicy:
    """How patiently to look a cost up out of band.

    :param timeout: give up (book what was known without it) this many
        seconds after the attempt ended.
    :param initial_delay: the first attempt waits this long (the record is
        never there at once).
    :param max_delay: the cap on the backoff between attempts.
    :param multiplier: the backoff growth factor.
    :param exit_wait: at interpreter exit, keep trying pending look-ups for
        at most this long before booking them without an answer.
    """

    timeout: float = attrs.field(default=30.0, validator=_positive)
    initial_delay: float = attrs.field(default=1.0, validator=_positive)
    max_delay: float = attrs.field(default=8.0, validator=_positive)
    multiplier: float = attrs.field(default=2.0, validator=_positive)
    exit_wait: float = attrs.field(default=10.0, validator=_positive)


class LookupJob:
    """One pending look-up.

    :param fetch: makes one attempt; returns the cost when the provider has
        it, None when not yet. May raise: that counts as "not yet".
    :param fallback: booked when the look-up gives up (``PARTIAL`` or
        ``UNKNOWN``, with the generation id as ``response_id``).
    :param book: delivers the final cost; called exactly once.
    :param owner: groups jobs for :meth:`LookupService.flush` (the client).
    """

    __slots__ = ("book", "deadline", "delay", "done", "due", "fallback", "fetch", "generation_id", "owner", "policy")

    def __init__(
        self,
        *,
        generation_id: str,
        fetch: Callable[[], Optional[CostInfo]],
        fallback: CostInfo,
        book: Callable[[CostInfo], None],
        owner: object,
        policy: LookupPolicy,
    ) -> None:
        now = time.monotonic()
        self.generation_id = generation_id
        self.fetch = fetch
        self.fallback = fallback
        self.book = book
        self.owner = owner
        self.policy = policy
        self.deadline = now + policy.timeout
        self.delay = policy.initial_delay
        self.due = now + policy.initial_delay
        self.done = False


class LookupService:
    """The process-wide look-up queue. Thread-safe."""

    def __init__(self, workers: int = 4) -> None:
        self._scheduler = Scheduler("minillm-cost-lookup-timer")
        self._pool = DaemonPool("minillm-cost-lookup", workers)
        self._cond = threading.Condition(threading.Lock())
        self._pending: Dict[LookupJob, None] = {}
        self._closed = False

    def submit(self, job: LookupJob) -> None:
        """Queue ``job``; its first attempt runs after ``policy.initial_delay``."""
        with self._cond:
            closed = self._closed
            if not closed:
                self._pending[job] = None
        if closed:
            log.error(
                "cost look-up for generation %s arrived after shutdown; booked %s",
                job.generation_id,
                job.fallback.resolution.value.upper(),
            )
            self._finish(job, job.fallback)
            return
        self._schedule(job)

    def _schedule(self, job: LookupJob) -> None:
        def run() -> None:
            if not self._pool.submit(lambda: self._attempt(job)):
                log.debug("no look-up thread available; generation %s waits for the exit hook", job.generation_id)

        if self._scheduler.call_at(job.due, run) is None:
            # No thread can be started any more: the exit hook runs it.
            log.debug("no look-up timer available; generation %s waits for the exit hook", job.generation_id)

    def _attempt(self, job: LookupJob) -> None:
        if job.done:
            return
        result = self._try_fetch(job)
        if result is not None:
            self._finish(job, result)
            return
        now = time.monotonic()
        if now + job.delay > job.deadline:
            log.warning(
                "no cost for generation %s after %.0fs of look-ups; booked %s",
                job.generation_id,
                job.policy.timeout,
                job.fallback.resolution.value.upper(),
            )
            self._finish(job, job.fallback)
            return
        job.due = now + job.delay
        job.delay = min(job.delay * job.policy.multiplier, job.policy.max_delay)
        self._schedule(job)

    @staticmethod
    def _try_fetch(job: LookupJob) -> Optional[CostInfo]:
        try:
            return job.fetch()
        except Exception as exc:
            log.debug("cost look-up for generation %s failed: %s", job.generation_id, exc)
            return None

    def _finish(self, job: LookupJob, cost: CostInfo) -> None:
        with self._cond:
            if job.done:
                return
            job.done = True  # claimed: no other thread books it
        try:
            job.book(cost)
        finally:
            # Pending until the booking is written: flush() and the exit
            # drain must not return while a background thread is still in
            # the sink (at exit, the interpreter would stop it mid-write).
            with self._cond:
                self._pending.pop(job, None)
                self._cond.notify_all()

    def pending(self, owner: object = None) -> int:
        """How many look-ups are pending (for ``owner``, or for everyone)."""
        with self._cond:
            return sum(1 for job in self._pending if owner is None or job.owner is owner)

    def flush(self, owner: object = None, timeout: Optional[float] = None) -> bool:
        """Wait until no look-up of ``owner`` (or of anyone) is pending.

        :returns: True when none is left, False if ``timeout`` passed first.
        """
        end = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while any(owner is None or job.owner is owner for job in self._pending):
                remaining = None if end is None else end - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def drain_at_exit(self) -> None:
        """Attempt what is pending until each job's ``exit_wait`` is used up,
        then book the rest without an answer (logged at ERROR). Runs on the calling
        thread, so it works even when no thread can be started any more."""
        started = time.monotonic()
        while True:
            with self._cond:
                jobs: List[LookupJob] = list(self._pending)
                if not jobs:
                    # Closed in the same breath as the last check: a job
                    # submitted from now on is booked at once, never lost.
                    self._closed = True
                    break
            waiting = [j for j in jobs if not j.done]
            if not waiting:
                self._wait_for_bookings(jobs, started)
                continue
            job = min(waiting, key=lambda j: j.due)
            end = started + job.policy.exit_wait
            now = time.monotonic()
            if job.due > end or now >= end:
                self._give_up_at_exit(job)
                continue
            if job.due > now:
                # Wait for the due time, or for the background thread to
                # finish it first.
                with self._cond:
                    if not job.done:
                        self._cond.wait(job.due - now)
                continue
            self._attempt_inline(job)

    def _wait_for_bookings(self, jobs: List[LookupJob], started: float) -> None:
        """Wait while other threads write the bookings of ``jobs``, up to
        their ``exit_wait``; a sink that hangs longer is left to them."""
        end = started + max(j.policy.exit_wait for j in jobs)
        with self._cond:
            while any(j in self._pending for j in jobs):
                remaining = end - time.monotonic()
                if remaining <= 0:
                    for j in [j for j in jobs if j in self._pending]:
                        del self._pending[j]
                        log.error(
                            "interpreter exiting: the booking of generation %s is still being written by "
                            "another thread",
                            j.generation_id,
                        )
                    return
                self._cond.wait(remaining)

    def _attempt_inline(self, job: LookupJob) -> None:
        result = self._try_fetch(job)
        if result is not None:
            self._finish(job, result)
            return
        job.due = time.monotonic() + job.delay
        job.delay = min(job.delay * job.policy.multiplier, job.policy.max_delay)

    def _give_up_at_exit(self, job: LookupJob) -> None:
        if job.done:
            return
        # The contract books what is still pending at exit UNKNOWN (the
        # tokens seen kept as its lower bound), not the PARTIAL a look-up
        # that gives up while the process runs books.
        unknown = job.fallback
        if unknown.usd is not None:
            unknown = attrs.evolve(unknown, usd=None, resolution=Resolution.UNKNOWN, source=None)
        log.error(
            "interpreter exiting: cost of generation %s (%s %s) still unknown; booked UNKNOWN",
            job.generation_id,
            unknown.provider,
            unknown.model,
        )
        self._finish(job, unknown)
