"""The closed set of typed events that adapters produce from provider wire
data, and that :func:`minillm.accumulate.accumulate` folds into a response.

Content (text, thinking, the finish reason, usage) travels as the public
:class:`~minillm.Chunk` itself, so the hot path of a stream creates one
object per provider chunk and hands that same object to the caller. Every
other event is one of the classes below. Raw dicts never flow past an
adapter.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Union

import attrs

from .models import Chunk

__all__ = ["ChoiceEvent", "Event", "ProviderError", "ReasoningDetail", "ResponseInfo", "StreamDone", "ToolCallDelta"]


@attrs.frozen
class ToolCallDelta:
    """A fragment of a tool call, merged with others of the same ``index``.

    ``id`` and ``name`` are taken from the first fragment that has them
    (some hosts repeat them on later fragments: they are never
    concatenated); ``arguments`` fragments are concatenated.
    """

    index: int
    id: Optional[str] = None
    name: Optional[str] = None
    arguments: str = ""


@attrs.frozen
class ResponseInfo:
    """Identity of the response: the provider's id and the model that served it."""

    id: Optional[str] = None
    model: Optional[str] = None


@attrs.frozen
class ReasoningDetail:
    """A provider's own reasoning record (a signed thinking block, a thought
    signature, an OpenRouter ``reasoning_details`` entry), kept on the
    response so the next turn can send it back. ``merge_key`` joins a record
    streamed in pieces: pieces with the same key are concatenated field by
    field (text fields only)."""

    detail: Dict[str, Any]
    merge_key: Any = None


@attrs.frozen
class StreamDone:
    """The provider's explicit terminal signal (``data: [DONE]`` and the like)."""


@attrs.frozen
class ProviderError:
    """An error the provider reported inside a response body.

    ``overflow`` marks a context-length overflow; ``status`` is the HTTP
    status the error stands for (its numeric code, else what its kind means:
    see :data:`minillm.errors.KIND_STATUS`), which decides its class and
    whether sending the request again may help.
    """

    message: str
    code: Any = None
    type: Optional[str] = None
    overflow: bool = False
    status: Optional[int] = None
    body: Any = attrs.field(default=None, repr=False)


@attrs.frozen
class ChoiceEvent:
    """An event of another choice than the first, when a provider answers
    several at once (OpenAI's ``n > 1``): kept apart by ``index``, never
    mixed into the first choice's text."""

    index: int
    event: Union[Chunk, ToolCallDelta]


#: A single instance suffices: the terminal signal carries no data.
STREAM_DONE = StreamDone()

Event = Union[Chunk, ToolCallDelta, ResponseInfo, ReasoningDetail, StreamDone, ProviderError, ChoiceEvent]
