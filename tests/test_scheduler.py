"""The background threads: a timer that runs calls in time order, and a
small pool for blocking work."""

from __future__ import annotations

import logging
import threading
import time
from typing import List

import pytest

from minillm.scheduler import DaemonPool, Scheduler


def test_calls_run_in_time_order_not_submission_order() -> None:
    scheduler = Scheduler("test-timer")
    ran: List[str] = []
    done = threading.Event()
    now = time.monotonic()

    def last() -> None:
        ran.append("third")
        done.set()

    scheduler.call_at(now + 0.06, last)
    scheduler.call_at(now + 0.02, lambda: ran.append("first"))
    scheduler.call_at(now + 0.04, lambda: ran.append("second"))
    assert done.wait(10)
    assert ran == ["first", "second", "third"]


def test_a_cancelled_call_never_runs() -> None:
    scheduler = Scheduler("test-timer")
    ran: List[str] = []
    done = threading.Event()
    handle = scheduler.call_at(time.monotonic() + 0.02, lambda: ran.append("cancelled"))
    assert handle is not None
    handle.cancel()
    scheduler.call_at(time.monotonic() + 0.04, done.set)
    assert done.wait(10)
    assert ran == []


def test_a_call_that_raises_is_logged_and_the_thread_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    scheduler = Scheduler("test-timer")
    done = threading.Event()

    def boom() -> None:
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, logger="minillm"):
        scheduler.call_at(time.monotonic(), boom)
        scheduler.call_at(time.monotonic() + 0.01, done.set)
        assert done.wait(10)
    assert "a scheduled call on test-timer failed" in caplog.text


def test_slow_work_in_the_pool_does_not_hold_up_other_work() -> None:
    pool = DaemonPool("test-pool", size=3)
    release = threading.Event()
    quick_done = threading.Event()
    for _ in range(2):
        pool.submit(lambda: release.wait(10))
    pool.submit(quick_done.set)
    assert quick_done.wait(10)
    release.set()


def test_the_pool_never_runs_more_threads_than_its_size() -> None:
    pool = DaemonPool("test-pool", size=2)
    running = []
    peak = []
    lock = threading.Lock()
    all_done = threading.Semaphore(0)

    def work() -> None:
        with lock:
            running.append(1)
            peak.append(len(running))
        time.sleep(0.01)
        with lock:
            running.pop()
        all_done.release()

    for _ in range(10):
        assert pool.submit(work)
    for _ in range(10):
        assert all_done.acquire(timeout=10)
    assert max(peak) <= 2


def test_work_that_raises_is_logged_and_the_thread_is_reused(caplog: pytest.LogCaptureFixture) -> None:
    pool = DaemonPool("test-pool", size=1)
    done = threading.Event()

    def boom() -> None:
        raise ValueError("bad")

    with caplog.at_level(logging.ERROR, logger="minillm"):
        pool.submit(boom)
        pool.submit(done.set)
        assert done.wait(10)
    assert "background work on test-pool failed" in caplog.text


def test_cancelled_calls_let_go_of_what_they_reference_and_do_not_pile_up() -> None:
    import gc
    import weakref

    scheduler = Scheduler("test-timer")

    class Payload:
        pass

    payload = Payload()
    alive = weakref.ref(payload)

    def keep(payload: Payload = payload) -> Payload:
        return payload

    handle = scheduler.call_at(time.monotonic() + 3600, keep)
    assert handle is not None
    del payload, keep
    handle.cancel()
    gc.collect()
    assert alive() is None
    for _ in range(1000):
        far = scheduler.call_at(time.monotonic() + 3600, lambda: None)
        assert far is not None
        far.cancel()
    assert len(scheduler) < 200
