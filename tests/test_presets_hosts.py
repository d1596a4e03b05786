"""The OpenAI-compatible presets (DeepSeek, Groq, Mistral, Together,
Fireworks, Cerebras) and Azure OpenAI: where each request goes, with which
key and body, what comes back, and how it is priced.

Most tests talk to the loopback server (``base_url=server.url``); the tests
of the documented default addresses use ``responses``, which intercepts
requests before they reach any network.
"""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from typing import Any, Callable, Dict, Iterator, List, Optional

import attrs
import pytest
import responses

import minillm
from minillm.providers import PROVIDERS, ProviderConfig, adapter_class
from minillm.request import build_chat_request
from minillm.testing import (
    RecordedRequest,
    Reply,
    ScriptedServer,
    chat_chunk,
    chat_completion,
    chat_stream,
    chat_usage,
    responses_stream,
    sse,
)

from .test_secrets import CANARY, assert_clean, everything_about


@attrs.frozen
class Preset:
    provider: str
    #: the model string a client is made with
    model: str
    #: the provider's documented base URL
    base: str
    key_env: str
    base_env: str
    #: the body field that caps the output
    max_tokens_field: str = "max_tokens"
    #: whether a stream asks for usage with stream_options
    asks_for_usage: bool = True

    @property
    def name(self) -> str:
        return self.model.split("/", 1)[1]


PRESETS = [
    Preset("deepseek", "deepseek/deepseek-chat", "https://api.deepseek.com", "DEEPSEEK_API_KEY", "DEEPSEEK_BASE_URL"),
    Preset(
        "groq",
        "groq/llama-3.3-70b-versatile",
        "https://api.groq.com/openai/v1",
        "GROQ_API_KEY",
        "GROQ_BASE_URL",
        max_tokens_field="max_completion_tokens",
    ),
    Preset(
        "mistral",
        "mistral/mistral-small-latest",
        "https://api.mistral.ai/v1",
        "MISTRAL_API_KEY",
        "MISTRAL_BASE_URL",
        asks_for_usage=False,
    ),
    Preset(
        "together",
        "together/meta-llama/Llama-3.3-70B-Instruct-Turbo",
        "https://api.together.xyz/v1",
        "TOGETHER_API_KEY",
        "TOGETHER_BASE_URL",
    ),
    Preset(
        "fireworks",
        "fireworks/accounts/fireworks/models/gpt-oss-120b",
        "https://api.fireworks.ai/inference/v1",
        "FIREWORKS_API_KEY",
        "FIREWORKS_BASE_URL",
    ),
    Preset(
        "cerebras",
        "cerebras/llama3.1-8b",
        "https://api.cerebras.ai/v1",
        "CEREBRAS_API_KEY",
        "CEREBRAS_BASE_URL",
        max_tokens_field="max_completion_tokens",
    ),
]
BY_NAME = {preset.provider: preset for preset in PRESETS}
ids: Callable[[Preset], str] = lambda preset: preset.provider  # noqa: E731

PRICE = minillm.TokenPrice(input_per_mtok="1", output_per_mtok="4", cached_input_per_mtok="0.25")
EPHEMERAL = {"type": "ephemeral"}


def usage(prompt: int, completion: int, **more: Any) -> minillm.Usage:
    return minillm.Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion, **more)


def sse_reply(*events: Any) -> Reply:
    return Reply.sse([sse(event) for event in events] + [sse("[DONE]")])


def body_for(provider: str, stream: bool = True, **options: Any) -> Dict[str, Any]:
    """The body ``provider``'s chat adapter builds, without sending it."""
    messages = options.pop("messages", "Hi")
    adapter = PROVIDERS[provider](ProviderConfig(provider=provider, model="m", base_url="https://h.test", api_key="k"))
    request = adapter.build_request(build_chat_request("m", messages, **options), stream=stream)
    assert request.body is not None
    return json.loads(request.body)  # type: ignore[no-any-return]


