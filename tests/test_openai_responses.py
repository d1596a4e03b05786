"""The OpenAI Responses API against the loopback server."""

from __future__ import annotations

from typing import Any, Callable, Dict, List

import pytest

import minillm
from minillm.testing import Hang, Reply, ScriptedServer, responses_stream, sse


@pytest.fixture
def responses(make_client: Callable[..., minillm.Client]) -> Callable[..., minillm.Client]:
    def make(model: str = "openai/gpt-test", **kwargs: Any) -> minillm.Client:
        kwargs.setdefault("api_key", "sk-test")
        kwargs.setdefault("api", "responses")
        return make_client(model, **kwargs)

    return make


def test_messages_become_input_items_and_the_system_prompt_instructions(
    server: ScriptedServer, responses: Callable[..., minillm.Client]
) -> None:
    server.reply(Reply.sse(responses_stream(["Hi"])))
    conversation: List[Dict[str, Any]] = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny"},
    ]  # fmt: skip
    with responses().stream(conversation, max_tokens=99, thinking_budget=5000, tools=[{"name": "weather"}]) as stream:
        list(stream)
    request = server.requests[0]
    assert request.path == "/responses"
    body = request.json()
    assert body["instructions"] == "Be brief."
    assert body["input"] == [
        {"role": "user", "content": [{"type": "input_text", "text": "Weather?"}]},
        {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": '{"city":"Paris"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "Sunny"},
    ]
    assert body["max_output_tokens"] == 99
    assert body["reasoning"] == {"effort": "medium", "summary": "auto"}
    assert body["tools"][0]["type"] == "function" and body["tools"][0]["name"] == "weather"


def test_a_stream_with_function_calls_and_usage(
    server: ScriptedServer, responses: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    calls = [
        {"call_id": "call_a", "name": "f", "arguments": '{"x":1}'},
        {"call_id": "call_b", "name": "g", "arguments": "{}"},
    ]
    server.reply(Reply.sse(responses_stream(["Let me check."], function_calls=calls, input_tokens=30)))
    with responses(price=minillm.TokenPrice(1, 1)).stream("Hi") as stream:
        list(stream)
    response = stream.response
    assert response is not None and response.finish_reason == "tool_calls"
    assert response.tool_calls == [
        minillm.ToolCall(id="call_a", name="f", arguments='{"x":1}'),
        minillm.ToolCall(id="call_b", name="g", arguments="{}"),
    ]
    assert response.usage == minillm.Usage(prompt_tokens=30, completion_tokens=1, total_tokens=31)
    assert ledger.count == 1


def test_an_incomplete_response_finishes_with_length(
    server: ScriptedServer, responses: Callable[..., minillm.Client]
) -> None:
    server.reply(Reply.sse(responses_stream(["cut"], status="incomplete")))
    with responses().stream("Hi") as stream:
        list(stream)
    assert stream.response is not None and stream.response.finish_reason == "length"


def test_a_failed_response_is_a_stream_error(
    server: ScriptedServer, responses: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    failed = {"type": "response.failed", "response": {"id": "r", "status": "failed",
              "error": {"code": "server_error", "message": "The model failed"}}}  # fmt: skip
    server.reply(Reply.sse([*responses_stream(["so"])[:2], sse(failed, event="response.failed")]))
    with pytest.raises(minillm.StreamError, match="The model failed") as caught:
        list(responses().stream("Hi"))
    assert caught.value.partial_text == "so"
    ((cost, _),) = ledger.records
    assert cost.failed and cost.completion_tokens == 1 and cost.resolution is not minillm.Resolution.RESOLVED


@pytest.mark.parametrize(
    ("code", "error_class"),
    [("server_error", minillm.ServerError), ("rate_limit_exceeded", minillm.RateLimitError)],
)
def test_a_failed_response_is_the_error_its_code_names(
    code: str,
    error_class: type,
    server: ScriptedServer,
    responses: Callable[..., minillm.Client],
    ledger: minillm.Ledger,
    sleeps: Any,
) -> None:
    # The Responses API names the kind in "code" and sends no "type": the
    # same table as an HTTP error's classes it, and a failure before any
    # output is tried again as that status would be.
    failed = {"type": "response.failed", "response": {"id": "r", "status": "failed",
              "error": {"code": code, "message": "The model failed"}}}  # fmt: skip
    server.reply(
        Reply.sse([responses_stream(["so"])[0], sse(failed, event="response.failed")]),
        Reply.sse(responses_stream(["fine"])),
    )
    with responses().stream("Hi") as stream:
        assert stream.collect().text == "fine"
    assert len(server.requests) == 2 and len(sleeps.calls) == 1
    server.reply(Reply.sse([*responses_stream(["so"])[:2], sse(failed, event="response.failed")]))
    with pytest.raises(minillm.StreamError) as caught:
        list(responses().stream("Hi"))
    assert isinstance(caught.value, error_class)


def test_stop_sequences_are_refused_before_sending(
    server: ScriptedServer, responses: Callable[..., minillm.Client]
) -> None:
    with pytest.raises(minillm.InvalidArgumentError, match="no stop sequences"):
        responses().complete("Hi", stop=["END"])
    assert server.requests == []


def test_models_only_the_responses_api_serves_choose_it_without_asking(
    server: ScriptedServer, make_client: Callable[..., minillm.Client]
) -> None:
    server.reply(Reply.sse(responses_stream(["deep"])), Reply.sse(responses_stream(["pro"])))
    for model in ("openai/o3-deep-research", "openai/gpt-5-pro-2025-10-06"):
        with make_client(model, api_key="sk").stream("Hi") as stream:
            list(stream)
    assert [r.path for r in server.requests] == ["/responses", "/responses"]


def test_chat_completions_saying_use_responses_is_explained(
    server: ScriptedServer, make_client: Callable[..., minillm.Client]
) -> None:
    message = "This model is only supported in v1/responses and not in v1/chat/completions."
    server.reply(Reply.json({"error": {"message": message, "type": "invalid_request_error"}}, status=404))
    with pytest.raises(minillm.NotFoundError, match=r"api='responses' \(POST /v1/responses\)"):
        make_client("openai/some-new-model", api_key="sk").complete("Hi")


def test_openrouter_serves_the_responses_api_with_its_cost_and_look_up(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    from minillm.testing import openrouter_generation

    server.reply(Reply.sse([*responses_stream(["a"])[:2], Hang()], headers=[("X-Generation-Id", "gen-r1")]))
    server.route("GET", "/generation", lambda request: Reply.json(openrouter_generation("gen-r1", total_cost=0.003)))
    client = make_client("openrouter/openai/gpt-oss-20b", api="responses", app_title="My app")
    with client.stream("Hi") as stream:
        next(iter(stream))
    assert client.flush(timeout=10)
    assert server.requests[0].path == "/responses" and server.requests[0].headers["x-title"] == "My app"
    assert str(ledger.records[0][0].usd) == "0.003"
