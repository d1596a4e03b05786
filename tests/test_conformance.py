"""Real recorded Chat Completions and OpenRouter bodies parse to what they
must -- in one piece, split into random small pieces, and end to end
through a real loopback server and a Client.

Expected values come from the corpus's EXPECTED.json, in the providers'
own terms; ``expected_usage`` below maps them to minillm's Usage by the
rules of the public contract, independently of the adapter's code.
"""

from __future__ import annotations

import json
import random
from decimal import Decimal
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

import minillm
from minillm.accumulate import StreamState, accumulate
from minillm.providers import PROVIDERS, ProviderConfig
from minillm.redaction import Redactor
from minillm.testing import Reply

SSE_FILES = [
    "openai_chat/parallel-tool-calls-empty-args-include-usage.txt",
    "openai_chat/tool-call-args-split-include-usage.txt",
    "openai_chat/text-usage-then-moderation-chunk.txt",
    "openai_chat/tool-call-args-split-2025-05-no-obfuscation.txt",
    "openai_chat/text-after-tool-result-2025-05.txt",
    "openai_chat/compat-deepseek-reasoning-content.txt",
    "openai_chat/compat-groq-midstream-event-error.txt",
    "openai_chat/compat-groq-usage-in-x_groq.txt",
    "openrouter/midstream-error-token-limit.txt",
    "openrouter/grok-cached-reasoning-comments-midstream.txt",
    "openrouter/reasoning-details-encrypted.txt",
    "openrouter/reasoning-text-stream.txt",
    "openrouter/bedrock-claude-cost-details.txt",
    "openrouter/web-search-annotations.txt",
    "openrouter/novita-tool-call-repeated-name.txt",
    "openrouter/novita-tool-call-split-id-name-args.txt",
]
JSON_FILES = [
    "openai_chat/nonstream-tool-call.json",
    "openai_chat/nonstream-gpt5mini-reasoning-tokens.reserialized.json",
    "openrouter/nonstream-chat-reasoning-only-length.json",
]


def provider_of(name: str) -> str:
    return "openrouter" if name.startswith("openrouter/") else "openai"


def adapter_for(name: str) -> Any:
    provider = provider_of(name)
    return PROVIDERS[provider](ProviderConfig(provider=provider, model="m", base_url="http://127.0.0.1:9"))


def expected_of(corpus: Path, name: str) -> Dict[str, Any]:
    return json.loads((corpus / "EXPECTED.json").read_text("utf-8"))[name]["expected"]  # type: ignore[no-any-return]


def money(value: Any) -> Optional[Decimal]:
    return None if value is None else Decimal(repr(value) if isinstance(value, float) else str(value))


def expected_usage(raw: Dict[str, Any]) -> minillm.Usage:
    details = raw.get("prompt_tokens_details") or {}
    completion_details = raw.get("completion_tokens_details") or {}
    return minillm.Usage(
        prompt_tokens=raw["prompt_tokens"],
        completion_tokens=raw["completion_tokens"],
        total_tokens=raw["total_tokens"],
        cached_tokens=details.get("cached_tokens", 0),
        reasoning_tokens=completion_details.get("reasoning_tokens", 0),
        cost=money(raw.get("cost")),
        upstream_inference_cost=money((raw.get("cost_details") or {}).get("upstream_inference_cost")),
        is_byok=raw.get("is_byok", False),
    )


def expected_tool_calls(raw: Any) -> List[minillm.ToolCall]:
    items = sorted(raw.items(), key=lambda kv: int(kv[0])) if isinstance(raw, dict) else enumerate(raw or [])
    return [minillm.ToolCall(id=c["id"], name=c["name"], arguments=c["arguments"]) for _, c in items]


def random_pieces(body: bytes, seed: int) -> List[bytes]:
    rng = random.Random(seed)
    pieces, at = [], 0
    while at < len(body):
        size = rng.randint(1, 40)
        pieces.append(body[at : at + size])
        at += size
    return pieces


def parse(name: str, pieces: List[bytes]) -> StreamState:
    state = StreamState()
    for event in adapter_for(name).stream_events(pieces):
        accumulate(state, event)
    return state


