"""``minillm demo``: a tracked stream, end to end, with no key and no network.

``minillm serve`` starts in this process on a free loopback port, in front
of the ``ngram`` engine (which writes readable text from a text shipped in
the package). A :class:`~minillm.Client` streams an answer from it through
the real HTTP path, prices it with a :class:`~minillm.TokenPrice`, and
settles it into a :class:`~minillm.Ledger` -- exactly what happens against
a real provider.
"""

from __future__ import annotations

import sys
from decimal import Decimal
from typing import TextIO

from .accounting.ledgers import Ledger
from .accounting.pricing import TokenPrice
from .client import Client
from .engines.ngram import NGramEngine
from .models import CostInfo, Resolution
from .serve.server import EngineServer

__all__ = ["cost_summary", "format_usd", "run_demo"]

PROMPT = "In a few sentences: what does minillm promise about cost?"

#: The demo's price: USD per million tokens, input and output.
DEMO_PRICE = TokenPrice(input_per_mtok="0.80", output_per_mtok="4.00")


def format_usd(usd: Decimal) -> str:
    """Money for people: to the millionth of a dollar when that is exact,
    else every digit -- a real but tiny cost never shows as ``$0.000000``."""
    rounded = usd.quantize(Decimal("0.000001"))
    return f"${rounded}" if rounded == usd else f"${usd.normalize():f}"


def cost_summary(cost: CostInfo) -> str:
    """One line: the tokens, the money (or why it is not known), how it was
    resolved. Figures of an attempt cut short before its final usage are
    lower bounds, and say so."""
    bound = "at least " if cost.resolution in (Resolution.PARTIAL, Resolution.UNKNOWN) else ""
    tokens = f"{cost.prompt_tokens} prompt + {cost.completion_tokens} completion tokens"
    if cost.resolution is Resolution.UNKNOWN and not (cost.prompt_tokens or cost.completion_tokens):
        bound = tokens = ""
    usd = "cost unknown" if cost.usd is None else f"{bound}{format_usd(cost.usd)}"
    ended = ", cancelled" if cost.cancelled else ", failed" if cost.failed else ""
    counted = f"{bound}{tokens} = " if tokens else ""
    return f"{counted}{usd} ({cost.resolution.value}{ended})"


def run_demo(out: TextIO = sys.stdout, *, delay: float = 0.03) -> Ledger:
    """Run the demo, writing to ``out``; returns the ledger it booked into.

    :param delay: seconds between streamed tokens, so the stream reads as one.
    """
    ledger = Ledger()
    with EngineServer(NGramEngine(model="minillm-demo", pace=max(delay, 0.0))) as server:
        base_url = server.url + "/v1"
        with Client("openai/minillm-demo", base_url=base_url, price=DEMO_PRICE, on_cost=ledger) as client:
            out.write(f"minillm demo -- minillm serve --engine ngram, on {base_url}\n\n> {PROMPT}\n\n")
            out.flush()
            with client.stream(PROMPT, meta={"demo": True}) as stream:
                for chunk in stream:
                    out.write(chunk.text)
                    out.flush()
            cost = stream.cost
    out.write("\n\n")
    if cost is not None:
        out.write(f"settled once: {cost_summary(cost)}\nledger: {ledger.count} booking, total ${ledger.total()}\n")
    out.flush()
    return ledger
