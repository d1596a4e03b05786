"""Anthropic's side: the Admin API's cost report, ``GET
/v1/organizations/cost_report``, with an admin key (``ANTHROPIC_ADMIN_KEY``,
``sk-ant-admin...``) in ``x-api-key``.

The report is asked for in daily buckets grouped by description
(``group_by[]=description``), which is what fills each result's ``model``
(the dated id, ``claude-sonnet-4-20250514``) and ``token_type``; 31
buckets a page (the most it gives), following ``next_page`` while
``has_more``. ``amount`` is a decimal string in the lowest unit of
``currency`` -- cents of USD: ``"123.78912"`` is $1.2378912 -- and is divided
by 100 exactly. A result without a model (web search, code execution) is a
charge that belongs to no model. Priority Tier usage is not in this report
(Anthropic documents so): it shows as drift.
"""

from __future__ import annotations

import datetime
from typing import Any, Dict

from ...routes import Route
from ..ledgers.base import instant
from ..pricing import to_decimal
from .matching import Charge
from .source import Report, malformed
from .values import EXACT, money

__all__ = ["AnthropicCostReport"]


class AnthropicCostReport(Report):
    provider = "anthropic"
    key_env = "ANTHROPIC_ADMIN_KEY"
    path = "/v1/organizations/cost_report"

    window = ("starting_at", "ending_at")
    group_by = "description"
    page_buckets = 31  # the most the API gives

    def moment(self, instant: datetime.datetime) -> Any:
        return instant.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    def bucket_day(self, route: Route, bucket: Dict[str, Any]) -> datetime.date:
        start = bucket.get("starting_at")
        try:
            moment = instant(start, "starting_at") if isinstance(start, str) else None
        except ValueError:
            moment = None
        if moment is None:
            raise malformed(route, f"a bucket of the cost report that starts at {start!r}, which is no time")
        return moment.date()

    def charge(self, day: datetime.date, result: Dict[str, Any]) -> Charge:
        model = result.get("model") if isinstance(result.get("model"), str) and result.get("model") else None
        label = next(
            (text for text in (result.get("description"), result.get("cost_type")) if isinstance(text, str) and text),
            model or "(no description)",
        )
        cents = to_decimal(result.get("amount"))
        currency = result.get("currency")
        if cents is None:
            return Charge(day, None, None, label, "the provider gave no amount")
        if not isinstance(currency, str) or currency.upper() != "USD":
            return Charge(day, None, None, label, f"charged in {currency}, not USD: {money(cents)} of its lowest unit")
        return Charge(day, model, money(cents.scaleb(-2, EXACT)), label)
