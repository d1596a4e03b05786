"""The OpenAI Chat Completions wire protocol, shared by every host that
speaks it (OpenAI, OpenRouter, xAI, vLLM, llama.cpp, LM Studio, ...).

Hosts differ only in data declared on their subclasses: which field caps
the output, whether ``completion_tokens`` already includes reasoning, what
``thinking_budget`` becomes, extra headers. The decoding here survives what
real hosts send (see the conformance corpus): usage on a ``choices: []``
chunk that is not the last; tool-call fragments whose id and name repeat;
reasoning as ``reasoning_content`` or ``reasoning``; errors inside ``data:``
objects or as ``event: error``.
"""

from __future__ import annotations

import json
import logging
import threading
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, Dict, Iterable, Iterator, List, Optional, Set, Union

from ..accounting.pricing import to_decimal
from ..errors import APIError
from ..events import STREAM_DONE, ChoiceEvent, Event, ProviderError, ResponseInfo, ToolCallDelta
from ..framing import iter_sse
from ..models import Chunk, Usage
from ..request import ChatRequest
from .base import SHAPE_ERRORS, Adapter, effort_for_budget, malformed_in_stream, parse_json, require_object

if TYPE_CHECKING:  # pragma: no cover
    from ..structured import OutputFormat

__all__ = ["SERVERS", "ChatCompletionsAdapter", "ServerMemory", "usage_from_chat"]

log = logging.getLogger("minillm.providers")

#: Native finish reasons -> minillm's. Unknown reasons read as "stop".
FINISH_REASONS: Dict[str, str] = {
    "stop": "stop",
    "eos": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "length": "length",
    "max_tokens": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "tool_use": "tool_calls",
    "content_filter": "content_filter",
    "error": "error",
    "abort": "error",
}

_USD_TICKS = Decimal(10) ** 10  # xAI reports cost in 1e-10 USD "ticks"
_EMPTY: Dict[str, Any] = {}


def _count(value: Any) -> Optional[int]:
    """A token count from the wire: an int, an integral float or a numeric
    string; None when it is none of these."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _int(value: Any) -> int:
    return _count(value) or 0


def usage_from_chat(
    data: Dict[str, Any], *, reasoning_in_completion: bool, service_tier: Any = None
) -> Optional[Usage]:
    """Normalise a Chat Completions ``usage`` object.

    :param reasoning_in_completion: False for hosts (xAI) whose
        ``completion_tokens`` leaves reasoning out; it is added back so that
        ``completion_tokens`` means every output token billed.
    :param service_tier: the tier the response says it was served at (a
        top-level field of the chunk or body, beside ``usage``).
    :returns: None when the object carries no token counts at all: pricing
        it would book a fake $0.
    """
    if _count(data.get("prompt_tokens")) is None and _count(data.get("completion_tokens")) is None:
        return None
    prompt = _int(data.get("prompt_tokens"))
    completion = _int(data.get("completion_tokens"))
    prompt_details = data.get("prompt_tokens_details") or {}
    completion_details = data.get("completion_tokens_details") or {}
    cached = _int(prompt_details.get("cached_tokens")) or _int(data.get("prompt_cache_hit_tokens"))
    # OpenRouter reports cache writes (Anthropic, Gemini explicit caches) here.
    writes = _int(prompt_details.get("cache_write_tokens"))
    reasoning = _int(completion_details.get("reasoning_tokens"))
    if not reasoning_in_completion:
        completion += reasoning
    total = _int(data.get("total_tokens")) or prompt + completion
    cost = to_decimal(data.get("cost"))
    if cost is None and data.get("cost_in_usd_ticks") is not None:
        ticks = to_decimal(data.get("cost_in_usd_ticks"))
        cost = None if ticks is None else ticks / _USD_TICKS
    cost_details = data.get("cost_details") or {}
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=total,
        cached_tokens=cached,
        reasoning_tokens=reasoning,
        cost=cost,
        upstream_inference_cost=to_decimal(cost_details.get("upstream_inference_cost")),
        is_byok=data.get("is_byok") is True,
        cache_write_tokens=writes,
        service_tier=service_tier if isinstance(service_tier, str) and service_tier else None,
    )


class ServerMemory:
    """What OpenAI-compatible servers have taught this process, per base URL.

    Thread-safe. It only ever learns that a server rejects an option, so a
    lesson can never make a working request fail.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rejects_stream_options: Set[str] = set()

    def rejects_stream_options(self, base_url: str) -> bool:
        with self._lock:
            return base_url in self._rejects_stream_options

    def learn_rejects_stream_options(self, base_url: str) -> bool:
        """Remember the lesson; True when it is new."""
        with self._lock:
            new = base_url not in self._rejects_stream_options
            self._rejects_stream_options.add(base_url)
            return new

    def forget(self) -> None:
        """Forget every lesson (for tests, whose servers reuse ports)."""
        with self._lock:
            self._rejects_stream_options.clear()


