"""``minillm demo``: a tracked stream, end to end, with no key and no network.

A small OpenAI-compatible server starts on a free loopback port inside this
process and streams a canned answer with usage. A :class:`~minillm.Client`
streams it through the real HTTP path, prices it with a
:class:`~minillm.TokenPrice`, and settles it into a
:class:`~minillm.Ledger` -- exactly what happens against a real provider.
"""

from __future__ import annotations

import re
import sys
from decimal import Decimal
from typing import List, TextIO

from .client import Client
from .ledger import Ledger
from .pricing import TokenPrice
from .testing import Pause, Reply, ScriptedServer, Step, chat_stream, chat_usage

__all__ = ["run_demo"]

PROMPT = "In a few sentences: what does minillm do?"

ANSWER = (
    "minillm is a small, synchronous Python SDK for large language models. "
    "You call a model with plain blocking functions and read its answer from an "
    "ordinary generator, so it fits Django views, scripts and batch jobs. "
    "Every request is settled exactly once: when this stream ends, its tokens "
    "are priced in Decimal and booked to your ledger -- whether the stream "
    "finishes, is cancelled, fails, or is simply abandoned."
)

#: The demo's price: USD per million tokens, input and output.
DEMO_PRICE = TokenPrice(input_per_mtok="0.80", output_per_mtok="4.00")


def _pieces(text: str) -> List[str]:
    """Split text the way a tokenizer roughly would: words with their space."""
    return re.findall(r"\S+\s*|\s+", text)


def run_demo(out: TextIO = sys.stdout, *, delay: float = 0.03) -> Ledger:
    """Run the demo, writing to ``out``; returns the ledger it booked into."""
    pieces = _pieces(ANSWER)
    prompt_tokens = len(_pieces(PROMPT)) + 12  # the chat template's tokens
    steps: List[Step] = []
    for event in chat_stream(
        pieces, id="chatcmpl-demo", model="minillm-demo", usage=chat_usage(prompt_tokens, len(pieces))
    ):
        steps.append(event)
        if delay > 0:
            steps.append(Pause(delay))
    ledger = Ledger()
    with ScriptedServer() as server:
        server.reply(Reply.sse(steps))
        with Client("openai/minillm-demo", base_url=server.url + "/v1", price=DEMO_PRICE, on_cost=ledger) as client:
            out.write(f"minillm demo -- a local server on {server.url}\n\n> {PROMPT}\n\n")
            out.flush()
            with client.stream(PROMPT, meta={"demo": True}) as stream:
                for chunk in stream:
                    out.write(chunk.text)
                    out.flush()
            cost = stream.cost
    out.write("\n\n")
    if cost is not None:
        usd = "unknown" if cost.usd is None else f"${cost.usd.quantize(Decimal('0.000001'))}"
        out.write(
            f"settled once: {cost.prompt_tokens} prompt + {cost.completion_tokens} completion tokens"
            f" = {usd} ({cost.resolution.value})\n"
            f"ledger: {ledger.count} booking, total ${ledger.total()}\n"
        )
    out.flush()
    return ledger
