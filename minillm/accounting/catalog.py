"""Maintained list prices: the third place money can come from.

Resolution order (see :mod:`minillm.accounting.pricing`): the provider's own figure,
then the caller's :class:`~minillm.TokenPrice`, then this catalog, then
``UNPRICED``. The catalog is `genai-prices <https://github.com/pydantic/genai-prices>`_
(``pip install "minillm[prices]"``, Python 3.11+): offline data bundled
with the package, in ``Decimal``: cache reads and writes (five-minute and
one-hour), long-context tiers, service tiers (flex, priority, batch) and
per-search fees. A ``Usage`` served at ``service_tier="batch"`` (a provider batch)
is priced at the catalog's batch prices.

It is only consulted for a provider's own service (never for a compatible
server that happens to serve a model of the same name), imported the first
time it is needed -- never at ``import minillm`` -- and never fetches
anything over the network. Set ``MINILLM_PRICE_CATALOG=off`` to leave it out
even when it is installed.
"""

from __future__ import annotations

import functools
import logging
import os
from decimal import Decimal
from typing import Any, Callable, Dict, Optional

from ..models import Usage

__all__ = ["CatalogPrice", "catalog_price"]

log = logging.getLogger("minillm.accounting.pricing")

#: Prices ``usage`` from the catalog: the USD, or None when the model is not in it.
CatalogPrice = Callable[[Usage], Optional[Decimal]]


def catalog_price(provider_id: Optional[str], model: str) -> Optional[CatalogPrice]:
    """The catalog's price for ``model`` at ``provider_id`` (the catalog's
    name of the provider), or None when there is no catalog to ask."""
    if provider_id is None or os.environ.get("MINILLM_PRICE_CATALOG", "").lower() in ("off", "0", "false", "no"):
        return None
    return functools.partial(_price, provider_id, model)


@functools.lru_cache(maxsize=1)
def _calc() -> Optional[Callable[..., Any]]:
    try:
        from genai_prices import Usage as CatalogUsage
        from genai_prices import calc_price
    except ImportError:
        return None

    def calc(provider_id: str, model: str, usage: Usage) -> Any:
        # The catalog's input_tokens, like minillm's prompt_tokens, include
        # the cache reads and writes; each part is capped by what is left.
        prompt = max(usage.prompt_tokens, 0)
        reads = min(max(usage.cached_tokens, 0), prompt)
        writes = min(max(usage.cache_write_tokens, 0), prompt - reads)
        counts = {
            "input_tokens": prompt,
            "cache_read_tokens": reads,
            "cache_write_tokens": writes,
            "cache_write_1h_tokens": min(max(usage.cache_write_1h_tokens, 0), writes),
            "output_tokens": max(usage.completion_tokens, 0),
            "web_searches": max(usage.web_search_requests, 0),
        }
        counted = CatalogUsage(**{name: count for name, count in counts.items() if count or name == "input_tokens"})
        context = _price_context(usage.service_tier)
        return calc_price(counted, model, provider_id=provider_id, price_context=context)

    return calc


def _price_context(tier: Optional[str]) -> Optional[Dict[str, str]]:
    """What the catalog is told about how a request was served. A batch is
    named twice: genai-prices keys its batch prices by ``processing`` (a
    ``service_tier`` of ``"batch"`` alone matches none of them), and the
    tier is kept for the catalogs that read it."""
    if not tier:
        return None
    if tier == "batch":
        return {"service_tier": tier, "processing": "batch"}
    return {"service_tier": tier}


def _price(provider_id: str, model: str, usage: Usage) -> Optional[Decimal]:
    calc = _calc()
    if calc is None:
        return None
    try:
        result = calc(provider_id, model, usage)
    except LookupError:
        return None  # not in the catalog
    except Exception:  # the catalog must never cost a booking
        log.warning("the price catalog failed for %s/%s", provider_id, model, exc_info=True)
        return None
    total = getattr(result, "total_price", None)
    return Decimal(str(total)) if total is not None else None
