"""The out-of-band look-up service: backoff, giving up, flushing, and the
exit drain -- each job finished exactly once."""

from __future__ import annotations

import logging
import threading
from decimal import Decimal
from typing import Callable, List, Optional

import pytest

from minillm import CostInfo, LookupPolicy, Resolution
from minillm.accounting.lookups import LookupJob, LookupService

FOUND = CostInfo(usd=Decimal("0.01"), resolution=Resolution.RESOLVED, response_id="gen-1")
UNKNOWN = CostInfo(resolution=Resolution.UNKNOWN, response_id="gen-1", provider="openrouter", model="m")
FAST = LookupPolicy(timeout=5.0, initial_delay=0.0, max_delay=0.01)


def job(
    fetch: Callable[[], Optional[CostInfo]],
    booked: List[CostInfo],
    policy: LookupPolicy = FAST,
    owner: object = None,
) -> LookupJob:
    return LookupJob(
        generation_id="gen-1", fetch=fetch, fallback=UNKNOWN, book=booked.append, owner=owner, policy=policy
    )


def answers(*results: Optional[CostInfo]) -> Callable[[], Optional[CostInfo]]:
    queue = list(results)

    def fetch() -> Optional[CostInfo]:
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return fetch


def test_a_job_is_retried_until_the_provider_has_the_record() -> None:
    service, booked = LookupService(), []  # type: ignore[var-annotated]
    attempts: List[int] = []

    def fetch() -> Optional[CostInfo]:
        attempts.append(1)
        return FOUND if len(attempts) == 4 else None

    service.submit(job(fetch, booked))
    assert service.flush(timeout=10)
    assert booked == [FOUND] and len(attempts) == 4


def test_a_fetch_that_raises_counts_as_not_yet() -> None:
    service, booked = LookupService(), []  # type: ignore[var-annotated]
    calls: List[int] = []

    def fetch() -> Optional[CostInfo]:
        calls.append(1)
        if len(calls) < 3:
            raise OSError("connection reset")
        return FOUND

    service.submit(job(fetch, booked))
    assert service.flush(timeout=10)
    assert booked == [FOUND]


def test_a_job_that_never_finds_its_record_books_the_fallback_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    service, booked = LookupService(), []  # type: ignore[var-annotated]
    with caplog.at_level(logging.WARNING, logger="minillm"):
        service.submit(job(answers(None), booked, LookupPolicy(timeout=0.1, initial_delay=0.0, max_delay=0.01)))
        assert service.flush(timeout=10)
    assert booked == [UNKNOWN]
    assert "no cost for generation gen-1" in caplog.text


def test_backoff_grows_by_the_multiplier_up_to_the_cap_and_gives_up_at_the_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import minillm.accounting.lookups

    class Clock:
        now = 1000.0

        def monotonic(self) -> float:
            return self.now

    clock = Clock()
    monkeypatch.setattr(minillm.accounting.lookups, "time", clock)
    service, booked = LookupService(), []  # type: ignore[var-annotated]
    attempts: List[float] = []

    def fetch() -> Optional[CostInfo]:
        attempts.append(clock.now - 1000)
        return None

    the_job = job(fetch, booked, LookupPolicy(timeout=30, initial_delay=1, max_delay=8, multiplier=2))
    monkeypatch.setattr(service, "_schedule", lambda j: None)  # attempts are driven by hand below
    service.submit(the_job)
    while not the_job.done:
        clock.now = the_job.due
        service._attempt(the_job)
    assert attempts == [1, 2, 4, 8, 16, 24]  # then the next would land after 30 s: give up
    assert booked == [UNKNOWN]


def test_the_default_look_up_policy_backs_off_for_about_thirty_seconds() -> None:
    policy = LookupPolicy()
    assert (policy.timeout, policy.initial_delay, policy.max_delay, policy.exit_wait) == (30.0, 1.0, 8.0, 10.0)


