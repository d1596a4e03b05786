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
from typing import TextIO

from .accounting.ledgers import Ledger
from .accounting.pricing import TokenPrice
from .client import Client
from .engines.ngram import NGramEngine
from .money import cost_summary
from .serve.server import EngineServer

__all__ = ["run_demo"]

PROMPT = "In a few sentences: what does minillm promise about cost?"

#: The demo's price: USD per million tokens, input and output.
DEMO_PRICE = TokenPrice(input_per_mtok="0.80", output_per_mtok="4.00")


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
        out.write(f"cost:  {cost_summary(cost)}, settled once into an in-memory ledger\n")
    out.write(
        f"price: ${DEMO_PRICE.input_per_mtok} per million input tokens, ${DEMO_PRICE.output_per_mtok} per million "
        "output tokens (the demo's own price)\n"
        "model: ngram, a toy model running in this process -- no provider was called, nothing was paid\n\n"
        "Next, with a real model (its key in the environment, e.g. ANTHROPIC_API_KEY):\n"
        '  minillm chat anthropic/claude-haiku-4-5 "Say hello in French"   # books into minillm-costs.db\n'
        "  minillm chat anthropic/claude-haiku-4-5                         # a conversation, turn by turn\n"
        "  minillm costs                                                   # what the chats have spent\n"
    )
    out.flush()
    return ledger
