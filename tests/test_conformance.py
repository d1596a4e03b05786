"""Every recorded body of the conformance corpus (``tests/conformance``,
sources in its INDEX.md) -- all six formats -- parses to what it must:
whole, split into seeded random 1-48 byte pieces, and (for the streams)
end to end through a loopback server and a Client.

The expected values come from the corpus's EXPECTED.json, in the
providers' own terms. The ``expect_*`` functions below map them to
minillm's normalised meaning by the rules of the public contract (API
section 3), independently of the adapters' code.
"""

from __future__ import annotations

import json
import random
import re
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional

import attrs
import pytest
from hypothesis import given, settings, strategies

import minillm
from minillm.accumulate import StreamState, accumulate
from minillm.events import Event
from minillm.providers import APIS, ProviderConfig
from minillm.redaction import Redactor
from minillm.testing import Reply

from .conftest import SleepRecorder

CORPUS = Path(__file__).resolve().parent / "conformance"

# -- which adapter reads which file -------------------------------------------------------------

FORMATS: Dict[str, tuple] = {  # directory -> (provider, api) of the adapter that reads it
    "openai_chat": ("openai", "chat"),
    "openrouter": ("openrouter", "chat"),
    "openai_responses": ("openai", "responses"),
    "anthropic": ("anthropic", "messages"),
    "gemini": ("gemini", "generate"),
    "ollama": ("ollama", "chat"),
}

NOT_A_RESPONSE = {  # covered by the look-up and error-envelope tests below
    "openrouter/generation-200.json",
    "openrouter/generation-404-not-yet-available.json",
    "openrouter/error-404-no-allowed-providers.json",
}


def corpus_files() -> List[str]:
    index = CORPUS / "EXPECTED.json"
    return sorted(name for name in json.loads(index.read_text("utf-8")) if name not in NOT_A_RESPONSE)


def adapter_for(name: str) -> Any:
    provider, api = FORMATS[name.split("/", 1)[0]]
    cls = next(c for c in APIS[provider] if c.api == api)
    return cls(ProviderConfig(provider=provider, model="m", base_url="http://127.0.0.1:9"))


@attrs.frozen
class Frame:
    data: str
    event: str = "message"


def events_of(name: str, body: bytes, pieces: Optional[List[bytes]] = None) -> List[Event]:
    """Parse a corpus file the way its adapter reads it off the wire."""
    adapter = adapter_for(name)
    if name.endswith(".chunks.txt"):
        # One SSE data payload per line, framing stripped by the recorder.
        return list(adapter.decode_frames(Frame(line) for line in body.decode().splitlines() if line.strip()))
    if name.endswith(".json"):
        return list(adapter.parse_body(json.loads(body)))
    return list(adapter.stream_events(pieces if pieces is not None else [body]))


def fold(events: List[Event]) -> StreamState:
    state = StreamState()
    for event in events:
        accumulate(state, event)
    return state


def random_pieces(body: bytes, seed: int) -> List[bytes]:
    rng = random.Random(seed)
    pieces, at = [], 0
    while at < len(body):
        size = rng.randint(1, 48)
        pieces.append(body[at : at + size])
        at += size
    return pieces


# -- expected values, in minillm's terms ----------------------------------------------------------


@attrs.frozen
class Expected:
    text: str
    thinking: str
    tool_calls: List[tuple]  # (id or None, name, parsed arguments)
    finish_reason: Optional[str]
    usage: Optional[minillm.Usage]
    error: Optional[str] = None


def money(value: Any) -> Optional[Decimal]:
    return None if value is None else Decimal(repr(value) if isinstance(value, float) else str(value))


def chat_usage(raw: Optional[Mapping[str, Any]]) -> Optional[minillm.Usage]:
    if raw is None:
        return None
    details = raw.get("prompt_tokens_details") or {}
    return minillm.Usage(
        prompt_tokens=raw["prompt_tokens"],
        completion_tokens=raw["completion_tokens"],
        total_tokens=raw["total_tokens"],
        cached_tokens=details.get("cached_tokens", 0),
        cache_write_tokens=details.get("cache_write_tokens", 0),
        reasoning_tokens=(raw.get("completion_tokens_details") or {}).get("reasoning_tokens", 0),
        cost=money(raw.get("cost")),
        upstream_inference_cost=money((raw.get("cost_details") or {}).get("upstream_inference_cost")),
        is_byok=raw.get("is_byok", False),
    )