# -- the registry ---------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", PRESETS, ids=ids)
def test_each_preset_is_registered_with_its_documented_address_and_variables(preset: Preset) -> None:
    cls = PROVIDERS[preset.provider]
    assert cls.name == preset.provider
    assert cls.default_base() == preset.base
    assert cls.key_env == (preset.key_env,) and cls.base_url_env == preset.base_env
    assert cls.catalog_provider == preset.provider  # genai-prices' id for it
    assert not cls.own_endpoints and not cls.has_cost_lookup


def test_azure_is_registered_with_chat_and_responses() -> None:
    assert adapter_class("azure").name == "azure" and adapter_class("azure").api == "chat"
    assert adapter_class("azure", "responses").api == "responses"
    cls = PROVIDERS["azure"]
    assert cls.key_env == ("AZURE_OPENAI_API_KEY",) and cls.catalog_provider == "azure" and cls.own_endpoints
    assert cls.key_header == ("api-key", "{key}")


# -- the documented addresses, exactly (intercepted by `responses`) ---------------------------------


@pytest.mark.parametrize("preset", PRESETS, ids=ids)
@responses.activate
def test_each_preset_sends_to_its_documented_address_with_a_bearer_key_and_the_body_it_takes(
    preset: Preset,
) -> None:
    url = preset.base + "/chat/completions"
    responses.add(responses.POST, url, json=chat_completion("ok", model=preset.name, usage=chat_usage(10, 2)))
    streamed = b"".join(chat_stream(["Hel", "lo"], model=preset.name, usage=chat_usage(10, 2)))
    responses.add(responses.POST, url, body=streamed, headers={"Content-Type": "text/event-stream"})
    ledger = minillm.Ledger()
    with minillm.Client(preset.model, api_key="sk-test", on_cost=ledger, price=PRICE) as client:
        assert client.complete("Hi", max_tokens=50, temperature=0.5).text == "ok"
        with client.stream("Hi", system="Be brief.", max_tokens=50) as stream:
            assert "".join(stream.text_stream()) == "Hello"
    whole, streaming = (call.request for call in responses.calls)
    for request in (whole, streaming):
        assert request.url == url
        assert request.headers["Authorization"] == "Bearer sk-test"
        assert request.headers["Content-Type"] == "application/json"
    assert json.loads(whole.body or b"") == {
        "model": preset.name,
        "messages": [{"role": "user", "content": "Hi"}],
        preset.max_tokens_field: 50,
        "temperature": 0.5,
    }
    expected: Dict[str, Any] = {
        "model": preset.name,
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        "stream": True,
        preset.max_tokens_field: 50,
    }
    if preset.asks_for_usage:
        expected["stream_options"] = {"include_usage": True}
    assert json.loads(streaming.body or b"") == expected
    assert [cost.usd for cost, _ in ledger.records] == [PRICE.cost(usage(10, 2))] * 2


AZURE_ENDPOINT = "https://my-resource.openai.azure.com"


