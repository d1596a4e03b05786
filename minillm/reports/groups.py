"""Bookings grouped for a report: per model, day, or ``meta`` value (or a
tuple of them), with the known money and how many bookings of each
resolution make it up.

Pure functions over :class:`~minillm.accounting.ledgers.base.Entry` lists:
no I/O. Known money is the exact (``RESOLVED``) figures plus the lower
bounds of ``PARTIAL`` bookings; a group with any booking that is not
``RESOLVED`` has a lower bound, never a total that looks exact, and a group
with no known money at all has none (``usd`` is None), never a fake ``0``.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import attrs

from ..accounting.ledgers.base import Entry, check_meta_key, model_label
from ..models import Resolution
from ..money import EXACT, exact_sum, money_text

__all__ = ["Group", "exact_sum", "group_entries", "key_text", "money_text", "summarize"]

#: The group keys that are not ``meta`` keys.
MODEL, DAY = "model", "day"


@attrs.frozen
class Group:
    """The bookings that share one key (a value per grouping key)."""

    key: Tuple[Any, ...]
    #: The known money (exact and lower bounds); None when no booking has any.
    usd: Optional[Decimal]
    #: Bookings per resolution.
    counts: Dict[Resolution, int]

    @property
    def bookings(self) -> int:
        return sum(self.counts.values())

    @property
    def lower_bound(self) -> bool:
        """Whether ``usd`` is a lower bound: some booking's money is not
        known exactly."""
        return self.bookings > self.counts[Resolution.RESOLVED]

    def count(self, resolution: Resolution) -> int:
        return self.counts[resolution]


def key_text(value: Any) -> str:
    """A key value as text: a string as it is, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def key_of(by: str) -> Callable[[Entry], Any]:
    """How to read one grouping key from a booking.

    :raises InvalidArgumentError: ``by`` is neither ``model``, ``day`` nor
        a plain ``meta`` key.
    """
    if by == MODEL:
        return lambda entry: model_label(entry.cost)
    if by == DAY:
        return lambda entry: entry.booked_at.date().isoformat()
    check_meta_key(by)
    return lambda entry: entry.meta.get(by)


def summarize(entries: Iterable[Entry], key: Tuple[Any, ...] = ()) -> Group:
    """All of ``entries`` as one group."""
    counts = dict.fromkeys(Resolution, 0)
    usd: Optional[Decimal] = None
    for entry in entries:
        counts[entry.cost.resolution] += 1
        if entry.cost.usd is not None:
            usd = entry.cost.usd if usd is None else EXACT.add(usd, entry.cost.usd)
    return Group(key=key, usd=usd, counts=counts)


def group_entries(entries: Iterable[Entry], by: Sequence[str]) -> List[Group]:
    """``entries`` grouped by the tuple of ``by`` keys, the most known money
    first (then by key).

    :raises InvalidArgumentError: a key is not one to group by (see :func:`key_of`).
    """
    readers = [key_of(name) for name in by]
    members: Dict[str, Tuple[Tuple[Any, ...], List[Entry]]] = {}
    for entry in entries:
        key = tuple(read(entry) for read in readers)
        # JSON is the identity, so unhashable meta values (lists, objects)
        # group too, and "1" and 1 stay apart.
        identity = json.dumps(key, sort_keys=True, default=repr)
        members.setdefault(identity, (key, []))[1].append(entry)
    groups = [summarize(grouped, key) for key, grouped in members.values()]
    groups.sort(key=lambda g: (-(g.usd or 0), [key_text(part) for part in g.key]))
    return groups
