"""Money: Decimal conversion, TokenPrice, and the native-cost rule."""

from __future__ import annotations

import enum
from decimal import Decimal

import pytest

from minillm import CostInfo, InvalidArgumentError, Resolution, TokenPrice, Usage
from minillm.accounting.pricing import Pricer, native_cost, to_decimal


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


def test_native_cost_wins_over_a_price_and_a_price_wins_over_no_money() -> None:
    native = Usage(prompt_tokens=10, completion_tokens=10, cost=Decimal("0.5"))
    pricer = Pricer(TokenPrice(1, 1))
    assert pricer.money(native) == (Decimal("0.5"), "provider")
    assert pricer.money(Usage(prompt_tokens=10, completion_tokens=10)) == (Decimal("0.00002"), "price")
    assert Pricer().money(Usage(prompt_tokens=10)) == (None, None)


def test_a_worst_case_is_never_priced_from_the_providers_own_figure() -> None:
    native = Usage(prompt_tokens=10, completion_tokens=10, cost=Decimal("0.5"))
    assert Pricer(TokenPrice(1, 1)).list_price(native) == (Decimal("0.00002"), "price")
    assert Pricer().list_price(native) == (None, None)


def test_a_free_models_zero_cost_is_a_real_zero() -> None:
    assert Pricer().money(Usage(cost=Decimal(0))) == (Decimal(0), "provider")


def test_cost_info_refuses_money_that_contradicts_its_resolution() -> None:
    with pytest.raises(ValueError):
        CostInfo(usd=Decimal(0), resolution=Resolution.UNKNOWN)
    with pytest.raises(ValueError):
        CostInfo(usd=Decimal(0), resolution=Resolution.UNPRICED)
    with pytest.raises(ValueError):
        CostInfo(usd=None, resolution=Resolution.RESOLVED)
    with pytest.raises(ValueError):
        CostInfo(usd=None, resolution=Resolution.PARTIAL)
    assert CostInfo(usd=Decimal("0.1"), resolution=Resolution.PARTIAL).usd == Decimal("0.1")
    with pytest.raises(TypeError):
        CostInfo(usd=0.1, resolution=Resolution.RESOLVED)  # type: ignore[arg-type]
    for spelled in ("resolved", None):  # a str would compare equal to the member
        with pytest.raises(TypeError, match=r"must be a minillm\.Resolution"):
            CostInfo(usd=Decimal(1) if spelled else None, resolution=spelled)  # type: ignore[arg-type]


def test_cost_info_names_where_its_money_came_from_and_only_when_it_has_money() -> None:
    for source in ("provider", "lookup", "price", "catalog"):
        assert CostInfo(usd=Decimal(1), resolution=Resolution.RESOLVED, source=source).source == source
    with pytest.raises(ValueError):
        CostInfo(usd=Decimal(1), resolution=Resolution.RESOLVED, source="guess")
    with pytest.raises(ValueError):
        CostInfo(resolution=Resolution.UNKNOWN, source="price")


def test_cost_info_counts_attempts_from_one() -> None:
    assert CostInfo(resolution=Resolution.UNKNOWN).attempt == 1

    class Attempt(enum.IntEnum):
        SECOND = 2

    assert CostInfo(resolution=Resolution.UNKNOWN, attempt=Attempt.SECOND).attempt == 2  # an int is an int
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError):
            CostInfo(resolution=Resolution.UNKNOWN, attempt=bad)  # type: ignore[arg-type]


def test_cost_info_to_dict_is_json_ready_with_money_as_a_decimal_string() -> None:
    import json

    cost = CostInfo(usd=Decimal("0.000000123"), resolution=Resolution.PARTIAL, attempt=2, failed=True, source="price")
    data = cost.to_dict()
    assert data["usd"] == "1.23E-7" or Decimal(data["usd"]) == Decimal("0.000000123")
    assert (data["resolution"], data["attempt"], data["failed"], data["source"]) == ("partial", 2, True, "price")
    assert json.loads(json.dumps(data)) == data
