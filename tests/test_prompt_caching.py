"""Prompt caching switched on the way each provider takes it: Anthropic's
``cache_control`` markers reach it where they were put; OpenAI's
``prompt_cache_key`` passes through; no marker reaches a provider that
would refuse it."""

from __future__ import annotations

from typing import Any, Callable, Dict, List

import pytest

import minillm
from minillm.testing import Reply, ScriptedServer, chat_completion

EPHEMERAL = {"type": "ephemeral"}
ONE_HOUR = {"type": "ephemeral", "ttl": "1h"}
LONG = "A long document. " * 50

TOOL = {
    "type": "function",
    "function": {"name": "lookup", "description": "Look it up", "parameters": {"type": "object", "properties": {}}},
    "cache_control": EPHEMERAL,
}


def anthropic_message() -> Dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-test",
        "content": [{"type": "text", "text": "ok"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 5, "output_tokens": 1},
    }


def sent(server: ScriptedServer, client: minillm.Client, messages: List[Dict[str, Any]], **options: Any) -> Any:
    client.complete(messages, **options)
    return server.requests[-1].json()


@pytest.fixture
def to_anthropic(server: ScriptedServer, make_client: Callable[..., minillm.Client]) -> Callable[..., Any]:
    """The body Anthropic would get for ``messages`` and ``options``."""

    def body(messages: List[Dict[str, Any]], **options: Any) -> Any:
        server.reply(Reply.json(anthropic_message()))
        return sent(server, make_client("anthropic/claude-test", api_key="k"), messages, **options)

    return body


def test_anthropic_gets_the_markers_on_content_parts_tools_and_system_parts(to_anthropic: Callable[..., Any]) -> None:
    body = to_anthropic(
        [
            {
                "role": "system",
                "content": [
                    {"type": "text", "text": "You are terse."},
                    {"type": "text", "text": LONG, "cache_control": ONE_HOUR},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": LONG, "cache_control": EPHEMERAL},
                    {"type": "text", "text": "Summarise it."},
                ],
            },
        ],
        tools=[TOOL],
    )
    assert body["system"] == [
        {"type": "text", "text": "You are terse."},
        {"type": "text", "text": LONG, "cache_control": ONE_HOUR},
    ]
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": LONG, "cache_control": EPHEMERAL},
                {"type": "text", "text": "Summarise it."},
            ],
        }
    ]
    assert body["tools"][0]["cache_control"] == EPHEMERAL and body["tools"][0]["name"] == "lookup"


def test_without_markers_the_anthropic_body_is_as_before(to_anthropic: Callable[..., Any]) -> None:
    body = to_anthropic(
        [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi"}],
        system="First.",
        tools=[{k: v for k, v in TOOL.items() if k != "cache_control"}],
    )
    assert body["system"] == "First.\n\nBe terse."
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]
    assert "cache_control" not in body["tools"][0]


def test_a_system_argument_comes_first_when_system_parts_are_marked(to_anthropic: Callable[..., Any]) -> None:
    body = to_anthropic(
        [
            {"role": "system", "content": [{"type": "text", "text": LONG, "cache_control": EPHEMERAL}]},
            {"role": "user", "content": "Hi"},
        ],
        system="First.",
    )
    assert body["system"] == [
        {"type": "text", "text": "First."},
        {"type": "text", "text": LONG, "cache_control": EPHEMERAL},
    ]


def test_openai_gets_its_cache_key_and_no_tool_marker(
    server: ScriptedServer, make_client: Callable[..., minillm.Client]
) -> None:
    server.reply(Reply.json(chat_completion("ok")))
    body = sent(
        server,
        make_client("openai/gpt-test"),
        [{"role": "user", "content": "Hi"}],
        tools=[TOOL],
        extra_body={"prompt_cache_key": "user-7"},
    )
    assert body["prompt_cache_key"] == "user-7"
    assert body["tools"] == [{"type": "function", "function": TOOL["function"]}]


def test_a_marker_that_is_not_an_object_is_refused() -> None:
    client = minillm.Client("anthropic/claude-test", api_key="k", base_url="http://127.0.0.1:9")
    with pytest.raises(minillm.InvalidArgumentError, match="cache_control"):
        client.complete("Hi", tools=[{**TOOL, "cache_control": "ephemeral"}])
