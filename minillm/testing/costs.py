"""A provider account double: :class:`CostServer` plays OpenAI's
organization Costs API, Anthropic's cost report and OpenRouter's
generation look-ups on the loopback server, so a reconciliation -- minillm's
own (:func:`minillm.reconcile`) or yours -- is tested against the real wire
with figures a test chose: some that match the ledger, some that drift.

- ``GET .../organization/costs`` (OpenAI): the charges given with
  :meth:`CostServer.openai_cost`, in daily buckets from ``start_time`` to
  ``end_time``, one result per line item when grouped by ``line_item``
  (else one per day), amounts in dollars -- as JSON numbers with exactly
  their digits, or as decimal strings, as the real API sends either.
- ``GET .../v1/organizations/cost_report`` (Anthropic): those of
  :meth:`CostServer.anthropic_cost`, with ``model`` and ``token_type``
  filled when grouped by ``description``, amounts in cents as decimal
  strings.
- ``GET .../generation?id=`` (OpenRouter): the records given with
  :meth:`CostServer.generation`; 404 for an id it does not know.

Both reports are paginated: at most ``page_size`` buckets a page (and no
more than the request's ``limit``), with ``has_more`` and an opaque
``next_page``. A request without a key, or with another key than the
server's ``key``, is answered 401 with a body that quotes the key it was
sent, as providers do -- so a test can check that the key goes no further.
A reply queued with :meth:`~minillm.testing.ScriptedServer.reply` for one of
these paths is served first (a 503, say). Every request is recorded.

Thread-safe: charges are kept under one lock.
"""

from __future__ import annotations

import base64
import datetime
from collections import defaultdict
from decimal import Decimal
from typing import Any, Dict, List, Optional, Tuple, Union

import attrs

from .billing import _json
from .server import RecordedRequest, Reply, ScriptedServer

__all__ = ["CostServer", "EmulatedCharge"]

Money = Union[str, int, Decimal]
Day = Union[str, datetime.date]

_DAY = datetime.timedelta(days=1)


def _usd(value: Money) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise TypeError(f"money is a str, int or Decimal (floats are inexact), not {type(value).__name__}")
    return Decimal(value)


def _date(value: Day) -> datetime.date:
    return datetime.date.fromisoformat(value) if isinstance(value, str) else value


@attrs.frozen
class EmulatedCharge:
    """One line of a provider's report, as the server keeps it."""

    #: ``"openai"`` or ``"anthropic"``
    provider: str
    day: datetime.date
    #: OpenAI's line item; Anthropic's description
    label: str
    usd: Decimal
    #: Anthropic's model (None for a charge of no model)
    model: Optional[str] = None
    token_type: Optional[str] = None
    cost_type: str = "tokens"
    currency: str = "usd"
    #: sent as a decimal string rather than a JSON number (OpenAI)
    as_text: bool = False


