"""What a reconciliation found, as values: :class:`Row` (a day and model
both sides know), :class:`Unmatched` (what only one side knows), and
:class:`Reconciliation` (all of them, with their plain-data form).

Money is ``Decimal`` throughout and travels as a decimal string, written
without an exponent and without trailing zeros (``"0.0000045"``, never
``"4.5E-6"``), so no digit is lost or invented on the way.
"""

from __future__ import annotations

import datetime
import decimal
from decimal import Decimal
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

import attrs

from ...errors import InvalidArgumentError

__all__ = ["EXACT", "SIDES", "Reconciliation", "Row", "Unmatched", "exact_sum", "money", "money_text"]

#: The sides an unmatched line can be on.
SIDES: Tuple[str, ...] = ("ledger", "provider")

# Wide enough that summing a provider's forty-digit figures never rounds.
EXACT = decimal.Context(prec=1000)


def money(value: Decimal) -> Decimal:
    """``value`` without trailing zeros or a huge exponent (``0E-6176`` is
    ``0``), so sums stay short and exact."""
    return Decimal(0) if value.is_zero() else EXACT.normalize(value)


def exact_sum(values: Iterable[Decimal]) -> Decimal:
    """The exact sum of ``values`` (0 for none)."""
    total = Decimal(0)
    for value in values:
        total = EXACT.add(total, value)
    return money(total)


def money_text(value: Decimal) -> str:
    """``value`` as a plain decimal string: no exponent, no trailing zeros."""
    return format(money(value), "f")


def _difference(a: Decimal, b: Decimal) -> Decimal:
    return money(EXACT.subtract(a, b))