def expect_chat(e: Mapping[str, Any]) -> Expected:
    raw_calls = e["tool_calls"]
    items = (
        sorted(raw_calls.items(), key=lambda kv: int(kv[0])) if isinstance(raw_calls, dict) else enumerate(raw_calls)
    )
    calls = [(c["id"], c["name"], json.loads(c["arguments"])) for _, c in items]
    finish = e["finish_reason"] or ("tool_calls" if calls else "stop")
    error = e["errors"][0]["message"] if e.get("errors") else None
    return Expected(e["text"] or "", e["reasoning"] or "", calls, finish, chat_usage(e["usage"]), error)


def expect_responses(e: Mapping[str, Any]) -> Expected:
    calls = [
        (c["call_id"], c["name"], json.loads(c["arguments"]))
        for c in sorted((e.get("function_calls") or {}).values(), key=lambda c: c["output_index"])
    ]
    thinking = "\n\n".join((e.get("reasoning_summary_parts") or {}).values()) or e.get("reasoning_text") or ""
    raw = e.get("usage")
    usage = None
    if raw is not None:
        usage = minillm.Usage(
            prompt_tokens=raw["input_tokens"],
            completion_tokens=raw["output_tokens"],
            total_tokens=raw["total_tokens"],
            cached_tokens=raw["input_tokens_details"]["cached_tokens"],
            reasoning_tokens=raw["output_tokens_details"]["reasoning_tokens"],
            cost=money(raw.get("cost")),
            upstream_inference_cost=money((raw.get("cost_details") or {}).get("upstream_inference_cost")),
            is_byok=raw.get("is_byok", False),
        )
    error = None
    if e.get("errors"):
        error = e["errors"][0]["error"]["message"]
    finish = {"completed": "tool_calls" if calls else "stop", "failed": None}[e["status"]]
    return Expected(e["text"], thinking, calls, finish, usage, error)


ANTHROPIC_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "tool_use": "tool_calls", "max_tokens": "length"}


def expect_anthropic(e: Mapping[str, Any]) -> Expected:
    blocks = [e["blocks"][k] for k in sorted(e["blocks"], key=int)]
    text = "".join(b.get("text", "") for b in blocks if b["type"] == "text")
    thinking = "".join(b.get("thinking", "") for b in blocks if b["type"] == "thinking")
    calls = [(b["id"], b["name"], b["input"]) for b in blocks if b["type"] == "tool_use"]
    usage = None
    if e["usage_start"] is not None:
        merged = {**e["usage_start"], **(e["usage_final"] or {})}  # the final figures are cumulative
        parts = merged.get("iterations") or [merged]  # with compaction: the sum of the iterations
        prompt = sum(
            p.get("input_tokens", 0) + p.get("cache_read_input_tokens", 0) + p.get("cache_creation_input_tokens", 0)
            for p in parts
        )
        completion = sum(p.get("output_tokens", 0) for p in parts)
        cached = sum(p.get("cache_read_input_tokens", 0) for p in parts)
        writes = sum(p.get("cache_creation_input_tokens", 0) for p in parts)
        writes_1h = sum((p.get("cache_creation") or {}).get("ephemeral_1h_input_tokens", 0) for p in parts)
        usage = minillm.Usage(
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=prompt + completion,
            cached_tokens=cached,
            cache_write_tokens=writes,
            cache_write_1h_tokens=writes_1h,
            service_tier=merged.get("service_tier"),
            web_search_requests=(merged.get("server_tool_use") or {}).get("web_search_requests", 0),
        )
    error = e["errors"][0]["message"] if e["errors"] else None
    return Expected(text, thinking, calls, ANTHROPIC_FINISH.get(e["stop_reason"]), usage, error)


def gemini_usage(raw: Mapping[str, Any]) -> minillm.Usage:
    prompt = raw["promptTokenCount"] + raw.get("toolUsePromptTokenCount", 0)
    thoughts = raw.get("thoughtsTokenCount", 0)
    completion = raw.get("candidatesTokenCount", 0) + thoughts
    return minillm.Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=raw["totalTokenCount"],
        cached_tokens=raw.get("cachedContentTokenCount", 0),
        reasoning_tokens=thoughts,
        service_tier=raw["trafficType"].lower() if "trafficType" in raw else None,
    )


def expect_gemini(name: str, e: Mapping[str, Any]) -> Expected:
    if "manual" in e:  # gemini/vertex-partial-args-parallel-calls.chunks.txt, read by hand (see INDEX.md)
        return Expected(
            "",
            "",
            [(None, "getWeather", {"location": "Boston"}), (None, "getWeather", {"location": "San Francisco"})],
            "tool_calls",
            gemini_usage(
                {
                    "promptTokenCount": 26,
                    "candidatesTokenCount": 23,
                    "totalTokenCount": 181,
                    "thoughtsTokenCount": 132,
                    "trafficType": "ON_DEMAND",
                }
            ),
        )
    calls = [(None, c["name"], c["args"]) for c in e["function_calls"]]
    finish = {"STOP": "tool_calls" if calls else "stop"}[e["finish_reason"]]
    return Expected(e["text"], e["thought_text"], calls, finish, gemini_usage(e["usage"]))


