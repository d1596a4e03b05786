"""What every ledger offers: booking, the queries, and the holds that
budgets place.

A ledger is a sink (``record(cost, meta)``) that can also answer what was
spent -- in total, per ``meta`` key, per model, per day -- in exact
``Decimal``. Durable ledgers record each booking once by its
:attr:`~minillm.CostInfo.booking_id`, so a write that is retried never
books twice.

Holds
-----
A :class:`~minillm.Budget` reserves an attempt's worst case before it is
sent: :meth:`BaseLedger.hold` checks, atomically, that what is booked plus
what is held plus the worst case stays within the limit, and places the
hold. Booking the attempt's cost (``record`` with the same booking id)
replaces the hold in the same step; :meth:`BaseLedger.release_hold` lets a
hold go when the attempt books nothing. Holds expire, so a process that
dies holding money does not block a budget for ever. A booking whose money
is unknown counts against budgets at the worst case that was held for it,
and a ``PARTIAL`` one at the larger of its lower bound and that worst case
-- until a correction books what the provider billed for it
(:meth:`BaseLedger.resolve_pending`): from then on it counts at that.
"""

from __future__ import annotations

import abc
import datetime
import json
import os
import re
import uuid
import weakref
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple

import attrs

from ...errors import BudgetExceeded, InvalidArgumentError, LedgerError
from ...meta import check_meta
from ...models import CostInfo

if TYPE_CHECKING:  # pragma: no cover
    from ...client import Client
    from ..corrections import Resolved

__all__ = ["BaseLedger", "Entry", "Scope", "instant", "meta_json", "model_label"]

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")


@attrs.frozen
class Scope:
    """The bookings a budget counts: all of them (``key`` None), or those
    whose ``meta[key]`` is ``value``."""

    key: Optional[str] = None
    value: Any = None

    def __attrs_post_init__(self) -> None:
        if self.key is not None:
            check_meta_key(self.key)
            if not isinstance(self.value, (str, int, float, bool, type(None))):
                raise InvalidArgumentError(
                    f"a budget's meta value must be a string, number, bool or None, not {type(self.value).__name__}"
                )
            if type(self.value) is int and not -(2**63) <= self.value < 2**63:
                raise InvalidArgumentError(
                    f"a budget's meta value must be a whole number within 64 bits, not {self.value}"
                )

    def matches(self, meta: Mapping[str, Any]) -> bool:
        return self.key is None or _same(meta.get(self.key), self.value)

    def describe(self) -> str:
        return "the ledger" if self.key is None else f"{self.key}={self.value!r}"


def _same(a: Any, b: Any) -> bool:
    # JSON's view of equality: 7 and 7.0 are one number, True is not 1.
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return bool(a == b)


def valid_meta_key(key: Any) -> bool:
    """Whether ``key`` is a plain name a query or a budget may use."""
    return isinstance(key, str) and bool(_KEY.match(key))


def check_meta_key(key: str) -> str:
    """A ``meta`` key that may appear in a query: letters, digits, ``_.-``.

    :raises InvalidArgumentError: anything else.
    """
    if not valid_meta_key(key):
        raise InvalidArgumentError(
            f"a meta key to group or budget by is a plain name (letters, digits, _.-), not {key!r}"
        )
    return key


def meta_json(meta: Optional[Mapping[str, Any]]) -> str:
    """``meta`` as JSON text.

    :raises InvalidArgumentError: ``meta`` is not a JSON object (see
        :mod:`minillm.meta`): every ledger refuses the same ``meta``.
    """
    return json.dumps(check_meta(meta), sort_keys=True, separators=(",", ":"), allow_nan=False)


@attrs.frozen
class Entry:
    """One booking as a ledger keeps it: what it cost, its ``meta``, and
    when it was booked (an aware UTC datetime)."""

    cost: CostInfo
    meta: Dict[str, Any]
    booked_at: datetime.datetime