#: The one memory of this process (a registry, filled as servers answer).
SERVERS = ServerMemory()


def _text_or_none(value: Any) -> Optional[str]:
    return None if value is None else str(value)


def _tool_call_deltas(calls: Any) -> Iterator[ToolCallDelta]:
    for position, call in enumerate(calls):
        function = call.get("function") or _EMPTY
        index = call.get("index", position)
        yield ToolCallDelta(
            index=index if type(index) is int else position,
            id=_text_or_none(call.get("id")),
            name=_text_or_none(function.get("name")),
            arguments=_arguments(function.get("arguments")),
        )


def _content_parts(content: Any, thinking: Any) -> tuple[str, str]:
    """Text and thinking from content given as a list of typed parts (as
    some compatible servers stream it) rather than a string."""
    texts = [content] if isinstance(content, str) else []
    thoughts = [thinking] if isinstance(thinking, str) else []
    for part in content if isinstance(content, list) else ():
        if isinstance(part, dict):
            kind = part.get("type")
            if kind == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif kind in ("thinking", "reasoning"):
                value = part.get("thinking") or part.get("text") or ""
                if isinstance(value, list):
                    value = "".join(p.get("text", "") for p in value if isinstance(p, dict))
                if isinstance(value, str):
                    thoughts.append(value)
    if not isinstance(content, (str, list)) and content:
        raise TypeError(f"delta.content is a {type(content).__name__}")
    if not isinstance(thinking, str) and thinking:
        raise TypeError(f"the reasoning is a {type(thinking).__name__}")
    return "".join(texts), "".join(thoughts)


def _index(choice: Any, choices: List[Any]) -> int:
    index = choice.get("index") if isinstance(choice, dict) else None
    return index if type(index) is int else choices.index(choice)


def _choices(choices: List[Any], usage: Optional[Usage], finish_reasons: Dict[str, str]) -> Iterator[Event]:
    """The events of a chunk that carries other choices than the first (or
    several): the first choice's as they are, the others' inside
    :class:`~minillm.events.ChoiceEvent`."""
    for choice in choices:
        index = _index(choice, choices)
        delta = choice.get("delta") or _EMPTY
        events: List[Union[Chunk, ToolCallDelta]] = list(_tool_call_deltas(delta.get("tool_calls") or ()))
        text, thinking = _content_parts(
            delta.get("content") or "", delta.get("reasoning_content") or delta.get("reasoning") or ""
        )
        reason = choice.get("finish_reason")
        if text or thinking or reason:
            events.append(Chunk(text, thinking, finish_reasons.get(reason, "stop") if reason else None, None))
        for event in events:
            yield event if index == 0 else ChoiceEvent(index, event)
    if usage is not None:
        yield Chunk("", "", None, usage)