def check_state(state: StreamState, expected: Dict[str, Any]) -> None:
    assert state.text == (expected["text"] or "")
    assert state.thinking == (expected["reasoning"] or "")
    assert state.tool_calls() == expected_tool_calls(expected["tool_calls"])
    if expected.get("errors"):
        assert state.error is not None
        assert state.error.message == expected["errors"][0]["message"]
        assert not state.is_terminal
        return
    assert state.error is None
    assert state.usage == expected_usage(expected["usage"])
    assert state.done is expected["done"]
    response = state.to_response()
    calls = expected_tool_calls(expected["tool_calls"])
    assert response.finish_reason == (expected["finish_reason"] or ("tool_calls" if calls else "stop"))


@pytest.mark.parametrize("name", SSE_FILES)
def test_recorded_streams_parse_to_their_expected_result(conformance: Path, name: str) -> None:
    body = (conformance / name).read_bytes()
    check_state(parse(name, [body]), expected_of(conformance, name))


@pytest.mark.parametrize("name", SSE_FILES)
def test_recorded_streams_split_into_random_small_pieces_parse_the_same(conformance: Path, name: str) -> None:
    body = (conformance / name).read_bytes()
    expected = expected_of(conformance, name)
    for seed in range(12):
        check_state(parse(name, random_pieces(body, seed)), expected)


@pytest.mark.parametrize("name", JSON_FILES)
def test_recorded_json_bodies_parse_to_their_expected_result(conformance: Path, name: str) -> None:
    data = json.loads((conformance / name).read_bytes())
    state = StreamState()
    for event in adapter_for(name).parse_body(data):
        accumulate(state, event)
    check_state(state, {**expected_of(conformance, name), "done": True})


@pytest.mark.parametrize("name", SSE_FILES)
def test_recorded_streams_end_to_end_through_a_client(
    conformance: Path, name: str, server: Any, ledger: minillm.Ledger
) -> None:
    body = (conformance / name).read_bytes()
    expected = expected_of(conformance, name)
    server.reply(Reply.sse(random_pieces(body, 7), headers=[("Content-Type", "text/event-stream")]))
    client = minillm.Client(
        f"{provider_of(name)}/recorded", base_url=server.url, api_key="sk-test", on_cost=ledger, think_tags=False
    )
    if expected.get("errors"):
        with pytest.raises(minillm.StreamError) as caught, client.stream("replay") as stream:
            for _ in stream:
                pass
        assert expected["errors"][0]["message"] in str(caught.value)
        assert caught.value.partial_text == (expected["text"] or "")
        assert ledger.count == 0
        return
    with client.stream("replay") as stream:
        text = "".join(stream.text_stream())
    assert text == (expected["text"] or "")
    response = stream.response
    assert response is not None and response.usage == expected_usage(expected["usage"])
    assert response.tool_calls == expected_tool_calls(expected["tool_calls"])
    assert ledger.count == 1
    cost = ledger.records[0][0]
    assert cost.prompt_tokens == expected["usage"]["prompt_tokens"]
    native = expected["usage"].get("cost")
    if native is not None:
        assert cost.usd == money(native) and cost.resolution is minillm.Resolution.RESOLVED
    else:
        assert cost.usd is None and cost.resolution is minillm.Resolution.UNPRICED


def test_an_openrouter_generation_record_parses_to_native_cost_and_tokens(conformance: Path) -> None:
    data = json.loads((conformance / "openrouter/generation-200.json").read_bytes())
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


def test_a_generation_not_recorded_yet_is_not_an_answer(conformance: Path) -> None:
    data = json.loads((conformance / "openrouter/generation-404-not-yet-available.json").read_bytes())
    assert adapter_for("openrouter/x").parse_lookup(404, data) is None


def test_an_openrouter_error_envelope_becomes_a_not_found_error_with_its_message(conformance: Path) -> None:
    body = (conformance / "openrouter/error-404-no-allowed-providers.json").read_bytes()
    error = adapter_for("openrouter/x").api_error(
        404, {"content-type": "application/json"}, body, "https://openrouter.ai/api/v1/chat/completions", Redactor()
    )
    assert isinstance(error, minillm.NotFoundError)
    assert "No allowed providers are available for the selected model." in str(error)
    assert error.body["error"]["metadata"]["requested_providers"] == ["this-provider-does-not-exist-itotori-224"]