def instant(value: Any, name: str = "since") -> Optional[datetime.datetime]:
    """``value`` as an aware UTC datetime: a date is its midnight (UTC), a
    naive datetime is taken as UTC, an ISO 8601 string is either. None
    stays None.

    :raises InvalidArgumentError: it is none of those.
    """
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            value = datetime.date.fromisoformat(text) if len(text) == 10 else _parse_datetime(text)
        except ValueError:
            raise InvalidArgumentError(
                f"{name} must be a date (YYYY-MM-DD) or an ISO 8601 time, not {value!r}"
            ) from None
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            return value.replace(tzinfo=datetime.timezone.utc)
        return value.astimezone(datetime.timezone.utc)
    if isinstance(value, datetime.date):
        return datetime.datetime(value.year, value.month, value.day, tzinfo=datetime.timezone.utc)
    raise InvalidArgumentError(f"{name} must be a date, a datetime or an ISO 8601 string, not {type(value).__name__}")


def _parse_datetime(text: str) -> datetime.datetime:
    # Python 3.9's fromisoformat knows no "Z".
    return datetime.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)


def model_label(cost: CostInfo) -> str:
    """``provider/model``, as :meth:`BaseLedger.totals_by_model` groups it."""
    return f"{cost.provider}/{cost.model}" if cost.provider else cost.model


class BaseLedger(abc.ABC):
    """A sink that remembers: every ledger's interface. Thread-safe."""

    def record(self, cost: CostInfo, meta: Dict[str, Any]) -> None:
        """Book ``cost`` with ``meta`` (once per booking id), replacing the
        hold a budget placed for it."""
        self.record_once(cost, meta)

    @abc.abstractmethod
    def record_once(self, cost: CostInfo, meta: Dict[str, Any]) -> bool:
        """:meth:`record`, saying whether this call booked ``cost`` (False:
        its booking id was booked already).

        A correction (``cost.corrects`` set) moves the budget totals its
        original counted in, from what the original counted to the
        provider's figure, in the same write.

        :raises LedgerError: ``cost`` corrects a booking this ledger does
            not have.
        """

    @property
    @abc.abstractmethod
    def records(self) -> List[Tuple[CostInfo, Dict[str, Any]]]:
        """Every booking as ``(cost, meta)``, in the order booked."""

    @property
    @abc.abstractmethod
    def count(self) -> int:
        """How many bookings there are."""

    @abc.abstractmethod
    def total(self) -> Decimal:
        """The sum of the known money: exact (``RESOLVED``) figures and the
        lower bounds of ``PARTIAL`` bookings, so the total itself is a lower
        bound of the bill whenever any booking is not ``RESOLVED`` (see
        :meth:`unresolved`)."""

    @abc.abstractmethod
    def totals_by(self, key: str) -> Dict[Any, Decimal]:
        """Known money per value of ``meta[key]`` (None where absent);
        groups with no known money are left out, never shown as ``0``."""

    @abc.abstractmethod
    def totals_by_model(self) -> Dict[str, Decimal]:
        """Known money per ``"provider/model"``."""

    @abc.abstractmethod
    def totals_by_day(self) -> Dict[datetime.date, Decimal]:
        """Known money per day of booking (UTC)."""

    @abc.abstractmethod
    def entries(self, since: Any = None, until: Any = None) -> List[Entry]:
        """The bookings made at or after ``since`` and before ``until``
        (dates, datetimes or ISO 8601 strings, see :func:`!instant`; None
        leaves that end open), each with the time it was booked, in the
        order booked."""

    def unresolved(self) -> List[Tuple[CostInfo, Dict[str, Any]]]:
        """The bookings whose money is not known exactly (``PARTIAL``,
        ``UNPRICED``, ``UNKNOWN``) and that no correction has resolved
        since (see :meth:`resolve_pending`)."""
        from ..corrections import pending

        return pending(self.records)

    def resolve_pending(self, client: Client, *, since: Any = None, until: Any = None) -> Resolved:
        """Ask the provider again what each ``UNKNOWN`` or ``PARTIAL``
        booking with a generation id cost, and book the difference once: a
        correction (``RESOLVED``, ``source="lookup"``, its ``corrects`` the
        first booking's id), never a second full booking. Run it again, from
        as many processes as you like: a booking is corrected once.

        Only bookings whose provider and model one of ``client``'s routes
        serves with a cost look-up (OpenRouter's ``/generation``) are asked
        about; the rest are skipped and reported, never guessed.

        :param since: only bookings made at or after this time (see :func:`!instant`).
        :param until: only bookings made before this time.
        :returns: the corrections booked, the bookings still pending and those
            skipped (:class:`~minillm.accounting.corrections.Resolved`).
        """
        from ..corrections import resolve_pending

        return resolve_pending(self, client, since=since, until=until)

    # -- holds ------------------------------------------------------------------

    @abc.abstractmethod
    def hold(
        self, hold_id: str, amount: Decimal, meta: Mapping[str, Any], scope: Scope, limit: Decimal, ttl: float
    ) -> Decimal:
        """Atomically check that what ``scope`` has booked and held, plus
        ``amount``, stays within ``limit``, and hold ``amount`` for
        ``ttl`` seconds under ``hold_id``.

        :returns: what was spent (booked and held) before this hold.
        :raises BudgetExceeded: it would not stay within the limit.
        """

    def hold_many(
        self, holds: Sequence[Tuple[str, Decimal, Mapping[str, Any]]], scope: Scope, limit: Decimal, ttl: float
    ) -> Decimal:
        """Hold each of ``holds`` -- ``(hold_id, amount, meta)``, every one in
        ``scope`` -- or none of them: what ``scope`` has booked and held,
        plus their sum, must stay within ``limit`` (a provider batch holds
        every item before it is sent).

        This one holds them one at a time, letting go of those held when
        one is refused; ledgers that can check once and write them all in
        one transaction do (each hold's check would sum every hold before it).

        :returns: what was spent (booked and held) before these holds.
        :raises BudgetExceeded: their sum would not stay within the limit.
        """
        held: List[str] = []
        before: Optional[Decimal] = None
        try:
            for hold_id, amount, meta in holds:
                spent = self.hold(hold_id, amount, meta, scope, limit, ttl)
                before = spent if before is None else before
                held.append(hold_id)
        except BaseException:
            for hold_id in held:
                self.release_hold(hold_id)
            raise
        return before if before is not None else self.spent(scope)

    @abc.abstractmethod
    def release_hold(self, hold_id: str) -> None:
        """Let go of a hold (the request booked nothing). Idempotent."""

    @abc.abstractmethod
    def spent(self, scope: Scope) -> Decimal:
        """What ``scope`` has booked (at the held worst case where the money
        is unknown) and holds now."""

    def prepare(self, scope: Scope) -> None:  # noqa: B027 - most ledgers need nothing
        """Make queries over ``scope`` fast (an index on its key, say)."""

    def close(self) -> None:  # noqa: B027 - most ledgers hold nothing
        """Let go of connections. The ledger stays usable."""


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def check_within(spent: Decimal, amount: Decimal, limit: Decimal, scope: Scope, count: int = 1) -> None:
    """Refuse a hold of ``amount`` (for ``count`` requests) that would take
    ``scope`` past ``limit``.

    :raises BudgetExceeded: with the figures.
    """
    if spent + amount > limit:
        raise BudgetExceeded(
            f"the budget of ${limit} for {scope.describe()} has ${spent} spent or held: "
            f"{'a request' if count == 1 else f'{count} requests'} that may cost ${amount} would pass it",
            limit=limit,
            spent=spent,
            requested=amount,
            key=scope.key,
            value=scope.value,
        )


