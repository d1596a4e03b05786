"""Structured output: each provider's wire form against the loopback server,
the schema validator, attrs classes through cattrs, validation retries and
what all the attempts cost."""

from __future__ import annotations

import enum
import json
from decimal import Decimal
from typing import Any, Callable, Dict, List, Optional

import attrs
import pytest

import minillm
from minillm import AttemptsCost, CostInfo, Resolution
from minillm.structured import output_format
from minillm.structured.schema import is_strict, problems
from minillm.testing import Reply, ScriptedServer, bedrock_converse, chat_completion, chat_usage

PRICE = minillm.TokenPrice(input_per_mtok="1", output_per_mtok="2")

PERSON: Dict[str, Any] = {
    "title": "person",
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@attrs.frozen
class Pet:
    name: str
    colour: Colour


@attrs.frozen
class Owner:
    """Someone and their pets."""

    name: str
    pets: List[Pet]
    nickname: Optional[str] = None


OWNER = {"name": "Ada", "pets": [{"name": "Tom", "colour": "red"}], "nickname": None}


# -- the schema validator -------------------------------------------------------


def test_a_valid_value_has_no_problems_and_each_problem_names_its_path() -> None:
    assert problems(PERSON, {"name": "Ada", "age": 36}) == []
    assert problems(PERSON, {"name": "Ada", "age": "36", "x": 1}) == [
        "$.age: expected integer, got string",
        "$: the property 'x' is not allowed",
    ]
    assert problems(PERSON, {"name": "Ada"}) == ["$: the required property 'age' is missing"]


def test_enum_const_any_of_nullable_items_and_refs_are_checked() -> None:
    schema = {
        "type": "object",
        "properties": {
            "kind": {"enum": ["a", "b"]},
            "one": {"const": 1},
            "either": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "maybe": {"type": "string", "nullable": True},
            "list": {"type": "array", "items": {"$ref": "#/$defs/n"}},
        },
        "$defs": {"n": {"type": "number"}},
    }
    good = {"kind": "a", "one": 1, "either": None, "maybe": None, "list": [1, 2.5]}
    assert problems(schema, good) == []
    bad = {"kind": "c", "one": True, "either": 3, "maybe": 4, "list": [1, "x"]}
    found = problems(schema, bad)
    assert found[0] == "$.kind: 'c' is not one of 'a', 'b'"
    assert found[1] == "$.one: expected 1, got True"  # JSON's true is not 1
    assert found[2].startswith("$.either: matches none of the 2 allowed shapes")
    assert found[3:] == ["$.maybe: expected string, got integer", "$.list[1]: expected number, got string"]


def test_strict_mode_is_claimed_only_for_a_schema_that_meets_it() -> None:
    assert is_strict(PERSON)
    assert not is_strict({**PERSON, "required": ["name"]})
    assert not is_strict({k: v for k, v in PERSON.items() if k != "additionalProperties"})
    assert output_format(PERSON).strict and not output_format({"type": "object"}).strict


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (42, "must be a JSON-schema dict or an attrs class"),
        ({"type": "thing"}, "unknown type 'thing'"),
        ({"type": "object", "required": "name"}, "required must be a list"),
        ({"$ref": "http://example.com/s"}, r"must point into the schema's own \$defs"),
        ({"type": "json_schema", "json_schema": {"name": "bad name", "schema": {}}}, "name must be 1-64"),
    ],
)
def test_a_response_format_that_cannot_be_read_is_refused_before_sending(
    value: Any, message: str, server: ScriptedServer, make_client: Callable[..., minillm.Client]
) -> None:
    with pytest.raises(minillm.InvalidArgumentError, match=message):
        make_client().complete("hi", response_format=value)
    assert server.requests == []


def test_the_schema_of_an_attrs_class_is_strict_and_inlines_nested_classes() -> None:
    output = output_format(Owner)
    assert (output.name, output.strict, output.description) == ("Owner", True, "Someone and their pets.")
    assert output.schema == {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "pets": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}, "colour": {"enum": ["red", "blue"]}},
                    "required": ["name", "colour"],
                    "additionalProperties": False,
                },
            },
            "nickname": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        },
        "required": ["name", "pets", "nickname"],
        "additionalProperties": False,
        "description": "Someone and their pets.",
    }
    assert is_strict(output.schema)


@attrs.define
class Node:
    children: List[Node]


