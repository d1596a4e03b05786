"""Counting a prompt's tokens before sending it: each provider's counting
endpoint against the loopback server (the body it is sent, the count it
answers), the estimate where there is none, and errors."""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, List

import pytest

import minillm
from minillm.accounting.budget import estimate_prompt_tokens
from minillm.providers import PROVIDERS
from minillm.request import build_chat_request
from minillm.testing import Reply, ScriptedServer, anthropic_stream, chat_completion

TOOLS = [{"name": "lookup", "description": "Look it up", "parameters": {"type": "object", "properties": {}}}]
MESSAGES: List[Dict[str, Any]] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "How many tokens is this?"},
]


def test_anthropic_counts_with_the_messages_body_without_its_output_settings(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(Reply.json({"input_tokens": 42}))
    client = make_client("anthropic/claude-test", api_key="sk-ant-test")
    tokens = client.count_tokens(MESSAGES, tools=TOOLS, max_tokens=300, temperature=0.2, stop=["END"])
    assert tokens == 42
    request = server.requests[0]
    assert (request.method, request.path) == ("POST", "/v1/messages/count_tokens")
    assert request.headers["x-api-key"] == "sk-ant-test" and request.headers["anthropic-version"] == "2023-06-01"
    body = request.json()
    assert set(body) == {"model", "messages", "system", "tools"}
    assert body["model"] == "claude-test" and body["system"] == "Be brief."
    assert body["tools"][0]["name"] == "lookup"
    assert ledger.count == 0  # a count is never billed, and never booked


def test_a_thinking_budget_is_counted_at_anthropic(
    server: ScriptedServer, make_client: Callable[..., minillm.Client]
) -> None:
    server.reply(Reply.json({"input_tokens": 9}))
    make_client("anthropic/claude-test", api_key="k").count_tokens("Hi", thinking_budget=2000)
    assert server.requests[0].json()["thinking"] == {"type": "enabled", "budget_tokens": 2000}


def test_openai_counts_chat_messages_through_the_responses_input_tokens_endpoint(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(PROVIDERS["openai"], "default_base_url", server.url)
    server.reply(Reply.json({"object": "response.input_tokens", "input_tokens": 17}))
    client = make_client("openai/gpt-test", api_key="sk-test", base_url=None)
    assert client.count_tokens(MESSAGES, tools=TOOLS, max_tokens=50, stop="END") == 17
    request = server.requests[0]
    assert request.path == "/responses/input_tokens" and request.headers["authorization"] == "Bearer sk-test"
    body = request.json()
    assert set(body) == {"model", "input", "instructions", "tools"}
    assert body["instructions"] == "Be brief."
    assert body["input"] == [{"role": "user", "content": [{"type": "input_text", "text": "How many tokens is this?"}]}]


def test_a_compatible_server_is_not_asked_to_count_the_estimate_is_returned(
    server: ScriptedServer, make_client: Callable[..., minillm.Client]
) -> None:
    client = make_client("openai/local-model")  # base_url is the loopback server: not OpenAI's own
    tokens = client.count_tokens(MESSAGES)
    assert tokens == estimate_prompt_tokens(build_chat_request("local-model", MESSAGES))
    assert server.requests == []


def test_gemini_counts_the_whole_request_as_a_generate_content_request(
    server: ScriptedServer, make_client: Callable[..., minillm.Client]
) -> None:
    server.reply(Reply.json({"totalTokens": 31, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 31}]}))
    client = make_client("gemini/gemini-test", api_key="AIza-test-key")
    assert client.count_tokens(MESSAGES, tools=TOOLS, max_tokens=10) == 31
    request = server.requests[0]
    assert request.path == "/models/gemini-test:countTokens"
    assert request.headers["x-goog-api-key"] == "AIza-test-key" and "key=" not in request.path
    inner = request.json()["generateContentRequest"]
    assert inner["model"] == "models/gemini-test"
    assert set(inner) == {"model", "contents", "systemInstruction", "tools"}  # no generationConfig
    assert inner["systemInstruction"] == {"parts": [{"text": "Be brief."}]}


