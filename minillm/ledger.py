"""The in-memory, thread-safe sink: :class:`Ledger`."""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any, Dict, List, Tuple

from .models import CostInfo

__all__ = ["Ledger"]


class Ledger:
    """Collects bookings in memory. Safe to share between threads.

    Pass it as ``on_cost=``; read it with :attr:`records`, :attr:`count`,
    :meth:`total` and :meth:`totals_by`.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: List[Tuple[CostInfo, Dict[str, Any]]] = []

    def record(self, cost: CostInfo, meta: Dict[str, Any]) -> None:
        """Book ``cost`` with a copy of ``meta``."""
        if not isinstance(cost, CostInfo):
            raise TypeError(f"Ledger.record expects a CostInfo, not {type(cost).__name__}")
        entry = (cost, dict(meta or {}))
        with self._lock:
            self._records.append(entry)

    @property
    def records(self) -> List[Tuple[CostInfo, Dict[str, Any]]]:
        """A copy of every booking, in the order booked."""
        with self._lock:
            return [(cost, dict(meta)) for cost, meta in self._records]

    @property
    def count(self) -> int:
        """How many bookings were made."""
        with self._lock:
            return len(self._records)

    def __len__(self) -> int:
        return self.count

    def total(self) -> Decimal:
        """The sum of the known money (``usd`` that is not None)."""
        with self._lock:
            return sum((c.usd for c, _ in self._records if c.usd is not None), Decimal(0))

    def totals_by(self, key: str) -> Dict[Any, Decimal]:
        """Known money summed per value of ``meta[key]`` (None when absent).

        Only bookings with known money count: a group whose every booking is
        ``UNKNOWN`` or ``UNPRICED`` is absent rather than shown as a fake
        ``0`` (see :meth:`unresolved`). A value that cannot be a dict key is
        grouped by its ``repr``.
        """
        totals: Dict[Any, Decimal] = {}
        with self._lock:
            for cost, meta in self._records:
                if cost.usd is None:
                    continue
                group = meta.get(key)
                try:
                    hash(group)
                except TypeError:
                    group = repr(group)
                totals[group] = totals.get(group, Decimal(0)) + cost.usd
        return totals

    def unresolved(self) -> List[Tuple[CostInfo, Dict[str, Any]]]:
        """The bookings whose money is not known (``UNKNOWN``, ``UNPRICED``)."""
        return [(cost, meta) for cost, meta in self.records if cost.usd is None]

    def __repr__(self) -> str:
        return f"Ledger(count={self.count}, total={self.total()})"
