"""A reconciliation read back from the JSON file that ``minillm costs
reconcile --json FILE`` writes, for the report to show.

The file is checked as it is read: a file that is not such a document is
one clear :class:`~minillm.errors.InvalidArgumentError` naming the file and
what is wrong, never a traceback. Money is decimal text in the file and
``Decimal`` here; a float is refused, since it may already have lost digits.
"""

from __future__ import annotations

import datetime
import json
from decimal import Decimal, InvalidOperation
from typing import Any, List, Mapping, NoReturn, Optional, Tuple

import attrs

from ..errors import InvalidArgumentError

__all__ = ["DriftRow", "Reconciliation", "Unmatched", "read_reconciliation"]

SIDES = ("ledger", "provider")


@attrs.frozen
class DriftRow:
    """One day and model: what the ledger booked beside what the provider
    reports, and the difference."""

    day: str
    model: str
    ledger_usd: Optional[Decimal]
    provider_usd: Optional[Decimal]
    drift_usd: Optional[Decimal]
    ledger_bookings: int
    ledger_unknown: int


@attrs.frozen
class Unmatched:
    """Money on one side only (``side`` is ``"ledger"`` or ``"provider"``)."""

    side: str
    day: str
    model: str
    usd: Optional[Decimal]
    detail: str


@attrs.frozen
class Reconciliation:
    """A whole reconciliation file."""

    provider: str
    since: Optional[str]
    until: Optional[str]
    drift_usd: Optional[Decimal]
    rows: Tuple[DriftRow, ...]
    unmatched: Tuple[Unmatched, ...]


class _Reader:
    """Reads fields of one JSON object, naming the file and the place on
    every complaint."""

    def __init__(self, path: str, where: str, value: Any) -> None:
        self.path, self.where = path, where
        if not isinstance(value, dict):
            self.fail(f"{where} must be a JSON object, not {_kind(value)}")
        self.value: Mapping[str, Any] = value

    def fail(self, problem: str) -> NoReturn:
        raise InvalidArgumentError(f"{self.path} is not a reconciliation file: {problem}")

    def field(self, name: str) -> Any:
        if name not in self.value:
            self.fail(f"{self.where} has no {name!r}")
        return self.value[name]

    def text(self, name: str, optional: bool = False) -> Any:
        value = self.field(name)
        if not (isinstance(value, str) or (optional and value is None)):
            self.fail(f"{self.where}'s {name!r} must be a string{' or null' if optional else ''}, not {_kind(value)}")
        return value

    def day(self, name: str) -> str:
        value: str = self.text(name)
        try:
            datetime.date.fromisoformat(value)
        except ValueError:
            self.fail(f"{self.where}'s {name!r} must be a day (YYYY-MM-DD), not {value!r}")
        return value

    def count(self, name: str) -> int:
        value = self.field(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            self.fail(f"{self.where}'s {name!r} must be a count (a whole number, 0 or more), not {value!r}")
        return int(value)

    def money(self, name: str) -> Optional[Decimal]:
        value = self.field(name)
        if value is None:
            return None
        usd = _decimal(value)
        if usd is None:
            self.fail(f'{self.where}\'s {name!r} must be decimal text such as "0.03" (or null), not {value!r}')
        return usd

    def items(self, name: str) -> List[Any]:
        value = self.field(name)
        if not isinstance(value, list):
            self.fail(f"{self.where}'s {name!r} must be a list, not {_kind(value)}")
        return list(value)


def _decimal(value: Any) -> Optional[Decimal]:
    """``value`` as finite money, or None when it is not decimal text."""
    if not isinstance(value, str):
        return None
    try:
        usd = Decimal(value)
    except InvalidOperation:
        return None
    return usd if usd.is_finite() else None


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def read_reconciliation(path: str) -> Reconciliation:
    """The reconciliation in the file at ``path``.

    :raises InvalidArgumentError: it cannot be read, is not JSON, or is not
        a reconciliation (a field missing or of the wrong kind).
    """
    try:
        with open(path, encoding="utf-8") as file:
            document = json.load(file)
    except OSError as exc:
        raise InvalidArgumentError(f"cannot read the reconciliation file {path}: {exc.strerror or exc}") from None
    except ValueError as exc:  # not UTF-8, or not JSON
        raise InvalidArgumentError(f"{path} is not a reconciliation file: not JSON ({exc})") from None
    top = _Reader(path, "the file", document)
    rows = []
    for number, value in enumerate(top.items("rows"), 1):
        row = _Reader(path, f"row {number}", value)
        rows.append(
            DriftRow(
                day=row.day("day"),
                model=row.text("model"),
                ledger_usd=row.money("ledger_usd"),
                provider_usd=row.money("provider_usd"),
                drift_usd=row.money("drift_usd"),
                ledger_bookings=row.count("ledger_bookings"),
                ledger_unknown=row.count("ledger_unknown"),
            )
        )
    unmatched = []
    for number, value in enumerate(top.items("unmatched"), 1):
        item = _Reader(path, f"unmatched item {number}", value)
        side = item.text("side")
        if side not in SIDES:
            item.fail(f"unmatched item {number}'s 'side' must be 'ledger' or 'provider', not {side!r}")
        unmatched.append(
            Unmatched(
                side=side,
                day=item.day("day"),
                model=item.text("model"),
                usd=item.money("usd"),
                detail=item.text("detail"),
            )
        )
    return Reconciliation(
        provider=top.text("provider"),
        since=top.text("since", optional=True),
        until=top.text("until", optional=True),
        drift_usd=top.money("drift_usd"),
        rows=tuple(rows),
        unmatched=tuple(unmatched),
    )
