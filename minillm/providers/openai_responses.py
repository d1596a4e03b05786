"""The OpenAI Responses API (``POST {base}/responses``), shared by the hosts
that serve it (OpenAI, OpenRouter).

Messages become ``input`` items (tool calls and their outputs are items of
their own) and the system prompt becomes ``instructions``. The stream is a
sequence of typed events; OpenAI ends it after ``response.completed``
without ``[DONE]``, OpenRouter adds ``[DONE]`` and leaves out the
``event:`` lines -- so events are told apart by their ``type`` field. A
function call is announced, then its arguments stream as deltas keyed by
the item id; the same call may be repeated whole by ``.done`` events, and
is never emitted twice.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, ClassVar, Dict, Iterable, Iterator, List, Mapping, Optional, Set

import attrs

from ..accounting.pricing import to_decimal
from ..errors import InvalidArgumentError
from ..events import STREAM_DONE, Event, ReasoningDetail, ResponseInfo, ToolCallDelta
from ..framing import iter_sse
from ..models import Chunk, Usage
from ..request import ChatRequest
from ..transports.base import HTTPRequest
from .base import SHAPE_ERRORS, Adapter, effort_for_budget, malformed_in_stream, require_object, token_count
from .messages import Document, Image, content_parts, split_system, text_of

if TYPE_CHECKING:  # pragma: no cover
    from ..structured import OutputFormat

__all__ = ["ResponsesAdapter", "usage_from_responses"]


#: The fields of a Responses body that ``/responses/input_tokens`` takes:
#: what makes up the input (it refuses the output's settings).
COUNT_FIELDS = frozenset(
    {"model", "input", "instructions", "tools", "tool_choice", "reasoning", "text", "parallel_tool_calls", "truncation"}
)

INCOMPLETE_REASONS: Dict[str, str] = {"max_output_tokens": "length", "content_filter": "content_filter"}


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _input_file(part: Document) -> Dict[str, Any]:
    """A file part as an ``input_file`` item part: an uploaded file's id,
    a URL, or inline bytes with their file name (which the API requires)."""
    if part.file_id is not None:
        return {"type": "input_file", "file_id": part.file_id}
    if part.url is not None:
        return {"type": "input_file", "file_url": part.url}
    return {
        "type": "input_file",
        "filename": part.filename or "document",
        "file_data": f"data:{part.media_type};base64,{part.data}",
    }


def usage_from_responses(
    data: Mapping[str, Any], *, service_tier: Any = None, web_searches: int = 0
) -> Optional[Usage]:
    """Normalise a Responses ``usage`` object: ``output_tokens`` already
    includes the reasoning tokens. OpenRouter adds its money fields. The
    served tier and the web searches made are read from the response
    around it (``service_tier``, its ``web_search_call`` items)."""
    if not isinstance(data, Mapping) or not any(k in data for k in ("input_tokens", "output_tokens")):
        return None
    prompt = _count(data.get("input_tokens"))
    completion = _count(data.get("output_tokens"))
    cost_details = data.get("cost_details") or {}
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=_count(data.get("total_tokens")) or prompt + completion,
        cached_tokens=_count((data.get("input_tokens_details") or {}).get("cached_tokens")),
        reasoning_tokens=_count((data.get("output_tokens_details") or {}).get("reasoning_tokens")),
        cost=to_decimal(data.get("cost")),
        upstream_inference_cost=to_decimal(cost_details.get("upstream_inference_cost")),
        is_byok=data.get("is_byok") is True,
        service_tier=service_tier if isinstance(service_tier, str) and service_tier else None,
        web_search_requests=web_searches,
    )


def _output_text(response: Mapping[str, Any]) -> str:
    """The text of a response's message items (``output_text`` and refusal parts)."""
    pieces = []
    for item in response.get("output") or ():
        if isinstance(item, Mapping) and item.get("type") == "message":
            for part in item.get("content") or ():
                if isinstance(part, Mapping) and part.get("type") in ("output_text", "refusal"):
                    text = part.get("text") if part.get("type") == "output_text" else part.get("refusal")
                    if isinstance(text, str):
                        pieces.append(text)
    return "".join(pieces)