def expect_ollama(e: Mapping[str, Any]) -> Expected:
    calls = [(c.get("id"), c["function"]["name"], c["function"]["arguments"]) for c in e["tool_calls"]]
    if e["errors"]:
        return Expected("", "", [], None, None, e["errors"][0])
    prompt, completion = e["prompt_eval_count"], e["eval_count"]
    finish = "tool_calls" if calls else {"stop": "stop", "length": "length"}[e["done_reason"]]
    usage = minillm.Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)
    return Expected(e["text"], e["thinking"], calls, finish, usage)


EXPECT: Dict[str, Callable[[str, Mapping[str, Any]], Expected]] = {
    "openai_chat": lambda name, e: expect_chat(e),
    "openrouter": lambda name, e: expect_chat(e),
    "openai_responses": lambda name, e: expect_responses(e),
    "anthropic": lambda name, e: expect_anthropic(e),
    "gemini": expect_gemini,
    "ollama": lambda name, e: expect_ollama(e),
}


#: Where the OpenAI formats say which tier served a request: a top-level
#: field of the chunk, body or response object, beside (not in) the usage.
_SERVICE_TIER = re.compile(rb'"service_tier"\s*:\s*"([^"]+)"')


def expected_of(corpus: Path, name: str) -> Expected:
    raw = json.loads((corpus / "EXPECTED.json").read_text("utf-8"))[name]["expected"]
    expected = EXPECT[name.split("/", 1)[0]](name, raw)
    if expected.usage is not None and name.split("/", 1)[0] in ("openai_chat", "openrouter", "openai_responses"):
        # The last one said: a Responses stream echoes the tier asked for
        # ("auto") in response.created and names the tier served at the end.
        tiers = _SERVICE_TIER.findall((corpus / name).read_bytes())
        served = tiers[-1].decode() if tiers else None
        expected = attrs.evolve(expected, usage=attrs.evolve(expected.usage, service_tier=served))
    return expected


def check(state: StreamState, expected: Expected) -> None:
    assert state.text == expected.text
    assert state.thinking == expected.thinking
    calls = state.tool_calls()
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [(n, a) for _, n, a in expected.tool_calls]
    for call, (call_id, _, _) in zip(calls, expected.tool_calls):
        assert call.id == call_id if call_id is not None else call.id  # made up, but never empty
    if expected.error is not None:
        assert state.error is not None and state.error.message == expected.error
        assert not state.is_terminal
        return
    assert state.error is None
    assert state.usage == expected.usage
    assert state.is_terminal
    assert state.to_response().finish_reason == expected.finish_reason


# -- the tests --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", corpus_files())
def test_every_recorded_body_parses_to_its_expected_result(name: str) -> None:
    body = (CORPUS / name).read_bytes()
    check(fold(events_of(name, body)), expected_of(CORPUS, name))


@pytest.mark.parametrize("name", [n for n in corpus_files() if not n.endswith((".json", ".chunks.txt"))])
def test_every_recorded_stream_split_into_random_pieces_yields_the_same_events(name: str) -> None:
    body = (CORPUS / name).read_bytes()
    whole = events_of(name, body)
    for seed in range(8):
        assert events_of(name, body, random_pieces(body, seed)) == whole, seed
    check(fold(whole), expected_of(CORPUS, name))


def test_any_split_of_any_recorded_stream_yields_the_same_events() -> None:
    streams = [n for n in corpus_files() if not n.endswith((".json", ".chunks.txt"))]
    bodies = {name: (CORPUS / name).read_bytes() for name in streams}
    wholes = {name: events_of(name, body) for name, body in bodies.items()}

    @settings(max_examples=150, deadline=None, derandomize=True)
    @given(name=strategies.sampled_from(streams), data=strategies.data())
    def split_anywhere(name: str, data: Any) -> None:
        body = bodies[name]
        cuts = sorted(data.draw(strategies.sets(strategies.integers(1, max(1, len(body) - 1)), max_size=40)))
        pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)])]
        assert events_of(name, body, pieces) == wholes[name]

    split_anywhere()


SERVED_AS = {  # directory -> model string the end-to-end test uses
    "openai_chat": "openai/recorded",
    "openrouter": "openrouter/recorded",
    "openai_responses": "openai/recorded",
    "anthropic": "anthropic/recorded",
    "gemini": "gemini/recorded",
    "ollama": "ollama/recorded",
}


