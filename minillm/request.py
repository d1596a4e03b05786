"""A call's request, provider-neutral: :class:`ChatRequest`, built and
validated by :func:`build_chat_request` before anything is sent.

Messages are OpenAI-shaped dicts; tools are kept in OpenAI's
``{"type": "function", "function": {...}}`` form (the flat
``{"name", "description", "parameters"}`` form is accepted and converted).
Each adapter translates this one shape into its own wire format.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import attrs

from .errors import InvalidArgumentError

if TYPE_CHECKING:  # pragma: no cover
    from .structured import OutputFormat

__all__ = ["REQUEST_OPTIONS", "ChatRequest", "Messages", "build_chat_request", "request_options"]

Messages = Union[str, Sequence[Mapping[str, Any]]]

ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
_TOOL_CHOICES = frozenset({"auto", "none", "required"})


@attrs.frozen
class ChatRequest:
    """Everything an adapter needs to build one provider request."""

    model: str
    messages: Tuple[Dict[str, Any], ...]
    system: Optional[str] = None
    max_tokens: Optional[int] = None
    temperature: Optional[float] = None
    stop: Optional[Tuple[str, ...]] = None
    tools: Optional[Tuple[Dict[str, Any], ...]] = None
    tool_choice: Any = None
    thinking_budget: Optional[int] = None
    extra_body: Optional[Dict[str, Any]] = None
    extra_headers: Optional[Dict[str, str]] = attrs.field(default=None, repr=False)
    #: the schema the answer must match (see :mod:`minillm.structured`)
    output_format: Optional[OutputFormat] = attrs.field(default=None, repr=False)


def _messages(messages: Messages) -> Tuple[Dict[str, Any], ...]:
    if isinstance(messages, str):
        if not messages:
            raise InvalidArgumentError("the prompt is an empty string")
        return ({"role": "user", "content": messages},)
    if isinstance(messages, Mapping) or not isinstance(messages, Sequence):
        raise InvalidArgumentError(
            f"messages must be a string or a list of message dicts, not {type(messages).__name__}"
        )
    if not messages:
        raise InvalidArgumentError("messages is empty")
    result = []
    for position, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise InvalidArgumentError(f"messages[{position}] must be a dict, not {type(message).__name__}")
        role = message.get("role")
        if role not in ROLES:
            raise InvalidArgumentError(
                f"messages[{position}] has role {role!r}; expected one of {', '.join(sorted(ROLES))}"
            )
        content = message.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise InvalidArgumentError(
                f"messages[{position}].content must be a string, a list of parts or None, not {type(content).__name__}"
            )
        if content is None and not (role == "assistant" and message.get("tool_calls")):
            raise InvalidArgumentError(f"messages[{position}] ({role}) has no content")
        if role == "tool" and not message.get("tool_call_id"):
            raise InvalidArgumentError(f"messages[{position}] is a tool result without a tool_call_id")
        result.append(dict(message))
    return tuple(result)


def _tool(position: int, tool: Any) -> Dict[str, Any]:
    if not isinstance(tool, Mapping):
        raise InvalidArgumentError(f"tools[{position}] must be a dict, not {type(tool).__name__}")
    if tool.get("type") == "function" and isinstance(tool.get("function"), Mapping):
        function = dict(tool["function"])
    elif "name" in tool and "function" not in tool:
        function = {k: v for k, v in tool.items() if k in ("name", "description", "parameters", "strict")}
    else:
        raise InvalidArgumentError(
            f"tools[{position}] must be {{'type': 'function', 'function': {{...}}}} "
            "or {'name': ..., 'parameters': ...}"
        )
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidArgumentError(f"tools[{position}] has no name")
    function.setdefault("parameters", {"type": "object", "properties": {}})
    result: Dict[str, Any] = {"type": "function", "function": function}
    marker = tool.get("cache_control")
    if marker is not None:
        # Anthropic's prompt-cache breakpoint: kept for the providers that
        # take one, left out by those that do not.
        if not isinstance(marker, Mapping):
            raise InvalidArgumentError(f"tools[{position}].cache_control must be a dict like {{'type': 'ephemeral'}}")
        result["cache_control"] = dict(marker)
    return result


def _tool_choice(choice: Any) -> Any:
    if choice is None or choice in _TOOL_CHOICES or isinstance(choice, Mapping):
        return choice
    if isinstance(choice, str) and choice:
        return {"type": "function", "function": {"name": choice}}
    raise InvalidArgumentError(f"tool_choice must be 'auto', 'none', 'required', a tool name or a dict, not {choice!r}")


def _number(name: str, value: Any, *, low: float, high: float = math.inf, integer: bool = False) -> Any:
    if value is None:
        return None
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not (low <= value <= high):
        kind = "an integer" if integer else "a number"
        bound = f">= {low:g}" if high == math.inf else f"between {low:g} and {high:g}"
        raise InvalidArgumentError(f"{name} must be {kind} {bound}, not {value!r}")
    return value


#: A header name (an HTTP token).
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def _check_headers(headers: Any) -> None:
    """Header names that are tokens, and values that are one line of text.
    A value is never repeated in the error: headers carry keys."""
    if not isinstance(headers, Mapping):
        raise InvalidArgumentError(f"extra_headers must be a dict of strings, not {type(headers).__name__}")
    for name, value in headers.items():
        if not isinstance(name, str) or not _HEADER_NAME.match(name):
            raise InvalidArgumentError(f"extra_headers has a name that is not an HTTP header name: {name!r}")
        if not isinstance(value, str):
            raise InvalidArgumentError(f"extra_headers[{name!r}] must be a string, not {type(value).__name__}")
        # Checked character by character, never by trying: a failed encode
        # would keep the value in the error's context.
        if any((ord(ch) < 32 and ch != "\t") or ord(ch) == 127 for ch in value):
            raise InvalidArgumentError(
                f"extra_headers[{name!r}] holds a line break or a control character (its value is not shown: "
                "headers carry keys)"
            )
        if any(ord(ch) > 255 for ch in value):
            raise InvalidArgumentError(
                f"extra_headers[{name!r}] holds characters a header cannot carry (its value is not shown)"
            )


def build_chat_request(
    model: str,
    messages: Messages,
    *,
    system: Optional[str] = None,
    max_tokens: Optional[int] = None,
    temperature: Optional[float] = None,
    stop: Union[str, Sequence[str], None] = None,
    tools: Optional[Sequence[Mapping[str, Any]]] = None,
    tool_choice: Any = None,
    thinking_budget: Optional[int] = None,
    extra_body: Optional[Mapping[str, Any]] = None,
    extra_headers: Optional[Mapping[str, str]] = None,
    output_format: Optional[OutputFormat] = None,
) -> ChatRequest:
    """Validate a call's arguments.

    :raises InvalidArgumentError: naming the argument and what was wrong.
    """
    if system is not None and not isinstance(system, str):
        raise InvalidArgumentError(f"system must be a string, not {type(system).__name__}")
    stops: Optional[Tuple[str, ...]] = None
    if stop is not None:
        if not isinstance(stop, str) and (isinstance(stop, (bytes, Mapping)) or not isinstance(stop, Sequence)):
            raise InvalidArgumentError(f"stop must be a non-empty string or a list of them, not {type(stop).__name__}")
        stops = (stop,) if isinstance(stop, str) else tuple(stop)
        if not all(isinstance(s, str) and s for s in stops):
            raise InvalidArgumentError("stop must be a non-empty string or a list of them")
    tool_list = None
    if tools is not None:
        if isinstance(tools, (str, Mapping)) or not isinstance(tools, Sequence):
            raise InvalidArgumentError("tools must be a list of tool dicts")
        tool_list = tuple(_tool(i, t) for i, t in enumerate(tools)) or None
    if extra_body is not None and not isinstance(extra_body, Mapping):
        raise InvalidArgumentError("extra_body must be a dict")
    if extra_headers is not None:
        _check_headers(extra_headers)
    return ChatRequest(
        model=model,
        messages=_messages(messages),
        system=system,
        max_tokens=_number("max_tokens", max_tokens, low=1, integer=True),
        temperature=_number("temperature", temperature, low=0, high=2),
        stop=stops,
        tools=tool_list,
        tool_choice=_tool_choice(tool_choice),
        thinking_budget=_number("thinking_budget", thinking_budget, low=0, integer=True),
        extra_body=dict(extra_body) if extra_body is not None else None,
        extra_headers=dict(extra_headers) if extra_headers is not None else None,
        output_format=output_format,
    )


#: The per-call options that shape the provider request (the keyword
#: parameters of :func:`build_chat_request`).
REQUEST_OPTIONS = (
    "system",
    "max_tokens",
    "temperature",
    "stop",
    "tools",
    "tool_choice",
    "thinking_budget",
    "extra_body",
    "extra_headers",
)


def request_options(arguments: Mapping[str, Any]) -> Dict[str, Any]:
    """Pick the request options out of a call's arguments (its ``locals()``)."""
    return {name: arguments[name] for name in REQUEST_OPTIONS}
