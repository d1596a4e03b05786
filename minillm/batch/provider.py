"""Provider batches: the same prompts, sent as one asynchronous batch at the
provider's batch rate (about half price), each item booked exactly once.

:func:`submit` journals the job, holds every item's worst case in the
budget, and sends the batch -- split into parts when it is larger than one
provider batch may be. :class:`ProviderBatch` polls it, reads its results
(in input order, whatever order the provider gives them) and books each
answered item the moment it is read. :func:`resume` -- or :func:`submit`
with the same journal, or the same ``minillm batch`` command -- carries a
job on from wherever it stopped.

Exactly once, across crashes
----------------------------
The journal (:mod:`minillm.batch.state`) records each step before it
matters: the moment a create request is sent, the batch id the moment it
comes back, each item right after it is booked. So a run that dies at any
point and is resumed

- never creates a second batch: a part whose create request went out but
  whose answer was never journaled is looked for at the provider first --
  by the job and part its metadata names (OpenAI), or, where batches carry
  no metadata (Anthropic), as the only batch of as many items created
  since the request was sent; when more than one could be it,
  :class:`AmbiguousBatchError` asks the caller to say which
  (``resume(..., adopt=ID)``) rather than guess;
- never books an item twice: each booking's id is derived from the job and
  the item, and every minillm ledger records an id once -- even when the
  run died between the ledger's write and the journal's.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from decimal import Decimal
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import attrs

from ..accounting.budget import Budget, worst_case
from ..client import Client
from ..errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    ConfigurationError,
    InvalidArgumentError,
    MalformedResponseError,
    MiniLLMError,
)
from ..meta import check_meta
from ..request import REQUEST_OPTIONS, build_chat_request
from ..routes import Route
from ..transports.base import Exchange
from .apis import CANCELED, CLOCK_SKEW, EXPIRED, STATUSES, TAG_JOB, TAG_PART, BatchAPI, Remote, api_for
from .items import BatchItem, BatchResult, Prompt
from .journal import Journal, job_config
from .progress import PollReporter
from .settle import BATCH_TIER, Settler
from .state import ItemRecord, JobRecord, JobState, PartRecord
from .wire import Wire

__all__ = ["AmbiguousBatchError", "BatchProgress", "ProviderBatch", "resume", "submit"]

log = logging.getLogger("minillm.batch")

#: The request options a provider batch takes (headers cannot travel per item).
OPTIONS = tuple(name for name in REQUEST_OPTIONS if name != "extra_headers")

#: The most pages of batches looked through for one whose creation went unanswered.
_MAX_PAGES = 100

JournalLike = Union[Journal, str, "os.PathLike[str]"]


class AmbiguousBatchError(MiniLLMError):
    """A part of a job was sent, its answer never came, and more than one
    batch at the provider could be it: minillm will not guess (guessing
    wrong books another job's answers, or sends the batch twice).

    :ivar candidates: the ids of the batches that could be it.
    """

    def __init__(self, message: str, candidates: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.candidates = tuple(candidates)


@attrs.frozen
class BatchProgress:
    """Where a provider batch stands: its status, how many of its ``total``
    items are ``done`` (answered) and ``failed`` (errored, expired or
    cancelled) so far, and the money booked so far."""

    status: str
    total: int
    done: int
    failed: int
    usd: Decimal


ProgressArg = Union[bool, Callable[[BatchProgress], None]]


def submit(
    client: Client,
    prompts: Iterable[Union[BatchItem, Prompt, Mapping[str, Any]]],
    *,
    journal: JournalLike,
    meta: Optional[Mapping[str, Any]] = None,
    budget: Optional[Budget] = None,
    **options: Any,
) -> ProviderBatch:
    """Send ``prompts`` as a provider batch and return it, sent.

    Submitting a job its journal already holds sends nothing new: it
    carries the job on (as :func:`resume` does), so running the same
    program again after a crash is safe.

    :param journal: a :class:`Journal` or the path of one (job
        ``"default"``): where the job is kept.
    :param meta: merged under each item's own ``meta`` in its booking
        (which also carries ``batch_item``, its place in the input, and
        ``provider_batch``, the provider's batch id).
    :param budget: every item's worst case at the batch rate is held before
        anything is sent; if it cannot hold them all, nothing is sent.
    :param options: request options for every item (``system``,
        ``max_tokens``, ``temperature``, ``stop``, ``tools``,
        ``tool_choice``, ``thinking_budget``, ``extra_body``); an item's
        own ``system``, ``max_tokens`` and ``temperature`` win.
    :raises ConfigurationError: the client's provider has no batch API, or
        the journal holds this job with other items, options or settings.
    :raises BudgetExceeded: the budget cannot hold every item's worst case.
    :raises InvalidArgumentError: an item or option cannot be sent.
    """
    route, api = _protocol(client)
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise InvalidArgumentError(
            f"a provider batch takes the options {', '.join(OPTIONS)}, not {', '.join(unknown)}"
            + (" (headers cannot travel with each item of a batch)" if "extra_headers" in unknown else "")
        )
    if budget is not None and not isinstance(budget, Budget):
        raise InvalidArgumentError(f"budget must be a minillm.Budget, not {type(budget).__name__}")
    items = [BatchItem.of(prompt) for prompt in prompts]
    if not items:
        raise InvalidArgumentError("a provider batch needs at least one prompt")
    own = check_meta(meta)
    described = json.dumps({"options": options, "meta": own}, sort_keys=True, default=str)
    book, owned = _open(journal)
    try:
        state = JobState(book)
        record = state.record()
        if record is None:
            price = route.pricer.price
            if price is not None and "batch" not in (price.tiers or {}):
                log.warning(
                    "the price of %s names no 'batch' tier: its batch items are booked at the full price, though "
                    "%s bills batches at its batch rate (TokenPrice(..., tiers={'batch': '0.5'}))",
                    route.model,
                    api.name,
                )
            record, records = _new_job(route, api, items, own, options, budget, described)
            settler = _settler(client, route, record, budget)
            settler.hold(records)
            try:
                book.bind(_config(route))
                state.start(record, records)
            except BaseException:
                settler.release(records)
                raise
            again = False
        else:
            book.bind(_config(route))
            _check_same_job(book, state, record, items, described)
            again = True
        batch = ProviderBatch(client, route, api, book, state, record, budget, owns_journal=owned)
        batch._send(hold_again=again, adopt=None)
        return batch
    except BaseException:
        if owned:
            book.close()
        raise


def resume(
    journal: JournalLike, client: Client, *, budget: Optional[Budget] = None, adopt: Optional[str] = None
) -> ProviderBatch:
    """Carry on the provider batch job in ``journal``: send what was never
    sent (never a part twice), and return it, ready to wait for and read.

    :param journal: a :class:`Journal`, or the path of a file holding one
        provider batch job.
    :param client: a client for the model, endpoint and price the job was
        submitted with (its key and sink may be new): the journal keeps no
        credentials.
    :param budget: the job's budget: holds items not yet sent, and lets go
        of the holds of items that fail.
    :param adopt: the provider's id of the batch that is this job's part
        whose creation went unanswered, when minillm could not tell it
        apart on its own (see :class:`AmbiguousBatchError`).
    :raises ConfigurationError: the journal holds no such job, or holds it
        for another model, endpoint or price.
    :raises AmbiguousBatchError: see ``adopt``.
    """
    route, api = _protocol(client)
    book, owned = _open(journal, pick=True)
    try:
        book.bind(_config(route))
        state = JobState(book)
        record = state.record()
        if record is None:
            raise ConfigurationError(f"the journal {book.path!r} holds no provider batch job named {book.job!r}")
        if record.protocol != api.name:
            raise ConfigurationError(f"the journal's job was sent to {record.protocol}'s batch API, not {api.name}'s")
        batch = ProviderBatch(client, route, api, book, state, record, budget, owns_journal=owned)
        batch._send(hold_again=True, adopt=adopt)
        return batch
    except BaseException:
        if owned:
            book.close()
        raise


class ProviderBatch:
    """A job sent as one or more provider batches (parts). Made by
    :func:`submit` and :func:`resume`, with every part sent.

    Its methods may be called from any thread, one at a time (they take
    a lock). Close it (or use it as a context manager) to close a journal
    it opened.
    """

    def __init__(
        self,
        client: Client,
        route: Route,
        api: BatchAPI,
        journal: Journal,
        state: JobState,
        record: JobRecord,
        budget: Optional[Budget],
        *,
        owns_journal: bool,
    ) -> None:
        self._lock = threading.RLock()
        self._route = route
        self._api = api
        self._wire = Wire(route)
        self._journal = journal
        self._state = state
        self._record = record
        self._owns_journal = owns_journal
        self._settler = _settler(client, route, record, budget)
        self._items = state.items()
        self._parts: Dict[int, PartRecord] = {part.part: part for part in state.parts()}
        self._by_part: Dict[int, List[ItemRecord]] = {number: [] for number in self._parts}
        for item in self._items:
            self._by_part[item.part].append(item)
        self._remotes: Dict[int, Remote] = {}
        #: settled items' results, by index (those journaled before are ``from_journal``)
        self._results: Dict[int, BatchResult] = {}
        #: per part: items settled answered, and failed
        self._settled_counts: Dict[int, List[int]] = {number: [0, 0] for number in self._parts}
        self._usd = Decimal(0)
        for item in self._items:
            if item.result is not None:
                self._count(item, item.result)

    # -- what it is --------------------------------------------------------------------

    @property
    def id(self) -> str:
        """The provider's batch id (the ids of every part, comma-separated,
        when the job was split)."""
        return ",".join(self.ids)

    @property
    def ids(self) -> Tuple[str, ...]:
        """The provider's batch id of each part."""
        return tuple(part.batch_id for _, part in sorted(self._parts.items()) if part.batch_id)

    @property
    def job(self) -> str:
        """The job's name in its journal."""
        return self._journal.job

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"<ProviderBatch {self.id or '(not sent)'} of job {self.job!r}: {len(self._items)} items>"

    # -- polling -----------------------------------------------------------------------

    def status(self) -> str:
        """Ask the provider: ``"validating"``, ``"in_progress"``,
        ``"finalizing"``, ``"cancelling"`` or ``"ended"`` (results are
        ready; every part has ended). A split job is as far as its least
        advanced part."""
        with self._lock:
            for number, part in sorted(self._parts.items()):
                if part.state == "submitted" and part.batch_id is not None:
                    self._remotes[number] = self._api.remote(self._wire.json(self._api.retrieve(part.batch_id)))
            return self._status()

    def progress(self) -> BatchProgress:
        """Where the batch stood at the last poll (no request is made)."""
        with self._lock:
            done = failed = 0
            for number, part in self._parts.items():
                ok, bad = self._settled_counts[number]
                remote = self._remotes.get(number)
                if part.state != "done" and remote is not None:
                    ok, bad = max(ok, remote.answered(len(self._by_part[number]))), max(bad, remote.failed)
                done += ok
                failed += bad
            return BatchProgress(self._status(), len(self._items), done, failed, self._usd)

    def wait(self, poll: float = 30.0, timeout: Optional[float] = None, *, progress: ProgressArg = False) -> str:
        """Poll until every part has ended.

        :param poll: seconds between polls.
        :param timeout: seconds to wait at most (None: as long as it takes).
        :param progress: True for a progress bar on stderr (tqdm, when
            installed): items done and failed, money booked; or a callable
            given a :class:`BatchProgress` after each poll.
        :returns: ``"ended"``.
        :raises APITimeoutError: ``timeout`` passed first; the batch runs
            on (wait again, or resume later).
        """
        if isinstance(poll, bool) or not isinstance(poll, (int, float)) or poll < 0:
            raise InvalidArgumentError(f"poll must be a number of seconds, not {poll!r}")
        deadline = None if timeout is None else time.monotonic() + timeout
        report = PollReporter(progress, total=len(self._items))
        try:
            while True:
                status = self.status()
                report(self.progress())
                if status == "ended":
                    return status
                pause = poll
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise APITimeoutError(
                            f"the provider batch {self.id} has not ended after {timeout:g}s (it is {status}): it runs"
                            " on; wait again, or resume the job later"
                        )
                    pause = min(pause, left)
                time.sleep(pause)
        finally:
            report.close()

    # -- results -----------------------------------------------------------------------

    def results(self, *, progress: ProgressArg = False) -> List[BatchResult]:
        """A :class:`BatchResult` per prompt, in input order, every answered
        item booked (once, whatever happened before). Waits for the batch
        first if it has not ended.

        A failed item has ``error`` starting with what became of it:
        ``"errored: ..."`` (the provider refused it), ``"expired: ..."`` or
        ``"canceled: ..."`` (the batch ended before it was run) -- none of
        them is billed, so none is booked.

        :param progress: as for :meth:`wait`, as the items are booked.
        """
        with self._lock:
            if self.status() != "ended":
                self.wait()
            report = PollReporter(progress, total=len(self._items))
            try:
                for number, part in sorted(self._parts.items()):
                    if part.state == "submitted":
                        self._collect(number, report)
                report(self.progress())
            finally:
                report.close()
            return [self._results[item.index] for item in self._items]

    def cancel(self) -> None:
        """Ask the provider to cancel every part that has not ended. Items
        already answered are still booked (read them with :meth:`results`
        once the batch has ended); the others are not billed."""
        with self._lock:
            for number, part in sorted(self._parts.items()):
                remote = self._remotes.get(number)
                if part.state != "submitted" or part.batch_id is None or (remote is not None and remote.ended):
                    continue
                try:
                    self._remotes[number] = self._api.remote(self._wire.json(self._api.cancel(part.batch_id)))
                except APIError:
                    # Refused: perhaps it ended since the last poll, which is no failure.
                    remote = self._api.remote(self._wire.json(self._api.retrieve(part.batch_id)))
                    self._remotes[number] = remote
                    if not remote.ended:
                        raise

    def close(self) -> None:
        """Close the journal, if this batch opened it."""
        if self._owns_journal:
            self._journal.close()

    def __enter__(self) -> ProviderBatch:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # -- sending -----------------------------------------------------------------------

    def _send(self, *, hold_again: bool, adopt: Optional[str]) -> None:
        """Send every part that is not sent yet, holding its items first."""
        with self._lock:
            if adopt is not None and not any(part.state == "creating" for part in self._parts.values()):
                raise InvalidArgumentError(
                    f"adopt= names the batch of a part whose creation went unanswered; job {self.job!r} has none"
                )
            if hold_again:
                unsent = [n for n, part in self._parts.items() if not part.sent]
                self._settler.hold([i for n in unsent for i in self._items_of(n) if i.worst is not None], again=True)
            for number in sorted(self._parts):
                part = self._parts[number]
                if part.state == "creating":
                    self._recover(number, adopt)
                    adopt = None
                elif not part.sent:
                    self._create(number)

    def _create(self, number: int) -> None:
        api = self._api
        wires = self._state.wires(number)
        file_id = self._parts[number].file_id
        if api.uploads and file_id is None:
            # An upload sent twice makes two files, one never used: it may be repeated.
            name = f"minillm-{self._record.uid}-part{number}.jsonl"
            file_id = api.uploaded(self._wire.json(api.upload(name, wires)))
            self._state.uploaded(number, file_id)
            self._parts[number] = attrs.evolve(self._parts[number], state="uploaded", file_id=file_id)
        request = api.create(wires, endpoint=self._record.endpoint, file_id=file_id, tags=self._tags(number))
        sent_at = time.time()
        self._state.creating(number, sent_at)
        self._parts[number] = attrs.evolve(self._parts[number], state="creating", sent_at=sent_at)
        exchange = Exchange()
        try:
            remote = api.remote(self._wire.json(request, repeatable=False, exchange=exchange))
        except (APIError, APIConnectionError) as exc:
            refused = isinstance(exc, APIError) and not isinstance(exc, MalformedResponseError)
            status = getattr(exc, "status_code", None)
            if (refused and status is not None and status < 500) or not exchange.sent:
                # Answered with a refusal, or never sent: there is no batch.
                self._state.not_created(number)
                self._parts[number] = attrs.evolve(
                    self._parts[number], state="uploaded" if file_id else "new", sent_at=None
                )
            raise
        self._submitted(number, remote)

    def _submitted(self, number: int, remote: Remote) -> None:
        self._state.submitted(number, remote.id)
        self._parts[number] = attrs.evolve(self._parts[number], state="submitted", batch_id=remote.id)
        self._remotes[number] = remote

    def _recover(self, number: int, adopt: Optional[str]) -> None:
        """Part ``number`` was sent and its answer never journaled: adopt
        the batch it made, or -- when it made none -- send it again."""
        if adopt is not None:
            self._submitted(number, self._api.remote(self._wire.json(self._api.retrieve(adopt))))
            return
        found = self._find(number)
        if len(found) == 1:
            log.warning(
                "part %d of job %r was created as %s before the run stopped: adopted", number, self.job, found[0]
            )
            self._submitted(number, found[0])
        elif not found:
            self._create(number)
        else:
            raise self._ambiguous(number, found)

    def _find(self, number: int) -> List[Remote]:
        """The batches at the provider that could be part ``number``."""
        part = self._parts[number]
        since = part.sent_at or 0.0
        count = len(self._items_of(number))
        taken = {p.batch_id for p in self._parts.values() if p.batch_id}
        found: List[Remote] = []
        after: Optional[str] = None
        for _ in range(_MAX_PAGES):
            page = self._api.page(self._wire.json(self._api.listing(after)))
            for remote in page.batches:
                if remote.id not in taken and self._api.is_ours(
                    remote, tags=self._tags(number), count=count, since=since
                ):
                    found.append(remote)
            created = [r.created for r in page.batches if r.created is not None]
            if page.after is None or (created and min(created) < since - CLOCK_SKEW):
                break  # newest first: what follows was made before the request was sent
            after = page.after
        return found

    def _ambiguous(self, number: int, found: List[Remote]) -> AmbiguousBatchError:
        ids = [remote.id for remote in found]
        sent = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self._parts[number].sent_at or 0))
        count = len(self._items_of(number))
        prefix = self._items_of(number)[0].custom_id.rsplit("-", 1)[0]
        return AmbiguousBatchError(
            f"part {number} of job {self.job!r} (journal {self._journal.path!r}) was sent to {self._api.name} at {sent}"
            f" and its answer never came; since then {len(ids)} batches of {count} items were created "
            f"({', '.join(ids)}), and {self._api.name} batches carry no name of their own, so minillm cannot tell "
            f"which one is this job's -- it sends nothing rather than guess. Check them (this job's items have custom "
            f"ids beginning with {prefix!r}: see a batch's results, or the console), then resume with adopt=<its id>.",
            ids,
        )

    def _tags(self, number: int) -> Dict[str, str]:
        return {TAG_JOB: self._record.uid, TAG_PART: str(number)}

    # -- results -----------------------------------------------------------------------

    def _collect(self, number: int, report: PollReporter) -> None:
        """Read part ``number``'s results and settle each of its items once."""
        remote = self._remotes[number]
        items = {item.custom_id: item for item in self._items_of(number)}
        if remote.failure is None:
            for request in self._api.result_requests(remote):
                for text in self._wire.lines(request):
                    line = self._api.line(text)
                    item = items.get(line.custom_id)
                    if item is None:
                        log.warning(
                            "batch %s has a result for %r, which is not one of its items", remote.id, line.custom_id
                        )
                        continue
                    if item.index in self._results:
                        continue  # settled already: in an earlier run, or a line seen twice
                    if line.answered:
                        result = self._settler.answered(item, line.body, remote.id)
                    else:
                        result = self._settler.unanswered(item, line.error or "errored", attempted=line.attempted)
                    self._settled(item, result)
                    report(self.progress())
        why = _missing(remote)
        for item in items.values():
            if item.index not in self._results:
                self._settled(item, self._settler.unanswered(item, why, attempted=False))
        self._state.done(number)
        self._parts[number] = attrs.evolve(self._parts[number], state="done")

    def _settled(self, item: ItemRecord, result: BatchResult) -> None:
        self._state.settled(item.index, result)
        self._count(item, result)

    def _count(self, item: ItemRecord, result: BatchResult) -> None:
        self._results[item.index] = result
        self._settled_counts[item.part][0 if result.ok else 1] += 1
        if result.cost is not None and result.cost.usd is not None:
            self._usd += result.cost.usd

    # -- helpers -----------------------------------------------------------------------

    def _items_of(self, number: int) -> List[ItemRecord]:
        return self._by_part[number]

    def _status(self) -> str:
        seen = []
        for number, part in self._parts.items():
            remote = self._remotes.get(number)
            if part.state == "done":
                seen.append("ended")
            elif remote is not None:
                seen.append(remote.status)
            else:
                seen.append("validating")  # sent, not polled yet
        for status in STATUSES:
            if status in seen and status != "ended":
                return status
        others = [status for status in seen if status != "ended"]
        return others[0] if others else "ended"


