"""Budgets: a spending limit enforced before a request is sent.

A :class:`Budget` is kept by a ledger. Before each attempt (a retry or a
fallback is an attempt of its own), the call estimates the attempt's worst
case -- the prompt's estimated tokens at the input price plus
``max_tokens`` (and any thinking budget) at the output price -- and asks
the ledger to *hold* it: atomically, the hold is placed only if what is
booked, plus what others hold, plus this worst case stays within the limit;
otherwise :class:`~minillm.BudgetExceeded` is raised and nothing is sent.
When the attempt is booked, its cost replaces the hold in the same ledger
write; when it books nothing (it never reached the provider, an error
status, a rejected stream), the hold is released. A booking whose money is
not known exactly (``UNKNOWN``, ``UNPRICED``, or a ``PARTIAL`` lower bound)
keeps counting at the worst case that was held for it.

So, with every request budgeted, the money booked never passes the limit
by more than one attempt's worst case -- the slack the prompt estimate
needs -- with any number of threads and processes sharing the ledger.
"""

from __future__ import annotations

import json
import logging
import math
from decimal import Decimal
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ..errors import ConfigurationError, InvalidArgumentError
from ..models import CostInfo, Usage
from ..request import ChatRequest
from .ledgers.base import BaseLedger, Scope
from .pricing import Pricer, to_decimal
from .sinks import SinkFunction, deliver

__all__ = ["Budget", "estimate_prompt_tokens", "worst_case"]

log = logging.getLogger("minillm.accounting")

#: Characters per token assumed when estimating a prompt: fewer than the
#: usual four, so that the estimate errs high.
_CHARS_PER_TOKEN = 3
#: Tokens a chat template adds around the messages.
_TEMPLATE_TOKENS = 16


class Budget:
    """A spending limit, in USD, kept by ``ledger``.

    :param ledger: where spending is booked and held: a
        :class:`~minillm.SQLiteLedger` or :class:`~minillm.PostgresLedger`
        to share the budget between processes, a :class:`~minillm.Ledger`
        within one.
    :param limit_usd: the limit.
    :param key: a ``meta`` key: the limit applies per value of it (per
        user, say). None: to everything the ledger books.
    :param default_max_tokens: sent as ``max_tokens`` when a budgeted call
        gives none, so that its worst case is bounded.
    :param hold_seconds: how long a hold lasts if its request is never
        settled (its process died): after that it no longer counts.
    :param exact_holds: hold the prompt at the provider's own count of its
        tokens (one counting request, never billed, before a call's first
        send to each provider) instead of the estimate. Where the provider
        has no counting endpoint, or the count fails (logged as a warning),
        the estimate is held.
    """

    def __init__(
        self,
        ledger: BaseLedger,
        limit_usd: Any,
        key: Optional[str] = None,
        *,
        default_max_tokens: int = 4096,
        hold_seconds: float = 3600.0,
        exact_holds: bool = False,
    ) -> None:
        if not isinstance(ledger, BaseLedger):
            raise ConfigurationError(f"a Budget needs a minillm ledger, not {type(ledger).__name__}")
        limit = to_decimal(limit_usd)
        if limit is None or limit < 0:
            raise InvalidArgumentError(f"limit_usd must be a non-negative amount, not {limit_usd!r}")
        if isinstance(default_max_tokens, bool) or not isinstance(default_max_tokens, int) or default_max_tokens < 1:
            raise InvalidArgumentError(f"default_max_tokens must be a positive integer, not {default_max_tokens!r}")
        self.ledger = ledger
        self.limit = limit
        self.key = key
        self.default_max_tokens = default_max_tokens
        self.hold_seconds = float(hold_seconds)
        if not isinstance(exact_holds, bool):
            raise InvalidArgumentError(f"exact_holds must be True or False, not {exact_holds!r}")
        self.exact_holds = exact_holds
        ledger.prepare(Scope(key))

    def scope(self, meta: Mapping[str, Any]) -> Scope:
        """The bookings this budget counts for a request with ``meta``."""
        return Scope(self.key, meta.get(self.key)) if self.key is not None else Scope()

    def spent(self, value: Any = None) -> Decimal:
        """What is booked and held (for ``meta[key] == value`` when the budget has a key)."""
        return self.ledger.spent(self.scope({self.key: value} if self.key else {}))

    def remaining(self, value: Any = None) -> Decimal:
        """What may still be spent (never below zero)."""
        return max(self.limit - self.spent(value), Decimal(0))

    def hold(
        self, booking_id: str, amount: Decimal, meta: Mapping[str, Any], *, seconds: Optional[float] = None
    ) -> Hold:
        """Hold ``amount`` for the request ``booking_id``.

        :param seconds: how long the hold lasts unsettled, when the request
            takes longer than ``hold_seconds`` to be booked (a provider
            batch may take a day).
        :raises BudgetExceeded: the limit would be passed; nothing is held.
        """
        ttl = self.hold_seconds if seconds is None else float(seconds)
        self.ledger.hold(booking_id, amount, meta, self.scope(meta), self.limit, ttl)
        return Hold(self, booking_id)

    def hold_many(
        self, holds: Sequence[Tuple[str, Decimal, Mapping[str, Any]]], *, seconds: Optional[float] = None
    ) -> List[Hold]:
        """Hold each ``(booking_id, amount, meta)`` of ``holds``, or none of
        them -- with a check per scope, not per hold, so that holding many
        costs about as much as holding one (a provider batch holds every
        item before it is sent).

        :raises BudgetExceeded: they do not all fit; nothing is held.
        """
        ttl = self.hold_seconds if seconds is None else float(seconds)
        groups: Dict[Scope, List[Tuple[str, Decimal, Mapping[str, Any]]]] = {}
        for hold in holds:
            groups.setdefault(self.scope(hold[2]), []).append(hold)
        placed: List[str] = []
        try:
            for scope, group in groups.items():
                self.ledger.hold_many(group, scope, self.limit, ttl)
                placed.extend(booking_id for booking_id, _, _ in group)
        except BaseException:
            for booking_id in placed:
                Hold(self, booking_id).release()
            raise
        return [Hold(self, booking_id) for booking_id, _, _ in holds]

    def __repr__(self) -> str:
        per = f" per {self.key}" if self.key else ""
        return f"<Budget ${self.limit}{per} in {self.ledger!r}>"


