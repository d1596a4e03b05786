"""Money: :class:`TokenPrice`, the conversion of wire numbers to ``Decimal``,
and :class:`Pricer`, the one place a :class:`~minillm.Usage` becomes money.

Order: the provider's native cost, else tokens x the caller's
:class:`TokenPrice`, else the maintained price catalog
(:mod:`minillm.accounting.catalog`), else no money (``UNPRICED``). Floats
never take part in arithmetic: a JSON float is converted through its
shortest ``repr``.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Dict, Iterator, Mapping, Optional, Tuple

import attrs

from ..errors import InvalidArgumentError
from ..models import Usage

__all__ = ["MAX_ATTEMPT_USD", "MalformedMoneyError", "Pricer", "Tiers", "TokenPrice", "native_cost", "to_decimal"]

_MILLION = Decimal(1_000_000)


def to_decimal(value: Any) -> Optional[Decimal]:
    """Convert a number from the wire (int, float, str, Decimal) to ``Decimal``.

    Returns None for None and for anything that is not a finite number, so a
    malformed money field reads as "unknown", never as zero.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        return Decimal(value)
    elif isinstance(value, (float, str)):
        try:
            result = Decimal(repr(value) if isinstance(value, float) else value.strip())
        except InvalidOperation:
            return None
    else:
        return None
    return result if result.is_finite() else None


def _price(value: Any) -> Decimal:
    result = to_decimal(value)
    if result is None or result < 0:
        raise InvalidArgumentError(f"a price must be a finite, non-negative number, not {value!r}")
    return result


def _optional_price(value: Any) -> Optional[Decimal]:
    return None if value is None else _price(value)


def _threshold(value: Any) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidArgumentError(f"long_context_threshold must be a whole number of prompt tokens, not {value!r}")
    return value