def test_flush_waits_only_for_its_owners_jobs() -> None:
    service = LookupService()
    release = threading.Event()
    mine: List[CostInfo] = []
    theirs: List[CostInfo] = []
    owner, other = object(), object()

    def slow() -> Optional[CostInfo]:
        release.wait(10)
        return FOUND

    service.submit(job(slow, theirs, owner=other))
    service.submit(job(answers(FOUND), mine, owner=owner))
    assert service.flush(owner=owner, timeout=10)
    assert mine == [FOUND] and service.pending(other) == 1
    assert service.flush(owner=other, timeout=0.05) is False
    release.set()
    assert service.flush(timeout=10) and theirs == [FOUND]


def test_the_exit_drain_keeps_trying_then_books_the_rest_unknown_at_error(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = LookupService()
    # No background thread at all, as when the interpreter can no longer
    # start one: every attempt below is made by the drain itself.
    monkeypatch.setattr(service, "_schedule", lambda job: None)
    found: List[CostInfo] = []
    lost: List[CostInfo] = []
    tries: List[int] = []

    def second_time_lucky() -> Optional[CostInfo]:
        tries.append(1)
        return FOUND if len(tries) >= 2 else None

    slow = LookupPolicy(timeout=60, initial_delay=0.0, max_delay=0.01, exit_wait=2.0)
    service.submit(job(second_time_lucky, found, slow))
    service.submit(job(answers(None), lost, LookupPolicy(timeout=60, initial_delay=0.0, max_delay=0.01, exit_wait=0.2)))
    with caplog.at_level(logging.ERROR, logger="minillm"):
        service.drain_at_exit()
    assert found == [FOUND] and lost == [UNKNOWN]
    assert "interpreter exiting: cost of generation gen-1 (openrouter m) still unknown" in caplog.text
    # After the drain, a late job is booked at once, never dropped.
    late: List[CostInfo] = []
    service.submit(job(answers(FOUND), late))
    assert late == [UNKNOWN]


def test_a_job_raced_by_the_thread_and_the_exit_drain_is_booked_once() -> None:
    for _ in range(20):
        service, booked = LookupService(), []  # type: ignore[var-annotated]
        service.submit(job(answers(FOUND), booked, LookupPolicy(initial_delay=0.0, exit_wait=1.0)))
        service.drain_at_exit()
        assert service.flush(timeout=10)
        assert booked == [FOUND]


def slow_sink(booked: List[CostInfo]) -> tuple[threading.Event, threading.Event, Callable[[CostInfo], None]]:
    entered, release = threading.Event(), threading.Event()

    def book(cost: CostInfo) -> None:
        entered.set()
        assert release.wait(30)
        booked.append(cost)

    return entered, release, book


def test_flush_waits_until_the_booking_is_written_not_just_found() -> None:
    service, booked = LookupService(), []  # type: ignore[var-annotated]
    entered, release, book = slow_sink(booked)
    service.submit(
        LookupJob(generation_id="gen-1", fetch=answers(FOUND), fallback=UNKNOWN, book=book, owner=None, policy=FAST)
    )
    assert entered.wait(10)
    assert service.pending() == 1
    assert service.flush(timeout=0.05) is False  # the sink has not returned
    release.set()
    assert service.flush(timeout=10)
    assert booked == [FOUND]


def test_the_exit_drain_waits_for_a_booking_another_thread_is_writing() -> None:
    # At exit, a daemon thread still inside the sink would be stopped
    # mid-write once the drain returned: the booking would be lost.
    service, booked = LookupService(), []  # type: ignore[var-annotated]
    entered, release, book = slow_sink(booked)
    policy = LookupPolicy(timeout=5.0, initial_delay=0.0, max_delay=0.01, exit_wait=30)
    service.submit(
        LookupJob(generation_id="gen-1", fetch=answers(FOUND), fallback=UNKNOWN, book=book, owner=None, policy=policy)
    )
    assert entered.wait(10)
    drained = threading.Event()

    def drain_then_say_so() -> None:
        service.drain_at_exit()
        drained.set()

    drain = threading.Thread(target=drain_then_say_so)
    drain.start()
    assert not drained.wait(0.1)
    release.set()
    drain.join(10)
    assert drained.is_set() and booked == [FOUND]
