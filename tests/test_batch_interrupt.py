"""Ctrl-C stops a batch wherever it lands -- while items are still handed
to the executor, in a progress callback, while the last bookings are
flushed, while the output is written: the calls in flight are stopped and
booked as cut short, what finished is written out with its summary, and the
same job run again carries on from its journal."""

from __future__ import annotations

import concurrent.futures
import functools
import signal
import threading
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import pytest

import minillm
import minillm.batch
from minillm.batch import BatchResult, Interrupted, Journal, run
from minillm.cli import main
from minillm.testing import ScriptedServer

from .test_batch import answering, client_for, hanging, prompt_of, read_output, write_input

PROMPTS = [f"item {n}" for n in range(10)]


class InterruptedWhileSubmitting(concurrent.futures.ThreadPoolExecutor):
    """Two workers; Ctrl-C lands while the item numbered ``at`` is handed
    over -- once the items before it are all taken by the workers."""

    def __init__(self, at: int, taken: List[threading.Event]) -> None:
        super().__init__(max_workers=2)
        self.futures: List[concurrent.futures.Future[Any]] = []
        self._at = at
        self._taken = taken

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        if len(self.futures) == self._at:
            assert all(event.wait(30) for event in self._taken)
            raise KeyboardInterrupt
        future = super().submit(fn, *args, **kwargs)
        self.futures.append(future)
        return future


