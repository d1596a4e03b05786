"""The recorded bodies of the OpenAI-compatible hosts and Azure OpenAI
(``tests/conformance_hosts``, sources in its INDEX.md) parse, with each
host's own adapter, to what they say: text, finish reason and the usage in
minillm's normalised terms -- whole, split at every byte, and end to end
through a client.

The expected values are written out here from the recorded JSON, by the
rules of the public contract (API section 3), not computed by the code
under test.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional

import attrs
import pytest

import minillm
from minillm.accumulate import StreamState, accumulate
from minillm.events import Event
from minillm.providers import APIS, ProviderConfig
from minillm.redaction import Redactor
from minillm.testing import Reply, ScriptedServer

CORPUS = Path(__file__).resolve().parent / "conformance_hosts"


@attrs.frozen
class Frame:
    data: str
    event: str = "message"


@attrs.frozen
class Expected:
    text: str
    finish_reason: Optional[str]
    usage: Optional[minillm.Usage]
    id: Optional[str] = None
    model: Optional[str] = None
    thinking: str = ""


def usage(prompt: int, completion: int, total: int, **more: Any) -> minillm.Usage:
    return minillm.Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=total, **more)


#: The head a FRAGMENT file's tail is put behind: the part of the body the
#: source did not show. Only its text and finish reason are made up.
HEAD = '{"choices":[{"index":0,"message":{"role":"assistant","content":"Hello!"},"finish_reason":"stop"}],'
#: The same for a Gemini body.
GEMINI_HEAD = '{"candidates":[{"content":{"role":"model","parts":[{"text":"Hello!"}]},"finishReason":"STOP"}],'

#: The protocol of a recorded Vertex body: Claude's files start VC, Gemini's V.
VERTEX_APIS = {"VC": "messages", "V1": "generate"}

EXPECTED: Dict[str, Expected] = {
    # A role chunk after the filter-results-only first event: nothing said yet.
    "azure/A1-first-chunks.sse": Expected(
        "", None, None, id="chatcmpl-BleatwEUn3D8iXsgXpDqeOPEMuW3j", model="gpt-4o-2024-08-06"
    ),
    "azure/A3-gpt-5.2-chunks.sse": Expected(
        "Hey", "stop", None, id="chatcmpl-DEJgnNRPyTQCzYVeB8duG7wiB4McG", model="gpt-5.2-chat-2025-12-11"
    ),
    "azure/A4-include-usage-terminal.chunks.txt": Expected(
        "", None, usage(886, 2, 888), id="chatcmpl-test", model="gpt-4.1-mini"
    ),
    "azure/A5-body-tail.FRAGMENT.txt": Expected(
        "Hello!", "stop", usage(9, 11, 20), id="chatcmpl-Br8Yw6JYDAZyrQEmSeqGk05GVuSE9", model="gpt-4o-2024-11-20"
    ),
    "deepseek/D1-stream-tail.sse": Expected(
        "✨", "stop", usage(5, 82, 87), id="e7e1ad59-c01a-48fe-b612-da974eaa01b1", model="deepseek-chat"
    ),
    "deepseek/D2-reasoning-final.chunks.txt": Expected(
        "",
        "stop",
        usage(97, 106, 203, reasoning_tokens=88),  # reasoning is part of the 106 completion tokens
        id="b1e23612-29d5-4f66-b185-fb61fdde0ac9",
        model="deepseek-v4-flash",
    ),
    "deepseek/D3-usage.FRAGMENT.txt": Expected("Hello!", "stop", usage(9, 1, 10)),
    # Usage in x_groq, beside the finish chunk; the timings are not counts.
    "groq/G1-x_groq-final.sse": Expected(
        "",
        "tool_calls",
        usage(18, 439, 457),
        id="chatcmpl-e7f8e220-656c-4455-a132-dacfc1370798",
        model="gemma2-9b-it",
    ),
    "groq/G2-whole.json": Expected(
        "Why don't scientists trust atoms?\n\nBecause they make up everything! 🧪✨",
        "stop",
        usage(16, 19, 35, service_tier="on_demand"),  # Groq's tier name, kept as sent
        id="chatcmpl-a79f596a-cdc3-4b0b-9e02-0cd4dda5506e",
        model="qwen/qwen3.8-27b",
    ),
    # "eos" is Together's "stop"; the choice's own "text" repeats the delta's.
    "together/T1-chunk.sse": Expected(
        "ABC", "stop", usage(12, 27, 39), id="8b43a5cfadf99e5c-SJC", model="meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo"
    ),
    # Vertex: Claude's Messages API and Gemini, as Vertex answers them.
    "vertex/VC1-claude-whole.json": Expected(
        "Hi there! How are you doing today? Is there anything I can help you with? 😊",
        "stop",
        usage(9, 24, 33),
        id="msg_vrtx_01JixAPaKzY8NJ3HE6GPE3ue",
        model="claude-opus-4-6",
    ),
    "vertex/VC2-claude-stream-cache-write.sse": Expected(
        "ack",
        "stop",
        usage(28814, 4, 28818, cache_write_tokens=28804),  # input + cache writes; 4 output tokens at the end
        id="msg_vrtx_011Cf23KmBvy6xNCBR8cRGsH",
        model="claude-sonnet-5",
    ),
    # candidates + thoughts are the output; Vertex's trafficType is the tier served
    "vertex/V1-gemini-usage.FRAGMENT.txt": Expected(
        "Hello!",
        "stop",
        usage(8112, 1648, 9760, reasoning_tokens=647, service_tier="on_demand"),
        id="GFtqaci2LLOZsbwPuZ630QQ",
        model="gemini-3-flash-preview",
    ),
    "cerebras/C1-final.chunks.txt": Expected(
        "",
        "tool_calls",
        usage(322, 104, 426, cached_tokens=256, reasoning_tokens=97),
        id="chatcmpl-9e97f9ca-9626-4ef8-8543-6e3ee7cef659",
        model="zai-glm-4.7",
    ),
}


def answers() -> List[str]:
    return sorted(EXPECTED)


def adapter_for(name: str, api: str = "chat") -> Any:
    provider, _, file = name.partition("/")
    api = next((kind for prefix, kind in VERTEX_APIS.items() if file.startswith(prefix)), api)
    cls = next(c for c in APIS[provider] if c.api == api)
    return cls(ProviderConfig(provider=provider, model="m", base_url="http://127.0.0.1:9", api_key="k"))


def events_of(name: str, pieces: Optional[List[bytes]] = None) -> List[Event]:
    body = (CORPUS / name).read_bytes()
    adapter = adapter_for(name)
    if name.endswith(".chunks.txt"):
        return list(adapter.decode_frames(Frame(line) for line in body.decode().splitlines() if line.strip()))
    if name.endswith(".FRAGMENT.txt"):
        head = GEMINI_HEAD if adapter.api == "generate" else HEAD
        return list(adapter.parse_body(json.loads(head + body.decode())))
    if name.endswith(".json"):
        return list(adapter.parse_body(json.loads(body)))
    return list(adapter.stream_events(pieces if pieces is not None else [body]))


def fold(events: List[Event]) -> StreamState:
    state = StreamState()
    for event in events:
        accumulate(state, event)
    return state


def test_the_corpus_is_all_here_and_indexed() -> None:
    files = sorted(str(p.relative_to(CORPUS)) for p in CORPUS.rglob("*") if p.is_file() and p.name != "INDEX.md")
    index = (CORPUS / "INDEX.md").read_text("utf-8")
    assert files and all(f"`{name}`" in index for name in files)
    assert set(answers()) <= set(files)


@pytest.mark.parametrize("name", answers())
def test_each_recorded_answer_parses_to_its_text_finish_reason_and_usage(name: str) -> None:
    expected = EXPECTED[name]
    state = fold(events_of(name))
    assert state.error is None
    assert state.text == expected.text
    assert state.thinking == expected.thinking
    assert state.usage == expected.usage
    assert (state.id, state.model) == (expected.id, expected.model)
    response = state.to_response()
    assert response.finish_reason == expected.finish_reason


@pytest.mark.parametrize("name", [n for n in answers() if n.endswith(".sse")])
def test_each_recorded_stream_split_at_every_byte_yields_the_same_events(name: str) -> None:
    body = (CORPUS / name).read_bytes()
    whole = events_of(name)
    for cut in range(1, len(body)):
        assert events_of(name, [body[:cut], body[cut:]]) == whole, cut


def test_an_azure_stream_of_the_recorded_chunks_streams_through_a_client_and_is_priced(
    server: ScriptedServer, ledger: minillm.Ledger
) -> None:
    # A1's filter-results event, A3's text and finish, A4's usage chunk:
    # the order in which Azure sends them.
    a1 = (CORPUS / "azure/A1-first-chunks.sse").read_bytes()
    a3 = (CORPUS / "azure/A3-gpt-5.2-chunks.sse").read_bytes()
    a4 = (CORPUS / "azure/A4-include-usage-terminal.chunks.txt").read_text("utf-8").strip()
    body = a1 + a3 + f"data: {a4}\n\ndata: [DONE]\n\n".encode()
    pieces = [body[at : at + 7] for at in range(0, len(body), 7)]
    server.reply(Reply(headers=(("Content-Type", "text/event-stream"),), body=pieces))
    price = minillm.TokenPrice(input_per_mtok="2", output_per_mtok="8")
    client = minillm.Client("azure/gpt-5.2-chat", api_key="k", base_url=server.url, on_cost=ledger, price=price)
    with client.stream("Hi") as stream:
        assert "".join(stream.text_stream()) == "Hey"
    response = stream.response
    assert response is not None and response.finish_reason == "stop"
    assert response.id == "chatcmpl-BleatwEUn3D8iXsgXpDqeOPEMuW3j"  # the first id seen
    assert response.usage == usage(886, 2, 888)
    cost = ledger.records[0][0]
    assert cost.resolution is minillm.Resolution.RESOLVED and cost.source == "price"
    assert cost.usd == price.cost(usage(886, 2, 888))


def test_mistrals_refusal_of_stream_options_reads_as_a_bad_request_with_its_detail() -> None:
    body = (CORPUS / "mistral/error-422-stream_options.json").read_bytes()
    error = adapter_for("mistral/x").api_error(
        422, {"content-type": "application/json"}, body, "https://api.mistral.ai/v1/chat/completions", Redactor()
    )
    assert isinstance(error, minillm.APIError) and error.status_code == 422
    assert "extra_forbidden" in str(error) and "stream_options" in str(error)


def test_fireworks_refusal_of_a_cache_control_marker_is_a_bad_request() -> None:
    body = (CORPUS / "fireworks/error-400-cache_control.ELIDED.json").read_bytes()
    endpoint = "https://api.fireworks.ai/inference/v1/chat/completions"
    error = adapter_for("fireworks/x").api_error(400, {"content-type": "application/json"}, body, endpoint, Redactor())
    assert isinstance(error, minillm.BadRequestError)
    assert "cache_control" in str(error)
