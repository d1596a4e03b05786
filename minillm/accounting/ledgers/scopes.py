"""Running totals per budget scope, so that a budget check costs the same
with ten bookings or ten million.

A budget counts the bookings of a :class:`~minillm.accounting.ledgers.base.Scope`:
all of them, or those whose ``meta[key]`` is a value. Summing them at each
check slows as the ledger grows, so every ledger keeps, beside its
bookings, one running total per scope a booking can fall in -- updated in
the same write as the booking, and only when the booking is new (so a
booking delivered twice counts once):

- ``""``: every booking;
- ``"key\\x1f*"``: the bookings where ``meta[key]`` is present and not null;
- ``"key\\x1f<value>"``: those where it is that value, as JSON sees
  equality (``7`` and ``7.0`` are one number; ``true`` is not ``1``).

A scope whose value is None (the key absent or null) is the first minus the
second. Nothing needs to know in advance which keys budgets will use: each
booking updates the totals of all its top-level keys, a handful of rows. A
correction (:attr:`~minillm.CostInfo.corrects`) moves the totals its
original counted in, by :func:`moved`, in the write that books it.
"""

from __future__ import annotations

import functools
from decimal import Decimal
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from ...models import CostInfo, Resolution
from .base import Scope, valid_meta_key

__all__ = ["EVERYTHING", "counted", "counted_amount", "moved", "rebuild", "scope_names", "totals_for"]

#: The running total of every booking.
EVERYTHING = ""

_SEPARATOR = "\x1f"
_PARTIAL = Resolution.PARTIAL


def counted(cost: CostInfo, held: Optional[Decimal]) -> Optional[Decimal]:
    """What a booking counts against a budget: its money when exact, the
    worst case held for it when its money is unknown, the larger of the two
    for a lower bound; None when there is neither."""
    return counted_amount(cost.usd, cost.resolution is _PARTIAL, held)


def counted_amount(usd: Optional[Decimal], partial: bool, held: Optional[Decimal]) -> Optional[Decimal]:
    """:func:`counted`, from a booking's stored fields."""
    if usd is None:
        return held
    if partial and held is not None:
        return max(usd, held)
    return usd


def moved(usd: Optional[Decimal], partial: bool, held: Optional[Decimal], correction: Decimal) -> Decimal:
    """What a correction of ``correction`` USD moves the running totals by,
    for a booking of ``usd`` (a lower bound when ``partial``) that was
    counted with ``held``: from what that booking counted -- the worst case
    held for it, as the case may be -- to its money and the correction's,
    the provider's own figure. Negative when the worst case was above it."""
    return (usd or _ZERO) + correction - (counted_amount(usd, partial, held) or _ZERO)


def rebuild(
    bookings: Iterable[Tuple[Mapping[str, Any], Optional[Decimal], bool, Optional[Decimal]]],
) -> Dict[str, Decimal]:
    """The running totals of ``bookings`` -- ``(meta, usd, partial, held)``
    each -- for a ledger written before it kept them."""
    totals: Dict[str, Decimal] = {}
    for meta, usd, partial, held in bookings:
        amount = counted_amount(usd, partial, held)
        if amount is None:
            continue
        for name in scope_names(meta):
            totals[name] = totals.get(name, _ZERO) + amount
    return totals


_ZERO = Decimal(0)


def _value_name(value: Any) -> Optional[str]:
    """A scalar as one name, equal where JSON's equality says equal."""
    if isinstance(value, bool):
        return "b:true" if value else "b:false"
    if isinstance(value, (int, float)):
        return "n:" + str(Decimal(repr(value) if isinstance(value, float) else value).normalize())
    if isinstance(value, str):
        return "s:" + value
    return None  # a list or an object: in "present", never a budget's value


def scope_names(meta: Mapping[str, Any]) -> List[str]:
    """The running totals a booking with ``meta`` adds to, in one order
    (writers that lock them take them in the same order: no deadlock)."""
    names = [EVERYTHING]
    for key, value in meta.items():
        if value is None:
            continue
        if (
            type(value) in _RECURRING
            and (type(value) is not str or len(value) <= _RECURRING_LENGTH)
            and type(key) is str
            and len(key) <= _RECURRING_LENGTH
        ):
            names += _recurring_pair_names(key, value)
        else:
            names += _pair_names(key, value)
    names.sort()
    return names


#: The values whose names are remembered: scalars, of the size of an id.
_RECURRING = frozenset({str, int, bool})
_RECURRING_LENGTH = 64


def _pair_names(key: str, value: Any) -> Tuple[str, ...]:
    if not valid_meta_key(key):
        return ()
    named = _value_name(value)
    present = f"{key}{_SEPARATOR}*"
    return (present,) if named is None else (present, f"{key}{_SEPARATOR}{named}")


# A booking's keys, and many of its values (a user id, a feature name),
# recur from one booking to the next: each such pair's names are worked out
# once. Typed: 1 and True are two values here.
_recurring_pair_names = functools.lru_cache(maxsize=4096, typed=True)(_pair_names)


def totals_for(scope: Scope) -> Tuple[str, Optional[str]]:
    """``(total, minus)``: a scope's booked money is the running total named
    ``total``, less the one named ``minus`` when there is one."""
    if scope.key is None:
        return EVERYTHING, None
    if scope.value is None:
        return EVERYTHING, f"{scope.key}{_SEPARATOR}*"
    named = _value_name(scope.value)
    assert named is not None  # Scope allows scalars only
    return f"{scope.key}{_SEPARATOR}{named}", None
