"""The in-memory, thread-safe ledger: :class:`Ledger`."""

from __future__ import annotations

import copy
import datetime
import threading
import time
from decimal import Decimal
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import attrs

from ...meta import check_meta
from ...models import CostInfo, Resolution
from .base import (
    BaseLedger,
    Entry,
    Scope,
    booking_id_of,
    check_within,
    group_key,
    instant,
    model_label,
    no_original,
)
from .scopes import counted, moved, scope_names, totals_for

__all__ = ["Ledger"]


class _Entry:
    """One booking (made per record: a plain class, cheap to make)."""

    __slots__ = ("at", "cost", "held", "meta")

    def __init__(self, cost: CostInfo, meta: Dict[str, Any], at: float, held: Optional[Decimal]) -> None:
        self.cost = cost
        self.meta = meta
        #: when it was booked, in seconds since the epoch (a datetime is
        #: made when one is asked for, not on every booking)
        self.at = at
        #: the worst case a budget held for it (counts where the money is unknown)
        self.held = held

    @property
    def booked_at(self) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(self.at, datetime.timezone.utc)


@attrs.frozen
class _Hold:
    amount: Decimal
    meta: Mapping[str, Any]
    expires: float


class Ledger(BaseLedger):
    """Collects bookings in memory. Safe to share between threads; gone
    when the process ends (see :class:`~minillm.SQLiteLedger` for a ledger
    that is not).

    Pass it as ``on_cost=``; read it with :attr:`records`, :attr:`count`,
    :meth:`total`, :meth:`totals_by`, :meth:`totals_by_model` and
    :meth:`totals_by_day`.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: List[_Entry] = []
        self._ids: Dict[str, _Entry] = {}
        self._holds: Dict[str, _Hold] = {}
        #: what budgets count, per scope (see :mod:`.scopes`); None until a
        #: budget is set on this ledger (or first counts on it): a ledger no
        #: budget reads does not pay for them on every booking
        self._running: Optional[Dict[str, Decimal]] = None

    def record_once(self, cost: CostInfo, meta: Dict[str, Any]) -> bool:
        """Book ``cost`` with a copy of ``meta`` (once per booking id)."""
        booking_id = booking_id_of(cost, "Ledger")
        if cost.booking_id is None:  # kept with the id it is booked under, so it can be corrected
            cost = attrs.evolve(cost, booking_id=booking_id)
        kept = check_meta(meta)  # a copy, as every ledger keeps it
        at = time.time()
        with self._lock:
            if booking_id in self._ids:
                return False
            held: Optional[Decimal] = None
            if cost.corrects is not None:
                if cost.corrects not in self._ids:
                    raise no_original(cost)
            elif self._holds:
                hold = self._holds.pop(booking_id, None)
                if hold is not None:
                    held = hold.amount
            entry = _Entry(cost, kept, at, held)
            self._ids[booking_id] = entry
            self._entries.append(entry)
            if self._running is not None:
                self._count(entry, self._running)
        return True

    def prepare(self, scope: Scope) -> None:
        """A budget is set on this ledger: from now on it keeps the running
        totals budgets count, adding up what is booked already (once, here,
        rather than in the budget's first check)."""
        with self._lock:
            if self._running is None:
                self._start_running_totals()

    def _start_running_totals(self) -> Dict[str, Decimal]:
        """The running totals of what is booked so far (under the lock)."""
        running: Dict[str, Decimal] = {}
        for entry in self._entries:
            self._count(entry, running)
        self._running = running
        return running

    def _count(self, entry: _Entry, totals: Dict[str, Decimal]) -> None:
        """Add what ``entry`` counts to the running totals (under the lock)."""
        cost = entry.cost
        if cost.corrects is not None:
            original = self._ids[cost.corrects]
            was = original.cost
            amount: Optional[Decimal] = moved(
                was.usd, was.resolution is Resolution.PARTIAL, original.held, cost.usd or _ZERO
            )
            names = scope_names(original.meta)
        else:
            amount = counted(cost, entry.held)
            names = scope_names(entry.meta)
        if amount is not None:
            for name in names:
                totals[name] = totals.get(name, _ZERO) + amount

    # The lock guards the lists, nothing more: what is computed from them is
    # computed from a copy, outside it -- nothing that could call back into
    # this ledger (a finalizer, say) ever runs while it is held.

    def _snapshot(self) -> List[_Entry]:
        with self._lock:
            return list(self._entries)

    @property
    def records(self) -> List[Tuple[CostInfo, Dict[str, Any]]]:
        """A copy of every booking, in the order booked."""
        return [(e.cost, copy.deepcopy(e.meta)) for e in self._snapshot()]

    def entries(self, since: Any = None, until: Any = None) -> List[Entry]:
        start, end = instant(since, "since"), instant(until, "until")
        found = []
        for e in self._snapshot():
            booked_at = e.booked_at
            if (start is None or booked_at >= start) and (end is None or booked_at < end):
                found.append(Entry(e.cost, copy.deepcopy(e.meta), booked_at))
        return found

    @property
    def count(self) -> int:
        """How many bookings were made."""
        with self._lock:
            return len(self._entries)

    def __len__(self) -> int:
        return self.count

    def total(self) -> Decimal:
        """The sum of the known money (``usd`` that is not None: exact
        figures and ``PARTIAL`` lower bounds)."""
        return sum((e.cost.usd for e in self._snapshot() if e.cost.usd is not None), Decimal(0))

    def totals_by(self, key: str) -> Dict[Any, Decimal]:
        """Known money summed per value of ``meta[key]`` (None when absent).

        Only bookings with known money count: a group whose every booking is
        ``UNKNOWN`` or ``UNPRICED`` is absent rather than shown as a fake
        ``0`` (see :meth:`~minillm.accounting.ledgers.BaseLedger.unresolved`). A value that cannot be a dict key is
        grouped by its ``repr``.
        """
        return self._totals(lambda e: group_key(e.meta.get(key)))

    def totals_by_model(self) -> Dict[str, Decimal]:
        """Known money per ``"provider/model"``."""
        return self._totals(lambda e: model_label(e.cost))

    def totals_by_day(self) -> Dict[datetime.date, Decimal]:
        """Known money per day of booking (UTC)."""
        return self._totals(lambda e: e.booked_at.date())

    def _totals(self, group_of: Callable[[_Entry], Any]) -> Dict[Any, Decimal]:
        totals: Dict[Any, Decimal] = {}
        for entry in self._snapshot():
            if entry.cost.usd is None:
                continue
            group = group_of(entry)
            totals[group] = totals.get(group, Decimal(0)) + entry.cost.usd
        return totals

    # -- holds ----------------------------------------------------------------

    def hold(
        self, hold_id: str, amount: Decimal, meta: Mapping[str, Any], scope: Scope, limit: Decimal, ttl: float
    ) -> Decimal:
        kept = check_meta(meta)
        with self._lock:
            spent = self._spent(scope)
            check_within(spent, amount, limit, scope)
            self._holds[hold_id] = _Hold(amount, kept, time.time() + ttl)
            return spent

    def hold_many(
        self, holds: Sequence[Tuple[str, Decimal, Mapping[str, Any]]], scope: Scope, limit: Decimal, ttl: float
    ) -> Decimal:
        kept = [(hold_id, amount, check_meta(meta)) for hold_id, amount, meta in holds]
        with self._lock:
            spent = self._spent(scope)
            check_within(spent, _sum(amount for _, amount, _ in kept), limit, scope, len(kept))
            expires = time.time() + ttl
            for hold_id, amount, meta in kept:
                self._holds[hold_id] = _Hold(amount, meta, expires)
            return spent

    def release_hold(self, hold_id: str) -> None:
        with self._lock:
            self._holds.pop(hold_id, None)

    def spent(self, scope: Scope) -> Decimal:
        with self._lock:
            return self._spent(scope)

    def _spent(self, scope: Scope) -> Decimal:
        now = time.time()
        for hold_id in [h for h, hold in self._holds.items() if hold.expires < now]:
            del self._holds[hold_id]
        total, minus = totals_for(scope)
        running = self._running if self._running is not None else self._start_running_totals()
        booked = running.get(total, _ZERO) - (running.get(minus, _ZERO) if minus is not None else _ZERO)
        held = _sum(h.amount for h in self._holds.values() if scope.matches(h.meta))
        return booked + held

    def __repr__(self) -> str:
        return f"Ledger(count={self.count}, total={self.total()})"


_ZERO = Decimal(0)


def _sum(values: Iterable[Optional[Decimal]]) -> Decimal:
    return sum((v for v in values if v is not None), Decimal(0))
