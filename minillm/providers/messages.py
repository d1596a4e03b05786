"""Reading OpenAI-shaped messages, for the adapters that translate them
into another wire format (Anthropic, Gemini, Responses, Ollama).

minillm's one input format is OpenAI's: a list of ``{"role", "content"}``
dicts whose content is a string or a list of typed parts (``text``,
``image_url``), assistant turns with ``tool_calls``, and ``tool`` turns with
``tool_call_id``. These helpers take that apart the same way for everyone.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from ..errors import InvalidArgumentError

__all__ = [
    "Image",
    "arguments_object",
    "content_parts",
    "data_url",
    "split_system",
    "text_of",
    "tool_names",
]


class Image:
    """An image part: a URL, or inline bytes (base64) with their media type."""

    __slots__ = ("data", "media_type", "url")

    def __init__(self, url: Optional[str] = None, media_type: Optional[str] = None, data: Optional[str] = None):
        self.url = url
        self.media_type = media_type
        self.data = data


def data_url(url: str) -> Optional[Tuple[str, str]]:
    """``(media_type, base64 data)`` of a ``data:...;base64,`` URL, else None."""
    if not url.startswith("data:") or ";base64," not in url:
        return None
    head, _, data = url[5:].partition(";base64,")
    return head or "application/octet-stream", data


def content_parts(content: Any) -> List[Any]:
    """The parts of a message's content: strings for text, :class:`Image`
    for images. A string content is one text part; None is no parts."""
    if content is None:
        return []
    if isinstance(content, str):
        return [content]
    parts: List[Any] = []
    for part in content:
        if isinstance(part, str):
            parts.append(part)
            continue
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind in ("text", "input_text"):
            parts.append(str(part.get("text", "")))
        elif kind in ("image_url", "input_image"):
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, Mapping) else image
            if not isinstance(url, str):
                raise InvalidArgumentError("an image part needs a URL (https:// or data:...;base64,...)")
            inline = data_url(url)
            parts.append(Image(media_type=inline[0], data=inline[1]) if inline else Image(url=url))
        else:
            raise InvalidArgumentError(f"a content part of type {kind!r} cannot be sent to this provider")
    return parts


def text_of(content: Any) -> str:
    """The text of a message's content (images left out)."""
    return "".join(part for part in content_parts(content) if isinstance(part, str))


def split_system(messages: Iterable[Mapping[str, Any]], system: Optional[str]) -> Tuple[str, List[Mapping[str, Any]]]:
    """Take the system (and developer) turns out of ``messages``: for
    providers with a separate system field. ``system=`` comes first."""
    texts = [system] if system else []
    rest: List[Mapping[str, Any]] = []
    for message in messages:
        if message.get("role") in ("system", "developer"):
            texts.append(text_of(message.get("content")))
        else:
            rest.append(message)
    return "\n\n".join(t for t in texts if t), rest


def arguments_object(arguments: Any, call_id: Any = None) -> Dict[str, Any]:
    """A tool call's arguments (a JSON string, as OpenAI sends them) as an
    object, for providers that want one.

    :raises InvalidArgumentError: the arguments are not a JSON object.
    """
    if isinstance(arguments, Mapping):
        return dict(arguments)
    if arguments in (None, ""):
        return {}
    try:
        value = json.loads(arguments)
    except (TypeError, ValueError):
        value = None
    if not isinstance(value, dict):
        raise InvalidArgumentError(f"the arguments of tool call {call_id!r} are not a JSON object: {arguments!r:.80}")
    return value


def tool_names(messages: Iterable[Mapping[str, Any]]) -> Dict[str, str]:
    """Tool call id -> function name, from the assistant turns: for
    providers whose tool results name the function rather than the call."""
    names: Dict[str, str] = {}
    for message in messages:
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            if call.get("id") and function.get("name"):
                names[str(call["id"])] = str(function["name"])
    return names
