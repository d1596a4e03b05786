"""Money as text for people (minillm.money): exact, every digit, never a
fake zero; lower bounds and unknown money say so."""

from __future__ import annotations

from decimal import Decimal

import pytest

from minillm.models import CostInfo, Resolution
from minillm.money import cost_summary, money_text, usd_text


@pytest.mark.parametrize(
    ("usd", "text"),
    [
        (Decimal("0.00000035"), "$0.00000035"),  # rounded to six places it would read $0.000000
        (Decimal("3.5E-7"), "$0.00000035"),  # never an exponent
        (Decimal("0.000125000"), "$0.000125"),
        (Decimal("12.50"), "$12.5"),
        (Decimal("0E-9"), "$0"),
        (Decimal("1000000000000.000000000000000000000000000001"), "$1000000000000.000000000000000000000000000001"),
    ],
)
def test_dollars_are_written_with_every_digit_and_nothing_more(usd: Decimal, text: str) -> None:
    assert usd_text(usd) == text
    assert Decimal(text[1:]) == usd


def test_a_lower_bound_and_unknown_money_say_so() -> None:
    assert usd_text(Decimal("0.0001"), lower_bound=True) == "at least $0.0001"
    assert usd_text(None) == "cost unknown"
    assert money_text(Decimal("0.5"), lower_bound=True) == "≥0.5"
    assert money_text(None) == "unknown"


def cost(
    resolution: Resolution,
    usd: object = None,
    prompt: int = 3,
    completion: int = 2,
    cancelled: bool = False,
    failed: bool = False,
) -> CostInfo:
    return CostInfo(
        usd=None if usd is None else Decimal(str(usd)),
        resolution=resolution,
        prompt_tokens=prompt,
        completion_tokens=completion,
        cancelled=cancelled,
        failed=failed,
    )


def test_a_cost_summary_is_one_exact_line() -> None:
    assert cost_summary(cost(Resolution.RESOLVED, "0.00000035")) == (
        "3 prompt + 2 completion tokens = $0.00000035 (resolved)"
    )
    assert cost_summary(cost(Resolution.UNPRICED)) == "3 prompt + 2 completion tokens = cost unknown (unpriced)"


def test_a_cost_cut_short_is_a_lower_bound_and_says_how_it_ended() -> None:
    assert cost_summary(cost(Resolution.PARTIAL, "0.000004", 0, 1, cancelled=True)) == (
        "at least 0 prompt + 1 completion tokens = at least $0.000004 (partial, cancelled)"
    )
    assert cost_summary(cost(Resolution.UNKNOWN, None, 0, 0, failed=True)) == "cost unknown (unknown, failed)"