def _missing(remote: Remote) -> str:
    """Why an item of an ended batch has no line in its results."""
    if remote.failure is not None:
        return f"failed: the provider batch {remote.id} failed: {remote.failure}"
    if remote.native in ("cancelled", "canceled", "cancelling", "canceling"):
        return CANCELED
    if remote.native == "expired":
        return EXPIRED
    return f"missing: the results of batch {remote.id} have no line for this item"


# -- making a job ------------------------------------------------------------------------


def _protocol(client: Client) -> Tuple[Route, BatchAPI]:
    """The client's primary route (a batch goes to one provider: fallbacks
    play no part) and its batch protocol."""
    if not isinstance(client, Client):
        raise InvalidArgumentError(f"a provider batch needs a minillm.Client, not {type(client).__name__}")
    route = client._routes[0]
    if route.unusable is not None:
        raise route.unusable
    return route, api_for(route.adapter, route.base_url, route.model)


def _config(route: Route) -> Dict[str, Any]:
    return {**job_config([route]), "batch": "provider"}


def _settler(client: Client, route: Route, record: JobRecord, budget: Optional[Budget]) -> Settler:
    return Settler(route, uid=record.uid, sink=client._sink, budget=budget, base_meta=client._config.meta)


def _open(journal: JournalLike, *, pick: bool = False) -> Tuple[Journal, bool]:
    """The journal, and whether it was opened here. A path given to
    :func:`resume` names the file's one provider batch job."""
    if isinstance(journal, Journal):
        return journal, False
    if not isinstance(journal, (str, os.PathLike)):
        raise InvalidArgumentError(f"journal must be a minillm.batch.Journal or a path, not {type(journal).__name__}")
    book = Journal(journal)
    if not pick:
        return book, True
    try:
        jobs = JobState.jobs(book)
    except BaseException:
        book.close()
        raise
    if len(jobs) == 1 and jobs[0] != book.job:
        book.close()
        book = Journal(journal, job=jobs[0])
    elif len(jobs) > 1:
        book.close()
        raise ConfigurationError(
            f"the journal {os.fspath(journal)!r} holds {len(jobs)} provider batch jobs ({', '.join(jobs)}): pass "
            "minillm.batch.Journal(path, job=NAME) for the one to resume"
        )
    return book, True


