"""Call arguments are validated before anything is sent."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

import minillm
from minillm.request import REQUEST_OPTIONS, build_chat_request


def test_a_string_is_one_user_message() -> None:
    assert build_chat_request("m", "Hi").messages == ({"role": "user", "content": "Hi"},)


def test_message_dicts_are_copied_so_later_changes_do_not_leak_in() -> None:
    message = {"role": "user", "content": "Hi"}
    request = build_chat_request("m", [message])
    message["content"] = "changed"
    assert request.messages[0]["content"] == "Hi"


@pytest.mark.parametrize(
    ("messages", "match"),
    [
        ("", "empty"),
        ([], "empty"),
        ({"role": "user"}, "string or a list"),
        ([{"role": "robot", "content": "x"}], "role 'robot'"),
        (["hi"], r"messages\[0\] must be a dict"),
        ([{"role": "user"}], "no content"),
        ([{"role": "user", "content": 3}], "content must be"),
        ([{"role": "tool", "content": "42"}], "tool_call_id"),
    ],
)
def test_malformed_messages_are_rejected_with_a_clear_error(messages: Any, match: str) -> None:
    with pytest.raises(minillm.InvalidArgumentError, match=match):
        build_chat_request("m", messages)


def test_an_assistant_turn_may_carry_only_tool_calls() -> None:
    calls = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    turn = {"role": "assistant", "content": None, "tool_calls": calls}
    assert build_chat_request("m", [turn]).messages == (turn,)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 1.5}, "max_tokens"),
        ({"max_tokens": True}, "max_tokens"),
        ({"temperature": 3}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        ({"stop": [""]}, "stop"),
        ({"tools": {"name": "f"}}, "tools must be a list"),
        ({"tools": [{"description": "no name"}]}, r"tools\[0\]"),
        ({"tool_choice": 3}, "tool_choice"),
        ({"thinking_budget": -1}, "thinking_budget"),
        ({"system": ["not", "a", "string"]}, "system"),
        ({"extra_body": "x"}, "extra_body"),
        ({"extra_headers": {"X": 1}}, "extra_headers"),
    ],
)
def test_bad_options_are_rejected_with_a_clear_error(options: Any, match: str) -> None:
    with pytest.raises(minillm.InvalidArgumentError, match=match):
        build_chat_request("m", "Hi", **options)


#: A value of the wrong type for every keyword parameter of ``complete()``
#: and ``stream()``: each is refused before anything is sent, naming it.
WRONG_TYPES = {
    "system": 5,
    "max_tokens": "100",
    "temperature": "hot",
    "stop": 5,
    "tools": 5,
    "tool_choice": 5,
    "thinking_budget": "1024",
    "meta": 5,
    "cancel": 5,
    "extra_body": 5,
    "extra_headers": 5,
    "budget": 5,
    "timeout": "slow",
    "response_format": 5,
    "validation_retries": "2",
}
#: what only complete() takes (an answer is validated whole)
ONLY_COMPLETE = {"validation_retries"}


@pytest.mark.parametrize("method", ["complete", "stream"])
def test_every_call_parameter_of_the_wrong_type_is_an_invalid_argument_error_naming_it(method: str) -> None:
    ledger = minillm.Ledger()
    client = minillm.Client("local/echo", on_cost=ledger)
    keywords = [
        name
        for name, parameter in inspect.signature(getattr(client, method)).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    expected = set(WRONG_TYPES) - (ONLY_COMPLETE if method == "stream" else set())
    assert sorted(keywords) == sorted(expected), "a new parameter needs a wrong-typed value here"
    for name in keywords:
        value = WRONG_TYPES[name]
        with pytest.raises(minillm.InvalidArgumentError, match=name):
            getattr(client, method)("Hi", **{name: value})
    assert ledger.count == 0


@pytest.mark.parametrize("stop", [5, {"END": 1}, b"END", 2.5])
def test_a_stop_that_is_neither_a_string_nor_a_list_names_its_type(stop: Any) -> None:
    with pytest.raises(minillm.InvalidArgumentError, match=f"stop must be .*not {type(stop).__name__}"):
        build_chat_request("m", "Hi", stop=stop)


def test_flat_tools_are_normalised_to_the_function_form() -> None:
    request = build_chat_request("m", "Hi", tools=[{"name": "f", "description": "d"}], tool_choice="f")
    assert request.tools == (
        {
            "type": "function",
            "function": {"name": "f", "description": "d", "parameters": {"type": "object", "properties": {}}},
        },
    )
    assert request.tool_choice == {"type": "function", "function": {"name": "f"}}


def test_a_single_stop_string_becomes_a_tuple() -> None:
    assert build_chat_request("m", "Hi", stop="END").stop == ("END",)


@pytest.mark.parametrize("method", [minillm.Client.complete, minillm.Client.stream])
def test_the_clients_call_signatures_offer_every_request_option(method: Any) -> None:
    parameters = inspect.signature(method).parameters
    assert set(REQUEST_OPTIONS) <= set(parameters)
    # output_format is what response_format becomes (minillm.structured), not an option of its own.
    built = set(inspect.signature(build_chat_request).parameters) - {"model", "messages", "output_format"}
    assert set(REQUEST_OPTIONS) == built
    assert "response_format" in parameters