#: Recorded errors that come before any output and are worth another attempt.
RETRIED_BEFORE_OUTPUT = {"anthropic/error-overloaded.FRAGMENT.txt"}


@pytest.mark.parametrize("name", [n for n in corpus_files() if not n.endswith((".json", ".chunks.txt"))])
def test_every_recorded_stream_end_to_end_through_a_client(
    name: str, server: Any, ledger: minillm.Ledger, sleeps: SleepRecorder
) -> None:
    directory = name.split("/", 1)[0]
    body = (CORPUS / name).read_bytes()
    expected = expected_of(CORPUS, name)
    content_type = "application/x-ndjson" if directory == "ollama" else "text/event-stream"
    policy = minillm.RetryPolicy(sleep=sleeps)
    for _ in range(policy.max_attempts):
        server.reply(Reply(headers=(("Content-Type", content_type),), body=random_pieces(body, 7)))
    client = minillm.Client(
        SERVED_AS[directory],
        base_url=server.url,
        api_key="sk-test",
        on_cost=ledger,
        think_tags=False,
        api=FORMATS[directory][1],
        retry=policy,
        lookup=minillm.LookupPolicy(timeout=0.1, initial_delay=0.0),
    )
    if expected.error is not None:
        with pytest.raises(minillm.StreamError) as caught:
            with client.stream("replay") as stream:
                for _ in stream:
                    pass
        assert expected.error in str(caught.value)
        assert caught.value.partial_text == expected.text
        # A retryable error before any output is sent again until the
        # attempts run out; after output, never. Every attempt had begun
        # its response, so each is booked as failed -- never as exact.
        attempts = policy.max_attempts if name in RETRIED_BEFORE_OUTPUT else 1
        assert len(server.requests) == attempts
        assert len(sleeps.calls) == attempts - 1
        chat_requests = [r for r in server.requests if r.method == "POST"]
        assert len(chat_requests) == attempts
        assert client.flush(timeout=10)
        bookings = [cost for cost, _ in ledger.records]
        assert [cost.attempt for cost in bookings] == list(range(1, attempts + 1))
        assert all(cost.failed and cost.resolution is not minillm.Resolution.RESOLVED for cost in bookings)
        return
    with client.stream("replay") as stream:
        text = "".join(stream.text_stream())
    assert text == expected.text
    response = stream.response
    assert response is not None and response.usage == expected.usage
    assert response.finish_reason == expected.finish_reason
    assert ledger.count == 1
    cost = ledger.records[0][0]
    assert expected.usage is not None and cost.prompt_tokens == expected.usage.prompt_tokens
    if expected.usage.cost is not None:
        assert cost.usd == expected.usage.cost and cost.resolution is minillm.Resolution.RESOLVED
    else:
        assert cost.usd is None and cost.resolution is minillm.Resolution.UNPRICED


def test_an_openrouter_generation_record_parses_to_native_cost_and_tokens() -> None:
    data = json.loads((CORPUS / "openrouter/generation-200.json").read_bytes())
    usage = adapter_for("openrouter/x").parse_lookup(200, data)
    assert usage == minillm.Usage(
        prompt_tokens=11,
        completion_tokens=16,
        total_tokens=27,
        cached_tokens=0,
        reasoning_tokens=19,
        cost=Decimal("0.00000602"),
        upstream_inference_cost=Decimal(0),
        is_byok=False,
    )


def test_a_generation_not_recorded_yet_is_not_an_answer() -> None:
    data = json.loads((CORPUS / "openrouter/generation-404-not-yet-available.json").read_bytes())
    assert adapter_for("openrouter/x").parse_lookup(404, data) is None


def test_an_openrouter_error_envelope_becomes_a_not_found_error_with_its_message() -> None:
    body = (CORPUS / "openrouter/error-404-no-allowed-providers.json").read_bytes()
    error = adapter_for("openrouter/x").api_error(
        404, {"content-type": "application/json"}, body, "https://openrouter.ai/api/v1/chat/completions", Redactor()
    )
    assert isinstance(error, minillm.NotFoundError)
    assert "No allowed providers are available for the selected model." in str(error)
    assert error.body["error"]["metadata"]["requested_providers"] == ["this-provider-does-not-exist-itotori-224"]


def test_an_ollama_error_body_becomes_a_bad_request() -> None:
    body = (CORPUS / "ollama/error-400-model-does-not-support-tools.json").read_bytes()
    error = adapter_for("ollama/x").api_error(400, {}, body, "http://localhost:11434/api/chat", Redactor())
    assert isinstance(error, minillm.BadRequestError)
    assert "does not support tools" in str(error)
