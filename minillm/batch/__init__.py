"""Batch jobs: many prompts, one client, every cost booked once.

The real-time runner
--------------------

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
environment. The journal stays with the caller. Each item's future is let
go as soon as its result has arrived, so a cluster that loses a worker
runs the items it was running again, but not those it had finished.

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

Provider batches
----------------
:func:`submit` sends the same prompts as one provider batch (OpenAI,
Anthropic) at the batch rate, and :class:`ProviderBatch` waits for it and
reads its results, booking each answered item once -- also across
crashes, with :func:`resume` (see :mod:`!minillm.batch.provider`).

The modules, each owning one thing: ``items`` (the values), ``journal``
(the SQLite journal), ``realtime`` (the runner above), ``provider`` (provider
batches), ``apis`` (their wire protocols), ``state`` (a provider batch job
in the journal), ``settle`` (its holds and bookings), ``wire`` (its
requests) and ``progress`` (the bars).
"""

from __future__ import annotations

from .items import CANCELLED as CANCELLED
from .items import BatchItem, BatchResult, summarize
from .journal import Journal
from .provider import AmbiguousBatchError, BatchProgress, ProviderBatch, resume, submit
from .realtime import Interrupted, run
from .realtime import _job_config as _job_config

__all__ = [
    "AmbiguousBatchError",
    "BatchItem",
    "BatchProgress",
    "BatchResult",
    "Interrupted",
    "Journal",
    "ProviderBatch",
    "resume",
    "run",
    "submit",
    "summarize",
]

# Users meet these names here, and pickles and the reference name them so:
# they are this package's, wherever in it they are defined.
for _name in __all__:
    globals()[_name].__module__ = __name__
del _name
