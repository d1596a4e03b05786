"""Batch jobs: many prompts, one client, every cost booked once.

:func:`run` sends prompts through ``client.complete`` on an executor (a
thread pool by default), retries each failed item, and returns the results
in input order. With a :class:`Journal`, a job that crashed is simply run
again: the items it finished are read back from the journal instead of
being sent -- and paid for -- a second time. An item is journaled the
moment it finishes, before its worker takes another, so at most the items
in flight at the crash are sent again.

Any :class:`concurrent.futures.Executor` works: a process pool, or a
cluster's (Dask's ``distributed.Client.get_executor()``). The client and
its sink then travel to the workers by pickle, so book into a ledger every
worker can reach (:class:`~minillm.SQLiteLedger` on a shared disk,
:class:`~minillm.PostgresLedger`), and give keys through the workers'
environment. The journal stays with the caller.

Stopping a batch
----------------
A :class:`~minillm.CancellationToken` given as ``cancel=`` -- or Ctrl-C --
stops the job at once: no further item is started, queued items are
cancelled, and items in flight on threads are cancelled mid-call (their
requests booked as cut short, like any cancelled call; items in other
processes run to their end). Items that finished are journaled as always,
so the same job run again carries on where this one stopped. With a token,
:func:`run` returns every result (the unfinished ones with ``error ==
"cancelled"``); on Ctrl-C it raises :class:`Interrupted`, a
``KeyboardInterrupt`` that carries those results.
"""

from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import json
import logging
import os
import sqlite3
import threading
from decimal import Decimal
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Union

import attrs

from .accounting._sqlite import open_shared, while_busy
from .accounting.budget import Budget
from .accounting.ledgers.base import close_when_dropped
from .accounting.pricing import TokenPrice
from .cancellation import CancellationToken
from .client import Client
from .errors import (
    AuthenticationError,
    BadRequestError,
    BudgetExceeded,
    ConfigurationError,
    InvalidArgumentError,
    LedgerError,
    MiniLLMError,
)
from .models import CostInfo, Usage
from .serialization import cost_from_dict, cost_to_dict
from .transports.base import endpoint_of

__all__ = ["BatchItem", "BatchResult", "Interrupted", "Journal", "run", "summarize"]

log = logging.getLogger("minillm.batch")

#: Errors that another attempt would meet again.
_FINAL = (BudgetExceeded, ConfigurationError, InvalidArgumentError, BadRequestError, AuthenticationError)

_JOURNAL_TIMEOUT = 30.0

#: The ``error`` of an item the batch was stopped before finishing.
CANCELLED = "cancelled"


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped a batch: it propagates as the ``KeyboardInterrupt`` it
    is, carrying what the batch had done.

    :ivar results: a :class:`BatchResult` per prompt, in input order; the
        unfinished ones have ``error == "cancelled"``.
    """

    def __init__(self, results: List[BatchResult]) -> None:
        super().__init__("the batch was interrupted")
        self.results = results


_JOURNAL_SCHEMA = """
CREATE TABLE IF NOT EXISTS minillm_journal (
    job TEXT NOT NULL,
    item TEXT NOT NULL,
    result TEXT NOT NULL,
    finished_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (job, item)
);
CREATE TABLE IF NOT EXISTS minillm_journal_jobs (
    job TEXT PRIMARY KEY,
    config TEXT NOT NULL
);
"""

Prompt = Union[str, Sequence[Mapping[str, Any]]]


@attrs.frozen
class BatchItem:
    """One prompt of a batch, with its own options.

    :param prompt: a string, or OpenAI-shaped messages.
    :param id: the caller's identifier, carried into the result.
    """

    prompt: Prompt
    id: Any = None
    system: Optional[str] = None
    max_tokens: Optional[int] = None
    temperature: Optional[float] = None
    meta: Mapping[str, Any] = attrs.field(factory=dict)

    @classmethod
    def of(cls, value: Union[BatchItem, Prompt, Mapping[str, Any]]) -> BatchItem:
        """An item from a prompt string, a dict with ``prompt`` (and
        ``id``, ``system``, ``max_tokens``, ``temperature``, ``meta``), or an item."""
        if isinstance(value, BatchItem):
            return value
        if isinstance(value, str):
            return cls(prompt=value)
        if isinstance(value, Mapping):
            if "prompt" not in value:
                raise InvalidArgumentError(f"a batch item needs a 'prompt', not just {sorted(value)}")
            known = {f.name for f in attrs.fields(cls)}
            unknown = set(value) - known
            if unknown:
                raise InvalidArgumentError(f"a batch item has unknown fields: {sorted(unknown)}")
            return cls(**dict(value))
        return cls(prompt=value)

    def key(self, index: int) -> str:
        """What identifies the item in a journal: its place and its content."""
        content = json.dumps(attrs.asdict(self), sort_keys=True, default=str)
        return f"{index}:{hashlib.sha256(content.encode('utf-8')).hexdigest()[:32]}"


@attrs.frozen
class BatchResult:
    """What became of one item. ``error`` is None when it succeeded."""

    index: int
    id: Any
    text: Optional[str] = None
    finish_reason: Optional[str] = None
    usage: Optional[Usage] = None
    cost: Optional[CostInfo] = None
    error: Optional[str] = None
    attempts: int = 0
    #: read back from the journal: not sent (or paid for) again
    from_journal: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready (money as a string)."""
        return {
            "index": self.index,
            "id": self.id,
            "text": self.text,
            "finish_reason": self.finish_reason,
            "usage": None if self.usage is None else _usage_dict(self.usage),
            "cost": None if self.cost is None else cost_to_dict(self.cost),
            "error": self.error,
            "attempts": self.attempts,
        }