def test_a_class_that_contains_itself_or_an_unsupported_hint_is_refused() -> None:
    @attrs.define
    class Odd:
        value: complex

    with pytest.raises(minillm.InvalidArgumentError, match="contains itself"):
        output_format(Node)
    with pytest.raises(minillm.InvalidArgumentError, match=r"Odd.value: the type .*complex"):
        output_format(Odd)


# -- each provider's wire form ----------------------------------------------------


def test_openai_chat_asks_for_a_json_schema_and_parses_the_answer(
    server: ScriptedServer, make_client: Callable[..., minillm.Client]
) -> None:
    server.reply(Reply.json(chat_completion(json.dumps({"name": "Ada", "age": 36}), usage=chat_usage(5, 4))))
    response = make_client().complete("Who?", response_format=PERSON)
    assert response.parsed == {"name": "Ada", "age": 36}
    assert server.requests[0].json()["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "person", "schema": PERSON, "strict": True},
    }


def test_the_responses_api_asks_through_text_format(
    server: ScriptedServer, make_client: Callable[..., minillm.Client]
) -> None:
    body = {
        "id": "resp_1",
        "object": "response",
        "status": "completed",
        "model": "gpt-test",
        "output": [
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": json.dumps(OWNER), "annotations": []}],
            }
        ],
        "usage": {"input_tokens": 5, "output_tokens": 9, "total_tokens": 14},
    }
    server.reply(Reply.json(body))
    response = make_client("openai/gpt-test", api="responses").complete("Who?", response_format=Owner)
    assert response.parsed == Owner(name="Ada", pets=[Pet(name="Tom", colour=Colour.RED)], nickname=None)
    sent = server.requests[0].json()
    assert sent["text"] == {
        "format": {
            "type": "json_schema",
            "name": "Owner",
            "schema": output_format(Owner).schema,
            "strict": True,
            "description": "Someone and their pets.",
        }
    }


def _claude_tool_answer(tool_input: Any, tool_id: str = "toolu_1") -> Dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-test",
        "content": [{"type": "tool_use", "id": tool_id, "name": "Owner", "input": tool_input}],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 12, "output_tokens": 3},
    }


def test_anthropic_forces_a_tool_whose_input_is_the_schema_and_reads_its_input(
    server: ScriptedServer, make_client: Callable[..., minillm.Client]
) -> None:
    server.reply(Reply.json(_claude_tool_answer(OWNER)))
    client = make_client("anthropic/claude-test", api_key="sk-ant-test")
    weather = {"name": "weather", "parameters": {"type": "object"}}
    response = client.complete("Who?", response_format=Owner, tools=[weather])
    assert response.parsed == Owner(name="Ada", pets=[Pet(name="Tom", colour=Colour.RED)])
    sent = server.requests[0].json()
    assert sent["tools"][1] == {
        "name": "Owner",
        "input_schema": output_format(Owner).schema,
        "description": "Someone and their pets.",
    }
    assert sent["tools"][0]["name"] == "weather"
    assert sent["tool_choice"] == {"type": "tool", "name": "Owner"}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"thinking_budget": 2048}, "leave thinking_budget out"),
        ({"tool_choice": "auto"}, "leave tool_choice out"),
        ({"tools": [{"name": "Owner"}]}, "rename one of them"),
    ],
)
def test_anthropic_refuses_what_a_forced_tool_cannot_go_with_before_sending(
    options: Dict[str, Any], message: str, server: ScriptedServer, make_client: Callable[..., minillm.Client]
) -> None:
    client = make_client("anthropic/claude-test", api_key="sk-ant-test")
    with pytest.raises(minillm.InvalidArgumentError, match=message):
        client.complete("Who?", response_format=Owner, **options)
    assert server.requests == []


def test_gemini_asks_for_json_with_the_json_schema(
    server: ScriptedServer, make_client: Callable[..., minillm.Client]
) -> None:
    text = '{"name": "Ada", "age": 36}'
    answer = {
        "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 2, "totalTokenCount": 9},
    }
    server.reply(Reply.json(answer))
    response = make_client("gemini/gemini-test", api_key="AIza-test").complete(
        "Who?", response_format=PERSON, max_tokens=50
    )
    assert response.parsed == {"name": "Ada", "age": 36}
    assert server.requests[0].json()["generationConfig"] == {
        "maxOutputTokens": 50,
        "responseMimeType": "application/json",
        "responseJsonSchema": PERSON,
    }