@attrs.frozen
class Row:
    """One UTC day and model that both the ledger and the provider know.

    ``ledger_usd`` is the known money of the row's ``ledger_bookings``:
    exact figures and the lower bounds of ``PARTIAL`` bookings. When
    ``ledger_unknown`` -- the bookings whose money is not known exactly --
    is not 0, it is a lower bound, and so is :attr:`drift_usd`.
    """

    day: datetime.date
    #: the model as both sides are matched by (see :func:`!model_key`)
    model: str
    ledger_usd: Decimal
    provider_usd: Decimal
    ledger_bookings: int
    ledger_unknown: int = 0

    @property
    def drift_usd(self) -> Decimal:
        """What the ledger says less what the provider says: positive when
        the ledger books more than the provider bills."""
        return _difference(self.ledger_usd, self.provider_usd)

    @property
    def exact(self) -> bool:
        """Whether the ledger knows every booking's money exactly."""
        return self.ledger_unknown == 0

    def to_dict(self) -> Dict[str, Any]:
        return {
            "day": self.day.isoformat(),
            "model": self.model,
            "ledger_usd": money_text(self.ledger_usd),
            "provider_usd": money_text(self.provider_usd),
            "drift_usd": money_text(self.drift_usd),
            "ledger_bookings": self.ledger_bookings,
            "ledger_unknown": self.ledger_unknown,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Row:
        """The row ``to_dict`` gave.

        :raises InvalidArgumentError: not a row, or its drift is not its
            ledger's money less the provider's.
        """
        row = cls(
            day=_day(data, "day"),
            model=_text(data, "model"),
            ledger_usd=_usd(data, "ledger_usd"),
            provider_usd=_usd(data, "provider_usd"),
            ledger_bookings=_count(data, "ledger_bookings"),
            ledger_unknown=_count(data, "ledger_unknown"),
        )
        _same_drift(_usd(data, "drift_usd"), row.drift_usd, f"the row of {row.day} {row.model}")
        return row


@attrs.frozen
class Unmatched:
    """What only one side knows: provider charges for which the ledger has
    no booking (``side="provider"``), or bookings for which the provider
    reports no charge (``side="ledger"``). ``usd`` is None when that money
    is not known at all; ``detail`` says what the line is."""

    side: str = attrs.field(validator=attrs.validators.in_(SIDES))
    day: datetime.date
    model: str
    usd: Optional[Decimal]
    detail: str

    def to_dict(self) -> Dict[str, Any]:
        return {
            "side": self.side,
            "day": self.day.isoformat(),
            "model": self.model,
            "usd": None if self.usd is None else money_text(self.usd),
            "detail": self.detail,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Unmatched:
        side = data.get("side")
        if side not in SIDES:
            raise InvalidArgumentError(f"an unmatched line's side is 'ledger' or 'provider', not {side!r}")
        usd = None if data.get("usd") is None else _usd(data, "usd")
        return cls(side, _day(data, "day"), _text(data, "model"), usd, _text(data, "detail"))


def _rows(rows: Iterable[Row]) -> Tuple[Row, ...]:
    return tuple(rows)


def _unmatched(lines: Iterable[Unmatched]) -> Tuple[Unmatched, ...]:
    return tuple(lines)


@attrs.frozen
class Reconciliation:
    """A ledger beside one provider's own account of the same days.

    :ivar provider: the provider whose bookings and charges were compared.
    :ivar since: the start of the first UTC day compared (None: not said).
    :ivar until: the end of the last UTC day compared, exclusive.
    :ivar rows: the days and models both sides know, in order of day and model.
    :ivar unmatched: what only one side knows, in order of day, model and side.
    """

    provider: str
    since: Optional[datetime.datetime]
    until: Optional[datetime.datetime]
    rows: Tuple[Row, ...] = attrs.field(converter=_rows)
    unmatched: Tuple[Unmatched, ...] = attrs.field(default=(), converter=_unmatched)

    @property
    def drift_usd(self) -> Decimal:
        """The rows' drift in all: what the ledger books less what the
        provider bills, for the days and models both know. Unmatched lines
        are not in it (an organization's bill may hold other applications'
        usage); read them in ``unmatched``."""
        return exact_sum(row.drift_usd for row in self.rows)

    @property
    def exact(self) -> bool:
        """Whether every row's ledger money is known exactly."""
        return all(row.exact for row in self.rows)

    def exceeds(self, tolerance: Decimal) -> bool:
        """Whether the drift in all, or any one row's, is more than
        ``tolerance`` either way (drifts of opposite sign do not hide each
        other)."""
        drifts = [self.drift_usd, *(row.drift_usd for row in self.rows)]
        return any(abs(drift) > tolerance for drift in drifts)

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready data, money as decimal strings (see :doc:`/reconcile`)."""
        return {
            "provider": self.provider,
            "since": None if self.since is None else self.since.isoformat(),
            "until": None if self.until is None else self.until.isoformat(),
            "drift_usd": money_text(self.drift_usd),
            "rows": [row.to_dict() for row in self.rows],
            "unmatched": [line.to_dict() for line in self.unmatched],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reconciliation:
        """The reconciliation ``to_dict`` gave.

        :raises InvalidArgumentError: ``data`` is not of that shape, or its
            drifts do not add up.
        """
        if not isinstance(data, Mapping):
            raise InvalidArgumentError(f"a reconciliation is a JSON object, not {type(data).__name__}")
        rows = [Row.from_dict(_object(row, "row")) for row in _list(data, "rows")]
        unmatched = [Unmatched.from_dict(_object(line, "unmatched line")) for line in _list(data, "unmatched")]
        result = cls(
            provider=_text(data, "provider"),
            since=_moment(data, "since"),
            until=_moment(data, "until"),
            rows=rows,
            unmatched=unmatched,
        )
        _same_drift(_usd(data, "drift_usd"), result.drift_usd, "the reconciliation")
        return result


def _same_drift(said: Decimal, computed: Decimal, what: str) -> None:
    if said != computed:
        raise InvalidArgumentError(f"{what} says its drift is {money_text(said)}, but its figures make it {computed}")


def _object(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidArgumentError(f"a reconciliation's {what} is a JSON object, not {type(value).__name__}")
    return value


def _list(data: Mapping[str, Any], key: str) -> List[Any]:
    value = data.get(key)
    if not isinstance(value, list):
        raise InvalidArgumentError(f"a reconciliation's {key!r} is a list, not {type(value).__name__}")
    return value


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise InvalidArgumentError(f"{key!r} is a string, not {type(value).__name__}")
    return value


def _usd(data: Mapping[str, Any], key: str) -> Decimal:
    value = data.get(key)
    try:
        amount = Decimal(value) if isinstance(value, str) else None
    except decimal.InvalidOperation:
        amount = None
    if amount is None or not amount.is_finite():
        raise InvalidArgumentError(f"{key!r} is money as a decimal string, not {value!r}")
    return money(amount)


def _count(data: Mapping[str, Any], key: str) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidArgumentError(f"{key!r} is a count, not {value!r}")
    return value


def _day(data: Mapping[str, Any], key: str) -> datetime.date:
    text = _text(data, key)
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise InvalidArgumentError(f"{key!r} is a date (YYYY-MM-DD), not {text!r}") from None


def _moment(data: Mapping[str, Any], key: str) -> Optional[datetime.datetime]:
    if data.get(key) is None:
        return None
    from ..ledgers.base import instant

    return instant(_text(data, key), key)
