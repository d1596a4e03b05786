"""Reading OpenAI-shaped messages, for the adapters that translate them
into another wire format (Anthropic, Gemini, Responses, Ollama).

minillm's one input format is OpenAI's: a list of ``{"role", "content"}``
dicts whose content is a string or a list of typed parts (``text``,
``image_url``, ``file``), assistant turns with ``tool_calls``, and ``tool``
turns with ``tool_call_id``. These helpers take that apart the same way for
everyone: an image part becomes an :class:`Image`, a file part a
:class:`Document`, and each adapter says how its provider takes them -- or
refuses them, before anything is sent.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from ..errors import InvalidArgumentError

__all__ = [
    "Document",
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


class Document:
    """A file part (a PDF, say): inline bytes (base64) with their media
    type, a URL, or the id of a file uploaded to the provider beforehand."""

    __slots__ = ("data", "file_id", "filename", "media_type", "url")

    def __init__(
        self,
        url: Optional[str] = None,
        media_type: Optional[str] = None,
        data: Optional[str] = None,
        filename: Optional[str] = None,
        file_id: Optional[str] = None,
    ):
        self.url = url
        self.media_type = media_type
        self.data = data
        self.filename = filename
        self.file_id = file_id


def _document(part: Mapping[str, Any]) -> Document:
    """A ``file`` part (Chat Completions: the fields inside ``file``) or an
    ``input_file`` part (Responses: the fields beside ``type``)."""
    fields = part.get("file") if part.get("type") == "file" else part
    if not isinstance(fields, Mapping):
        raise InvalidArgumentError("a file part needs {'file': {'file_data': 'data:...;base64,...', 'filename': ...}}")
    filename = fields.get("filename")
    filename = filename if isinstance(filename, str) and filename else None
    file_id, file_data, file_url = fields.get("file_id"), fields.get("file_data"), fields.get("file_url")
    if isinstance(file_id, str) and file_id:
        return Document(file_id=file_id, filename=filename)
    if isinstance(file_data, str):
        inline = data_url(file_data)
        if inline is None:
            raise InvalidArgumentError("a file part's file_data must be a data URL: data:<media type>;base64,<data>")
        return Document(media_type=inline[0], data=inline[1], filename=filename)
    if isinstance(file_url, str) and file_url:
        return Document(url=file_url, filename=filename)
    raise InvalidArgumentError("a file part needs file_data (a base64 data URL), file_url or file_id")


def data_url(url: str) -> Optional[Tuple[str, str]]:
    """``(media_type, base64 data)`` of a ``data:...;base64,`` URL, else None."""
    if not url.startswith("data:") or ";base64," not in url:
        return None
    head, _, data = url[5:].partition(";base64,")
    return head or "application/octet-stream", data


def content_parts(content: Any) -> List[Any]:
    """The parts of a message's content: strings for text, :class:`Image`
    for images, :class:`Document` for files. A string content is one text
    part; None is no parts."""
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
        elif kind in ("file", "input_file"):
            parts.append(_document(part))
        else:
            raise InvalidArgumentError(f"a content part of type {kind!r} cannot be sent to this provider")
    return parts


def text_of(content: Any) -> str:
    """The text of a message's content (images and files left out)."""
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