@responses.activate
def test_azure_sends_to_the_deployment_with_the_ga_version_and_the_api_key_header(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", AZURE_ENDPOINT + "/")
    url = AZURE_ENDPOINT + "/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21"
    responses.add(responses.POST, url, json=chat_completion("ok", usage=chat_usage(5, 1)))
    with minillm.Client("azure/gpt-4o-mini", api_key="az-key", price=PRICE) as client:
        client.complete("Hi", max_tokens=20)
    request = responses.calls[0].request
    assert request.url == url
    assert request.headers["api-key"] == "az-key" and "Authorization" not in request.headers
    assert json.loads(request.body or b"") == {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 20,
    }


@responses.activate
def test_azure_v1_sends_the_deployment_as_the_model_to_the_v1_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", AZURE_ENDPOINT)
    monkeypatch.setenv("AZURE_OPENAI_API_VERSION", "v1")
    url = AZURE_ENDPOINT + "/openai/v1/chat/completions"
    streamed = b"".join(chat_stream(["ok"], usage=chat_usage(5, 1)))
    responses.add(responses.POST, url, body=streamed, headers={"Content-Type": "text/event-stream"})
    with minillm.Client("azure/gpt-5-mini", api_key="az-key", price=PRICE) as client:
        with client.stream("Hi", max_tokens=20) as stream:
            list(stream)
    request = responses.calls[0].request
    assert request.url == url and request.headers["api-key"] == "az-key"
    assert json.loads(request.body or b"") == {
        "model": "gpt-5-mini",
        "messages": [{"role": "user", "content": "Hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_completion_tokens": 20,
    }


# -- streamed and whole answers, on the loopback server --------------------------------------------


def stream_of(preset: Preset) -> Reply:
    """A stream shaped the way ``preset``'s host sends it: 12 prompt tokens
    (4 of them cached), 5 completion tokens, the text "Hello"."""
    if preset.provider == "deepseek":  # usage on the finish chunk, cache hits in DeepSeek's own field
        raw = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17, "prompt_cache_hit_tokens": 4}
        thinking = chat_chunk()
        thinking["choices"][0]["delta"] = {"reasoning_content": "hm"}
        return sse_reply(
            thinking,
            chat_chunk(content="Hello"),
            chat_chunk(content="", finish_reason="stop", usage=raw),
        )
    if preset.provider == "groq":  # the older shape: usage in x_groq on the finish chunk
        finish = chat_chunk(content=None, finish_reason="stop") | {
            "x_groq": {"id": "req_1", "usage": {**chat_usage(12, 5, cached_tokens=4), "queue_time": 0.01}},
            "service_tier": "on_demand",
        }
        return sse_reply(chat_chunk(content="Hello"), finish)
    if preset.provider == "mistral":  # usage in the last chunk, unasked; the finish on an empty delta
        return sse_reply(
            chat_chunk(content="Hel"),
            chat_chunk(content="lo"),
            chat_chunk(content="", finish_reason="stop", usage=chat_usage(12, 5, cached_tokens=4)),
        )
    if preset.provider == "together":  # "eos", and the last token's text on the usage chunk
        last = chat_chunk(content="lo", finish_reason="eos", usage=chat_usage(12, 5, cached_tokens=4))
        last["choices"][0]["text"] = "lo"
        return sse_reply(chat_chunk(content="Hel"), last)
    if preset.provider == "cerebras":  # reasoning as `reasoning`, time_info beside the usage
        last = chat_chunk(content="", finish_reason="stop", usage=chat_usage(12, 5, cached_tokens=4))
        last["time_info"] = {"queue_time": 0.001, "total_time": 0.2}
        return sse_reply(chat_chunk(reasoning="hm"), chat_chunk(content="Hello"), last)
    # fireworks: the usage on a choices: [] chunk after the finish, as OpenAI does
    return Reply.sse(chat_stream(["Hel", "lo"], usage=chat_usage(12, 5, cached_tokens=4)))


THINKS = {"deepseek": "hm", "cerebras": "hm"}


@pytest.mark.parametrize("preset", PRESETS, ids=ids)
def test_each_presets_stream_is_read_and_its_usage_normalised_and_priced(
    preset: Preset, server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(stream_of(preset))
    client = make_client(preset.model, api_key="k", price=PRICE)
    with client.stream("Hi") as stream:
        assert "".join(stream.text_stream()) == "Hello"
    request = server.requests[0]
    assert request.path == "/chat/completions" and request.headers["authorization"] == "Bearer k"
    assert request.json()["model"] == preset.name
    assert ("stream_options" in request.json()) is preset.asks_for_usage
    response = stream.response
    assert response is not None and response.finish_reason == "stop"
    assert response.thinking == THINKS.get(preset.provider, "")
    tier = "on_demand" if preset.provider == "groq" else None
    assert response.usage == usage(12, 5, cached_tokens=4, service_tier=tier)
    cost = ledger.records[0][0]
    assert cost.resolution is minillm.Resolution.RESOLVED and cost.source == "price"
    # 8 uncached input tokens at $1, 4 cached at $0.25 and 5 output at $4 per million
    assert cost.usd == PRICE.cost(usage(12, 5, cached_tokens=4)) == Decimal("0.000029")
    assert (cost.provider, cost.model, cost.service_tier) == (preset.provider, preset.name, tier)


@pytest.mark.parametrize("preset", PRESETS, ids=ids)
def test_each_presets_whole_answer_is_read_and_priced(
    preset: Preset, server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    body = chat_completion("Hello", usage=chat_usage(12, 5, reasoning_tokens=2), finish_reason="length")
    server.reply(Reply.json(body))
    response = make_client(preset.model, api_key="k", price=PRICE).complete("Hi")
    assert (response.text, response.finish_reason) == ("Hello", "length")
    assert response.usage == usage(12, 5, reasoning_tokens=2)
    assert ledger.records[0][0].usd == PRICE.cost(usage(12, 5))
    assert "stream" not in server.requests[0].json()


def test_groqs_usage_on_a_chunk_of_its_own_is_read_too(
    server: ScriptedServer, make_client: Callable[..., minillm.Client]
) -> None:
    # Newer Groq streams answer stream_options like OpenAI.
    server.reply(Reply.sse(chat_stream(["Hi"], usage=chat_usage(3, 1))))
    with make_client("groq/llama-3.3-70b-versatile", api_key="k") as client:
        with client.stream("Hi") as stream:
            list(stream)
    assert stream.response is not None and stream.response.usage == usage(3, 1)


def test_mistrals_reasoning_parts_become_thinking(
    server: ScriptedServer, make_client: Callable[..., minillm.Client]
) -> None:
    thinking = {"type": "thinking", "thinking": [{"type": "text", "text": "Let me see."}]}
    first = chat_chunk(content=None) | {"choices": [{"index": 0, "delta": {"content": [thinking]}}]}
    server.reply(sse_reply(first, chat_chunk(content="4", finish_reason="stop", usage=chat_usage(3, 9))))
    with make_client("mistral/magistral-small-latest", api_key="k").stream("2+2?") as stream:
        list(stream)
    assert stream.response is not None
    assert (stream.response.thinking, stream.response.text) == ("Let me see.", "4")


# -- what each host is sent, and what it is spared --------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "budget", "expected"),
    [
        ("deepseek", 0, {"thinking": {"type": "disabled"}}),
        ("deepseek", 1024, {"thinking": {"type": "enabled"}, "reasoning_effort": "low"}),
        ("deepseek", 16000, {"thinking": {"type": "enabled"}, "reasoning_effort": "high"}),
        ("groq", 0, {"reasoning_effort": "none"}),
        ("groq", 4000, {"reasoning_effort": "medium"}),
        ("mistral", 0, {"reasoning_effort": "none"}),
        ("mistral", 500, {"reasoning_effort": "high"}),
        ("together", 0, {"reasoning": {"enabled": False}}),
        ("together", 20000, {"reasoning_effort": "high"}),
        ("fireworks", 0, {"reasoning_effort": "none"}),
        ("fireworks", 1000, {"reasoning_effort": "low"}),
        ("cerebras", 0, {"reasoning_effort": "none"}),
        ("cerebras", 9000, {"reasoning_effort": "high"}),
        ("azure", 0, {"reasoning_effort": "minimal"}),
        ("azure", 5000, {"reasoning_effort": "medium"}),
        ("openai", 0, {"reasoning_effort": "minimal"}),  # unchanged by the hosts' "none"
    ],
)
def test_a_thinking_budget_becomes_each_hosts_own_knob(provider: str, budget: int, expected: Dict[str, Any]) -> None:
    body = body_for(provider, thinking_budget=budget)
    assert {k: body[k] for k in ("thinking", "reasoning", "reasoning_effort") if k in body} == expected


def conversation() -> List[Dict[str, Any]]:
    """A conversation with everything a strict host may refuse: a cache
    marker on a content part and an assistant turn with reasoning records."""
    return [
        {"role": "system", "content": [{"type": "text", "text": "Long rules.", "cache_control": EPHEMERAL}]},
        {"role": "user", "content": [{"type": "text", "text": "Hi", "cache_control": EPHEMERAL}, "plain"]},
        {"role": "assistant", "content": "Hello", "reasoning_details": [{"type": "reasoning.text", "text": "hm"}]},
        {"role": "user", "content": "Again"},
    ]


@pytest.mark.parametrize("provider", [*(p.provider for p in PRESETS), "azure"])
def test_no_cache_marker_or_reasoning_record_reaches_a_host_that_would_refuse_it(provider: str) -> None:
    messages = conversation()
    tool = {"type": "function", "function": {"name": "f", "parameters": {}}, "cache_control": EPHEMERAL}
    body = body_for(provider, messages=messages, tools=[tool])
    assert "cache_control" not in json.dumps(body) and "reasoning_details" not in json.dumps(body)
    assert body["messages"][0]["content"] == [{"type": "text", "text": "Long rules."}]
    assert body["messages"][1]["content"] == [{"type": "text", "text": "Hi"}, "plain"]
    assert messages == conversation()  # the caller's messages are left as they were


def test_hosts_that_take_cache_markers_still_get_them() -> None:
    body = body_for("openrouter", messages=conversation())
    assert body["messages"][1]["content"][0]["cache_control"] == EPHEMERAL
    assert body["messages"][2]["reasoning_details"] == [{"type": "reasoning.text", "text": "hm"}]


def test_mistral_is_sent_only_fields_it_knows() -> None:
    body = body_for("mistral", max_tokens=10, temperature=0.2, stop=["\n"], tool_choice="auto",
                    tools=[{"name": "f", "parameters": {"type": "object", "properties": {}}}])  # fmt: skip
    assert set(body) == {"model", "messages", "stream", "max_tokens", "temperature", "stop", "tools", "tool_choice"}
    assert "stream_options" not in body_for("mistral")


@pytest.mark.parametrize(
    ("name", "catalog_name"),
    [
        ("accounts/fireworks/models/gpt-oss-120b", "accounts/fireworks/models/gpt-oss-120b"),
        ("gpt-oss-120b", "accounts/fireworks/models/gpt-oss-120b"),
        ("accounts/fireworks/routers/kimi-k2p6-fast", "accounts/fireworks/routers/kimi-k2p6-fast"),
        ("accounts/me/models/my-fine-tune", "accounts/me/models/my-fine-tune"),
    ],
)
def test_fireworks_models_are_looked_up_in_the_catalog_by_their_full_path(name: str, catalog_name: str) -> None:
    assert PROVIDERS["fireworks"].catalog_model(name) == catalog_name


# -- the environment --------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", PRESETS, ids=ids)
def test_each_presets_key_and_base_url_come_from_its_environment_variables(
    preset: Preset, server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(preset.key_env, "env-key")
    monkeypatch.setenv(preset.base_env, server.url + "/")
    server.reply(Reply.json(chat_completion("ok")))
    with minillm.Client(preset.model) as client:
        assert client.base_url == server.url
        client.complete("Hi")
    assert server.requests[0].path == "/chat/completions"
    assert server.requests[0].headers["authorization"] == "Bearer env-key"


@pytest.mark.parametrize("preset", PRESETS, ids=ids)
def test_a_preset_without_a_key_names_the_variable_to_set(preset: Preset) -> None:
    with pytest.raises(minillm.ConfigurationError, match=f"set {preset.key_env}"):
        minillm.Client(preset.model).complete("Hi")


def test_azure_without_an_endpoint_names_the_variable_to_set() -> None:
    with pytest.raises(minillm.ConfigurationError, match="AZURE_OPENAI_ENDPOINT"):
        minillm.Client("azure/gpt-4o", api_key="k").complete("Hi")


def test_azure_without_a_key_names_the_variable_to_set(server: ScriptedServer) -> None:
    # Every Azure endpoint is Azure's own service: a key is always needed.
    with pytest.raises(minillm.ConfigurationError, match="AZURE_OPENAI_API_KEY"):
        minillm.Client("azure/gpt-4o", base_url=server.url).complete("Hi")


def test_azure_unconfigured_as_a_fallback_leaves_the_client_usable(
    server: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.reply(Reply.json(chat_completion("ok")))
    with caplog.at_level(logging.WARNING):
        client = minillm.Client("openai/m", base_url=server.url, fallbacks=["azure/gpt-4o"])
    assert client.complete("Hi").text == "ok"
    assert "AZURE_OPENAI_ENDPOINT" in caplog.text


def test_azures_key_endpoint_and_version_come_from_the_environment(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "env-key")
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", server.url)
    monkeypatch.setenv("OPENAI_API_VERSION", "2025-04-01-preview")
    server.reply(Reply.json(chat_completion("ok")), Reply.json(chat_completion("ok")))
    minillm.Client("azure/gpt-4o").complete("Hi")
    monkeypatch.setenv("AZURE_OPENAI_API_VERSION", "2024-12-01-preview")  # wins over OPENAI_API_VERSION
    minillm.Client("azure/gpt-4o").complete("Hi")
    first, second = server.requests
    assert first.path == second.path == "/openai/deployments/gpt-4o/chat/completions"
    assert first.query == {"api-version": ["2025-04-01-preview"]}
    assert second.query == {"api-version": ["2024-12-01-preview"]}
    assert first.headers["api-key"] == "env-key" and "authorization" not in first.headers


@pytest.mark.parametrize("version", ["2024-10-21&x=1", "v1/../x", "2024 10 21"])
def test_an_api_version_that_cannot_stand_in_a_url_is_refused(
    version: str, server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_OPENAI_API_VERSION", version)
    with pytest.raises(minillm.ConfigurationError, match="AZURE_OPENAI_API_VERSION"):
        minillm.Client("azure/gpt-4o", api_key="k", base_url=server.url)


# -- Azure on the loopback server ----------------------------------------------------------------------


@pytest.fixture
def azure(server: ScriptedServer, ledger: minillm.Ledger) -> Iterator[Callable[..., minillm.Client]]:
    made: List[minillm.Client] = []

    def make(deployment: str = "gpt-4o-mini", base_url: Optional[str] = None, **kwargs: Any) -> minillm.Client:
        client = minillm.Client(
            f"azure/{deployment}", api_key="az-key", base_url=base_url or server.url, on_cost=ledger, **kwargs
        )
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.mark.parametrize("suffix", ["", "/", "/openai", "/openai/v1/"])
def test_azure_takes_the_resource_url_with_or_without_the_apis_own_path(
    suffix: str, server: ScriptedServer, azure: Callable[..., minillm.Client]
) -> None:
    server.reply(Reply.json(chat_completion("ok")))
    azure(base_url=server.url + suffix).complete("Hi")
    assert server.requests[0].path == "/openai/deployments/gpt-4o-mini/chat/completions"
    assert server.requests[0].query == {"api-version": ["2024-10-21"]}


def test_azure_streams_starting_with_the_prompt_filter_results_are_read(
    server: ScriptedServer, azure: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    filters = {"hate": {"filtered": False, "severity": "safe"}}
    opening = {"choices": [], "created": 0, "id": "", "model": "", "object": "",
               "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": filters}]}  # fmt: skip
    text = chat_chunk(id="chatcmpl-az", model="gpt-4o-mini-2024-07-18", content="Hi there")
    text["choices"][0]["content_filter_results"] = filters
    finish = chat_chunk(id="chatcmpl-az", model="gpt-4o-mini-2024-07-18", content=None, finish_reason="stop")
    tail = chat_chunk(id="chatcmpl-az", usage=chat_usage(9, 2), choices=False)
    server.reply(sse_reply(opening, text, finish, tail))
    with azure(price=PRICE).stream("Hi") as stream:
        assert "".join(stream.text_stream()) == "Hi there"
    assert stream.id == "chatcmpl-az" and stream.response is not None
    assert (stream.response.model, stream.response.usage) == ("gpt-4o-mini-2024-07-18", usage(9, 2))
    assert server.requests[0].json()["stream_options"] == {"include_usage": True}
    assert ledger.records[0][0].usd == PRICE.cost(usage(9, 2))


def test_azure_v1_and_responses_use_the_v1_paths_with_the_deployment_in_the_body(
    server: ScriptedServer, azure: Callable[..., minillm.Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_OPENAI_API_VERSION", "v1")
    server.reply(Reply.json(chat_completion("ok")))
    server.reply(Reply.sse(responses_stream(["Hel", "lo"], model="gpt-5-mini")), path="/openai/v1/responses")
    azure("gpt-5-mini").complete("Hi", max_tokens=30)
    with azure("gpt-5-mini", api="responses").stream("Hi", max_tokens=30) as stream:
        assert "".join(stream.text_stream()) == "Hello"
    chat, responses_ = server.requests
    assert (chat.path, chat.query) == ("/openai/v1/chat/completions", {})
    assert chat.json()["model"] == "gpt-5-mini" and chat.json()["max_completion_tokens"] == 30
    assert (responses_.path, responses_.query) == ("/openai/v1/responses", {})
    assert responses_.json()["model"] == "gpt-5-mini" and responses_.json()["max_output_tokens"] == 30
    assert responses_.headers["api-key"] == "az-key" and "authorization" not in responses_.headers


def test_azures_responses_api_is_the_v1_one_whatever_the_version(
    server: ScriptedServer, azure: Callable[..., minillm.Client]
) -> None:
    # The dated GA version has no Responses API.
    server.reply(Reply.sse(responses_stream(["ok"])))
    with azure(api="responses").stream("Hi") as stream:
        list(stream)
    assert (server.requests[0].path, server.requests[0].query) == ("/openai/v1/responses", {})


@pytest.mark.parametrize("deployment", ["gpt-4o-mini", "my_gpt4o.v2", "GPT-4o-2024-08-06"])
def test_azure_deployment_names_go_in_the_path(
    deployment: str, server: ScriptedServer, azure: Callable[..., minillm.Client]
) -> None:
    server.reply(Reply.json(chat_completion("ok")))
    azure(deployment).complete("Hi")
    assert server.requests[0].path == f"/openai/deployments/{deployment}/chat/completions"


@pytest.mark.parametrize("deployment", ["a/b", "../x", "x?api-version=1", "a#b", ".."])
def test_an_azure_deployment_name_that_would_change_the_url_is_refused(deployment: str) -> None:
    with pytest.raises(minillm.ConfigurationError, match="cannot be part of a URL"):
        minillm.Client(f"azure/{deployment}", api_key="k", base_url="https://r.openai.azure.com")


# -- prices from the catalog -------------------------------------------------------------------------


@pytest.fixture
def genai_prices() -> Any:
    return pytest.importorskip("genai_prices", reason="genai-prices (minillm[prices]) needs Python 3.11+")


@pytest.fixture
def _catalog_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MINILLM_PRICE_CATALOG", raising=False)


def list_price(genai_prices: Any, model: str, provider: str, used: minillm.Usage) -> Decimal:
    counted = genai_prices.Usage(
        input_tokens=used.prompt_tokens, cache_read_tokens=used.cached_tokens, output_tokens=used.completion_tokens
    )
    context = {"service_tier": used.service_tier} if used.service_tier else None
    price = genai_prices.calc_price(counted, model, provider_id=provider, price_context=context)
    return Decimal(str(price.total_price))


CATALOGUED = [
    ("deepseek/deepseek-chat", "deepseek-chat", None),
    ("groq/llama-3.3-70b-versatile", "llama-3.3-70b-versatile", "on_demand"),
    ("mistral/mistral-small-latest", "mistral-small-latest", None),
    ("together/meta-llama/Llama-3.3-70B-Instruct-Turbo", "meta-llama/Llama-3.3-70B-Instruct-Turbo", None),
    ("fireworks/accounts/fireworks/models/gpt-oss-120b", "accounts/fireworks/models/gpt-oss-120b", None),
    ("fireworks/gpt-oss-120b", "accounts/fireworks/models/gpt-oss-120b", None),
    ("cerebras/llama3.1-8b", "llama3.1-8b", None),
]


@pytest.mark.usefixtures("_catalog_on")
@pytest.mark.parametrize(("model", "catalog_name", "tier"), CATALOGUED, ids=[m for m, _, _ in CATALOGUED])
@responses.activate
def test_each_presets_own_service_is_priced_from_the_catalog(
    model: str, catalog_name: str, tier: Optional[str], genai_prices: Any
) -> None:
    provider, _, name = model.partition("/")
    body = chat_completion("ok", model=name, usage=chat_usage(1000, 100, cached_tokens=200))
    if tier:
        body["service_tier"] = tier
    responses.add(responses.POST, BY_NAME[provider].base + "/chat/completions", json=body)
    ledger = minillm.Ledger()
    with minillm.Client(model, api_key="k", on_cost=ledger) as client:
        client.complete("Hi")
    cost = ledger.records[0][0]
    used = usage(1000, 100, cached_tokens=200, service_tier=tier)
    assert cost.resolution is minillm.Resolution.RESOLVED and cost.source == "catalog"
    assert cost.usd == list_price(genai_prices, catalog_name, provider, used) and cost.usd > 0


@pytest.mark.usefixtures("_catalog_on", "genai_prices")
def test_a_compatible_server_serving_a_presets_model_is_not_priced_from_the_catalog(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(Reply.json(chat_completion("ok", usage=chat_usage(1000, 100))))
    make_client("groq/llama-3.3-70b-versatile").complete("Hi")
    cost = ledger.records[0][0]
    assert cost.resolution is minillm.Resolution.UNPRICED and cost.usd is None


@pytest.mark.usefixtures("_catalog_on")
def test_every_azure_endpoint_is_priced_from_the_catalog_by_deployment_name(
    genai_prices: Any, azure: Callable[..., minillm.Client], server: ScriptedServer, ledger: minillm.Ledger
) -> None:
    # The loopback server stands in for a resource: all of them are Azure's own.
    server.reply(Reply.json(chat_completion("ok", usage=chat_usage(1000, 100, cached_tokens=200))))
    server.reply(Reply.json(chat_completion("ok", usage=chat_usage(1000, 100))))
    azure("gpt-4o-mini").complete("Hi")
    azure("my-own-name").complete("Hi")  # not a model's name: the catalog cannot know it
    named, unnamed = (cost for cost, _ in ledger.records)
    assert named.source == "catalog"
    assert named.usd == list_price(genai_prices, "gpt-4o-mini", "azure", usage(1000, 100, cached_tokens=200))
    assert unnamed.resolution is minillm.Resolution.UNPRICED and unnamed.usd is None


# -- no credential anywhere --------------------------------------------------------------------------


def echo_key(request: RecordedRequest) -> Reply:
    seen = request.headers.get("authorization") or request.headers.get("api-key") or ""
    return Reply.json({"error": {"message": f"Incorrect API key provided: {seen}"}}, status=401)


@pytest.mark.parametrize("model", [*(p.model for p in PRESETS), "azure/gpt-4o"])
def test_no_key_appears_in_any_url_error_repr_or_log_line(
    model: str, server: ScriptedServer, caplog: pytest.LogCaptureFixture, sleeps: Any
) -> None:
    path = "/openai/deployments/gpt-4o/chat/completions" if model.startswith("azure/") else "/chat/completions"
    server.route("POST", path, echo_key)
    with caplog.at_level(logging.DEBUG):
        client = minillm.Client(model, api_key=CANARY, base_url=server.url, retry=minillm.RetryPolicy(sleep=sleeps))
        with pytest.raises(minillm.AuthenticationError) as caught:
            client.complete("Hi")
        server.reply(Reply.sse(chat_stream(["ok"], usage=chat_usage(1, 1))), path=path)
        with client.stream("Hi") as stream:
            list(stream)
    assert all(CANARY[3:] not in r.path and CANARY[3:] not in json.dumps(r.query) for r in server.requests)
    assert_clean(
        everything_about(caught.value),
        str(caught.value.body),
        caplog.text,
        repr(client),
        repr(stream),
        repr(stream.response),
        repr(stream.cost),
        repr(client._routes[0].adapter.config),
    )
    assert "***" in str(caught.value)
