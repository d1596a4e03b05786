"""Reconciliation: a ledger set beside the provider's own account of the
same days -- :func:`reconcile` and the :class:`Reconciliation` it returns.

================  =======================================  ==========================
provider          the provider's side                      key
================  =======================================  ==========================
``openai``        ``GET /organization/costs`` (daily,      ``OPENAI_ADMIN_KEY``
                  by line item)
``anthropic``     ``GET /v1/organizations/cost_report``    ``ANTHROPIC_ADMIN_KEY``
                  (daily, by description)
``openrouter``    ``GET /generation?id=`` for each         ``OPENROUTER_API_KEY``
                  booking's generation id
================  =======================================  ==========================

One module per provider's side (:mod:`.openai`, :mod:`.anthropic`,
:mod:`.openrouter`); :mod:`.matching` owns the matching rule and the pure
comparison, :mod:`.values` the results, :mod:`.wire` the requests.
"""

from __future__ import annotations

import datetime
from typing import Any, Dict, Optional, Type

from ...errors import InvalidArgumentError
from ...retry import RetryPolicy
from ...timeouts import Timeout
from ..corrections import folded
from ..ledgers.base import instant, utc_now
from .anthropic import AnthropicCostReport
from .matching import Charge, compare, model_key
from .openai import OpenAICosts
from .openrouter import OpenRouterGenerations
from .source import Source
from .values import Reconciliation, Row, Unmatched

__all__ = ["PROVIDERS", "Charge", "Reconciliation", "Row", "Unmatched", "compare", "model_key", "reconcile"]

_SOURCES: Dict[str, Type[Source]] = {
    source.provider: source for source in (OpenAICosts, AnthropicCostReport, OpenRouterGenerations)
}

#: The providers whose accounts a ledger can be reconciled with.
PROVIDERS = tuple(sorted(_SOURCES))

_DAY = datetime.timedelta(days=1)


def reconcile(
    ledger: Any,
    provider: str,
    admin_key: Optional[str] = None,
    since: Any = None,
    until: Any = None,
    *,
    base_url: Optional[str] = None,
    retry: Optional[RetryPolicy] = None,
    timeout: Optional[Timeout] = None,
) -> Reconciliation:
    """Set ``ledger``'s bookings of ``provider`` beside what the provider
    reports it billed, per UTC day and model.

    Whole UTC days are compared, as providers report them: ``since`` is
    taken back to the start of its day, ``until`` (exclusive) on to the end
    of its day unless it is a midnight.

    :param ledger: any minillm ledger (anything with ``entries(since, until)``).
    :param provider: ``"openai"``, ``"anthropic"`` or ``"openrouter"``.
    :param admin_key: the key to the provider's account; else
        ``OPENAI_ADMIN_KEY``, ``ANTHROPIC_ADMIN_KEY`` -- or, for OpenRouter,
        its ordinary ``OPENROUTER_API_KEY``.
    :param since: the first day (a date, a datetime or an ISO 8601 string);
        None: the day of the provider's earliest booking in the ledger
        (today when there is none).
    :param until: the end, exclusive; None: the end of today (UTC).
    :param base_url: the provider's API root; else its ``*_BASE_URL``
        variable, else its default.
    :param retry: the retry policy for the provider's answers (None: the default).
    :param timeout: a :class:`~minillm.Timeout` for each request.
    :raises InvalidArgumentError: an unknown provider, a ledger that cannot
        list its bookings, or ``since`` not before ``until``.
    :raises ConfigurationError: no key (the message names the variable).
    :raises APIError: the provider refused (a wrong key is an
        :class:`~minillm.AuthenticationError`) or answered what cannot be read.
    :raises APIConnectionError: the provider could not be reached.
    """
    source_class = _SOURCES.get(provider) if isinstance(provider, str) else None
    if source_class is None:
        raise InvalidArgumentError(f"cannot reconcile with {provider!r}: choose one of {', '.join(PROVIDERS)}")
    if not callable(getattr(ledger, "entries", None)):
        raise InvalidArgumentError(
            f"a ledger to reconcile lists its bookings (entries()); {type(ledger).__name__} does not"
        )
    given_since, given_until = instant(since, "since"), instant(until, "until")
    end = _midnight(given_until, up=True) if given_until is not None else _midnight(utc_now(), up=False) + _DAY
    start = _midnight(given_since, up=False) if given_since is not None else None
    if start is not None and start >= end:
        raise InvalidArgumentError(
            f"since ({start.date()}) must be before until ({end.date()}, exclusive): a whole UTC day at least"
        )
    from .wire import account_route

    route = account_route(provider, source_class.key_env, admin_key, base_url, retry, timeout)
    try:
        # A pending booking and its later correction are one attempt.
        entries = [entry for entry in folded(ledger.entries(start, end)) if entry.cost.provider == provider]
        if start is None:
            first: datetime.datetime = min((entry.booked_at for entry in entries), default=end - _DAY)
            start = min(_midnight(first, up=False), end - _DAY)
        fetched = source_class().fetch(route, start, end, entries)
    finally:
        route.close()
    return compare(provider, start, end, entries, fetched.charges, fetched.set_aside, fetched.days)


def _midnight(moment: datetime.datetime, *, up: bool) -> datetime.datetime:
    """The UTC midnight at or before ``moment`` (at or after, ``up``)."""
    floor = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return floor + _DAY if up and floor != moment else floor