def _usage_dict(usage: Usage) -> Dict[str, Any]:
    data = attrs.asdict(usage)
    for name in ("cost", "upstream_inference_cost"):
        if data[name] is not None:
            data[name] = str(data[name])
    return data


class Journal:
    """Which items of which job are done, in a SQLite file.

    :param path: the journal file (created when missing).
    :param job: the job's name: one file may journal several jobs.
    """

    def __init__(self, path: Union[str, os.PathLike[str]], job: str = "default") -> None:
        self.path = os.fspath(path)
        self.job = job
        self._lock = threading.Lock()
        try:
            self._db = open_shared(self.path, timeout=_JOURNAL_TIMEOUT, schema=_JOURNAL_SCHEMA)
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot open the journal {self.path!r}: {exc}") from exc
        close_when_dropped(self, self._db)

    def bind(self, config: Mapping[str, Any]) -> None:
        """Tie this job to ``config`` (what its results depend on besides
        the items: models, endpoints, prices). The first run records it; a
        later run with another config is refused, because its results would
        be mixed with answers from another model, or priced another way.

        :raises ConfigurationError: the job was journaled with another config.
        """
        text = json.dumps(config, sort_keys=True, default=str)
        with self._lock:
            try:
                while_busy(
                    lambda: self._db.execute(
                        "INSERT OR IGNORE INTO minillm_journal_jobs (job, config) VALUES (?, ?)", (self.job, text)
                    ),
                    _JOURNAL_TIMEOUT,
                )
                (kept,) = self._db.execute(
                    "SELECT config FROM minillm_journal_jobs WHERE job = ?", (self.job,)
                ).fetchone()
            except sqlite3.Error as exc:
                raise LedgerError(f"cannot write to the journal {self.path!r}: {exc}") from exc
        if kept != text:
            was, now = json.loads(kept), json.loads(text)
            changed = sorted(key for key in set(was) | set(now) if was.get(key) != now.get(key))
            raise ConfigurationError(
                f"the journal {self.path!r} holds job {self.job!r} as run with other settings ("
                + "; ".join(f"{key}: {_shown(was.get(key))} then, {_shown(now.get(key))} now" for key in changed)
                + "): its results would be mixed with these. Use another journal (or job name) for the new "
                "settings, or delete the journal to start the job over."
            )

    def done(self) -> Dict[str, BatchResult]:
        """The finished items of this job, by key."""
        with self._lock:
            rows = self._db.execute("SELECT item, result FROM minillm_journal WHERE job = ?", (self.job,)).fetchall()
        return {item: _result_from(json.loads(result)) for item, result in rows}

    def finish(self, key: str, result: BatchResult) -> None:
        """Record that item ``key`` is done (once: a second record is ignored)."""
        text = json.dumps(result.to_dict(), default=str)
        with self._lock:
            try:
                while_busy(
                    lambda: self._db.execute(
                        "INSERT OR IGNORE INTO minillm_journal (job, item, result) VALUES (?, ?, ?)",
                        (self.job, key, text),
                    ),
                    _JOURNAL_TIMEOUT,
                )
            except sqlite3.Error as exc:
                raise LedgerError(f"cannot write to the journal {self.path!r}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _shown(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _job_config(client: Client) -> Dict[str, Any]:
    """What a batch job's results depend on besides its items: the model,
    wire API and endpoint of every route (credentials and query never
    included), and the price each route is booked at."""
    routes = client._routes
    return {
        "models": [route.model for route in routes],
        "apis": [route.adapter.api for route in routes],
        "endpoints": [endpoint_of(route.base_url) for route in routes],
        "prices": [_price_of(route.pricer.price) for route in routes],
    }


def _price_of(price: Optional[TokenPrice]) -> Optional[Dict[str, Optional[str]]]:
    if price is None:
        return None
    return {name: None if value is None else str(value) for name, value in attrs.asdict(price).items()}


def _result_from(data: Dict[str, Any]) -> BatchResult:
    usage = data.get("usage")
    cost = data.get("cost")
    return BatchResult(
        index=data["index"],
        id=data.get("id"),
        text=data.get("text"),
        finish_reason=data.get("finish_reason"),
        usage=None if usage is None else Usage(**{k: _number(k, v) for k, v in usage.items()}),
        cost=None if cost is None else cost_from_dict(cost),
        attempts=data.get("attempts", 0),
        from_journal=True,
    )


def _number(name: str, value: Any) -> Any:
    if name in ("cost", "upstream_inference_cost") and value is not None:
        return Decimal(value)
    return value


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
    report = _reporter(progress, total=len(items), already=sum(r is not None for r in results))
    lock = threading.Lock()

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
        with lock:
            results[index] = result
        if journal is not None and result.ok:
            try:
                journal.finish(keys[index], result)
            except LedgerError as exc:
                log.error("item %d is done but could not be journaled (a rerun sends it again): %s", index, exc)
        try:
            report(result)
        except Exception:
            log.exception("the progress callback failed on item %d", index)

    owned = executor is None
    pool = executor or concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="minillm-batch")
    # A token reaches calls on threads of this process; calls in other
    # processes cannot be reached, and run to their end.
    stop = cancel or CancellationToken()
    reachable = stop if isinstance(pool, concurrent.futures.ThreadPoolExecutor) else None
    futures: List[concurrent.futures.Future[BatchResult]] = []

    def stop_queued() -> None:
        for future in list(futures):
            future.cancel()  # refused by those already running: their calls are stopped instead

    unsubscribe = stop._subscribe(stop_queued)
    try:
        for index, item in enumerate(items):
            if results[index] is not None:
                continue
            if stop.is_cancelled:
                results[index] = BatchResult(index=index, id=item.id, error=CANCELLED)
                continue
            future = pool.submit(_attempt, client, item, index, attempts, budget, reachable)
            future.add_done_callback(functools.partial(arrived, index))
            futures.append(future)
        try:
            concurrent.futures.wait(futures)
        except KeyboardInterrupt as interrupt:
            stop.cancel()
            # The calls in flight return as soon as they notice; a second
            # Ctrl-C while they do stops waiting for them.
            concurrent.futures.wait(futures)
            raise Interrupted(_complete(results, items)) from interrupt
    finally:
        unsubscribe()
        if owned:
            pool.shutdown(wait=True, cancel_futures=True)
        report.close()
    return _complete(results, items)


