"""Test doubles for code that uses minillm: a scripted loopback HTTP server,
an invoice-keeping one that plays billed providers (:class:`BillingServer`),
one that plays the provider batch APIs (:class:`BatchServer`), one that
plays the providers' cost reports (:class:`CostServer`), and builders for the wire transcripts providers send.

Example::

    from minillm import Client, Ledger
    from minillm.testing import Reply, ScriptedServer, chat_stream, chat_usage

    with ScriptedServer() as server:
        server.reply(Reply.sse(chat_stream(["Hel", "lo"], usage=chat_usage(5, 2))))
        ledger = Ledger()
        client = Client("openai/test", base_url=server.url, on_cost=ledger)
        with client.stream("Hi") as s:
            assert "".join(s.text_stream()) == "Hello"
        assert ledger.count == 1
"""

from .batches import BATCH_STEPS, OUTCOMES, BatchServer, EmulatedBatch
from .billing import ENDINGS, PROTOCOLS, Billing, BillingServer, Invoice, InvoiceLine, Plan
from .costs import CostServer, EmulatedCharge
from .server import Drop, Gate, Hang, Pause, RecordedRequest, Reply, ScriptedServer, Step
from .transcripts import (
    anthropic_stream,
    bedrock_converse,
    bedrock_event,
    bedrock_stream,
    bedrock_usage,
    chat_chunk,
    chat_completion,
    chat_stream,
    chat_usage,
    gemini_stream,
    ollama_stream,
    openrouter_generation,
    responses_stream,
    sse,
)

__all__ = [
    "BATCH_STEPS",
    "BatchServer",
    "Billing",
    "BillingServer",
    "CostServer",
    "Drop",
    "ENDINGS",
    "EmulatedBatch",
    "EmulatedCharge",
    "Gate",
    "Hang",
    "Invoice",
    "InvoiceLine",
    "OUTCOMES",
    "PROTOCOLS",
    "Pause",
    "Plan",
    "RecordedRequest",
    "Reply",
    "ScriptedServer",
    "Step",
    "anthropic_stream",
    "bedrock_converse",
    "bedrock_event",
    "bedrock_stream",
    "bedrock_usage",
    "chat_chunk",
    "chat_completion",
    "chat_stream",
    "chat_usage",
    "gemini_stream",
    "ollama_stream",
    "openrouter_generation",
    "responses_stream",
    "sse",
]