class _Calls:
    """The function calls of one response, by any of their names: the item
    id (``fc_...``), the call id (``call_...``) or the output index."""

    def __init__(self) -> None:
        self._index: Dict[Any, int] = {}
        self._with_arguments: Set[int] = set()
        self.count = 0

    def find(self, *keys: Any) -> Optional[int]:
        for key in keys:
            if key is not None and key in self._index:
                return self._index[key]
        return None

    def add(self, *keys: Any) -> int:
        index = self.count
        self.count += 1
        for key in keys:
            if key is not None:
                self._index[key] = index
        return index

    def alias(self, index: int, *keys: Any) -> None:
        for key in keys:
            if key is not None:
                self._index.setdefault(key, index)

    def has_arguments(self, index: int) -> bool:
        return index in self._with_arguments

    def mark_arguments(self, index: int) -> None:
        self._with_arguments.add(index)


class ResponsesAdapter(Adapter):
    """The Responses protocol; hosts subclass it (see ``openai.py``)."""

    api = "responses"
    #: whether the host has ``POST {base}/responses/input_tokens`` (on its
    #: own service; a compatible server is not assumed to)
    counts_input_tokens: ClassVar[bool] = False

    # -- counting ---------------------------------------------------------

    def count_request(self, request: ChatRequest) -> Optional[HTTPRequest]:
        """``POST {base}/responses/input_tokens``: the Responses body
        without the output's settings (and without ``stop``, which this
        API refuses and which is no input)."""
        if not (self.counts_input_tokens and self.config.official):
            return None
        body = ResponsesAdapter.body(self, attrs.evolve(request, stop=None), stream=False)
        return self.post_json("/responses/input_tokens", {k: v for k, v in body.items() if k in COUNT_FIELDS}, request)

    def parse_count(self, data: Any) -> int:
        return token_count(require_object(data)["input_tokens"])

    models_path: ClassVar[Optional[str]] = "/models"

    # -- requests ---------------------------------------------------------

    def path(self, request: ChatRequest, *, stream: bool) -> str:
        return "/responses"

    def body(self, request: ChatRequest, *, stream: bool) -> Dict[str, Any]:
        if request.stop is not None:
            raise InvalidArgumentError("the Responses API has no stop sequences: leave stop= out")
        instructions, turns = split_system(request.messages, request.system)
        body: Dict[str, Any] = {"model": request.model, "input": self.items(turns)}
        if instructions:
            body["instructions"] = instructions
        if stream:
            body["stream"] = True
        if request.max_tokens is not None:
            body["max_output_tokens"] = request.max_tokens
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.tools is not None:
            body["tools"] = [
                {
                    "type": "function",
                    "name": tool["function"]["name"],
                    "description": tool["function"].get("description", ""),
                    "parameters": tool["function"].get("parameters") or {"type": "object", "properties": {}},
                    **({"strict": tool["function"]["strict"]} if "strict" in tool["function"] else {}),
                }
                for tool in request.tools
            ]
        if request.tool_choice is not None:
            choice = request.tool_choice
            body["tool_choice"] = (
                choice if isinstance(choice, str) else {"type": "function", "name": choice["function"]["name"]}
            )
        if request.thinking_budget is not None:
            body["reasoning"] = {"effort": effort_for_budget(request.thinking_budget), "summary": "auto"}
        if request.extra_body:
            body.update(request.extra_body)
        return body

    def constrain_output(self, body: Dict[str, Any], output: OutputFormat, request: ChatRequest) -> None:
        spec: Dict[str, Any] = {"type": "json_schema", "name": output.name, "schema": output.schema}
        spec["strict"] = output.strict
        if output.description:
            spec["description"] = output.description
        text = body.get("text")
        # Beside the caller's own text options (verbosity, say), if any.
        body["text"] = {**(text if isinstance(text, dict) else {}), "format": spec}

    @staticmethod
    def items(turns: List[Mapping[str, Any]]) -> List[Dict[str, Any]]:
        """OpenAI chat turns as Responses input items."""
        items: List[Dict[str, Any]] = []
        for turn in turns:
            role = turn["role"]
            if role == "tool":
                items.append(
                    {
                        "type": "function_call_output",
                        "call_id": str(turn["tool_call_id"]),
                        "output": text_of(turn.get("content")),
                    }
                )
            elif role == "assistant":
                text = text_of(turn.get("content"))
                if text:
                    items.append({"role": "assistant", "content": text})
                for call in turn.get("tool_calls") or ():
                    function = call.get("function") or {}
                    arguments = function.get("arguments")
                    items.append(
                        {
                            "type": "function_call",
                            "call_id": str(call.get("id")),
                            "name": function.get("name"),
                            "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments or {}),
                        }
                    )
            else:
                parts: List[Dict[str, Any]] = []
                for part in content_parts(turn.get("content")):
                    if isinstance(part, Image):
                        url = part.url or f"data:{part.media_type};base64,{part.data}"
                        parts.append({"type": "input_image", "image_url": url})
                    elif isinstance(part, Document):
                        parts.append(_input_file(part))
                    else:
                        parts.append({"type": "input_text", "text": part})
                items.append({"role": "user", "content": parts})
        return items

    # -- responses --------------------------------------------------------

    def stream_events(self, body: Iterable[bytes]) -> Iterator[Event]:
        return self.decode_frames(iter_sse(body, keep_event_names=False))

    def decode_frames(self, frames: Iterable[Any]) -> Iterator[Event]:
        """Events from Responses SSE frames (anything with ``.data``)."""
        calls = _Calls()
        summary_parts: Set[Any] = set()
        streamed_text = False  # some servers put the whole answer in response.completed only
        for frame in frames:
            data = frame.data
            if data == "[DONE]":
                yield STREAM_DONE
                continue
            if not data:
                continue
            try:
                obj = json.loads(data)
                kind = obj.get("type") if isinstance(obj, dict) else None
                if kind == "response.output_text.delta":
                    streamed_text = True
                    yield Chunk(obj["delta"], "", None, None)
                elif kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
                    yield Chunk("", obj["delta"], None, None)
                elif kind == "response.reasoning_summary_part.added":
                    # Parts of a summary are paragraphs: keep them apart.
                    if summary_parts:
                        yield Chunk("", "\n\n", None, None)
                    summary_parts.add((obj.get("item_id"), obj.get("summary_index")))
                elif kind == "response.function_call_arguments.delta":
                    index = calls.find(obj.get("item_id"), obj.get("call_id"), ("out", obj.get("output_index")))
                    if index is None:
                        index = calls.add(obj.get("item_id"), obj.get("call_id"), ("out", obj.get("output_index")))
                    if obj.get("delta"):
                        calls.mark_arguments(index)
                        yield ToolCallDelta(index=index, arguments=obj["delta"])
                elif kind in ("response.output_item.added", "response.output_item.done"):
                    yield from self._item(obj["item"], obj.get("output_index"), calls)
                elif kind == "response.function_call_arguments.done":
                    index = calls.find(obj.get("item_id"), obj.get("call_id"), ("out", obj.get("output_index")))
                    if index is not None and not calls.has_arguments(index) and obj.get("arguments"):
                        calls.mark_arguments(index)
                        yield ToolCallDelta(index=index, arguments=obj["arguments"])
                elif kind == "response.refusal.delta":
                    streamed_text = True
                    yield Chunk(obj["delta"], "", None, None)
                elif kind in ("response.created", "response.in_progress"):
                    response = obj.get("response") or {}
                    yield ResponseInfo(id=response.get("id"), model=response.get("model"))
                elif kind in ("response.completed", "response.incomplete"):
                    response = obj.get("response") or {}
                    yield ResponseInfo(id=response.get("id"), model=response.get("model"))
                    if not streamed_text:
                        text = _output_text(response)
                        if text:
                            yield Chunk(text, "", None, None)
                    yield Chunk("", "", self._finish(response, calls.count), self._usage(response))
                    yield STREAM_DONE
                elif kind == "response.failed":
                    response = obj.get("response") or {}
                    yield self.in_band_error(response.get("error") or {"message": "the response failed"})
                    return
                elif kind == "error":
                    yield self.in_band_error(obj.get("error") if isinstance(obj.get("error"), dict) else obj)
                    return
                # other events (content parts, *.done repeats, added parts) add nothing
            except SHAPE_ERRORS as exc:
                yield malformed_in_stream(exc, data)
                return

    def _item(self, item: Mapping[str, Any], output_index: Any, calls: _Calls) -> Iterator[Event]:
        """Events for an output item being announced or completed."""
        item_type = item.get("type")
        if item_type == "function_call":
            keys = (item.get("id"), item.get("call_id"), ("out", output_index))
            index = calls.find(*keys)
            if index is None:
                index = calls.add(*keys)
            else:
                calls.alias(index, *keys)
            yield ToolCallDelta(index=index, id=item.get("call_id") or item.get("id"), name=item.get("name"))
            if item.get("arguments") and not calls.has_arguments(index) and item.get("status") != "in_progress":
                calls.mark_arguments(index)
                yield ToolCallDelta(index=index, arguments=item["arguments"])
        elif item_type == "reasoning" and item.get("encrypted_content"):
            yield ReasoningDetail(
                {"type": "reasoning", "id": item.get("id"), "encrypted_content": item["encrypted_content"]},
                merge_key=("reasoning", item.get("id")),
            )

    def _finish(self, response: Mapping[str, Any], tool_calls: int) -> str:
        if response.get("status") == "incomplete":
            reason = (response.get("incomplete_details") or {}).get("reason")
            return INCOMPLETE_REASONS.get(str(reason), "length")
        return "tool_calls" if tool_calls else "stop"

    def _usage(self, response: Mapping[str, Any]) -> Optional[Usage]:
        usage = response.get("usage")
        if not isinstance(usage, dict):
            return None
        output = response.get("output")
        searches = (
            sum(1 for item in output if isinstance(item, dict) and item.get("type") == "web_search_call")
            if isinstance(output, list)
            else 0
        )
        return usage_from_responses(usage, service_tier=response.get("service_tier"), web_searches=searches)

    def body_events(self, data: Any) -> Iterator[Event]:
        require_object(data)
        if data.get("error"):
            yield self.in_band_error(data["error"])
            return
        if not isinstance(data.get("output"), list):
            raise TypeError("the response has no output")
        yield ResponseInfo(id=data.get("id"), model=data.get("model"))
        calls = _Calls()
        for position, item in enumerate(data["output"]):
            item_type = item.get("type")
            if item_type == "message":
                for part in item.get("content") or ():
                    if part.get("type") in ("output_text", "refusal"):
                        yield Chunk(part.get("text") or part.get("refusal") or "", "", None, None)
            elif item_type == "reasoning":
                summaries = [s.get("text", "") for s in item.get("summary") or () if isinstance(s, dict)]
                texts = [c.get("text", "") for c in item.get("content") or () if isinstance(c, dict)]
                thinking = "\n\n".join(t for t in summaries + texts if t)
                if thinking:
                    yield Chunk("", thinking, None, None)
                yield from self._item(item, position, calls)
            else:
                yield from self._item({**item, "status": "completed"}, position, calls)
        yield Chunk("", "", self._finish(data, calls.count), self._usage(data))
        yield STREAM_DONE