def _complete(results: List[Optional[BatchResult]], items: List[BatchItem]) -> List[BatchResult]:
    """Every item's result: those without one were never started."""
    return [
        result if result is not None else BatchResult(index=index, id=items[index].id, error=CANCELLED)
        for index, result in enumerate(results)
    ]


def summarize(results: Sequence[BatchResult]) -> Dict[str, Any]:
    """Counts, tokens and money of a batch: ``items``, ``done``,
    ``from_journal``, ``failed``, ``cancelled`` (not finished: the batch was
    stopped), ``tokens`` and ``usd`` (the known money of the done items'
    answers -- attempts that failed are in the ledger, not here) and
    ``unknown`` (done items whose money is not known)."""
    done = [r for r in results if r.ok]
    cancelled = sum(1 for r in results if r.error == CANCELLED)
    return {
        "items": len(results),
        "done": len(done),
        "from_journal": sum(r.from_journal for r in results),
        "failed": len(results) - len(done) - cancelled,
        "cancelled": cancelled,
        "tokens": sum(r.usage.total_tokens for r in done if r.usage is not None),
        "usd": sum((r.cost.usd for r in done if r.cost is not None and r.cost.usd is not None), Decimal(0)),
        "unknown": sum(1 for r in done if r.cost is None or r.cost.usd is None),
    }


class _Reporter:
    """Progress as results arrive: a tqdm bar (items, tokens, running cost),
    a callable, or nothing."""

    def __init__(self, progress: Union[bool, Callable[[BatchResult], None]], total: int, already: int) -> None:
        self._callback = progress if callable(progress) else None
        self._bar: Any = None
        self._tokens = 0
        self._usd = Decimal(0)
        self._lock = threading.Lock()
        if progress is True:
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self._bar = tqdm(total=total, initial=already, unit="item", desc="minillm batch", dynamic_ncols=True)

    def __call__(self, result: BatchResult) -> None:
        if self._callback is not None:
            self._callback(result)
        if self._bar is None:
            return
        with self._lock:
            if result.usage is not None:
                self._tokens += result.usage.total_tokens
            if result.cost is not None and result.cost.usd is not None:
                self._usd += result.cost.usd
            self._bar.set_postfix_str(f"{self._tokens:,} tokens, ${self._usd:.6f}", refresh=False)
            self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _reporter(progress: Union[bool, Callable[[BatchResult], None]], *, total: int, already: int) -> _Reporter:
    return _Reporter(progress, total, already)
