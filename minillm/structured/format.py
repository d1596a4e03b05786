"""What a caller asked the answer to be (:class:`OutputFormat`), and
reading an answer against it.

A ``response_format`` is a JSON-schema dict (also OpenAI's wrapped form,
``{"type": "json_schema", "json_schema": {...}}``) or an attrs class. Each
adapter translates the format into its provider's own request fields (see
:meth:`minillm.providers.base.Adapter.constrain_output`); the answer comes
back as JSON text, or -- from providers that are made to answer through a
forced tool -- as the arguments of the tool named after the format.
"""

from __future__ import annotations

import json
import re
from typing import Any, Dict, List, Mapping, Optional, Tuple, Type

import attrs

from ..errors import InvalidArgumentError
from ..models import Response, ToolCall
from .attrs_schema import schema_for, structure
from .schema import check_schema, is_strict, problems

__all__ = ["OutputFormat", "answer_of", "feedback", "output_format", "parse"]

#: What OpenAI accepts as a schema's name (Anthropic and Bedrock take it
#: as a tool name, under the same rule).
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@attrs.frozen(eq=False)
class OutputFormat:
    """A response format, ready for the adapters."""

    #: the schema's name (a tool's name where the provider answers through one)
    name: str
    #: the JSON schema the answer must match
    schema: Dict[str, Any]
    #: the schema meets OpenAI's strict mode (sent as ``"strict": true``)
    strict: bool
    description: Optional[str] = None
    #: the attrs class the answer is structured into (None: the parsed JSON)
    target: Optional[Type[Any]] = None


def output_format(value: Any) -> OutputFormat:
    """The :class:`OutputFormat` for a ``response_format`` argument.

    :raises InvalidArgumentError: it is neither a JSON-schema dict nor an
        attrs class, or its schema cannot be read.
    """
    if isinstance(value, OutputFormat):
        return value
    if isinstance(value, type) and attrs.has(value):
        schema = schema_for(value)
        return OutputFormat(
            name=_name(value.__name__), schema=schema, strict=True, description=schema.get("description"), target=value
        )
    if isinstance(value, Mapping):
        name: Optional[str] = None
        description: Optional[str] = None
        strict: Optional[bool] = None
        if value.get("type") == "json_schema" and isinstance(value.get("json_schema"), Mapping):
            wrapper = value["json_schema"]
            name, description, strict = wrapper.get("name"), wrapper.get("description"), wrapper.get("strict")
            value = wrapper.get("schema") or {}
        check_schema(value)
        schema = dict(value)
        if name is None:
            name = _name(schema.get("title") or "response")
        elif not isinstance(name, str) or not _NAME.match(name):
            raise InvalidArgumentError(f"response_format's name must be 1-64 letters, digits, _ or -, not {name!r}")
        if description is None and isinstance(schema.get("description"), str):
            description = schema["description"]
        return OutputFormat(
            name=name,
            schema=schema,
            strict=is_strict(schema) if strict is None else bool(strict),
            description=description,
        )
    raise InvalidArgumentError(
        f"response_format must be a JSON-schema dict or an attrs class, not {type(value).__name__}"
    )


def _name(text: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_")[:64]
    return cleaned or "response"


def answer_of(output: OutputFormat, response: Response) -> Tuple[str, Optional[ToolCall]]:
    """The answer's JSON text, and the forced tool call that carried it
    (None when it came as text)."""
    for call in response.tool_calls:
        if call.name == output.name:
            return call.arguments, call
    return response.text, None


def parse(output: OutputFormat, response: Response) -> Tuple[Any, List[str]]:
    """The answer as ``(value, [])``, or ``(None, problems)`` when it does
    not match: not JSON, not of the schema, or refused by cattrs."""
    text, _ = answer_of(output, response)
    cut = " (the answer was cut off at max_tokens)" if response.finish_reason == "length" else ""
    try:
        data = json.loads(text)
    except ValueError as exc:
        shown = text if len(text) <= 80 else text[:77] + "..."
        return None, [f"$: the answer is not JSON ({exc}){cut}: {shown!r}"]
    found = problems(output.schema, data)
    if found:
        return None, [problem + cut for problem in found]
    if output.target is not None:
        return structure(output.target, data)
    return data, []


def feedback(output: OutputFormat, response: Response, found: List[str]) -> List[Dict[str, Any]]:
    """The turns that show the model its invalid answer and what is wrong
    with it, to be answered again (as the official SDKs' helpers do): the
    answer, then the problems -- as the forced tool's result when it
    answered through one, else as a user turn."""
    note = (
        f"That answer does not match the {output.name} JSON schema:\n"
        + "\n".join(f"- {problem}" for problem in found)
        + "\nAnswer again, with JSON that matches the schema exactly."
    )
    message = response.to_message()
    _, call = answer_of(output, response)
    if call is None:
        message.pop("tool_calls", None)
        message["content"] = message["content"] or ""
        return [message, {"role": "user", "content": note}]
    # Only the forced call is answered: the turn after it must answer every call it keeps.
    message["tool_calls"] = [c for c in message["tool_calls"] if c["id"] == call.id]
    return [message, {"role": "tool", "tool_call_id": call.id, "content": note}]
