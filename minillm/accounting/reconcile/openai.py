"""OpenAI's side: the organization Costs API, ``GET /organization/costs``
below the API root, with an organization admin key (``OPENAI_ADMIN_KEY``).

The report is asked for in daily buckets (``bucket_width=1d``) grouped by
line item (``group_by[]=line_item``), 180 buckets a page, following
``next_page`` while ``has_more``. Each result is ``{"amount": {"value",
"currency"}, "line_item", ...}`` in dollars; a value may come as a number
or as a long decimal string (``"0.000004500000000000000000000000000000000"``,
``"0E-6176"``), and both are read exactly.

A line item names a model and what was charged for it: ``"gpt-4o-mini-2024-07-18,
input"``, ``"gpt-4o, images"``, ``"gpt-audio-mini-2025-12-15 audio, input"``,
sometimes after a surface (``"evals | gpt-4o-mini-2024-07-18, input"``).
The model is what comes before the last ``", "`` (after the last ``" | "``),
less a modality word; a line item without a comma (``"web search tool
calls"``) belongs to no model.
"""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any, Dict, Optional, Tuple

from ...routes import Route
from ..pricing import to_decimal
from .matching import Charge
from .source import Report, malformed
from .values import money

__all__ = ["OpenAICosts", "line_item_model"]

_MODALITIES = (" audio", " image", " text")


def line_item_model(line_item: str) -> Optional[str]:
    """The model a line item charges for, or None when it names none."""
    item = line_item.rsplit(" | ", 1)[-1].strip()
    model, comma, _ = item.rpartition(", ")
    if not comma or not model.strip():
        return None
    for modality in _MODALITIES:
        if model.endswith(modality):
            model = model[: -len(modality)]
    return model.strip() or None


class OpenAICosts(Report):
    provider = "openai"
    key_env = "OPENAI_ADMIN_KEY"
    path = "/organization/costs"

    window = ("start_time", "end_time")
    group_by = "line_item"
    page_buckets = 180  # the most the API gives

    def moment(self, instant: datetime.datetime) -> Any:
        return int(instant.timestamp())

    def bucket_day(self, route: Route, bucket: Dict[str, Any]) -> datetime.date:
        start = bucket.get("start_time")
        if isinstance(start, bool) or not isinstance(start, (int, Decimal)):
            raise malformed(route, "a bucket of costs without a start_time")
        return datetime.datetime.fromtimestamp(int(start), tz=datetime.timezone.utc).date()

    def charge(self, day: datetime.date, result: Dict[str, Any]) -> Charge:
        item = result.get("line_item")
        label = item if isinstance(item, str) and item else "(no line item)"
        model = line_item_model(item) if isinstance(item, str) else None
        usd, detail = _dollars(result.get("amount"))
        return Charge(day, model, usd, label, detail)


def _dollars(amount: Any) -> Tuple[Optional[Decimal], str]:
    if not isinstance(amount, dict):
        return None, "the provider gave no amount"
    value = to_decimal(amount.get("value"))
    if value is None:
        return None, "the provider gave no amount"
    currency = amount.get("currency")
    if isinstance(currency, str) and currency.lower() != "usd":
        return None, f"charged in {currency}, not USD: {money(value)}"
    return money(value), ""