def _arguments(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


class ChatCompletionsAdapter(Adapter):
    """``POST {base}/chat/completions``."""

    models_path: ClassVar[Optional[str]] = "/models"

    #: the body field that caps output tokens
    max_tokens_field: ClassVar[str] = "max_tokens"
    #: False when the host's completion_tokens excludes reasoning tokens
    reasoning_in_completion: ClassVar[bool] = True
    #: whether assistant turns may carry ``reasoning_details`` back (others
    #: would reject the unknown field)
    accepts_reasoning_details: ClassVar[bool] = False
    #: whether streams ask for usage with ``stream_options`` (a host that
    #: rejects unknown fields and sends usage anyway says False)
    asks_for_stream_usage: ClassVar[bool] = True
    #: a top-level object of the chunk that may hold the usage instead
    #: (Groq's ``x_groq``)
    usage_elsewhere: ClassVar[Optional[str]] = None
    #: whether message content parts may carry Anthropic's ``cache_control``
    #: markers (hosts that validate strictly refuse the unknown field, and
    #: none of them has a use for it: they cache prompts on their own)
    accepts_cache_control: ClassVar[bool] = True
    #: the ``reasoning_effort`` a ``thinking_budget`` of 0 becomes: OpenAI's
    #: lowest level, or ``"none"`` on hosts that turn reasoning off with it
    no_thinking_effort: ClassVar[str] = "minimal"

    # -- requests ---------------------------------------------------------

    def thinking_options(self, budget: int) -> Dict[str, Any]:
        """Body fields asking for a reasoning budget of ``budget`` tokens.

        Chat Completions has no budget, only an effort level; map the budget
        onto it.
        """
        return {"reasoning_effort": self.no_thinking_effort if budget == 0 else effort_for_budget(budget)}

    def messages(self, request: ChatRequest) -> List[Dict[str, Any]]:
        """The request's messages as this host takes them: the fields it
        would refuse (``reasoning_details``, ``cache_control`` on content
        parts) left out. The caller's dicts are never changed."""
        if self.accepts_reasoning_details and self.accepts_cache_control:
            return list(request.messages)
        messages = []
        for message in request.messages:
            if not self.accepts_reasoning_details and "reasoning_details" in message:
                message = {k: v for k, v in message.items() if k != "reasoning_details"}
            content = message.get("content")
            if (
                not self.accepts_cache_control
                and isinstance(content, list)
                and any(isinstance(part, dict) and "cache_control" in part for part in content)
            ):
                parts = [
                    {k: v for k, v in part.items() if k != "cache_control"} if isinstance(part, dict) else part
                    for part in content
                ]
                message = {**message, "content": parts}
            messages.append(message)
        return messages

    def body(self, request: ChatRequest, *, stream: bool) -> Dict[str, Any]:
        messages = self.messages(request)
        if request.system is not None:
            messages.insert(0, {"role": "system", "content": request.system})
        body: Dict[str, Any] = {"model": request.model, "messages": messages}
        if stream:
            body["stream"] = True
            if self.asks_for_stream_usage and not SERVERS.rejects_stream_options(self.config.base_url):
                body["stream_options"] = {"include_usage": True}
        if request.max_tokens is not None:
            body[self.max_tokens_field] = request.max_tokens
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.stop is not None:
            body["stop"] = list(request.stop)
        if request.tools is not None:
            body["tools"] = [{"type": tool["type"], "function": tool["function"]} for tool in request.tools]
        if request.tool_choice is not None:
            body["tool_choice"] = request.tool_choice
        if request.thinking_budget is not None:
            body.update(self.thinking_options(request.thinking_budget))
        if request.extra_body:
            body.update(request.extra_body)
        return body

    def constrain_output(self, body: Dict[str, Any], output: OutputFormat, request: ChatRequest) -> None:
        spec: Dict[str, Any] = {"name": output.name, "schema": output.schema, "strict": output.strict}
        if output.description:
            spec["description"] = output.description
        body["response_format"] = {"type": "json_schema", "json_schema": spec}

    def path(self, request: ChatRequest, *, stream: bool) -> str:
        return "/chat/completions"

    def learn_from(self, error: APIError) -> bool:
        # Some compatible servers reject stream_options (400, or 422 from
        # pydantic validators): stop sending it to this base URL, for every
        # client in the process. Streams from it then arrive without usage
        # and settle as UNKNOWN, or by look-up. Another thread may have
        # learned it first: the rebuilt request is right either way.
        if error.status_code not in (400, 422):
            return False
        if "stream_options" not in f"{error.message} {json.dumps(error.body, default=str)}":
            return False
        if SERVERS.learn_rejects_stream_options(self.config.base_url):
            log.warning(
                "%s does not accept stream_options: its streams carry no usage, so their cost is UNKNOWN",
                self.config.base_url,
            )
        return True

    # -- responses --------------------------------------------------------

    def usage(self, data: Dict[str, Any], service_tier: Any = None) -> Optional[Usage]:
        return usage_from_chat(data, reasoning_in_completion=self.reasoning_in_completion, service_tier=service_tier)

    def stream_events(self, body: Iterable[bytes]) -> Iterator[Event]:
        return self.decode_frames(iter_sse(body))

    def decode_frames(self, frames: Iterable[Any]) -> Iterator[Event]:
        """Events from SSE frames (anything with ``.event`` and ``.data``).

        A frame that is not what the protocol promises -- invalid JSON, or
        valid JSON of the wrong shape -- ends the events with a ``malformed``
        :class:`~minillm.events.ProviderError`, never a foreign exception.
        """
        loads = parse_json
        finish_reasons = FINISH_REASONS
        usage_of = self.usage
        elsewhere = self.usage_elsewhere
        have_id = False
        for frame in frames:
            data = frame.data
            if data == "[DONE]":
                yield STREAM_DONE
                continue
            if not data:
                continue  # an empty data: line is legal SSE and says nothing
            try:
                obj = loads(data)
                if type(obj) is not dict:  # checked inline: this runs once per token
                    require_object(obj, "a chunk")
                if obj.get("error") or frame.event == "error":
                    yield self.in_band_error(obj.get("error") or obj)
                    return
                if not have_id and (obj.get("id") or obj.get("model")):
                    # Until an id is seen (some hosts send it late); the fold
                    # keeps the first id and the first model.
                    have_id = bool(obj.get("id"))
                    yield ResponseInfo(id=_text_or_none(obj.get("id")), model=_text_or_none(obj.get("model")))
                raw_usage = obj.get("usage")
                if raw_usage is None and elsewhere is not None:
                    holder = obj.get(elsewhere)
                    raw_usage = holder.get("usage") if isinstance(holder, dict) else None
                usage = usage_of(raw_usage, obj.get("service_tier")) if raw_usage else None
                choices = obj.get("choices")
                if choices and (len(choices) > 1 or choices[0].get("index")):
                    # Several choices (n > 1): each kept apart by its index.
                    yield from _choices(choices, usage, finish_reasons)
                elif choices:
                    choice = choices[0]
                    delta = choice.get("delta") or _EMPTY
                    text = delta.get("content") or ""
                    thinking = ""
                    # The common chunk carries text content alone: skip the rarer keys.
                    if len(delta) > 1 or type(text) is not str or not text:
                        calls = delta.get("tool_calls")
                        if calls:
                            yield from _tool_call_deltas(calls)
                        thinking = delta.get("reasoning_content") or delta.get("reasoning") or ""
                        if type(text) is not str or type(thinking) is not str:
                            text, thinking = _content_parts(text, thinking)
                    reason = choice.get("finish_reason")
                    if text or thinking or reason or usage:
                        yield Chunk(
                            text,
                            thinking,
                            finish_reasons.get(reason, "stop") if reason else None,
                            usage,
                        )
                elif usage is not None:
                    yield Chunk("", "", None, usage)
            except SHAPE_ERRORS as exc:
                yield malformed_in_stream(exc, data)
                return

    def body_events(self, data: Any) -> Iterator[Event]:
        require_object(data)
        error = data.get("error")
        if error:
            yield self.in_band_error(error)
            return
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise TypeError("the response has no choices")
        yield ResponseInfo(id=_text_or_none(data.get("id")), model=_text_or_none(data.get("model")))
        choice = choices[0]
        for other in choices[1:]:
            for event in self._message_events(other, None):
                yield ChoiceEvent(_index(other, choices), event)  # type: ignore[arg-type]
        yield from self._message_events(choice, data.get("usage"), data.get("service_tier"))
        yield STREAM_DONE

    def _message_events(self, choice: Dict[str, Any], raw_usage: Any, service_tier: Any = None) -> Iterator[Event]:
        """The events of one choice of a whole answer."""
        message = choice.get("message") or _EMPTY
        for position, call in enumerate(message.get("tool_calls") or ()):
            function = call.get("function") or _EMPTY
            yield ToolCallDelta(
                index=position,
                id=_text_or_none(call.get("id")),
                name=_text_or_none(function.get("name")),
                arguments=_arguments(function.get("arguments")),
            )
        reason = choice.get("finish_reason")
        text, thinking = _content_parts(
            message.get("content") or "", message.get("reasoning_content") or message.get("reasoning") or ""
        )
        yield Chunk(
            text,
            thinking,
            FINISH_REASONS.get(reason, "stop") if reason else None,
            self.usage(raw_usage, service_tier) if raw_usage else None,
        )

    def in_band_error(self, error: Any) -> ProviderError:
        # Groq's event: error wraps the object once more: {"error": {...}}.
        if isinstance(error, dict) and isinstance(error.get("error"), dict):
            error = error["error"]
        return super().in_band_error(error)
