"""What the SQL ledgers share: the columns of a booking, and the way rows
become ``(CostInfo, meta)`` again."""

from __future__ import annotations

import datetime
import json
from decimal import Decimal
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ...models import CostInfo, Resolution
from .base import no_original
from .scopes import moved, scope_names

__all__ = [
    "ADDED_COLUMNS",
    "BOOKING_COLUMNS",
    "ORIGINAL",
    "between",
    "book_correction",
    "booking_values",
    "cost_from_row",
]

#: The columns of a booking row, in order (``booked_at`` and ``held_usd``
#: are filled by the ledger).
BOOKING_COLUMNS: Tuple[str, ...] = (
    "booking_id",
    "usd",
    "resolution",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "model",
    "provider",
    "response_id",
    "byok",
    "cancelled",
    "meta",
    "failed",
    "attempt",
    "source",
    "cache_write_tokens",
    "service_tier",
    "corrects",
)

#: Columns added since the first schema, as ``(name, SQLite declaration,
#: PostgreSQL declaration)``: a ledger file or database written by an older
#: minillm gets them when it is opened.
ADDED_COLUMNS: Tuple[Tuple[str, str, str], ...] = (
    ("failed", "INTEGER NOT NULL DEFAULT 0", "BOOLEAN NOT NULL DEFAULT FALSE"),
    ("attempt", "INTEGER NOT NULL DEFAULT 1", "INTEGER NOT NULL DEFAULT 1"),
    ("source", "TEXT", "TEXT"),
    ("cache_write_tokens", "INTEGER NOT NULL DEFAULT 0", "BIGINT NOT NULL DEFAULT 0"),
    ("service_tier", "TEXT", "TEXT"),
    ("corrects", "TEXT", "TEXT"),
)


def booking_values(booking_id: str, cost: CostInfo, meta_text: str, *, money: Any = str) -> Tuple[Any, ...]:
    """The values of :data:`BOOKING_COLUMNS` for one booking; ``money``
    turns a ``Decimal`` into what the database stores."""
    return (
        booking_id,
        None if cost.usd is None else money(cost.usd),
        cost.resolution.value,
        cost.prompt_tokens,
        cost.completion_tokens,
        cost.total_tokens,
        cost.cached_tokens,
        cost.reasoning_tokens,
        cost.model,
        cost.provider,
        cost.response_id,
        bool(cost.byok),
        bool(cost.cancelled),
        meta_text,
        bool(cost.failed),
        cost.attempt,
        cost.source,
        cost.cache_write_tokens,
        cost.service_tier,
        cost.corrects,
    )


def cost_from_row(row: Sequence[Any]) -> Tuple[CostInfo, Dict[str, Any]]:
    """A row of :data:`BOOKING_COLUMNS` as ``(cost, meta)``."""
    (booking_id, usd, resolution, prompt, completion, total, cached, reasoning, model, provider, response_id, byok,
     cancelled, meta, failed, attempt, source, cache_write, tier, corrects) = row  # fmt: skip
    cost = CostInfo(
        usd=_money(usd),
        resolution=Resolution(resolution),
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=total,
        cached_tokens=cached,
        reasoning_tokens=reasoning,
        model=model,
        provider=provider,
        response_id=response_id,
        byok=bool(byok),
        cancelled=bool(cancelled),
        failed=bool(failed),
        attempt=int(attempt),
        source=source,
        cache_write_tokens=int(cache_write or 0),
        service_tier=tier,
        booking_id=booking_id,
        corrects=corrects,
    )
    return cost, (meta if isinstance(meta, dict) else json.loads(meta))


def book_correction(
    cost: CostInfo,
    original: Optional[Sequence[Any]],
    insert: Callable[[], int],
    add: Callable[[List[str], Decimal], object],
) -> bool:
    """Book the correction ``cost`` in the transaction under way: ``original``
    is its original's ``usd, resolution, held_usd, meta`` row (None when the
    ledger has none); ``insert`` writes the correction, giving the rows
    inserted; ``add`` adds an amount to running totals. The original's totals
    move from what it counted to the provider's figure -- once: a
    correction written twice (by another process, say) inserts nothing.

    :raises LedgerError: there is no original.
    """
    if original is None:
        raise no_original(cost)
    usd, resolution, held, meta = original
    inserted = insert()
    if inserted:
        amount = moved(_money(usd), resolution == Resolution.PARTIAL.value, _money(held), cost.usd or Decimal(0))
        add(scope_names(meta if isinstance(meta, dict) else json.loads(meta)), amount)
    return bool(inserted)


#: Selects what :func:`book_correction` needs of a correction's original
#: (``{mark}``: the driver's parameter mark).
ORIGINAL = "SELECT usd, resolution, held_usd, meta FROM minillm_bookings WHERE booking_id = {mark}"


def _money(value: Any) -> Optional[Decimal]:
    if value is None:
        return None
    return value if isinstance(value, Decimal) else Decimal(str(value))


def between(
    since: Optional[datetime.datetime], until: Optional[datetime.datetime], mark: str, *, text: bool
) -> Tuple[str, Tuple[Any, ...]]:
    """The ``WHERE`` clause, and its parameters, for bookings at or after
    ``since`` and before ``until`` (``text``: the column is ISO 8601 text)."""
    clauses: List[str] = []
    parameters: List[Any] = []
    for bound, operator in ((since, ">="), (until, "<")):
        if bound is not None:
            clauses.append(f"booked_at {operator} {mark}")
            parameters.append(bound.isoformat() if text else bound)
    return (f" WHERE {' AND '.join(clauses)}" if clauses else ""), tuple(parameters)