def test_vertex_counts_gemini_and_claude_at_their_own_endpoints(
    server: ScriptedServer, make_client: Callable[..., minillm.Client]
) -> None:
    server.reply(Reply.json({"totalTokens": 5}), Reply.json({"input_tokens": 6}))
    gemini = make_client("vertex/gemini-2.5-flash", api_key="ya29.token")
    claude = make_client("vertex/claude-sonnet-4-5@20250929", api_key="ya29.token")
    assert gemini.count_tokens("Hi") == 5 and claude.count_tokens("Hi") == 6
    first, second = server.requests
    assert first.path == "/publishers/google/models/gemini-2.5-flash:countTokens"
    assert set(first.json()) == {"contents"}  # Vertex takes the fields themselves
    assert second.path == "/publishers/anthropic/models/count-tokens:rawPredict"
    body = second.json()
    assert body["model"] == "claude-sonnet-4-5@20250929" and body["anthropic_version"] == "vertex-2023-10-16"
    assert "max_tokens" not in body
    assert first.headers["authorization"] == "Bearer ya29.token"


def test_bedrock_counts_a_converse_input(server: ScriptedServer, make_client: Callable[..., minillm.Client]) -> None:
    server.reply(Reply.json({"inputTokens": 12}))
    client = make_client("bedrock/anthropic.claude-haiku-4-5-20251001-v1:0", api_key="bedrock-key")
    assert client.count_tokens(MESSAGES, max_tokens=20) == 12
    request = server.requests[0]
    assert request.path == "/model/anthropic.claude-haiku-4-5-20251001-v1%3A0/count-tokens"
    converse = request.json()["input"]["converse"]
    assert set(converse) == {"messages", "system"}  # inferenceConfig is the output's
    assert converse["system"] == [{"text": "Be brief."}]


@pytest.mark.parametrize("model", ["ollama/llama3", "openrouter/anthropic/claude-haiku-4.5", "xai/grok-test"])
def test_providers_without_a_counting_endpoint_give_the_budget_estimate(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], model: str
) -> None:
    client = make_client(model, api_key="k")
    assert client.count_tokens(MESSAGES, tools=TOOLS) == estimate_prompt_tokens(
        build_chat_request(client.model_name, MESSAGES, tools=TOOLS)
    )
    assert server.requests == []


def test_a_refused_count_raises_the_providers_error_without_the_key(
    server: ScriptedServer, make_client: Callable[..., minillm.Client]
) -> None:
    error = {"type": "error", "error": {"type": "authentication_error", "message": "bad sk-ant-secret"}}
    server.reply(Reply.json(error, status=401))
    client = make_client("anthropic/claude-test", api_key="sk-ant-secret")
    with pytest.raises(minillm.AuthenticationError) as caught:
        client.count_tokens("Hi")
    assert "sk-ant-secret" not in str(caught.value) and "sk-ant-secret" not in repr(caught.value.body)
    assert len(server.requests) == 1  # a count is not retried


def test_an_answer_without_a_count_is_a_malformed_response(
    server: ScriptedServer, make_client: Callable[..., minillm.Client]
) -> None:
    server.reply(Reply.json({"tokens": "many"}))
    with pytest.raises(minillm.MalformedResponseError, match="no token count"):
        make_client("anthropic/claude-test", api_key="k").count_tokens("Hi")


def test_options_complete_does_not_take_are_refused_before_anything_is_sent(
    server: ScriptedServer, make_client: Callable[..., minillm.Client]
) -> None:
    client = make_client("anthropic/claude-test", api_key="k")
    with pytest.raises(minillm.InvalidArgumentError, match="max_token"):
        client.count_tokens("Hi", max_token=5)
    with pytest.raises(minillm.InvalidArgumentError, match="empty"):
        client.count_tokens("")
    assert server.requests == []


