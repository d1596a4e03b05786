"""The stream state machine: one fold, :func:`accumulate`, shared by
``complete()`` and ``stream()``.

The fold does no I/O. It keeps the last finish reason, merges tool-call
fragments by index, and keeps usage as the *last* non-null usage object.
Usage is a snapshot, so it is replaced and never summed: a repeated usage
chunk must not count twice. A stream is complete only once the provider's
terminal signal has arrived (:attr:`StreamState.is_terminal`); the iterator
running dry is not completion.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from .events import ChoiceEvent, Event, ProviderError, ReasoningDetail, ResponseInfo, StreamDone, ToolCallDelta
from .models import Chunk, Response, ToolCall, Usage

__all__ = ["StreamState", "accumulate"]


#: The fields of a reasoning record that arrive in pieces; the rest are
#: labels (type, format, index, id): the first value given is kept.
_STREAMED_FIELDS = frozenset({"text", "summary", "thinking", "data", "signature"})


class _ToolCallBuilder:
    __slots__ = ("arguments", "id", "name")

    def __init__(self) -> None:
        self.id: Optional[str] = None
        self.name: Optional[str] = None
        self.arguments: List[str] = []


class _Joined:
    """The text of an append-only list of pieces, joined incrementally.

    The list is never rewritten, so another thread may read the text while
    the reader appends; the cached prefix keeps reading after every chunk
    linear overall.
    """

    __slots__ = ("_cache", "parts")

    def __init__(self) -> None:
        self.parts: List[str] = []
        self._cache: Tuple[int, str] = (0, "")

    def value(self) -> str:
        parts = self.parts
        count = len(parts)
        done, text = self._cache
        if done != count:
            text += "".join(parts[done:count])
            self._cache = (count, text)
        return text


class StreamState:
    """Everything known about a response so far. Mutated only by
    :func:`accumulate`; read by the stream and by settlement."""

    __slots__ = (
        "_reasoning",
        "_text",
        "_thinking",
        "_tool_calls",
        "done",
        "error",
        "finish_reason",
        "id",
        "model",
        "others",
        "shared_parts",
        "text_parts",
        "thinking_parts",
        "usage",
    )

    def __init__(self) -> None:
        self._text = _Joined()
        self._thinking = _Joined()
        #: appended to by the fold only
        self.text_parts = self._text.parts
        self.thinking_parts = self._thinking.parts
        #: chunks that carried both text and thinking (one delta, two parts)
        self.shared_parts = 0
        self._tool_calls: Dict[int, _ToolCallBuilder] = {}
        self._reasoning: List[Tuple[Any, Dict[str, Any]]] = []
        self.finish_reason: Optional[str] = None
        self.usage: Optional[Usage] = None
        self.id: Optional[str] = None
        self.model: Optional[str] = None
        #: the provider's explicit terminal signal arrived
        self.done = False
        #: an in-band error arrived
        self.error: Optional[ProviderError] = None
        #: the choices after the first, by index (n > 1)
        self.others: Dict[int, StreamState] = {}

    @property
    def text(self) -> str:
        return self._text.value()

    @property
    def thinking(self) -> str:
        return self._thinking.value()

    @property
    def content_seen(self) -> bool:
        """Whether any output (text, thinking, a tool call) has arrived."""
        return bool(self.text_parts or self.thinking_parts or self._tool_calls)

    @property
    def output_deltas(self) -> int:
        """How many pieces of output arrived (text, thinking, tool-call
        arguments): a lower bound on the output tokens, since a provider
        sends at least one token per delta."""
        arguments = sum(len(builder.arguments) for builder in self._tool_calls.values())
        others = sum(other.output_deltas for other in self.others.values())
        return len(self.text_parts) + len(self.thinking_parts) - self.shared_parts + arguments + others

    @property
    def final_usage(self) -> Optional[Usage]:
        """The provider's final usage, once the response said it is complete
        (a finish reason or the terminal event); None while the usage seen
        is a running count or a placeholder."""
        if self.finish_reason is not None or self.done:
            return self.usage
        return None

    @property
    def is_terminal(self) -> bool:
        """The provider said the response is complete: an explicit terminal
        signal, or a finish reason together with usage."""
        return self.done or (self.finish_reason is not None and self.usage is not None)

    def tool_calls(self) -> List[ToolCall]:
        return [
            ToolCall(id=b.id or "", name=b.name or "", arguments="".join(b.arguments))
            for _, b in sorted(self._tool_calls.items())
        ]

    def reasoning_details(self) -> List[Dict[str, Any]]:
        return [dict(detail) for _, detail in self._reasoning]

    def to_response(self, finish_reason: Optional[str] = None, raw: object = None) -> Response:
        """Snapshot the state as a :class:`~minillm.Response`.

        ``finish_reason`` overrides the provider's (``"cancelled"`` for a
        stream ended early). A completed response that never named a reason
        finishes with ``"tool_calls"`` when it made tool calls, else ``"stop"``.
        """
        response = self._choice(self, finish_reason)
        response.usage = self.usage
        response.raw = raw
        if self.others:
            response.choices = [self._choice(self, finish_reason)] + [
                self._choice(self.others[index], finish_reason) for index in sorted(self.others)
            ]
        return response

    def _choice(self, choice: StreamState, finish_reason: Optional[str]) -> Response:
        """One choice's answer; the id, the model and the end are the call's."""
        calls = choice.tool_calls()
        reason = finish_reason or choice.finish_reason
        if reason is None and self.is_terminal:
            reason = "tool_calls" if calls else "stop"
        return Response(
            text=choice.text,
            thinking=choice.thinking,
            tool_calls=calls,
            finish_reason=reason,
            id=self.id,
            model=self.model,
            reasoning_details=choice.reasoning_details(),
        )


def accumulate(state: StreamState, event: Event) -> None:
    """Fold one event into ``state``."""
    kind = type(event)
    if kind is Chunk:
        chunk: Chunk = event  # type: ignore[assignment]
        if chunk.text:
            state.text_parts.append(chunk.text)
            if chunk.thinking:
                state.thinking_parts.append(chunk.thinking)
                state.shared_parts += 1
        elif chunk.thinking:
            state.thinking_parts.append(chunk.thinking)
        if chunk.finish_reason is not None:
            state.finish_reason = chunk.finish_reason
        if chunk.usage is not None:
            state.usage = chunk.usage
    elif kind is ToolCallDelta:
        delta: ToolCallDelta = event  # type: ignore[assignment]
        builder = state._tool_calls.get(delta.index)
        if builder is None:
            builder = state._tool_calls[delta.index] = _ToolCallBuilder()
        if delta.id and builder.id is None:
            builder.id = delta.id
        if delta.name and builder.name is None:
            builder.name = delta.name
        if delta.arguments:
            builder.arguments.append(delta.arguments)
    elif kind is ResponseInfo:
        info: ResponseInfo = event  # type: ignore[assignment]
        if state.id is None and info.id:
            state.id = info.id
        if state.model is None and info.model:
            state.model = info.model
    elif kind is ReasoningDetail:
        record: ReasoningDetail = event  # type: ignore[assignment]
        last = state._reasoning[-1] if state._reasoning else None
        if record.merge_key is not None and last is not None and last[0] == record.merge_key:
            merged = last[1]
            for key, value in record.detail.items():
                if key in _STREAMED_FIELDS and isinstance(value, str) and isinstance(merged.get(key), str):
                    merged[key] += value
                elif merged.get(key) is None:
                    merged[key] = value
        else:
            state._reasoning.append((record.merge_key, dict(record.detail)))
    elif kind is StreamDone:
        state.done = True
    elif kind is ChoiceEvent:
        choice: ChoiceEvent = event  # type: ignore[assignment]
        other = state.others.get(choice.index)
        if other is None:
            other = state.others[choice.index] = StreamState()
        accumulate(other, choice.event)
    elif kind is ProviderError:
        state.error = event  # type: ignore[assignment]
    else:
        raise TypeError(f"not a stream event: {event!r}")
