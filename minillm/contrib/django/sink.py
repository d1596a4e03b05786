"""Bookings written through Django's ORM: :class:`DjangoSink`."""

from __future__ import annotations

import datetime
import json
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from ...accounting.ledgers.base import Entry, group_key, instant, meta_json, model_label, no_original
from ...models import CostInfo

if TYPE_CHECKING:  # pragma: no cover
    from ...accounting.corrections import Resolved
    from ...client import Client

__all__ = ["DjangoSink"]


class DjangoSink:
    """Pass as ``on_cost=``: each booking becomes one
    :class:`!CostRecord`, once per booking id.

    :param using: the database alias to write to. Point it at a connection
        of its own (the same database under a second alias) when views run
        in transactions (``ATOMIC_REQUESTS``): a booking made inside a
        transaction that rolls back would otherwise be rolled back with it.
    """

    def __init__(self, using: Optional[str] = None) -> None:
        self.using = using

    def record(self, cost: CostInfo, meta: Dict[str, Any]) -> None:
        """Book ``cost`` with ``meta`` as one row (a booking already there
        is not booked again)."""
        self.record_once(cost, meta)

    def record_once(self, cost: CostInfo, meta: Dict[str, Any]) -> bool:
        """:meth:`~minillm.contrib.django.DjangoSink.record`, saying whether
        this call booked ``cost`` (False: its booking id was booked already).

        :raises LedgerError: ``cost`` corrects a booking that is not here.
        """
        from .models import CostRecord

        records = CostRecord.objects.using(self.using or "default")
        if cost.corrects is not None and not records.filter(booking_id=cost.corrects).exists():
            raise no_original(cost)
        _, created = records.get_or_create(
            booking_id=cost.booking_id or uuid.uuid4().hex,
            defaults={
                "usd": cost.usd,
                "resolution": cost.resolution.value,
                "prompt_tokens": cost.prompt_tokens,
                "completion_tokens": cost.completion_tokens,
                "total_tokens": cost.total_tokens,
                "cached_tokens": cost.cached_tokens,
                "reasoning_tokens": cost.reasoning_tokens,
                "model": cost.model,
                "provider": cost.provider,
                "response_id": cost.response_id,
                "byok": cost.byok,
                "cancelled": cost.cancelled,
                "failed": cost.failed,
                "attempt": cost.attempt,
                "source": cost.source,
                "cache_write_tokens": cost.cache_write_tokens,
                "service_tier": cost.service_tier,
                "corrects": cost.corrects,
                "meta": json.loads(meta_json(meta or {})),
            },
        )
        return bool(created)

    def resolve_pending(self, client: Client, *, since: Any = None, until: Any = None) -> Resolved:
        """Book a correction for each pending booking the provider now knows
        the cost of, once, as
        :meth:`minillm.accounting.ledgers.BaseLedger.resolve_pending` does."""
        from ...accounting.corrections import resolve_pending

        return resolve_pending(self, client, since=since, until=until)

    def unresolved(self) -> List[Tuple[CostInfo, Dict[str, Any]]]:
        """The bookings whose money is not known exactly, and that no
        correction has resolved since."""
        from ...accounting.corrections import pending

        return pending(self.records)

    # -- queries, summed exactly in Decimal --------------------------------------

    @property
    def records(self) -> List[Tuple[CostInfo, Dict[str, Any]]]:
        return [record.as_booking() for record in self._all()]

    def entries(self, since: Any = None, until: Any = None) -> List[Entry]:
        """The bookings made at or after ``since`` and before ``until``, as
        :meth:`minillm.accounting.ledgers.BaseLedger.entries` gives them."""
        query = self._all()
        start, end = instant(since, "since"), instant(until, "until")
        if start is not None:
            query = query.filter(booked_at__gte=start)
        if end is not None:
            query = query.filter(booked_at__lt=end)
        entries = []
        for record in query:
            cost, meta = record.as_booking()
            entries.append(Entry(cost, meta, record.booked_at.astimezone(datetime.timezone.utc)))
        return entries

    @property
    def count(self) -> int:
        return int(self._all().count())

    def total(self) -> Decimal:
        return sum((usd for usd in self._all().values_list("usd", flat=True) if usd is not None), Decimal(0))

    def totals_by(self, key: str) -> Dict[Any, Decimal]:
        return self._totals(lambda record: group_key((record.meta or {}).get(key)))

    def totals_by_model(self) -> Dict[str, Decimal]:
        return self._totals(lambda record: model_label(record.as_booking()[0]))

    def totals_by_day(self) -> Dict[datetime.date, Decimal]:
        return self._totals(lambda record: record.booked_at.astimezone(datetime.timezone.utc).date())

    def _totals(self, group_of: Any) -> Dict[Any, Decimal]:
        totals: Dict[Any, Decimal] = {}
        for record in self._all().exclude(usd=None):
            group = group_of(record)
            totals[group] = totals.get(group, Decimal(0)) + record.usd
        return totals

    def _all(self) -> Any:
        from .models import CostRecord

        return CostRecord.objects.using(self.using or "default").all()

    def __repr__(self) -> str:
        return f"DjangoSink(using={self.using!r})"