def test_an_unreachable_provider_is_a_connection_error(make_client: Callable[..., minillm.Client]) -> None:
    client = make_client("anthropic/claude-test", api_key="k", base_url="http://127.0.0.1:9")
    with pytest.raises(minillm.APIConnectionError):
        client.count_tokens("Hi")


# -- exact budget holds -------------------------------------------------------

#: $1 and $10 per million tokens: a 1,000-token prompt with 100 tokens out
#: may cost $0.002 at most.
BUDGET_PRICE = minillm.TokenPrice(input_per_mtok="1", output_per_mtok="10")
COUNT_PATH = "/v1/messages/count_tokens"
ANSWER = Reply.sse(anthropic_stream(["ok"], input_tokens=1000))


def budgeted(make_client: Callable[..., minillm.Client], limit: str, **budget: Any) -> minillm.Client:
    return make_client(
        "anthropic/claude-test",
        api_key="k",
        price=BUDGET_PRICE,
        budget=minillm.Budget(minillm.Ledger(), limit, **budget),
    )


def ask(client: minillm.Client) -> None:
    with client.stream("Hi", max_tokens=100) as stream:
        list(stream)


def test_an_exact_hold_refuses_a_prompt_the_estimate_would_have_let_through(
    server: ScriptedServer, make_client: Callable[..., minillm.Client]
) -> None:
    # "Hi" is estimated at a few tokens; the provider counts 1,000 (a
    # large cached system prompt, images, ...): $0.002 does not fit $0.0015.
    server.reply(Reply.json({"input_tokens": 1000}), path=COUNT_PATH)
    server.reply(ANSWER, path="/v1/messages")
    with pytest.raises(minillm.BudgetExceeded):
        ask(budgeted(make_client, "0.0015", exact_holds=True))
    assert [r.path for r in server.requests] == [COUNT_PATH]  # counted, never sent
    ask(budgeted(make_client, "0.0015"))  # the estimate lets it through
    assert [r.path for r in server.requests] == [COUNT_PATH, "/v1/messages"]


def test_an_exact_hold_counts_once_before_the_send_and_the_booking_replaces_it(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(Reply.json({"input_tokens": 1000}), path=COUNT_PATH)
    server.reply(
        Reply.json({"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}, status=529),
        ANSWER,
        path="/v1/messages",
    )
    client = budgeted(make_client, "0.0025", exact_holds=True)
    ask(client)
    assert [r.path for r in server.requests] == [COUNT_PATH, "/v1/messages", "/v1/messages"]
    budget = client._config.budget
    assert budget is not None
    assert budget.spent() == ledger.total()  # nothing is held once it is booked
    assert ledger.count == 1  # the count books nothing; the refused attempt books nothing


def test_a_failed_count_holds_the_estimate_and_says_so(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], caplog: pytest.LogCaptureFixture
) -> None:
    server.reply(
        Reply.json({"error": {"type": "not_found_error", "message": "no counting"}}, status=404), path=COUNT_PATH
    )
    server.reply(ANSWER, path="/v1/messages")
    with caplog.at_level(logging.WARNING, logger="minillm.client"):
        ask(budgeted(make_client, "0.0015", exact_holds=True))
    assert [r.path for r in server.requests] == [COUNT_PATH, "/v1/messages"]
    assert any("holds the estimate" in r.getMessage() and "NotFoundError" in r.getMessage() for r in caplog.records)


def test_a_provider_without_a_counting_endpoint_holds_the_estimate(
    server: ScriptedServer, make_client: Callable[..., minillm.Client]
) -> None:
    server.reply(Reply.json(chat_completion("ok", model="local-model")))
    client = make_client(
        "openai/local-model", price=BUDGET_PRICE, budget=minillm.Budget(minillm.Ledger(), "1", exact_holds=True)
    )
    client.complete("Hi", max_tokens=5)
    assert [r.path for r in server.requests] == ["/chat/completions"]


def test_exact_holds_must_be_a_bool() -> None:
    with pytest.raises(minillm.InvalidArgumentError, match="exact_holds"):
        minillm.Budget(minillm.Ledger(), "1", exact_holds="yes")  # type: ignore[arg-type]
