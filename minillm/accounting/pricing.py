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
from typing import Any, Callable, Optional, Tuple

import attrs

from ..errors import InvalidArgumentError
from ..models import Usage

__all__ = ["MAX_ATTEMPT_USD", "MalformedMoneyError", "Pricer", "TokenPrice", "native_cost", "to_decimal"]

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


@attrs.frozen
class TokenPrice:
    """A price in USD per million tokens.

    Numbers may be given as ``Decimal``, ``str``, ``int`` or ``float`` (a float
    is converted through its shortest ``repr``, so ``0.15`` is exactly
    ``Decimal("0.15")``). Cached input tokens are charged
    ``cached_input_per_mtok`` when it is given, else the input rate.
    """

    input_per_mtok: Decimal = attrs.field(converter=_price)
    output_per_mtok: Decimal = attrs.field(converter=_price)
    cached_input_per_mtok: Optional[Decimal] = attrs.field(default=None, converter=_optional_price)

    def cost(self, usage: Usage) -> Decimal:
        """The USD cost of ``usage`` at this price."""
        cached = min(max(usage.cached_tokens, 0), max(usage.prompt_tokens, 0))
        uncached = max(usage.prompt_tokens, 0) - cached
        cached_rate = self.input_per_mtok if self.cached_input_per_mtok is None else self.cached_input_per_mtok
        total = (
            uncached * self.input_per_mtok
            + cached * cached_rate
            + max(usage.completion_tokens, 0) * self.output_per_mtok
        )
        return total / _MILLION


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
        usd = native_cost(usage)
        if usd is not None:
            return usd, "provider"
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