def no_original(cost: CostInfo) -> LedgerError:
    """The error for a correction of a booking the ledger does not have."""
    return LedgerError(
        f"a correction of booking {cost.corrects!r}, which this ledger does not have: "
        "a correction is booked in the ledger that holds what it corrects"
    )


def booking_id_of(cost: CostInfo, ledger: str) -> str:
    """The id a booking is recorded under (one is made for a cost built by
    hand without one); a ``TypeError`` for anything but a ``CostInfo``."""
    if not isinstance(cost, CostInfo):
        raise TypeError(f"{ledger}.record expects a CostInfo, not {type(cost).__name__}")
    return cost.booking_id or uuid.uuid4().hex


def group_key(value: Any) -> Any:
    """A meta value as a key of a totals dict: itself, or its ``repr``
    when it cannot be one (a list, a dict)."""
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


def close_when_dropped(owner: object, connection: Any) -> None:
    """Close ``connection`` when ``owner`` is garbage-collected without
    ``close()`` (Python 3.13 warns about a dropped SQLite connection).

    Only in the process that opened it: closing in a forked child would
    end the parent's session. Not at interpreter exit: costs are still
    being settled then, and the process's end closes it anyway.
    """
    finalizer = weakref.finalize(owner, _close_in, connection, os.getpid())
    finalizer.atexit = False


def _close_in(connection: Any, pid: int) -> None:
    if os.getpid() == pid:
        connection.close()