class Tiers(Mapping[str, Decimal]):
    """Service tier -> multiplier of the whole price; immutable and hashable,
    so a :class:`TokenPrice` stays a value."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, Any]) -> None:
        if not isinstance(items, Mapping):
            raise InvalidArgumentError(f"tiers must map a service tier to a multiplier, not {type(items).__name__}")
        checked: Dict[str, Decimal] = {}
        for tier, multiplier in items.items():
            if not isinstance(tier, str) or not tier:
                raise InvalidArgumentError(f"tiers are named by strings, not {tier!r}")
            value = to_decimal(multiplier)
            if value is None or value < 0:
                raise InvalidArgumentError(
                    f"the multiplier of tier {tier!r} must be a non-negative number, not {multiplier!r}"
                )
            checked[tier] = value
        self._items = checked

    def __getitem__(self, tier: str) -> Decimal:
        return self._items[tier]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(frozenset(self._items.items()))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(self._items) == dict(other)

    def __repr__(self) -> str:
        return repr({tier: str(value) for tier, value in self._items.items()})


def _tiers(value: Any) -> Optional[Tiers]:
    if value is None or isinstance(value, Tiers):
        return value
    return Tiers(value)


def _long_context(value: Any) -> Optional[TokenPrice]:
    if value is None:
        return None
    if not isinstance(value, TokenPrice):
        raise InvalidArgumentError(f"long_context must be a minillm.TokenPrice, not {type(value).__name__}")
    if value.long_context is not None:
        raise InvalidArgumentError("a long_context price cannot have a long_context price of its own")
    return value


@attrs.frozen
class TokenPrice:
    """A price in USD per million tokens, the way providers bill them.

    Numbers may be given as ``Decimal``, ``str``, ``int`` or ``float`` (a float
    is converted through its shortest ``repr``, so ``0.15`` is exactly
    ``Decimal("0.15")``).

    - Cached input (cache reads) is charged ``cached_input_per_mtok``, else
      the input rate.
    - Cache writes are charged ``cache_write_per_mtok`` (Anthropic's
      five-minute writes: 1.25x input), else the input rate; one-hour writes
      ``cache_write_1h_per_mtok`` (2x input), else the five-minute write rate,
      else the input rate.
    - When a request's prompt tokens exceed ``long_context_threshold``, its
      tokens -- all of them, not only those above the threshold, as
      Anthropic, Gemini and OpenAI bill -- are charged at the rates of
      ``long_context``, another ``TokenPrice`` (whose fees and tiers, when
      it sets none, are this price's).
    - ``web_search_per_k`` is USD per 1,000 server-side web searches.
    - ``tiers`` maps a served ``service_tier`` to a multiplier of the whole
      price (``{"flex": "0.5", "batch": "0.5", "priority": "1.8"}``); a tier
      it does not name is charged at 1x.
    """

    input_per_mtok: Decimal = attrs.field(converter=_price)
    output_per_mtok: Decimal = attrs.field(converter=_price)
    cached_input_per_mtok: Optional[Decimal] = attrs.field(default=None, converter=_optional_price)
    cache_write_per_mtok: Optional[Decimal] = attrs.field(default=None, converter=_optional_price)
    cache_write_1h_per_mtok: Optional[Decimal] = attrs.field(default=None, converter=_optional_price)
    long_context_threshold: Optional[int] = attrs.field(default=None, converter=_threshold)
    long_context: Optional[TokenPrice] = attrs.field(default=None, converter=_long_context)
    web_search_per_k: Optional[Decimal] = attrs.field(default=None, converter=_optional_price)
    tiers: Optional[Tiers] = attrs.field(default=None, converter=_tiers)

    def __attrs_post_init__(self) -> None:
        if (self.long_context is None) != (self.long_context_threshold is None):
            raise InvalidArgumentError("long_context and long_context_threshold are given together, or not at all")

    def cost(self, usage: Usage) -> Decimal:
        """The USD cost of ``usage`` at this price."""
        rates = self
        if self.long_context is not None and max(usage.prompt_tokens, 0) > (self.long_context_threshold or 0):
            rates = self.long_context
        total = rates._tokens(usage)
        per_k = rates.web_search_per_k if rates.web_search_per_k is not None else self.web_search_per_k
        if per_k is not None and usage.web_search_requests > 0:
            total += usage.web_search_requests * per_k * _MILLION / 1000
        tiers = rates.tiers if rates.tiers is not None else self.tiers
        if tiers is not None and usage.service_tier is not None:
            total *= tiers.get(usage.service_tier, _ONE)
        return total / _MILLION

    def _tokens(self, usage: Usage) -> Decimal:
        """The tokens of ``usage`` at these rates, in USD per million. The
        counts are parts of ``prompt_tokens``: each is capped by what is
        left of it, so a provider's odd numbers never charge a token twice."""
        # Each attempt is priced here: plain comparisons rather than
        # min/max calls, and the cache terms only when there are any.
        prompt = usage.prompt_tokens if usage.prompt_tokens > 0 else 0
        reads = usage.cached_tokens
        reads = 0 if reads <= 0 else reads if reads < prompt else prompt
        writes = usage.cache_write_tokens
        writes = 0 if writes <= 0 else min(writes, prompt - reads)
        completion = usage.completion_tokens
        total = (prompt - reads - writes) * self.input_per_mtok
        if completion > 0:
            total += completion * self.output_per_mtok
        if reads:
            total += reads * _first(self.cached_input_per_mtok, self.input_per_mtok)
        if writes:
            write_rate = _first(self.cache_write_per_mtok, self.input_per_mtok)
            writes_1h = min(max(usage.cache_write_1h_tokens, 0), writes)
            total += (writes - writes_1h) * write_rate
            if writes_1h:
                total += writes_1h * _first(self.cache_write_1h_per_mtok, write_rate)
        return total


def _first(value: Optional[Decimal], otherwise: Decimal) -> Decimal:
    return otherwise if value is None else value


_ONE = Decimal(1)


#: The most one attempt can plausibly cost. A provider's figure above it --
#: or below zero -- is a malformed response, never money.
MAX_ATTEMPT_USD = Decimal(100_000)


class MalformedMoneyError(ValueError):
    """A provider's own figure is not money: negative, or absurdly large.
    Settlement books the attempt ``UNKNOWN`` (with its tokens) and logs it."""


def _checked(value: Decimal, what: str) -> Decimal:
    if not value.is_finite() or value < 0 or value > MAX_ATTEMPT_USD:
        raise MalformedMoneyError(f"{what} of {value} USD is not money (allowed: 0 to {MAX_ATTEMPT_USD})")
    return value


def native_cost(usage: Usage) -> Optional[Decimal]:
    """The provider's own figure for what ``usage`` cost, or None.

    OpenRouter fills ``upstream_inference_cost`` on ordinary calls too (where
    it merely restates ``cost``), so it is added only for BYOK calls, whose
    ``cost`` is OpenRouter's fee alone.

    :raises MalformedMoneyError: a figure is negative or absurd.
    """
    if usage.cost is None:
        return None
    cost = _checked(usage.cost, "a cost")
    if usage.is_byok and usage.upstream_inference_cost is not None:
        return _checked(cost + _checked(usage.upstream_inference_cost, "an upstream cost"), "a cost")
    return cost


@attrs.frozen(eq=False)  # identity: two pricers are never "the same price" by comparison
class Pricer:
    """The one place usage becomes money, for one route: the provider's
    native cost, else the caller's :class:`TokenPrice`, else the maintained
    catalog (for the provider's own service only), else nothing.

    :param price: the caller's price, if any.
    :param catalog: list prices, when the route goes to a provider's own service.
    """

    price: Optional[TokenPrice] = None
    catalog: Optional[Callable[[Usage], Optional[Decimal]]] = None

    def money(self, usage: Usage) -> Tuple[Optional[Decimal], Optional[str]]:
        """What ``usage`` cost and where the figure came from (``"provider"``,
        ``"price"``, ``"catalog"``), or ``(None, None)``.

        :raises MalformedMoneyError: the provider's own figure is not money.
        """
        if usage.cost is not None:
            return native_cost(usage), "provider"
        if self.price is not None:  # list_price's first case, the common one, without the call
            return self.price.cost(usage), "price"
        return self.list_price(usage)

    def list_price(self, usage: Usage) -> Tuple[Optional[Decimal], Optional[str]]:
        """``usage`` at the caller's price, else the catalog's; never the
        provider's own figure (a worst case is priced before there is one)."""
        if self.price is not None:
            return self.price.cost(usage), "price"
        if self.catalog is not None:
            usd = self.catalog(usage)
            if usd is not None:
                return usd, "catalog"
        return None, None
