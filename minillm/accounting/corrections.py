"""Corrections: booking, later, what a pending booking really cost.

An attempt that ended without its final usage is booked ``UNKNOWN`` (or
``PARTIAL``, a lower bound) with its generation id when the provider's
out-of-band look-up had no record yet (see :mod:`minillm.accounting.lookups`).
Later the provider knows. :meth:`~minillm.accounting.ledgers.BaseLedger.resolve_pending` asks it again, for each
such booking a client can look up, and books the difference as a
*correction*: a ``RESOLVED`` booking whose :attr:`~minillm.CostInfo.corrects`
names the first, whose ``usd`` and tokens are the provider's figures less
what the first counted -- never a second full booking.

"Exactly once" is the ledgers' own rule, not a lock: a correction's booking
id is made from its original's (:func:`correction_id`), and a ledger books a
booking id once -- so threads and processes that resolve one ledger at the
same time book one correction per booking between them. The write that
books a correction also moves the budget totals the original counted in,
from the worst case held for it to the provider's figure (see
:func:`minillm.accounting.ledgers.scopes.moved`).
"""

from __future__ import annotations

import hashlib
import logging
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Protocol, Tuple

import attrs

from ..errors import InvalidArgumentError, MiniLLMError
from ..models import CostInfo, Resolution, Usage
from .pricing import MalformedMoneyError, native_cost

if TYPE_CHECKING:  # pragma: no cover
    from ..client import Client
    from ..routes import Route
    from .ledgers.base import Entry

__all__ = ["Books", "Resolved", "correction_id", "folded", "pending", "resolve_pending"]

log = logging.getLogger("minillm.accounting")

#: The longest booking id every ledger keeps (Django's column).
_MAX_ID = 64
_SUFFIX = ":correction"


class Books(Protocol):
    """What :meth:`~minillm.accounting.ledgers.BaseLedger.resolve_pending` needs of a ledger."""

    @property
    def records(self) -> List[Tuple[CostInfo, Dict[str, Any]]]: ...

    def entries(self, since: Any = None, until: Any = None) -> List[Entry]: ...

    def record_once(self, cost: CostInfo, meta: Dict[str, Any]) -> bool: ...


@attrs.frozen
class Resolved:
    """What one :meth:`~minillm.accounting.ledgers.BaseLedger.resolve_pending` run did.

    :ivar corrected: the corrections this run booked (one per booking it
        resolved; a booking another process corrected first is in none of
        these).
    :ivar still_pending: the pending bookings the provider has no figure for
        yet, or could not be asked about now: the next run tries again.
    :ivar skipped: the pending bookings this client cannot look up -- no
        generation id, or a provider and model none of its routes serves
        with a look-up. Never guessed.
    :ivar usd: what the corrections added to the ledger's total (negative
        when lower bounds were above the provider's figures).
    """

    corrected: Tuple[CostInfo, ...] = ()
    still_pending: Tuple[CostInfo, ...] = ()
    skipped: Tuple[CostInfo, ...] = ()
    usd: Decimal = Decimal(0)


def correction_id(booking_id: str) -> str:
    """The booking id of the correction of ``booking_id``: the same in every
    process, so that a ledger books it once. A digest when the plain form
    would pass the longest id every ledger keeps."""
    plain = booking_id + _SUFFIX
    if len(plain) <= _MAX_ID:
        return plain
    return hashlib.sha256(booking_id.encode()).hexdigest()[: _MAX_ID - len(_SUFFIX)] + _SUFFIX


def pending(
    bookings: Iterable[Tuple[CostInfo, Dict[str, Any]]],
) -> List[Tuple[CostInfo, Dict[str, Any]]]:
    """The bookings whose money is not known exactly and that no correction
    has resolved since, in their order."""
    kept = list(bookings)
    corrected = {cost.corrects for cost, _ in kept if cost.corrects is not None}
    return [
        (cost, meta)
        for cost, meta in kept
        if cost.resolution is not Resolution.RESOLVED and cost.booking_id not in corrected
    ]


_TOKENS = (
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "cache_write_tokens",
)


def folded(entries: Iterable[Entry]) -> List[Entry]:
    """``entries`` with each correction folded into the booking it corrects,
    when both are among them: one entry per attempt, on the day it was
    made, with the provider's figures and ``RESOLVED`` -- what a report or a
    reconciliation should show, rather than a pending booking beside the
    difference booked later. A correction whose booking is not among them
    stays as it is."""
    from .ledgers.base import Entry

    kept = list(entries)
    present = {entry.cost.booking_id for entry in kept}
    fixes = {entry.cost.corrects: entry.cost for entry in kept if entry.cost.corrects in present}
    result: List[Entry] = []
    for entry in kept:
        cost = entry.cost
        if cost.corrects is not None and cost.corrects in present:
            continue  # folded into its booking
        fix = fixes.get(cost.booking_id)
        if fix is not None:
            assert fix.usd is not None, "a correction carries money"
            sums = {name: getattr(cost, name) + getattr(fix, name) for name in _TOKENS}
            cost = attrs.evolve(
                cost,
                usd=(cost.usd or Decimal(0)) + fix.usd,
                resolution=Resolution.RESOLVED,
                source=fix.source,
                byok=fix.byok,
                **sums,
            )
            entry = Entry(cost, entry.meta, entry.booked_at)
        result.append(entry)
    return result


