"""Money as text for people: exact, every digit, no exponent, never rounded.

Every money figure the command line prints, and the reports' tables, go
through here, so a real but tiny cost never reads as ``$0.000000`` and one
booking never shows as two different figures. Money that is not known
says so; a lower bound says ``at least``.
"""

from __future__ import annotations

import decimal
from decimal import Decimal
from typing import Iterable, Optional

from .models import CostInfo, Resolution

__all__ = ["EXACT", "cost_summary", "exact_sum", "money_text", "usd_text"]

#: Wide enough that no digit of a sum or a figure is ever rounded away: the
#: default context keeps 28 significant digits, and providers send money
#: with more (``"0.0000342000...0"``).
EXACT = decimal.Context(prec=decimal.MAX_PREC)


def exact_sum(amounts: Iterable[Decimal]) -> Decimal:
    """The sum of ``amounts``, with no digit rounded away."""
    total = Decimal(0)
    for amount in amounts:
        total = EXACT.add(total, amount)
    return total


def money_text(usd: Optional[Decimal], lower_bound: bool = False) -> str:
    """Money exactly as booked, every digit and no exponent or trailing
    zero (``0.00000035``); ``≥`` marks a lower bound, and money not known at
    all reads ``unknown``."""
    if usd is None:
        return "unknown"
    return ("≥" if lower_bound else "") + format(usd.normalize(EXACT), "f")


def usd_text(usd: Optional[Decimal], lower_bound: bool = False) -> str:
    """Money in dollars for a sentence: ``$0.00000035``, ``at least
    $0.0001`` for a lower bound, ``cost unknown`` when it is not known."""
    if usd is None:
        return "cost unknown"
    return ("at least " if lower_bound else "") + "$" + money_text(usd)


def cost_summary(cost: CostInfo) -> str:
    """One attempt in one line: the tokens, the money (or why it is not
    known), how it was resolved. Figures of an attempt cut short before its
    final usage are lower bounds, and say so."""
    bound = cost.resolution in (Resolution.PARTIAL, Resolution.UNKNOWN)
    tokens = f"{cost.prompt_tokens} prompt + {cost.completion_tokens} completion tokens"
    if cost.resolution is Resolution.UNKNOWN and not (cost.prompt_tokens or cost.completion_tokens):
        bound, tokens = False, ""
    ended = ", cancelled" if cost.cancelled else ", failed" if cost.failed else ""
    counted = f"{'at least ' if bound else ''}{tokens} = " if tokens else ""
    return f"{counted}{usd_text(cost.usd, bound)} ({cost.resolution.value}{ended})"
