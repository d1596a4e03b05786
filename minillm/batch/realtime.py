"""The real-time runner, :func:`run`: each prompt sent through
``client.complete`` on an executor, retried, journaled the moment it
finishes, and stopped at once by a token or Ctrl-C (:class:`Interrupted`).
How it behaves is told in the package's docstring (:mod:`minillm.batch`).
"""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import threading
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Union

import attrs

from ..accounting.budget import Budget
from ..cancellation import CancellationToken
from ..client import Client
from ..errors import (
    AuthenticationError,
    BadRequestError,
    BudgetExceeded,
    ConfigurationError,
    InvalidArgumentError,
    LedgerError,
    MiniLLMError,
)
from .items import CANCELLED, BatchItem, BatchResult, Prompt
from .journal import Journal, job_config
from .progress import ResultReporter

__all__ = ["Interrupted", "run"]

log = logging.getLogger("minillm.batch")

#: Errors that another attempt would meet again.
_FINAL = (BudgetExceeded, ConfigurationError, InvalidArgumentError, BadRequestError, AuthenticationError)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped a batch: it propagates as the ``KeyboardInterrupt`` it
    is, carrying what the batch had done.

    :ivar results: a :class:`BatchResult` per prompt, in input order; the
        unfinished ones have ``error == "cancelled"``.
    """

    def __init__(self, results: List[BatchResult]) -> None:
        super().__init__("the batch was interrupted")
        self.results = results


def _attempt(
    client: Client,
    item: BatchItem,
    index: int,
    attempts: int,
    budget: Optional[Budget],
    cancel: Optional[CancellationToken] = None,
) -> BatchResult:
    """Complete one item, retrying it up to ``attempts`` times in all.

    Module-level, so that it pickles to another process with its client.
    """
    last = ""
    for attempt in range(1, attempts + 1):
        if cancel is not None and cancel.is_cancelled:
            return BatchResult(index=index, id=item.id, error=CANCELLED, attempts=attempt - 1)
        try:
            response = client.complete(
                item.prompt,
                system=item.system,
                max_tokens=item.max_tokens,
                temperature=item.temperature,
                meta={**item.meta, "batch_item": index},
                budget=budget,
                cancel=cancel,
            )
        except _FINAL as exc:
            return BatchResult(index=index, id=item.id, error=f"{type(exc).__name__}: {exc}", attempts=attempt)
        except MiniLLMError as exc:
            last = f"{type(exc).__name__}: {exc}"
            continue
        if response.finish_reason in ("cancelled", "paused"):
            # Stopped mid-call: what it spent is booked, as cut short; the item is not done.
            return BatchResult(index=index, id=item.id, cost=response.cost, error=CANCELLED, attempts=attempt)
        return BatchResult(
            index=index,
            id=item.id,
            text=response.text,
            finish_reason=response.finish_reason,
            usage=response.usage,
            cost=response.cost,
            attempts=attempt,
        )
    return BatchResult(index=index, id=item.id, error=last, attempts=attempts)


def run(
    client: Client,
    prompts: Iterable[Union[BatchItem, Prompt, Mapping[str, Any]]],
    *,
    workers: int = 8,
    budget: Optional[Budget] = None,
    journal: Optional[Journal] = None,
    executor: Optional[concurrent.futures.Executor] = None,
    attempts: int = 2,
    progress: Union[bool, Callable[[BatchResult], None]] = False,
    cancel: Optional[CancellationToken] = None,
) -> List[BatchResult]:
    """Complete every prompt; the results come back in input order.

    :param workers: threads, when no ``executor`` is given.
    :param budget: every item is held to it (one that does not fit fails
        with ``BudgetExceeded``; the others go on).
    :param journal: items it has as done are not sent again; items that
        finish are recorded in it at once.
    :param executor: where items run (default: a thread pool of ``workers``).
    :param attempts: tries per item, for errors another try may cure.
    :param progress: True for a progress bar on stderr (tqdm, when
        installed), or a callable given each result as it arrives.
    :param cancel: stops the batch (see the module docstring); the results
        of the items it did not finish have ``error == "cancelled"``.
    :raises Interrupted: Ctrl-C stopped the batch (it carries the results).
    """
    if cancel is not None and not isinstance(cancel, CancellationToken):
        raise InvalidArgumentError(f"cancel must be a minillm.CancellationToken, not {type(cancel).__name__}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InvalidArgumentError(f"workers must be a positive integer, not {workers!r}")
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise InvalidArgumentError(f"attempts must be a positive integer, not {attempts!r}")
    items = [BatchItem.of(p) for p in prompts]
    keys = [item.key(index) for index, item in enumerate(items)]
    if journal is not None:
        journal.bind(_job_config(client))
    results: List[Optional[BatchResult]] = [None] * len(items)
    finished = journal.done() if journal is not None else {}
    for index, key in enumerate(keys):
        if key in finished:
            results[index] = attrs.evolve(finished[key], index=index)
    report = ResultReporter(progress, total=len(items), already=sum(r is not None for r in results))
    # The futures of the items not yet done, by index. Each is let go the
    # moment its item is done: a cluster keeps a task's result while its
    # future lives, and if the worker holding it dies, runs the task again
    # -- calling the provider, and paying, a second time for an answer the
    # caller already has.
    pending: Dict[int, concurrent.futures.Future[BatchResult]] = {}
    changed = threading.Condition()

    def arrived(index: int, future: concurrent.futures.Future[BatchResult]) -> None:
        # Runs where the future completes -- in a thread pool, on the worker
        # before it takes another item -- so the journal is never behind.
        # An exception here would be swallowed by the executor and leave
        # the item without a result: everything that may fail is caught.
        if future.cancelled():
            result = BatchResult(index=index, id=items[index].id, error=CANCELLED)
        else:
            try:
                result = future.result()
            except Exception as exc:  # the executor itself failed the item
                result = BatchResult(index=index, id=items[index].id, error=f"{type(exc).__name__}: {exc}")
        with changed:
            results[index] = result
        try:
            if journal is not None and result.ok:
                try:
                    journal.finish(keys[index], result)
                except LedgerError as exc:
                    log.error("item %d is done but could not be journaled (a rerun sends it again): %s", index, exc)
            try:
                report(result)
            except Exception:
                log.exception("the progress callback failed on item %d", index)
        finally:
            # A future done before its callback is added runs this on the
            # submitting thread, where Ctrl-C lands: the item is still let
            # go, or the wait for the items in flight would never end.
            with changed:  # done: journaled and reported too
                pending.pop(index, None)
                changed.notify_all()

    owned = executor is None
    pool = executor or concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="minillm-batch")
    # A token reaches calls on threads of this process; calls in other
    # processes cannot be reached, and run to their end.
    stop = cancel or CancellationToken()
    reachable = stop if isinstance(pool, concurrent.futures.ThreadPoolExecutor) else None

    def submit(index: int, item: BatchItem) -> None:
        # A function, so that no variable here outlives the future.
        future = pool.submit(_attempt, client, item, index, attempts, budget, reachable)
        try:
            with changed:
                pending[index] = future
        finally:  # even on Ctrl-C: a future without its callback would never be let go
            future.add_done_callback(functools.partial(arrived, index))

    def all_done() -> None:
        with changed:
            changed.wait_for(lambda: not pending)

    def stop_queued() -> None:
        with changed:
            unfinished = list(pending.values())
        for future in unfinished:
            future.cancel()  # refused by those already running: their calls are stopped instead

    unsubscribe = stop._subscribe(stop_queued)
    waited = True  # whether the calls in flight were waited for to their end
    try:
        try:
            for index, item in enumerate(items):
                if results[index] is not None:
                    continue
                if stop.is_cancelled:
                    results[index] = BatchResult(index=index, id=item.id, error=CANCELLED)
                    continue
                submit(index, item)
            all_done()
        except KeyboardInterrupt as interrupt:
            # Ctrl-C while items are handed out, or while they run: no item
            # is taken any more, the queued ones are dropped, and the calls in
            # flight are stopped (booked as cut short) and waited for.
            try:
                stop.cancel()
                all_done()
            except KeyboardInterrupt:
                # Another Ctrl-C stops waiting (the calls still stop, on
                # their threads); what finished is still given back.
                waited = False
            raise Interrupted(_complete(results, items)) from interrupt
    finally:
        try:
            unsubscribe()
            if owned:
                # Not waited for again when a Ctrl-C said stop waiting.
                pool.shutdown(wait=waited, cancel_futures=True)
            report.close()
        except KeyboardInterrupt:
            # Ctrl-C while letting the workers go: what finished is kept.
            raise Interrupted(_complete(results, items)) from None
    return _complete(results, items)


def _complete(results: List[Optional[BatchResult]], items: List[BatchItem]) -> List[BatchResult]:
    """Every item's result: those without one were never started."""
    return [
        result if result is not None else BatchResult(index=index, id=items[index].id, error=CANCELLED)
        for index, result in enumerate(results)
    ]


def _job_config(client: Client) -> Dict[str, Any]:
    """What a real-time job's results depend on: every route the client may use."""
    return job_config(client._routes)