def resolve_pending(ledger: Books, client: Client, *, since: Any = None, until: Any = None) -> Resolved:
    """Book a correction for each ``UNKNOWN`` or ``PARTIAL`` booking of
    ``ledger`` (booked at or after ``since`` and before ``until``) that has a
    generation id, whose provider and model one of ``client``'s routes
    serves with a cost look-up, and whose cost that provider now knows.

    Each booking is asked about once per run, through the client's own
    transport and key (never shown in an error or log line).

    :raises InvalidArgumentError: ``client`` is not a :class:`~minillm.Client`,
        or ``since``/``until`` is not a time.
    """
    from ..client import Client

    if not isinstance(client, Client):
        raise InvalidArgumentError(f"resolve_pending needs a minillm.Client to ask with, not {type(client).__name__}")
    routes = _lookup_routes(client)
    chosen = ledger.entries(since, until)
    corrected = {cost.corrects for cost, _ in ledger.records if cost.corrects is not None}
    booked: List[CostInfo] = []
    waiting: List[CostInfo] = []
    skipped: List[CostInfo] = []
    for entry in chosen:
        original = entry.cost
        if original.resolution not in _PENDING or original.booking_id in corrected:
            continue
        route = routes.get((original.provider, original.model)) if original.response_id else None
        if route is None or original.booking_id is None:
            skipped.append(original)
            continue
        correction = _look_up(route, original)
        if correction is None:
            waiting.append(original)
        elif ledger.record_once(correction, entry.meta):
            booked.append(correction)
    added = sum((cost.usd for cost in booked if cost.usd is not None), Decimal(0))
    return Resolved(tuple(booked), tuple(waiting), tuple(skipped), added)


_PENDING = (Resolution.UNKNOWN, Resolution.PARTIAL)


def _lookup_routes(client: Client) -> Dict[Tuple[str, str], Route]:
    """The client's usable routes that can look a cost up, by the provider
    and model a booking names (the first of equals wins, as a call's would)."""
    found: Dict[Tuple[str, str], Route] = {}
    for route in client._routes:
        if route.has_lookup and route.unusable is None:
            found.setdefault((route.provider, route.name), route)
    return found


def _look_up(route: Route, original: CostInfo) -> Optional[CostInfo]:
    """The correction of ``original`` from the provider's record of it, or
    None when there is no figure (yet)."""
    generation_id = original.response_id
    assert generation_id is not None and original.booking_id is not None
    try:
        usage = route.lookup(generation_id)
    except MiniLLMError as exc:  # already free of the key: the transport scrubs it
        log.warning(
            "could not ask %s for the cost of generation %s (%s): %s", route.provider, generation_id, route.name, exc
        )
        return None
    if usage is None:
        return None
    try:
        real = native_cost(usage)
    except MalformedMoneyError as exc:
        log.error("%s sent a malformed cost for generation %s: %s; left pending", route.provider, generation_id, exc)
        return None
    if real is None:
        return None
    correction = _difference(original, usage, real)
    if correction.usd is not None and correction.usd < 0:
        log.warning(
            "generation %s (%s/%s) cost $%s, below the lower bound of $%s it was booked at: corrected by $%s",
            generation_id,
            original.provider,
            original.model,
            real,
            original.usd,
            correction.usd,
        )
    return correction


def _difference(original: CostInfo, usage: Usage, real: Decimal) -> CostInfo:
    """The correction that takes ``original`` to the provider's record: its
    money and token counts less what ``original`` counted."""
    assert original.booking_id is not None
    return CostInfo(
        usd=real - (original.usd or Decimal(0)),
        resolution=Resolution.RESOLVED,
        prompt_tokens=usage.prompt_tokens - original.prompt_tokens,
        completion_tokens=usage.completion_tokens - original.completion_tokens,
        total_tokens=usage.total_tokens - original.total_tokens,
        cached_tokens=usage.cached_tokens - original.cached_tokens,
        reasoning_tokens=usage.reasoning_tokens - original.reasoning_tokens,
        cache_write_tokens=usage.cache_write_tokens - original.cache_write_tokens,
        model=original.model,
        provider=original.provider,
        response_id=original.response_id,
        byok=usage.is_byok,
        service_tier=original.service_tier,
        cancelled=original.cancelled,
        failed=original.failed,
        attempt=original.attempt,
        source="lookup",
        booking_id=correction_id(original.booking_id),
        corrects=original.booking_id,
    )
