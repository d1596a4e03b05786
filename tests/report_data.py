"""Bookings for the report tests: every resolution, tiny and long-digit
money, hostile model names and ``meta`` values."""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any, Dict, List, Optional

from minillm.accounting.ledgers.base import Entry
from minillm.models import CostInfo, Resolution

HOSTILE = "<script>alert('meta')</script>"
HOSTILE_MODEL = "<img src=x onerror=alert(1)>"


def booking(
    usd: Optional[str],
    resolution: Resolution = Resolution.RESOLVED,
    model: str = "gpt-4o-mini",
    provider: str = "openai",
) -> CostInfo:
    return CostInfo(
        usd=None if usd is None else Decimal(usd),
        resolution=resolution,
        model=model,
        provider=provider,
        prompt_tokens=12,
        completion_tokens=3,
        source="price" if usd is not None else None,
    )


def at(day: int, hour: int = 12) -> datetime.datetime:
    return datetime.datetime(2026, 11, day, hour, tzinfo=datetime.timezone.utc)


def entry(usd: Optional[str], meta: Dict[str, Any], when: datetime.datetime, **kwargs: Any) -> Entry:
    return Entry(booking(usd, **kwargs), meta, when)


def sample_entries() -> List[Entry]:
    """Three days, three models, every resolution."""
    return [
        entry("0.000000045", {"user": "ann", "team": "red"}, at(1)),
        entry("1.25", {"user": "bob", "team": "red"}, at(1, 18), model="gpt-4o"),
        entry("0.5", {"user": "bob"}, at(2), resolution=Resolution.PARTIAL),
        entry(None, {"user": 7}, at(2, 13), resolution=Resolution.UNKNOWN, model=HOSTILE_MODEL),
        entry(None, {"user": HOSTILE, "team": "blue"}, at(3), resolution=Resolution.UNPRICED),
        entry("0.00003420000000000000000000000000000000", {"user": "ann", "team": "blue"}, at(3, 1)),
    ]