def test_ollama_sends_the_schema_as_format(server: ScriptedServer, make_client: Callable[..., minillm.Client]) -> None:
    body = {
        "model": "llama-test",
        "message": {"role": "assistant", "content": '{"name": "Ada", "age": 36}'},
        "done": True,
        "done_reason": "stop",
        "prompt_eval_count": 3,
        "eval_count": 2,
    }
    server.reply(Reply.json(body))
    response = make_client("ollama/llama-test").complete("Who?", response_format=PERSON)
    assert response.parsed == {"name": "Ada", "age": 36}
    assert server.requests[0].json()["format"] == PERSON


def test_bedrock_forces_a_tool_through_tool_config(
    server: ScriptedServer, make_client: Callable[..., minillm.Client]
) -> None:
    call = {"id": "tooluse_1", "name": "person", "input": {"name": "Ada", "age": 36}}
    server.reply(Reply.json(bedrock_converse("", tool_calls=[call], stop_reason="tool_use")))
    client = make_client("bedrock/anthropic.claude-test-v1:0", api_key="bedrock-key")
    response = client.complete("Who?", response_format=PERSON)
    assert response.parsed == {"name": "Ada", "age": 36}
    assert server.requests[0].json()["toolConfig"] == {
        "tools": [{"toolSpec": {"name": "person", "inputSchema": {"json": PERSON}}}],
        "toolChoice": {"tool": {"name": "person"}},
    }


def test_deepseek_uses_json_mode_with_the_schema_in_a_system_turn(
    server: ScriptedServer, make_client: Callable[..., minillm.Client]
) -> None:
    server.reply(Reply.json(chat_completion('{"name": "Ada", "age": 36}', usage=chat_usage(5, 4))))
    response = make_client("deepseek/deepseek-chat", api_key="sk-ds").complete("Who?", response_format=PERSON)
    assert response.parsed == {"name": "Ada", "age": 36}
    sent = server.requests[0].json()
    assert sent["response_format"] == {"type": "json_object"}
    assert sent["messages"][0] == {
        "role": "system",
        "content": "Answer with one JSON object that matches this JSON schema:\n" + json.dumps(PERSON),
    }


def test_a_provider_that_cannot_be_held_to_a_schema_is_a_configuration_error_and_books_nothing(
    ledger: minillm.Ledger,
) -> None:
    client = minillm.Client("local/echo", on_cost=ledger)
    with pytest.raises(minillm.ConfigurationError, match="local cannot be asked for an answer that matches a schema"):
        client.complete("hi", response_format=PERSON)
    assert ledger.count == 0
    client.close()


def test_stream_refuses_a_response_format(server: ScriptedServer, make_client: Callable[..., minillm.Client]) -> None:
    with pytest.raises(minillm.InvalidArgumentError, match="stream\\(\\) takes no response_format"):
        make_client().stream("hi", response_format=PERSON)
    assert server.requests == []


# -- validation retries and what the attempts cost -----------------------------


