"""The registry and the Chat Completions adapters, without the network."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, Dict, Optional

import pytest

import minillm
from minillm.events import ProviderError
from minillm.providers import PROVIDERS, ProviderConfig, adapter_class, split_model
from minillm.providers.openai_chat import usage_from_chat
from minillm.request import build_chat_request


def adapter(provider: str, **config: Any) -> Any:
    config.setdefault("base_url", "https://example.test/v1")
    return PROVIDERS[provider](ProviderConfig(provider=provider, model="m", **config))


def body_of(provider: str, stream: bool = True, **options: Any) -> Dict[str, Any]:
    request = adapter(provider, api_key="k").build_request(build_chat_request("m", "Hi", **options), stream=stream)
    return json.loads(request.body)  # type: ignore[no-any-return]


def test_the_registry_knows_each_provider_by_its_name() -> None:
    assert sorted(PROVIDERS) == [
        "anthropic", "azure", "bedrock", "cerebras", "deepseek", "fireworks", "gemini", "groq", "local", "mistral",
        "ollama", "openai", "openrouter", "together", "vertex", "xai",
    ]  # fmt: skip
    assert all(cls.name == name for name, cls in PROVIDERS.items())
    assert split_model("openrouter/meta-llama/llama-3-70b") == ("openrouter", "meta-llama/llama-3-70b")
    assert adapter_class("openai", "chat") is PROVIDERS["openai"]


def test_streaming_chat_completions_requests_always_ask_for_usage() -> None:
    from minillm.providers.openai_chat import ChatCompletionsAdapter

    hosts = [name for name, cls in PROVIDERS.items() if issubclass(cls, ChatCompletionsAdapter)]
    assert sorted(hosts) == [
        "azure", "cerebras", "deepseek", "fireworks", "groq", "local", "mistral", "openai", "openrouter", "together",
        "xai",
    ]  # fmt: skip
    # Mistral refuses stream_options (a 422) and sends the usage anyway.
    for provider in (host for host in hosts if host != "mistral"):
        assert body_of(provider)["stream_options"]["include_usage"] is True
        assert "stream_options" not in body_of(provider, stream=False)
    assert "stream_options" not in body_of("mistral")
    # a local engine reports usage on every chunk: a stream cut short still knows its tokens
    assert body_of("local")["stream_options"] == {"include_usage": True, "continuous_usage_stats": True}


@pytest.mark.parametrize(
    ("provider", "budget", "expected"),
    [
        ("openai", 0, {"reasoning_effort": "minimal"}),
        ("openai", 2048, {"reasoning_effort": "low"}),
        ("openai", 8192, {"reasoning_effort": "medium"}),
        ("openai", 20000, {"reasoning_effort": "high"}),
        ("xai", 1024, {"reasoning_effort": "low"}),
        ("xai", 16000, {"reasoning_effort": "high"}),
        ("openrouter", 0, {"reasoning": {"enabled": False}}),
        ("openrouter", 3000, {"reasoning": {"max_tokens": 3000}}),
    ],
)
def test_a_thinking_budget_becomes_each_hosts_own_field(provider: str, budget: int, expected: Dict[str, Any]) -> None:
    body = body_of(provider, thinking_budget=budget)
    for key, value in expected.items():
        assert body[key] == value


def test_xai_completion_tokens_are_made_to_include_reasoning_and_ticks_become_dollars() -> None:
    raw = {
        "prompt_tokens": 213,
        "completion_tokens": 23,
        "total_tokens": 411,
        "prompt_tokens_details": {"cached_tokens": 192},
        "completion_tokens_details": {"reasoning_tokens": 175},
        "cost_in_usd_ticks": 37756000,
    }
    usage = adapter("xai").usage(raw)
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (213, 198, 411)
    assert (usage.cached_tokens, usage.reasoning_tokens) == (192, 175)
    assert usage.cost == Decimal("0.0037756")
    # The same object read as plain OpenAI keeps completion_tokens as sent.
    plain = adapter("openai").usage(raw)
    assert plain is not None and plain.completion_tokens == 23


def usage_of(data: Dict[str, Any]) -> minillm.Usage:
    usage = usage_from_chat(data, reasoning_in_completion=True)
    assert usage is not None
    return usage


def test_deepseek_cache_hits_count_as_cached_tokens() -> None:
    usage = usage_of({"prompt_tokens": 100, "completion_tokens": 5, "prompt_cache_hit_tokens": 64})
    assert (usage.cached_tokens, usage.total_tokens) == (64, 105)


def test_counts_sent_as_numbers_in_any_form_are_read_and_odd_ones_are_zero() -> None:
    usage = usage_of({"prompt_tokens": "12", "completion_tokens": 7.0, "total_tokens": None, "cost": "n/a"})
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens, usage.cost) == (12, 7, 19, None)
    assert usage_of({"prompt_tokens": 3, "completion_tokens": -1}).completion_tokens == 0


@pytest.mark.parametrize(
    "data",
    [{"queue_time": 0.01}, {"prompt_tokens": None, "completion_tokens": None}, {"prompt_tokens": "ten"}, {}],
)
def test_a_usage_object_without_token_counts_is_no_usage_at_all(data: Dict[str, Any]) -> None:
    # Priced, it would be a fake $0.
    assert usage_from_chat(data, reasoning_in_completion=True) is None


def test_openrouter_byok_usage_keeps_both_money_fields() -> None:
    usage = usage_of(
        {"prompt_tokens": 1, "completion_tokens": 1, "cost": 0.0001, "is_byok": True,
         "cost_details": {"upstream_inference_cost": 0.002}}
    )  # fmt: skip
    assert (usage.cost, usage.upstream_inference_cost, usage.is_byok) == (Decimal("0.0001"), Decimal("0.002"), True)


@pytest.mark.parametrize(
    ("error", "status", "overflow"),
    [
        ({"code": 502, "message": "Upstream error"}, 502, False),
        ({"code": 400, "message": "Token limit reached"}, 400, False),
        ({"type": "server_error", "message": "try again"}, 500, False),
        ({"type": "rate_limit_error", "message": "slow down"}, 429, False),
        ({"type": "overloaded_error", "message": "Overloaded"}, 529, False),
        ({"code": "context_length_exceeded", "message": "too long"}, None, True),
        (
            {"error": {"message": "Tool call validation failed", "code": "tool_use_failed", "status_code": 400}},
            400,
            False,
        ),
        ("a bare string", None, False),
    ],
)
def test_in_band_errors_are_classified_through_the_status_and_kind_tables(
    error: Any, status: Optional[int], overflow: bool
) -> None:
    event = adapter("openai").in_band_error(error)
    assert isinstance(event, ProviderError)
    assert (event.status, event.overflow) == (status, overflow)
    assert event.message


def test_the_stream_options_lesson_is_kept_per_base_url_for_every_client() -> None:
    openai = adapter("openai", base_url="http://lesson.test/v1")
    rejection = minillm.BadRequestError("Unknown parameter: 'stream_options'.", status_code=400, body={})
    assert openai.learn_from(rejection) is True
    assert openai.learn_from(rejection) is True  # a racing thread rebuilds too
    fresh = adapter("openai", base_url="http://lesson.test/v1")
    assert "stream_options" not in json.loads(fresh.build_request(build_chat_request("m", "Hi"), stream=True).body)
    elsewhere = adapter("openai", base_url="http://other.test/v1")
    assert "stream_options" in json.loads(elsewhere.build_request(build_chat_request("m", "Hi"), stream=True).body)
    other = minillm.BadRequestError("bad temperature", status_code=400, body={})
    assert adapter("openai").learn_from(other) is False
    assert adapter("openai").learn_from(minillm.ServerError("stream_options", status_code=500)) is False


def test_openrouter_reads_the_generation_id_header() -> None:
    assert adapter("openrouter").generation_id({"x-generation-id": "gen-1"}) == "gen-1"
    assert adapter("openai").generation_id({"x-generation-id": "gen-1"}) is None


def test_hosts_without_a_look_up_say_so() -> None:
    assert PROVIDERS["openrouter"].has_cost_lookup
    assert not PROVIDERS["openai"].has_cost_lookup and not PROVIDERS["xai"].has_cost_lookup
    with pytest.raises(NotImplementedError):
        adapter("openai").lookup_request("gen-1")