class Hold:
    """What a budget holds for one attempt, until the attempt is booked."""

    def __init__(self, budget: Budget, booking_id: str) -> None:
        self.budget = budget
        self.booking_id = booking_id

    def settled(self, cost: CostInfo, meta: Dict[str, Any], sink: Optional[SinkFunction]) -> None:
        """The request was booked to ``sink``; the budget's ledger books it
        too when it is not that sink -- which replaces the hold."""
        ledger = self.budget.ledger
        if getattr(sink, "__self__", None) is not ledger:
            deliver(ledger.record, cost, meta)

    def release(self) -> None:
        """Let the hold go; never raises (an unreleased hold expires)."""
        try:
            self.budget.ledger.release_hold(self.booking_id)
        except Exception:
            log.warning("a budget hold could not be released; it lapses on its own", exc_info=True)


def estimate_prompt_tokens(request: ChatRequest) -> int:
    """An estimate of the prompt's tokens that errs high: its text (system
    prompt, messages, tools) at three characters a token, plus a template."""
    parts: Dict[str, Any] = {"system": request.system, "messages": request.messages, "tools": request.tools}
    text = json.dumps(parts, default=str, ensure_ascii=False)
    return math.ceil(len(text) / _CHARS_PER_TOKEN) + _TEMPLATE_TOKENS


def worst_case(
    request: ChatRequest,
    *,
    pricer: Pricer,
    model: str,
    service_tier: Optional[str] = None,
    prompt_tokens: Optional[int] = None,
) -> Decimal:
    """What one attempt of ``request`` may cost at most: the prompt (its
    estimate, unless ``prompt_tokens`` gives the provider's count) and
    every output token it may produce (``max_tokens`` plus any thinking
    budget).

    :param service_tier: the tier it will be served at, when that is known
        before it is sent (``"batch"`` for an item of a provider batch): its
        price multiplier, or the catalog's price for it, applies.
    :raises ConfigurationError: there is no price to estimate with.
    """
    if request.max_tokens is None:
        # Unbounded output has no worst case; the client always sends one
        # (Budget.default_max_tokens) when a budget is in play.
        raise ConfigurationError(f"a budgeted request to {model} needs max_tokens: its output is otherwise unbounded")
    output = request.max_tokens + (request.thinking_budget or 0)
    prompt = estimate_prompt_tokens(request) if prompt_tokens is None else prompt_tokens
    usage = Usage(
        prompt_tokens=prompt, completion_tokens=output, total_tokens=prompt + output, service_tier=service_tier
    )
    amount, _ = pricer.list_price(usage)
    if amount is None:
        raise ConfigurationError(
            f"a budget needs a price for {model} to know a request's worst case: pass price=minillm.TokenPrice(...)"
            " (or install minillm[prices] for list prices)"
        )
    return amount
