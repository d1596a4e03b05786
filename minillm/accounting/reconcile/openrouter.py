"""OpenRouter's side: each booking's generation, looked up by its id
(``CostInfo.response_id``) with ``GET /generation?id=`` and the ordinary
key (``OPENROUTER_API_KEY``) -- OpenRouter has no organization report.

A generation is looked up once, however many bookings name it (a
correction books a second time under the same id): its money stands beside
theirs together. Its money is what the ledger would book from the same
record -- ``total_cost``, plus the upstream cost for a BYOK call -- under the
day and model of its bookings. A booking without an id, or whose
generation OpenRouter has no record of (404: not yet, or not this key's),
cannot be compared and is unmatched, saying so.
"""

from __future__ import annotations

import datetime
from typing import Dict, List, Sequence

from ...errors import NotFoundError
from ...routes import Route
from ..ledgers.base import Entry
from ..pricing import MalformedMoneyError, native_cost
from .matching import Charge
from .source import Fetched, Source
from .values import money
from .wire import get_json

__all__ = ["OpenRouterGenerations"]


class OpenRouterGenerations(Source):
    provider = "openrouter"
    key_env = "OPENROUTER_API_KEY"

    def fetch(
        self, route: Route, since: datetime.datetime, until: datetime.datetime, entries: Sequence[Entry]
    ) -> Fetched:
        adapter = route.adapter
        by_id: Dict[str, List[int]] = {}
        set_aside: Dict[int, str] = {}
        days: Dict[int, datetime.date] = {}
        for index, entry in enumerate(entries):
            generation = entry.cost.response_id
            if generation:
                by_id.setdefault(generation, []).append(index)
            else:
                set_aside[index] = "no generation id to look up"
        charges: List[Charge] = []
        for generation, indices in by_id.items():
            try:
                data = get_json(route, adapter.lookup_request(generation))
            except NotFoundError:
                for index in indices:
                    set_aside[index] = f"OpenRouter has no record of generation {generation}"
                continue
            usage = adapter.parse_lookup(200, data)
            try:
                usd = native_cost(usage) if usage is not None else None
            except MalformedMoneyError as exc:
                usd, problem = None, str(exc)
            else:
                problem = "a record without a cost"
            if usd is None:
                for index in indices:
                    set_aside[index] = f"OpenRouter's generation {generation} has {problem}"
                continue
            # Its bookings stand together under the day of the first, also
            # one booked on a later day (a correction).
            first = entries[indices[0]].booked_at.date()
            days.update((index, first) for index in indices)
            charges.append(Charge(first, entries[indices[0]].cost.model, money(usd), generation))
        return Fetched(tuple(charges), set_aside, days)