def _new_job(
    route: Route,
    api: BatchAPI,
    items: List[BatchItem],
    own: Dict[str, Any],
    options: Mapping[str, Any],
    budget: Optional[Budget],
    described: str,
) -> Tuple[JobRecord, List[ItemRecord]]:
    """A new job: every item built as the batch carries it, and split into
    parts that each fit one provider batch."""
    uid = uuid.uuid4().hex
    records: List[ItemRecord] = []
    endpoint = ""
    part = size = count = 0
    room = api.max_bytes - api.overhead
    for index, item in enumerate(items):
        settings = dict(options)
        for name in ("system", "max_tokens", "temperature"):
            if getattr(item, name) is not None:
                settings[name] = getattr(item, name)
        if budget is not None and settings.get("max_tokens") is None:
            settings["max_tokens"] = budget.default_max_tokens  # a bounded worst case
        request = build_chat_request(route.name, item.prompt, **settings)
        endpoint = api.endpoint(route.adapter.path(request, stream=False))
        custom_id = f"mlb-{uid[:12]}-{index}"
        wire = api.item(custom_id, endpoint, route.adapter.body(request, stream=False))
        bytes_ = api.size(wire)
        if bytes_ > room:
            raise InvalidArgumentError(
                f"item {index} takes {bytes_:,} bytes: more than one {api.name} batch may hold ({room:,})"
            )
        if count and (count >= api.max_requests or size + bytes_ > room):
            part, size, count = part + 1, 0, 0
        size, count = size + bytes_, count + 1
        worst = (
            worst_case(request, pricer=route.pricer, model=route.model, service_tier=BATCH_TIER)
            if budget is not None
            else None
        )
        records.append(
            ItemRecord(
                index=index,
                key=item.key(index),
                custom_id=custom_id,
                part=part,
                id=item.id,
                meta={**own, **check_meta(item.meta), "batch_item": index},
                worst=worst,
                wire=wire,
            )
        )
    return JobRecord(uid=uid, protocol=api.name, endpoint=endpoint, options=described), records


def _check_same_job(
    journal: Journal, state: JobState, record: JobRecord, items: List[BatchItem], described: str
) -> None:
    """The job the journal holds is this one: the same items, options and meta.

    :raises ConfigurationError: it is another.
    """
    where = f"the journal {journal.path!r} holds provider batch job {journal.job!r}"
    if record.options != described:
        raise ConfigurationError(
            f"{where} with other options or meta ({record.options} then, {described} now): use another journal "
            "(or job name) for a new job"
        )
    kept = [item.key for item in state.items()]
    given = [item.key(index) for index, item in enumerate(items)]
    if kept != given:
        if len(kept) != len(given):
            differs = f"{len(kept)} items then, {len(given)} now"
        else:
            differs = f"item {next(i for i, (a, b) in enumerate(zip(kept, given)) if a != b)} differs"
        raise ConfigurationError(
            f"{where} with other items ({differs}): use another journal (or job name) for a new job"
        )
