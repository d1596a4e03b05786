"""Response, Usage and CostInfo as JSON-ready dicts: money as decimal
strings, nothing lost on the way to JSON and back."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, Dict

import minillm
from minillm import CostInfo, Resolution, Response, ToolCall, Usage
from minillm.serialization import value_from_dict
from minillm.testing import Reply, ScriptedServer, chat_completion, chat_usage

PRICE = minillm.TokenPrice(input_per_mtok="0.15", output_per_mtok="0.60")


def through_json(data: Dict[str, Any]) -> Any:
    return json.loads(json.dumps(data))


def test_usage_gives_every_field_with_money_as_decimal_strings() -> None:
    usage = Usage(12, 5, 17, cached_tokens=4, cost=Decimal("0.000000350"), upstream_inference_cost=None)
    data = usage.to_dict()
    assert data["cost"] == "3.50E-7" and Decimal(data["cost"]) == Decimal("0.000000350")
    assert data["upstream_inference_cost"] is None and data["prompt_tokens"] == 12
    assert value_from_dict(through_json(data), Usage) == usage


def test_a_cost_without_money_says_none_never_zero() -> None:
    data = CostInfo(resolution=Resolution.UNKNOWN, prompt_tokens=3).to_dict()
    assert data["usd"] is None and data["resolution"] == "unknown"
    assert value_from_dict(through_json(data), CostInfo) == CostInfo(resolution=Resolution.UNKNOWN, prompt_tokens=3)


def test_a_settled_response_goes_to_json_and_back_with_every_digit(server: ScriptedServer) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}
    server.reply(
        Reply.json(chat_completion("", usage=chat_usage(1234, 56), tool_calls=[call], finish_reason="tool_calls"))
    )
    response = minillm.Client("openai/gpt-4o-mini", base_url=server.url, price=PRICE).complete("Weather?")
    data = response.to_dict()
    text = json.dumps(data)  # no default= needed
    assert data["cost"]["usd"] == str(response.cost.usd) == "0.0002187"  # type: ignore[union-attr]
    assert data["usage"] == response.usage.to_dict()  # type: ignore[union-attr]
    assert data["tool_calls"] == [{"id": "call_1", "name": "weather", "arguments": '{"city": "Paris"}'}]
    assert data["raw"]["id"] == "chatcmpl-test" and data["finish_reason"] == "tool_calls"
    back = value_from_dict(json.loads(text), Response)
    assert back.to_dict() == data
    assert back.cost == response.cost and back.usage == response.usage and back.tool_calls == response.tool_calls


def test_a_response_keeps_its_choices_and_reasoning_records() -> None:
    first = Response(text="a", reasoning_details=[{"type": "thinking", "signature": "s"}])
    first.choices = [first.__class__(text="a"), Response(text="b", tool_calls=[ToolCall("c", "f", "{}")])]
    data = through_json(first.to_dict())
    assert [choice["text"] for choice in data["choices"]] == ["a", "b"]
    assert data["reasoning_details"] == [{"type": "thinking", "signature": "s"}]
    assert value_from_dict(data, Response).choices[1].tool_calls == [ToolCall("c", "f", "{}")]