class CostServer(ScriptedServer):
    """A :class:`~minillm.testing.ScriptedServer` that also plays three
    providers' accounts (see the module docstring).

    :param key: the only key accepted (None: any key that is not empty).
    :param page_size: the most buckets a page of a report holds.
    """

    def __init__(self, *, key: Optional[str] = None, page_size: int = 31) -> None:
        super().__init__()
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, not {page_size!r}")
        self.key = key
        self.page_size = page_size
        self._charges: List[EmulatedCharge] = []
        self._generations: Dict[str, Dict[str, Any]] = {}

    def start(self) -> CostServer:
        super().start()
        return self

    def __enter__(self) -> CostServer:
        return self.start()

    # -- for tests ---------------------------------------------------------------------

    def openai_cost(
        self, day: Day, line_item: str, usd: Money, *, currency: str = "usd", as_text: bool = False
    ) -> EmulatedCharge:
        """Report that OpenAI charged ``usd`` dollars for ``line_item``
        (``"gpt-4o-mini-2024-07-18, input"``) on ``day``."""
        charge = EmulatedCharge("openai", _date(day), line_item, _usd(usd), currency=currency, as_text=as_text)
        with self._lock:
            self._charges.append(charge)
        return charge

    def anthropic_cost(
        self,
        day: Day,
        model: Optional[str],
        usd: Money,
        *,
        token_type: Optional[str] = "uncached_input_tokens",
        cost_type: str = "tokens",
        description: Optional[str] = None,
        currency: str = "USD",
    ) -> EmulatedCharge:
        """Report that Anthropic charged ``usd`` dollars (sent as cents) for
        ``model`` on ``day``; ``model`` None is a charge of no model (a web
        search: ``cost_type="web_search"``)."""
        label = description or (f"{model} Usage - {token_type}" if model else cost_type)
        charge = EmulatedCharge(
            "anthropic", _date(day), label, _usd(usd), model, token_type if model else None, cost_type, currency
        )
        with self._lock:
            self._charges.append(charge)
        return charge

    def generation(
        self, generation_id: str, model: str, usd: Money, *, byok: bool = False, upstream: Optional[Money] = None
    ) -> None:
        """Record a generation OpenRouter answers ``GET /generation?id=`` for:
        ``total_cost`` is ``usd``; a BYOK one also bills ``upstream``."""
        record = {
            "id": generation_id,
            "model": model,
            "created_at": "2026-01-01T00:00:00.000Z",
            "total_cost": _usd(usd),
            "usage": _usd(usd),
            "is_byok": byok,
            "upstream_inference_cost": None if upstream is None else _usd(upstream),
            "tokens_prompt": 10,
            "tokens_completion": 5,
            "native_tokens_prompt": 10,
            "native_tokens_completion": 5,
            "native_tokens_cached": 0,
            "native_tokens_reasoning": 0,
            "finish_reason": "stop",
            "provider_name": "Scripted",
        }
        with self._lock:
            self._generations[generation_id] = record

    def requests_to(self, path_end: str) -> List[RecordedRequest]:
        """The requests received whose path ends with ``path_end``."""
        with self._lock:
            return [request for request in self.requests if request.path.endswith(path_end)]

    # -- serving -----------------------------------------------------------------------

    def _next_reply(self, request: RecordedRequest) -> Reply:
        queued = self._queued(request)
        if queued is not None:
            return queued
        path = request.path.rstrip("/")
        if request.method == "GET" and path.endswith("/organization/costs"):
            return self._guarded(request, "Authorization", lambda: self._openai(request))
        if request.method == "GET" and path.endswith("/v1/organizations/cost_report"):
            return self._guarded(request, "x-api-key", lambda: self._anthropic(request))
        if request.method == "GET" and path.endswith("/generation"):
            return self._guarded(request, "Authorization", lambda: self._generation(request))
        return super()._next_reply(request)

    def _guarded(self, request: RecordedRequest, header: str, answer: Any) -> Reply:
        sent = request.headers.get(header.lower(), "")
        key = sent[len("Bearer ") :] if sent.startswith("Bearer ") else sent
        if not key or (self.key is not None and key != self.key):
            # Providers quote (part of) a wrong key back: it must go no further.
            message = f"Incorrect API key provided: {key or '(none)'}."
            return Reply.json({"error": {"message": message, "type": "invalid_request_error"}}, status=401)
        reply: Reply = answer()
        return reply

    def _openai(self, request: RecordedRequest) -> Reply:
        query = request.query
        try:
            start = int(_one(query, "start_time") or "")
            end = int(_one(query, "end_time") or start + 7 * 86400)
        except ValueError:
            return _bad_request("start_time (Unix seconds) is required")
        if _one(query, "bucket_width") not in (None, "1d"):
            return _bad_request("bucket_width must be 1d")
        grouped = "line_item" in _group_by(query)
        first = datetime.datetime.fromtimestamp(start, tz=datetime.timezone.utc).date()
        last = datetime.datetime.fromtimestamp(end - 1, tz=datetime.timezone.utc).date()
        days = _days(first, last)
        page, cursor = self._page(days, query)
        buckets = []
        for day in page:
            begin = int(datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.timezone.utc).timestamp())
            totals = self._totals("openai", day, lambda charge: charge.label if grouped else None)
            results = []
            for (label, currency, as_text), usd in totals.items():
                value: Any = format(usd, "f") if as_text else usd
                results.append(
                    {
                        "object": "organization.costs.result",
                        "amount": {"value": value, "currency": currency},
                        "line_item": label,
                        "project_id": None,
                        "api_key_id": None,
                        "quantity": None,
                    }
                )
            buckets.append({"object": "bucket", "start_time": begin, "end_time": begin + 86400, "results": results})
        return _exact({"object": "page", "data": buckets, "has_more": cursor is not None, "next_page": cursor})

    def _anthropic(self, request: RecordedRequest) -> Reply:
        if not request.headers.get("anthropic-version"):
            return _bad_request("anthropic-version header is required")
        query = request.query
        try:
            first = datetime.date.fromisoformat((_one(query, "starting_at") or "")[:10])
            ending = _one(query, "ending_at")
            last = datetime.date.fromisoformat(ending[:10]) - _DAY if ending else first + 6 * _DAY
        except ValueError:
            return _bad_request("starting_at (RFC 3339) is required")
        grouped = "description" in _group_by(query)
        page, cursor = self._page(_days(first, last), query)
        buckets = []
        for day in page:
            totals = self._anthropic_totals(day, grouped)
            buckets.append({"starting_at": _stamp(day), "ending_at": _stamp(day + _DAY), "results": totals})
        return _exact({"data": buckets, "has_more": cursor is not None, "next_page": cursor})

    def _anthropic_totals(self, day: datetime.date, grouped: bool) -> List[Dict[str, Any]]:
        results = []
        with self._lock:
            charges = [c for c in self._charges if c.provider == "anthropic" and c.day == day]
        sums: Dict[Tuple[Any, ...], Decimal] = defaultdict(Decimal)
        for charge in charges:
            key = (charge.label, charge.model, charge.token_type, charge.cost_type) if grouped else (None,) * 4
            sums[(*key, charge.currency)] += charge.usd
        for (label, model, token_type, cost_type, currency), usd in sums.items():
            results.append(
                {
                    "currency": currency,
                    "amount": format(usd.scaleb(2), "f"),  # cents, as a decimal string
                    "workspace_id": None,
                    "description": label,
                    "cost_type": cost_type,
                    "context_window": "0-200k" if model else None,
                    "model": model,
                    "service_tier": "standard" if model else None,
                    "token_type": token_type,
                }
            )
        return results

    def _generation(self, request: RecordedRequest) -> Reply:
        generation_id = _one(request.query, "id") or ""
        with self._lock:
            record = self._generations.get(generation_id)
        if record is None:
            return Reply.json({"error": {"message": f"Generation {generation_id} not found", "code": 404}}, status=404)
        return _exact({"data": record})

    def _totals(self, provider: str, day: datetime.date, label: Any) -> Dict[Tuple[Any, str, bool], Decimal]:
        with self._lock:
            charges = [c for c in self._charges if c.provider == provider and c.day == day]
        sums: Dict[Tuple[Any, str, bool], Decimal] = defaultdict(Decimal)
        for charge in charges:
            sums[(label(charge), charge.currency, charge.as_text)] += charge.usd
        return dict(sums)

    def _page(
        self, days: List[datetime.date], query: Dict[str, List[str]]
    ) -> Tuple[List[datetime.date], Optional[str]]:
        """The days of this page and the cursor of the next (None: the last)."""
        limit = min(int(_one(query, "limit") or 7), self.page_size)
        cursor = _one(query, "page")
        offset = int(base64.urlsafe_b64decode(cursor.encode()).decode()) if cursor else 0
        following = offset + limit
        more = base64.urlsafe_b64encode(str(following).encode()).decode() if following < len(days) else None
        return days[offset:following], more


def _one(query: Dict[str, List[str]], name: str) -> Optional[str]:
    values = query.get(name)
    return values[0] if values else None


def _group_by(query: Dict[str, List[str]]) -> List[str]:
    return [*query.get("group_by", []), *query.get("group_by[]", [])]


def _days(first: datetime.date, last: datetime.date) -> List[datetime.date]:
    return [first + n * _DAY for n in range((last - first).days + 1)]


def _stamp(day: datetime.date) -> str:
    return f"{day.isoformat()}T00:00:00Z"


def _exact(data: Any) -> Reply:
    """A JSON reply whose ``Decimal`` s are numbers with exactly their digits."""
    return Reply(status=200, headers=(("Content-Type", "application/json"),), body=(_json(data).encode("utf-8"),))


def _bad_request(message: str) -> Reply:
    return Reply.json({"error": {"message": message, "type": "invalid_request_error"}}, status=400)