class Inline(concurrent.futures.Executor):
    """Runs each item as it is submitted: its result, and the progress
    callback, arrive on the submitting thread -- where Ctrl-C lands."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        future.set_result(fn(*args, **kwargs))
        return future


def outcome(action: Callable[[], Any]) -> Optional[BaseException]:
    """What ``action`` raised, run on another thread -- so that a Ctrl-C that
    escapes it fails the test rather than stopping the test run."""
    raised: List[BaseException] = []

    def target() -> None:
        try:
            action()
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), f"{action!r} was still blocked after 30s"
    return raised[0] if raised else None


def test_ctrl_c_while_items_are_submitted_stops_the_calls_in_flight_and_a_rerun_completes_the_job(
    server: ScriptedServer, tmp_path: Path
) -> None:
    # The workers finish items 0 and 1, then hang on 2 and 3; Ctrl-C comes as item 4 is handed over.
    stuck = hanging(server, ["item 2", "item 3"])
    ledger = minillm.Ledger()
    journal = Journal(tmp_path / "job.journal")
    pool = InterruptedWhileSubmitting(at=4, taken=list(stuck.values()))
    try:
        raised = outcome(lambda: run(client_for(server, ledger), PROMPTS, journal=journal, executor=pool))
        assert isinstance(raised, Interrupted)
        assert all(future.done() for future in pool.futures)  # no call runs on
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    assert [r.text for r in raised.results[:2]] == ["ITEM 0", "ITEM 1"]
    assert all(r.error == "cancelled" for r in raised.results[2:]) and len(raised.results) == 10
    assert sorted(prompt_of(r) for r in server.requests) == [f"item {n}" for n in range(4)]
    # The two in flight were sent: each is booked, cut short.
    booked = {meta["batch_item"]: cost for cost, meta in ledger.records}
    assert sorted(booked) == [0, 1, 2, 3]
    assert [booked[n].cancelled for n in range(4)] == [False, False, True, True]

    stuck.clear()
    again = run(client_for(server, ledger), PROMPTS, journal=journal)
    assert [r.text for r in again] == [prompt.upper() for prompt in PROMPTS]
    assert sorted(prompt_of(r) for r in server.requests[4:]) == [f"item {n}" for n in range(2, 10)]
    journal.close()


def test_ctrl_c_in_a_progress_callback_on_the_submitting_thread_stops_the_batch(
    server: ScriptedServer, tmp_path: Path
) -> None:
    answering(server)
    journal = Journal(tmp_path / "job.journal")
    seen: List[int] = []

    def progress(result: BatchResult) -> None:
        seen.append(result.index)
        if result.index == 2:
            raise KeyboardInterrupt

    raised = outcome(
        lambda: run(client_for(server, None), PROMPTS, journal=journal, executor=Inline(), progress=progress)
    )
    assert isinstance(raised, Interrupted)
    assert [r.text for r in raised.results[:3]] == ["ITEM 0", "ITEM 1", "ITEM 2"]  # 2 finished before Ctrl-C
    assert all(r.error == "cancelled" for r in raised.results[3:])
    assert len(server.requests) == 3 and seen == [0, 1, 2]

    again = run(client_for(server, None), PROMPTS, journal=journal, executor=Inline())
    assert [r.text for r in again] == [prompt.upper() for prompt in PROMPTS]
    assert sorted(prompt_of(r) for r in server.requests[3:]) == [f"item {n}" for n in range(3, 10)]
    journal.close()


@pytest.mark.parametrize("again_while_flushing", [False, True], ids=["once", "again-while-flushing"])
def test_the_batch_command_stopped_while_submitting_writes_what_finished_and_its_summary(
    server: ScriptedServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    again_while_flushing: bool,
) -> None:
    stuck = hanging(server, ["item 2", "item 3"])
    source, out, costs = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "costs.db"
    write_input(source, PROMPTS)
    arguments = ["batch", str(source), "-o", str(out), "--model", "openai/test-model", "--base-url", server.url]
    arguments += ["--price", "1,2", "--ledger", str(costs), "--no-progress", "--attempts", "1"]
    pool = InterruptedWhileSubmitting(at=4, taken=list(stuck.values()))
    monkeypatch.setattr(minillm.batch, "run", functools.partial(run, executor=pool))
    flushed: List[bool] = []
    if again_while_flushing:

        def interrupted_flush(client: minillm.Client, timeout: Optional[float] = None) -> bool:
            flushed.append(True)
            raise KeyboardInterrupt

        monkeypatch.setattr(minillm.Client, "flush", interrupted_flush)
    codes: List[int] = []
    try:
        assert outcome(lambda: codes.append(main(arguments))) is None
        assert all(future.done() for future in pool.futures)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    err = capsys.readouterr().err
    assert codes == [130], err
    assert flushed == ([True] if again_while_flushing else [])
    rows = read_output(out)
    assert [row["text"] for row in rows[:2]] == ["ITEM 0", "ITEM 1"]
    assert all(row["error"] == "cancelled" for row in rows[2:]) and len(rows) == 10
    assert "10 items, 2 done (0 from the journal), 0 failed, 8 not finished (run again to resume)" in err
    assert "minillm batch: interrupted" in err
    ledger = minillm.SQLiteLedger(costs)
    booked = {meta["batch_item"]: cost.cancelled for cost, meta in ledger.records}
    assert booked == {0: False, 1: False, 2: True, 3: True}
    ledger.close()

    monkeypatch.undo()
    stuck.clear()
    assert main(arguments) == 0
    assert sorted(prompt_of(r) for r in server.requests[4:]) == [f"item {n}" for n in range(2, 10)]
    assert [row["text"] for row in read_output(out)] == [prompt.upper() for prompt in PROMPTS]
    assert "10 items, 10 done (2 from the journal), 0 failed" in capsys.readouterr().err


def test_ctrl_c_while_the_batch_command_writes_its_summary_loses_none_of_it(
    server: ScriptedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    answering(server)
    source, out, costs = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "costs.db"
    write_input(source, PROMPTS)
    arguments = ["batch", str(source), "-o", str(out), "--model", "openai/test-model", "--base-url", server.url]
    arguments += ["--price", "1,2", "--ledger", str(costs), "--no-progress"]
    summarize = minillm.batch.summarize

    def pressed_while_summarizing(results: List[BatchResult]) -> Dict[str, Any]:
        signal.raise_signal(signal.SIGINT)  # on this, the main thread: where Ctrl-C is delivered
        return summarize(results)

    monkeypatch.setattr(minillm.batch, "summarize", pressed_while_summarizing)
    assert main(arguments) == 130
    err = capsys.readouterr().err
    assert "10 items, 10 done (0 from the journal), 0 failed" in err and "minillm batch: interrupted" in err
    assert [row["text"] for row in read_output(out)] == [prompt.upper() for prompt in PROMPTS]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Ctrl-C is as it was


def test_ctrl_c_while_the_batch_lets_its_workers_go_still_gives_back_what_finished(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    answering(server)
    closed: List[bool] = []

    def interrupted_close(reporter: Any) -> None:
        closed.append(True)
        raise KeyboardInterrupt

    monkeypatch.setattr(minillm.batch.progress.ResultReporter, "close", interrupted_close)
    raised = outcome(lambda: run(client_for(server, None), PROMPTS, workers=2))
    assert closed == [True]
    assert isinstance(raised, Interrupted)  # not a bare KeyboardInterrupt: the results come with it
    assert [r.text for r in raised.results] == [prompt.upper() for prompt in PROMPTS]


def test_a_second_ctrl_c_while_the_calls_in_flight_stop_is_not_waited_out_again(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    stuck = hanging(server, ["item 0", "item 1"])
    waits: List[bool] = []
    shutdown = concurrent.futures.ThreadPoolExecutor.shutdown

    def recorded(pool: Any, wait: bool = True, **kwargs: Any) -> None:
        waits.append(wait)
        shutdown(pool, wait=wait, **kwargs)

    monkeypatch.setattr(concurrent.futures.ThreadPoolExecutor, "shutdown", recorded)
    calls = 0
    wait_for = threading.Condition.wait_for
    runner: List[int] = []

    def interrupted_twice(condition: threading.Condition, predicate: Any, timeout: Any = None) -> Any:
        # On the thread running the batch, the first wait (for every item)
        # and the second (for the calls stopping) are each cut short by a
        # Ctrl-C, once both items hang; every other thread waits as ever.
        nonlocal calls
        if threading.get_ident() not in runner or calls >= 2:
            return wait_for(condition, predicate, timeout)
        calls += 1
        assert all(event.wait(30) for event in stuck.values())
        raise KeyboardInterrupt

    def batch() -> None:
        runner.append(threading.get_ident())
        run(client_for(server, None), PROMPTS[:2], workers=2)

    monkeypatch.setattr(threading.Condition, "wait_for", interrupted_twice)
    raised = outcome(batch)
    monkeypatch.undo()
    assert isinstance(raised, Interrupted)
    assert waits == [False]  # the workers are let go, not joined: the second Ctrl-C said stop waiting
    assert [r.error for r in raised.results] == ["cancelled", "cancelled"]