def test_an_invalid_answer_is_shown_to_the_model_and_both_attempts_are_booked_under_the_same_meta(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(
        Reply.json(chat_completion('{"name": "Ada"}', usage=chat_usage(10, 5))),
        Reply.json(chat_completion('{"name": "Ada", "age": 36}', usage=chat_usage(30, 6))),
    )
    client = make_client(price=PRICE)
    response = client.complete("Who?", response_format=PERSON, validation_retries=1, meta={"job": 7})
    assert response.parsed == {"name": "Ada", "age": 36}
    assert [meta for _, meta in ledger.records] == [{"job": 7}, {"job": 7}]
    first, second = (cost for cost, _ in ledger.records)
    total = response.attempts_cost
    assert total is not None
    assert (total.resolution, total.attempts, total.pending) == (Resolution.RESOLVED, 2, 0)
    assert first.usd is not None and second.usd is not None
    assert total.usd == first.usd + second.usd == Decimal("0.000062")
    assert (total.prompt_tokens, total.completion_tokens) == (40, 11)
    assert response.cost == second
    retry = server.requests[1].json()["messages"]
    assert retry[:2] == [{"role": "user", "content": "Who?"}, {"role": "assistant", "content": '{"name": "Ada"}'}]
    assert retry[2]["role"] == "user"
    assert "$: the required property 'age' is missing" in retry[2]["content"]


def test_spent_retries_raise_output_validation_error_with_the_answers_and_their_cost(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(
        Reply.json(chat_completion("not json", usage=chat_usage(10, 5))),
        Reply.json(chat_completion('{"name": 1, "age": 2}', usage=chat_usage(10, 5))),
    )
    with pytest.raises(minillm.OutputValidationError) as caught:
        make_client(price=PRICE).complete("Who?", response_format=PERSON, validation_retries=1, meta={"job": 8})
    error = caught.value
    assert isinstance(error, minillm.MiniLLMError)
    assert error.text == '{"name": 1, "age": 2}'
    assert error.problems == ["$.name: expected string, got integer"]
    assert [r.text for r in error.responses] == ["not json", '{"name": 1, "age": 2}']
    assert "after 2 attempts: $.name: expected string, got integer" in str(error)
    assert ledger.count == 2 and all(meta == {"job": 8} for _, meta in ledger.records)
    assert error.attempts_cost is not None and error.attempts_cost.usd == ledger.total() == Decimal("0.00004")
    assert "the answer is not JSON" in server.requests[1].json()["messages"][2]["content"]


def test_without_retries_an_invalid_answer_raises_at_once(
    server: ScriptedServer, make_client: Callable[..., minillm.Client]
) -> None:
    server.reply(Reply.json(chat_completion('{"name": "Ada"}', usage=chat_usage(10, 5))))
    with pytest.raises(minillm.OutputValidationError, match="after 1 attempt: "):
        make_client().complete("Who?", response_format=PERSON)
    assert len(server.requests) == 1


def test_a_forced_tool_answer_is_retried_through_a_tool_result_and_cattrs_errors_are_validation_failures(
    server: ScriptedServer, make_client: Callable[..., minillm.Client]
) -> None:
    @attrs.frozen
    class Adult:
        age: int = attrs.field(validator=attrs.validators.ge(18))

    first = _claude_tool_answer({"age": 7}, tool_id="toolu_a")
    second = _claude_tool_answer({"age": 40}, tool_id="toolu_b")
    for answer in (first, second):
        answer["content"][0]["name"] = "Adult"
    server.reply(Reply.json(first), Reply.json(second))
    client = make_client("anthropic/claude-test", api_key="sk-ant-test")
    response = client.complete("Age?", response_format=Adult, validation_retries=2)
    assert response.parsed == Adult(age=40)
    turns = server.requests[1].json()["messages"]
    assert turns[1]["content"] == [{"type": "tool_use", "id": "toolu_a", "name": "Adult", "input": {"age": 7}}]
    result = turns[2]["content"][0]
    assert (result["type"], result["tool_use_id"]) == ("tool_result", "toolu_a")
    assert "'age' must be >= 18" in json.dumps(result["content"])


@pytest.mark.parametrize("retries", [-1, 1.5, True])
def test_validation_retries_must_be_a_count(retries: Any, make_client: Callable[..., minillm.Client]) -> None:
    with pytest.raises(minillm.InvalidArgumentError, match="validation_retries must be an integer >= 0"):
        make_client().complete("hi", response_format=PERSON, validation_retries=retries)


def _cost(resolution: Resolution, usd: Optional[str] = None, prompt: int = 10) -> CostInfo:
    return CostInfo(resolution=resolution, usd=None if usd is None else Decimal(usd), prompt_tokens=prompt)


def test_attempts_cost_is_exact_only_when_every_attempt_is() -> None:
    exact = AttemptsCost.of([_cost(Resolution.RESOLVED, "0.1"), _cost(Resolution.RESOLVED, "0.02")])
    assert (exact.usd, exact.resolution, exact.prompt_tokens) == (Decimal("0.12"), Resolution.RESOLVED, 20)
    bound = AttemptsCost.of([_cost(Resolution.RESOLVED, "0.1"), _cost(Resolution.UNKNOWN)])
    assert (bound.usd, bound.resolution) == (Decimal("0.1"), Resolution.PARTIAL)
    waiting = AttemptsCost.of([_cost(Resolution.RESOLVED, "0.1")], pending=1)
    assert (waiting.usd, waiting.resolution, waiting.pending) == (Decimal("0.1"), Resolution.PARTIAL, 1)
    unpriced = AttemptsCost.of([_cost(Resolution.UNPRICED), _cost(Resolution.UNPRICED)])
    assert (unpriced.usd, unpriced.resolution) == (None, Resolution.UNPRICED)
    unknown = AttemptsCost.of([_cost(Resolution.UNPRICED), _cost(Resolution.UNKNOWN)])
    assert (unknown.usd, unknown.resolution) == (None, Resolution.UNKNOWN)
    assert AttemptsCost.of([]).resolution is Resolution.UNKNOWN and AttemptsCost.of([]).usd is None
