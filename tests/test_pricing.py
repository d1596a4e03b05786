"""Money: Decimal conversion, TokenPrice, and the native-cost rule."""

from __future__ import annotations

from decimal import Decimal

import pytest

from minillm import CostInfo, InvalidArgumentError, Resolution, TokenPrice, Usage
from minillm.accounting.pricing import cost_from_usage, native_cost, to_decimal, unknown_cost


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.0076509169000000005, Decimal("0.0076509169000000005")),
        (5.829126566113866e-06, Decimal("0.000005829126566113866")),
        (0.00000602, Decimal("0.00000602")),
        (0, Decimal(0)),
        ("0.15", Decimal("0.15")),
        (Decimal("1.5"), Decimal("1.5")),
    ],
)
def test_wire_numbers_become_exact_decimals_through_their_shortest_repr(value: object, expected: Decimal) -> None:
    assert to_decimal(value) == expected


@pytest.mark.parametrize("value", [None, True, "n/a", float("nan"), float("inf"), [1], {}])
def test_anything_that_is_not_a_finite_number_is_unknown_not_zero(value: object) -> None:
    assert to_decimal(value) is None


def test_a_token_price_charges_cached_input_at_its_own_rate() -> None:
    price = TokenPrice(input_per_mtok="2.50", output_per_mtok=10, cached_input_per_mtok=1.25)
    usage = Usage(prompt_tokens=1000, completion_tokens=200, cached_tokens=400)
    assert price.cost(usage) == (Decimal(600) * Decimal("2.50") + 400 * Decimal("1.25") + 200 * 10) / 1_000_000


def test_without_a_cached_rate_cached_input_is_charged_as_input() -> None:
    price = TokenPrice(input_per_mtok="1", output_per_mtok="1")
    assert price.cost(Usage(prompt_tokens=10, cached_tokens=4, completion_tokens=0)) == Decimal("0.00001")


def test_prices_are_decimal_even_when_given_as_float() -> None:
    price = TokenPrice(0.15, 0.6)
    assert price.input_per_mtok == Decimal("0.15") and price.output_per_mtok == Decimal("0.6")


@pytest.mark.parametrize("bad", [-1, "abc", None, float("nan")])
def test_a_bad_price_is_rejected(bad: object) -> None:
    with pytest.raises(InvalidArgumentError):
        TokenPrice(bad, 1)  # type: ignore[arg-type]


def test_openrouter_byok_adds_the_upstream_cost_and_non_byok_does_not() -> None:
    non_byok = Usage(cost=Decimal("0.000837"), upstream_inference_cost=Decimal("0.000837"), is_byok=False)
    byok = Usage(cost=Decimal("0.0001"), upstream_inference_cost=Decimal("0.002"), is_byok=True)
    assert native_cost(non_byok) == Decimal("0.000837")
    assert native_cost(byok) == Decimal("0.0021")
    assert native_cost(Usage()) is None


def test_native_cost_wins_over_a_price_and_a_price_wins_over_unpriced() -> None:
    kwargs: dict = {"model": "m", "provider": "p", "response_id": "r", "cancelled": False}
    native = Usage(prompt_tokens=10, completion_tokens=10, cost=Decimal("0.5"))
    price = TokenPrice(1, 1)
    assert cost_from_usage(native, price=price, **kwargs).usd == Decimal("0.5")  # type: ignore[arg-type]
    priced = cost_from_usage(Usage(prompt_tokens=10, completion_tokens=10), price=price, **kwargs)  # type: ignore[arg-type]
    assert (priced.usd, priced.resolution) == (Decimal("0.00002"), Resolution.RESOLVED)
    unpriced = cost_from_usage(Usage(prompt_tokens=10), price=None, **kwargs)  # type: ignore[arg-type]
    assert (unpriced.usd, unpriced.resolution, unpriced.prompt_tokens) == (None, Resolution.UNPRICED, 10)


def test_a_free_models_zero_cost_is_a_real_zero() -> None:
    cost = cost_from_usage(
        Usage(cost=Decimal(0)), price=None, model="m", provider="p", response_id=None, cancelled=False
    )
    assert cost.usd == Decimal(0) and cost.resolution is Resolution.RESOLVED


def test_unknown_cost_carries_none_not_zero() -> None:
    cost = unknown_cost(model="m", provider="p", response_id="gen-1", cancelled=True)
    assert (cost.usd, cost.resolution, cost.response_id, cost.cancelled) == (None, Resolution.UNKNOWN, "gen-1", True)


def test_cost_info_refuses_money_that_contradicts_its_resolution() -> None:
    with pytest.raises(ValueError):
        CostInfo(usd=Decimal(0), resolution=Resolution.UNKNOWN)
    with pytest.raises(ValueError):
        CostInfo(usd=None, resolution=Resolution.RESOLVED)
    with pytest.raises(TypeError):
        CostInfo(usd=0.1, resolution=Resolution.RESOLVED)  # type: ignore[arg-type]
