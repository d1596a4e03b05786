"""What the SQL ledgers share: the columns of a booking, and the way rows
become ``(CostInfo, meta)`` again."""

from __future__ import annotations

import datetime
import json
from decimal import Decimal
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ...models import CostInfo, Resolution

__all__ = ["ADDED_COLUMNS", "BOOKING_COLUMNS", "between", "booking_values", "cost_from_row"]

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
    )


def cost_from_row(row: Sequence[Any]) -> Tuple[CostInfo, Dict[str, Any]]:
    """A row of :data:`BOOKING_COLUMNS` as ``(cost, meta)``."""
    (booking_id, usd, resolution, prompt, completion, total, cached, reasoning, model, provider, response_id, byok,
     cancelled, meta, failed, attempt, source, cache_write, tier) = row  # fmt: skip
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
    )
    return cost, (meta if isinstance(meta, dict) else json.loads(meta))


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
