"""Streams end where the provider says they end: after its terminal event
nothing more is read, shown or booked, and the caller's loop ends at once
-- even if the server keeps the connection open."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Callable, Dict, List, Tuple

import pytest

import minillm
from minillm.providers.anthropic import usage_from_anthropic
from minillm.testing import (
    Hang,
    Reply,
    ScriptedServer,
    Step,
    anthropic_stream,
    chat_chunk,
    chat_stream,
    chat_usage,
    ollama_stream,
    responses_stream,
    sse,
)

from .conftest import finishes

PRICE = minillm.TokenPrice(input_per_mtok="1", output_per_mtok="2")

#: protocol -> (model, api, the whole answer "Hello" with 10 in and 2 out, what a server might send after it)
STREAMS: Dict[str, Tuple[str, Any, Callable[[], List[bytes]], List[bytes]]] = {
    "chat": (
        "openai/m",
        None,
        lambda: chat_stream(["Hel", "lo"], usage=chat_usage(10, 2)),
        [sse(chat_chunk(content=" and more", usage=chat_usage(99, 99)))],
    ),
    "anthropic": (
        "anthropic/m",
        None,
        lambda: anthropic_stream(["Hel", "lo"], input_tokens=10, output_tokens=2),
        [sse({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " and more"}})],
    ),
    "responses": (
        "openai/m",
        "responses",
        lambda: responses_stream(["Hel", "lo"], input_tokens=10),
        [sse({"type": "response.output_text.delta", "delta": " and more"})],
    ),
    "ollama": (
        "ollama/m",
        None,
        lambda: ollama_stream(["Hel", "lo"], prompt_tokens=10),
        [b'{"message": {"content": " and more"}, "done": false}\n'],
    ),
}


@pytest.mark.parametrize("protocol", sorted(STREAMS))
def test_after_the_terminal_event_nothing_is_read_shown_or_booked_and_the_loop_ends_at_once(
    server: ScriptedServer, ledger: minillm.Ledger, protocol: str
) -> None:
    model, api, whole, after = STREAMS[protocol]
    body: List[Step] = [*whole(), *after, Hang()]  # more data, then the connection kept open
    server.reply(Reply.ndjson(body) if protocol == "ollama" else Reply.sse(body))
    client = minillm.Client(model, base_url=server.url, api_key="k", api=api, price=PRICE, on_cost=ledger)
    seen: List[str] = []

    def read() -> None:
        with client.stream("Hi") as stream:
            seen.extend(stream.text_stream())

    finishes(read, within=5)  # not the read timeout's 60s
    assert "".join(seen) == "Hello"
    ((cost, _),) = ledger.records
    assert (cost.prompt_tokens, cost.completion_tokens, cost.usd) == (10, 2, Decimal("0.000014"))
    assert cost.resolution is minillm.Resolution.RESOLVED and not cost.cancelled
    client.close()


def test_a_complete_answer_gives_its_connection_back_for_the_next_request(
    server: ScriptedServer, ledger: minillm.Ledger
) -> None:
    server.reply(*[Reply.sse(chat_stream(["ok"], usage=chat_usage(1, 1)))] * 3)
    client = minillm.Client("openai/m", base_url=server.url, on_cost=ledger)
    for _ in range(3):
        with client.stream("Hi") as stream:
            assert "".join(stream.text_stream()) == "ok"
    assert len({request.client_address for request in server.requests}) == 1  # one connection served all three
    client.close()


def test_an_answer_complete_but_for_its_last_blank_line_does_not_fail(
    server: ScriptedServer, ledger: minillm.Ledger
) -> None:
    body = chat_stream(["ok"], usage=chat_usage(1, 1))
    assert body[-1] == b"data: [DONE]\n\n"
    server.reply(Reply.sse([*body[:-1], b"data: [DONE]"]))  # the end of the body cuts the last event
    with minillm.Client("openai/m", base_url=server.url, on_cost=ledger, price=PRICE).stream("Hi") as stream:
        assert "".join(stream.text_stream()) == "ok"
    ((cost, _),) = ledger.records
    assert cost.resolution is minillm.Resolution.RESOLVED


def test_a_responses_stream_whose_text_comes_only_with_the_completed_response_yields_it(
    server: ScriptedServer,
) -> None:
    completed = {
        "type": "response.completed",
        "response": {
            "id": "resp_1",
            "status": "completed",
            "output": [{"type": "message", "content": [{"type": "output_text", "text": "All at once."}]}],
            "usage": {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7},
        },
    }
    server.reply(Reply.sse([sse({"type": "response.created", "response": {"id": "resp_1"}}), sse(completed)]))
    client = minillm.Client("openai/m", base_url=server.url, api="responses")
    with client.stream("Hi") as stream:
        assert "".join(stream.text_stream()) == "All at once."
    assert stream.response is not None and stream.response.finish_reason == "stop"


def test_anthropic_thinking_tokens_are_the_reasoning_part_of_the_output() -> None:
    usage = usage_from_anthropic(
        {"input_tokens": 5, "output_tokens": 40, "output_tokens_details": {"thinking_tokens": 32}}
    )
    assert usage is not None and (usage.completion_tokens, usage.reasoning_tokens) == (40, 32)
