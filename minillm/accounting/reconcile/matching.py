"""Setting a ledger's bookings beside a provider's charges: the matching
rule, and the pure fold that turns both sides into rows and unmatched lines.

The rule
--------
Both sides are grouped by UTC day and by :func:`model_key`: the model name
in lower case, without a trailing snapshot date (``-2024-07-18`` or
``-20250514``), then without ``-latest``, then without a trailing ``-0``.
So ``gpt-4o-mini`` and ``gpt-4o-mini-2024-07-18`` are one model, and so are
``claude-sonnet-4-0``, ``claude-sonnet-4-20250514`` and
``claude-sonnet-4``: a booking names the model as it was asked for, a
provider bills the snapshot that served it. A day and model on both sides
is a :class:`~minillm.accounting.reconcile.Row`; one on a single side is
:class:`~minillm.accounting.reconcile.Unmatched`, and so is a charge that
belongs to no model (a web search, a tool) or whose amount is not known.
"""

from __future__ import annotations

import datetime
import re
from decimal import Decimal
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import attrs

from ...models import Resolution
from ..ledgers.base import Entry
from .values import Reconciliation, Row, Unmatched, exact_sum

__all__ = ["Charge", "compare", "model_key"]

_DATED = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8})$")


def model_key(name: str) -> str:
    """The name both sides of a reconciliation are matched by (see the
    module docstring)."""
    key = _DATED.sub("", name.strip().lower())
    for suffix in ("-latest", "-0"):
        if key.endswith(suffix) and len(key) > len(suffix):
            key = key[: -len(suffix)]
    return key


@attrs.frozen
class Charge:
    """One line of a provider's account: what it billed on ``day``.

    ``model`` is None for a charge that belongs to no model (then ``label``
    names it); ``usd`` is None when the provider gave no amount in USD, and
    ``detail`` then says why.
    """

    day: datetime.date
    model: Optional[str]
    usd: Optional[Decimal]
    label: str = ""
    detail: str = ""


def compare(
    provider: str,
    since: Optional[datetime.datetime],
    until: Optional[datetime.datetime],
    entries: Sequence[Entry],
    charges: Sequence[Charge],
    set_aside: Optional[Mapping[int, str]] = None,
    days: Optional[Mapping[int, datetime.date]] = None,
) -> Reconciliation:
    """Rows and unmatched lines from ``entries`` (the provider's bookings)
    and ``charges``. ``set_aside`` maps the index of an entry that cannot be
    compared to why (a generation the provider has no record of): those are
    unmatched, each reason on its own line; ``days`` maps the index of an
    entry to the day it is compared under, when not the day it was booked."""
    set_aside, days = set_aside or {}, days or {}
    ledger: Dict[Tuple[datetime.date, str], List[Entry]] = {}
    aside: Dict[Tuple[datetime.date, str, str], List[Entry]] = {}
    for index, entry in enumerate(entries):
        key = (days.get(index) or entry.booked_at.date(), model_key(entry.cost.model))
        reason = set_aside.get(index)
        if reason is None:
            ledger.setdefault(key, []).append(entry)
        else:
            aside.setdefault((*key, reason), []).append(entry)
    billed: Dict[Tuple[datetime.date, str], List[Decimal]] = {}
    unmatched: List[Unmatched] = []
    for charge in charges:
        if charge.model is None or charge.usd is None:
            name = charge.label or (charge.model or "")
            detail = charge.detail or "a charge that belongs to no model"
            unmatched.append(Unmatched("provider", charge.day, name, charge.usd, detail))
            continue
        billed.setdefault((charge.day, model_key(charge.model)), []).append(charge.usd)
    rows: List[Row] = []
    for key in sorted(set(ledger) | set(billed)):
        day, model = key
        bookings = ledger.get(key, [])
        known, unknown = _known(bookings)
        if key not in billed:
            detail = _bookings(bookings, unknown, "the provider reports no charge")
            unmatched.append(Unmatched("ledger", day, model, known, detail))
        elif not bookings:
            usd = exact_sum(billed[key])
            unmatched.append(Unmatched("provider", day, model, usd, "no booking in the ledger"))
        else:
            rows.append(Row(day, model, known or Decimal(0), exact_sum(billed[key]), len(bookings), unknown))
    for (day, model, reason), bookings in aside.items():
        known, unknown = _known(bookings)
        unmatched.append(Unmatched("ledger", day, model, known, _bookings(bookings, unknown, reason)))
    unmatched.sort(key=lambda line: (line.day, line.model, line.side, line.detail))
    return Reconciliation(provider, since, until, rows, unmatched)


def _known(bookings: Sequence[Entry]) -> Tuple[Optional[Decimal], int]:
    """The known money of ``bookings`` (None when none of them has any) and
    how many are not known exactly."""
    amounts = [entry.cost.usd for entry in bookings if entry.cost.usd is not None]
    unknown = sum(1 for entry in bookings if entry.cost.resolution is not Resolution.RESOLVED)
    return (exact_sum(amounts) if amounts else None), unknown


def _bookings(bookings: Sequence[Entry], unknown: int, why: str) -> str:
    count = len(bookings)
    text = f"{count} booking{'s' if count != 1 else ''}"
    if unknown:
        text += f" ({unknown} not known exactly)"
    return f"{text}: {why}"
