"""Anthropic's Messages API (``POST {base}/v1/messages``).

Differences from Chat Completions that matter here: the system prompt is a
top-level field; ``max_tokens`` is required; tool calls and results are
content blocks; the stream is a sequence of named block events; and usage
is split -- input (with cache reads and writes) in ``message_start``, the
cumulative output in ``message_delta`` (assigned, never added). With
context compaction, ``usage.iterations`` lists every sampling iteration and
the billed total is their sum.
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple

from ..errors import InvalidArgumentError
from ..events import STREAM_DONE, Event, ReasoningDetail, ResponseInfo, ToolCallDelta
from ..framing import iter_sse
from ..models import Chunk, Usage
from ..request import ChatRequest
from ..transports.base import HTTPRequest
from .base import (
    SHAPE_ERRORS,
    Adapter,
    check_forced_tool,
    malformed_in_stream,
    parse_json,
    require_object,
    token_count,
)
from .messages import Document, Image, arguments_object, content_parts, split_system

if TYPE_CHECKING:  # pragma: no cover
    from ..structured import OutputFormat

__all__ = ["FOREIGN_FIELDS", "REFUSED_WITH_THINKING", "AnthropicAdapter", "usage_from_anthropic"]

#: Other APIs' sampling fields, which the Messages API refuses as unknown.
FOREIGN_FIELDS = frozenset(
    {"seed", "frequency_penalty", "presence_penalty", "logit_bias", "logprobs", "top_logprobs", "n"}
)

#: What extended thinking does not take: a body field, how the refusal
#: names it, and which of its values are refused.
REFUSED_WITH_THINKING: Tuple[Tuple[str, str, Callable[[Any], bool]], ...] = (
    ("temperature", "a temperature other than 1", lambda value: value != 1),
    ("top_k", "top_k", lambda value: True),
    ("top_p", "a top_p below 0.95", lambda value: isinstance(value, (int, float)) and value < 0.95),
    (
        "tool_choice",
        "a tool_choice that forces a tool",
        lambda value: isinstance(value, dict) and value.get("type") in ("any", "tool"),
    ),
)

API_VERSION = "2023-06-01"
#: Sent when the caller gives no max_tokens (the API requires one).
DEFAULT_MAX_TOKENS = 4096
#: The smallest thinking budget Anthropic accepts.
MIN_THINKING_BUDGET = 1024
#: The fields of a Messages body that ``count_tokens`` takes: what makes
#: up the input (it refuses the output's settings, such as ``max_tokens``).
COUNT_FIELDS = frozenset({"model", "messages", "system", "tools", "tool_choice", "thinking", "mcp_servers"})

FINISH_REASONS: Dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _has_cache_control(content: Any) -> bool:
    return isinstance(content, list) and any(
        isinstance(part, Mapping) and part.get("cache_control") is not None for part in content
    )


def _blocks(content: Any) -> List[Dict[str, Any]]:
    blocks: List[Dict[str, Any]] = []
    for part in content_parts(content):
        if isinstance(part, Image):
            source = (
                {"type": "url", "url": part.url}
                if part.url
                else {"type": "base64", "media_type": part.media_type, "data": part.data}
            )
            blocks.append({"type": "image", "source": source})
        elif isinstance(part, Document):
            blocks.append({"type": "document", "source": _document_source(part)})
        elif part:
            blocks.append({"type": "text", "text": part})
    return blocks


def _document_source(part: Document) -> Dict[str, Any]:
    """A file part as a ``document`` block's source: a PDF (inline or by
    URL) or plain text.

    :raises InvalidArgumentError: another kind of file, or an uploaded
        file's id (the Files API is a beta minillm does not speak).
    """
    if part.file_id is not None:
        raise InvalidArgumentError(
            "anthropic: a file_id needs Anthropic's Files API (a beta minillm does not use): send the file's bytes"
        )
    if part.url is not None:
        return {"type": "url", "url": part.url}
    if part.media_type == "application/pdf":
        return {"type": "base64", "media_type": "application/pdf", "data": part.data}
    if part.media_type == "text/plain":
        try:
            text = base64.b64decode(part.data or "", validate=True).decode("utf-8")
        except ValueError:
            raise InvalidArgumentError("anthropic: a text/plain file part must be base64 of UTF-8 text") from None
        return {"type": "text", "media_type": "text/plain", "data": text}
    raise InvalidArgumentError(
        f"anthropic takes PDF (application/pdf) and plain-text (text/plain) documents, not {part.media_type!r}"
    )


def usage_from_anthropic(data: Mapping[str, Any]) -> Optional[Usage]:
    """Normalise an Anthropic ``usage`` object (as merged from the stream).

    ``prompt_tokens`` is every input token billed: ``input_tokens`` plus
    cache reads plus cache writes; ``cached_tokens`` the reads;
    ``cache_write_tokens`` the writes, of which ``cache_write_1h_tokens``
    those with a one-hour lifetime (``cache_creation.ephemeral_1h_input_tokens``);
    ``reasoning_tokens`` the thinking part of the output, when the response
    says (``output_tokens_details.thinking_tokens``); ``web_search_requests``
    from ``server_tool_use``; ``service_tier`` as Anthropic names it
    (``"standard"``, ``"priority"``, ``"batch"``). With ``iterations``
    (context compaction) the top level leaves the compaction out, and the
    billed total is the sum of the iterations.
    """
    iterations = data.get("iterations")
    parts: Iterable[Mapping[str, Any]]
    if isinstance(iterations, list) and iterations:
        parts = [i for i in iterations if isinstance(i, Mapping)]
    else:
        if not any(key in data for key in ("input_tokens", "output_tokens")):
            return None
        parts = [data]
    prompt = cached = writes = writes_1h = completion = thinking = 0
    for part in parts:
        reads = _count(part.get("cache_read_input_tokens"))
        written = _count(part.get("cache_creation_input_tokens"))
        prompt += _count(part.get("input_tokens")) + reads + written
        cached += reads
        writes += written
        creation = part.get("cache_creation")
        if isinstance(creation, Mapping):
            writes_1h += min(_count(creation.get("ephemeral_1h_input_tokens")), written)
        completion += _count(part.get("output_tokens"))
        details = part.get("output_tokens_details")
        if isinstance(details, Mapping):
            thinking += _count(details.get("thinking_tokens"))
    tools = data.get("server_tool_use")
    tier = data.get("service_tier")
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        cached_tokens=cached,
        reasoning_tokens=min(thinking, completion),
        cache_write_tokens=writes,
        cache_write_1h_tokens=writes_1h,
        web_search_requests=_count(tools.get("web_search_requests")) if isinstance(tools, Mapping) else 0,
        service_tier=tier if isinstance(tier, str) and tier else None,
    )


class AnthropicAdapter(Adapter):
    """``anthropic/<model>``."""

    name = "anthropic"
    api = "messages"
    default_base_url = "https://api.anthropic.com"
    key_env: ClassVar[Tuple[str, ...]] = ("ANTHROPIC_API_KEY",)
    base_url_env = "ANTHROPIC_BASE_URL"
    catalog_provider = "anthropic"
    batch_protocol: ClassVar[Optional[str]] = "anthropic"

    # -- requests ---------------------------------------------------------

    key_header = ("x-api-key", "{key}")
    models_path: ClassVar[Optional[str]] = "/v1/models"

    def models_query(self, page: Optional[str]) -> str:
        from urllib.parse import quote

        # Pages of up to 1,000, each after the previous page's last id.
        return "?limit=1000" + ("" if page is None else "&after_id=" + quote(page, safe=""))

    def parse_models(self, data: Any) -> Tuple[List[str], Optional[str]]:
        names, _ = super().parse_models(data)
        more = data.get("has_more") is True and isinstance(data.get("last_id"), str)
        return names, data["last_id"] if more else None

    def path(self, request: ChatRequest, *, stream: bool) -> str:
        return "/v1/messages"

    def check_body(self, body: Dict[str, Any]) -> None:
        foreign = sorted(FOREIGN_FIELDS.intersection(body))
        if foreign:
            raise InvalidArgumentError(
                f"{self.name}'s Messages API has no {', '.join(foreign)} (it refuses fields it does not know): "
                "leave them out of extra_body"
            )
        thinking = body.get("thinking")
        if not (isinstance(thinking, dict) and thinking.get("type") == "enabled"):
            return
        refused = [what for field, what, refuses in REFUSED_WITH_THINKING if field in body and refuses(body[field])]
        if refused:
            raise InvalidArgumentError(
                f"{self.name} refuses {' and '.join(refused)} with extended thinking (thinking_budget): "
                f"leave {'it' if len(refused) == 1 else 'them'} out, or thinking_budget"
            )

    def host_headers(self) -> Dict[str, str]:
        return {"anthropic-version": API_VERSION}

    def body(self, request: ChatRequest, *, stream: bool) -> Dict[str, Any]:
        system, turns = self.system(request)
        budget = request.thinking_budget
        thinking = budget is not None and budget > 0
        if thinking:
            budget = max(budget or 0, MIN_THINKING_BUDGET)
        max_tokens = request.max_tokens
        if max_tokens is None:
            max_tokens = DEFAULT_MAX_TOKENS + (budget or 0 if thinking else 0)
        body: Dict[str, Any] = {"model": request.model, "max_tokens": max_tokens, "messages": self.messages(turns)}
        if system:
            body["system"] = system
        if stream:
            body["stream"] = True
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.stop is not None:
            body["stop_sequences"] = list(request.stop)
        if thinking:
            body["thinking"] = {"type": "enabled", "budget_tokens": budget}
        if request.tools is not None:
            body["tools"] = [self.tool(tool) for tool in request.tools]
        if request.tool_choice is not None:
            body["tool_choice"] = self.tool_choice(request.tool_choice)
        if request.extra_body:
            body.update(request.extra_body)
        return body

    def constrain_output(self, body: Dict[str, Any], output: OutputFormat, request: ChatRequest) -> None:
        # A forced tool whose input is the schema: every Claude model (and
        # every host of one) takes it.
        check_forced_tool(self.name, output, request)
        tool: Dict[str, Any] = {"name": output.name, "input_schema": output.schema}
        if output.description:
            tool["description"] = output.description
        body["tools"] = [*body.get("tools", ()), tool]
        body["tool_choice"] = {"type": "tool", "name": output.name}

    @staticmethod
    def tool(tool: Mapping[str, Any]) -> Dict[str, Any]:
        function = tool["function"]
        out: Dict[str, Any] = {
            "name": function["name"],
            "description": function.get("description", ""),
            "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
        }
        if "cache_control" in tool:
            out["cache_control"] = tool["cache_control"]
        return out

    def system(self, request: ChatRequest) -> Tuple[Any, List[Mapping[str, Any]]]:
        """The system prompt, and the other turns. A string -- unless a
        system part carries a ``cache_control`` marker, which only a list
        of text blocks can keep."""
        text, turns = split_system(request.messages, request.system)
        marked = [
            message
            for message in request.messages
            if message.get("role") in ("system", "developer") and _has_cache_control(message.get("content"))
        ]
        if not marked:
            return text, turns
        blocks: List[Dict[str, Any]] = [{"type": "text", "text": request.system}] if request.system else []
        for message in request.messages:
            if message.get("role") in ("system", "developer"):
                blocks += self.blocks(message.get("content"))
        return blocks, turns

    @staticmethod
    def tool_choice(choice: Any) -> Dict[str, Any]:
        if choice == "auto":
            return {"type": "auto"}
        if choice == "required":
            return {"type": "any"}
        if choice == "none":
            return {"type": "none"}
        return {"type": "tool", "name": choice["function"]["name"]}

    def messages(self, turns: List[Mapping[str, Any]]) -> List[Dict[str, Any]]:
        """OpenAI-shaped turns as Anthropic messages: tool results become
        ``tool_result`` blocks in a user turn (consecutive ones share it)."""
        out: List[Dict[str, Any]] = []
        for turn in turns:
            role = turn["role"]
            if role == "tool":
                block = {
                    "type": "tool_result",
                    "tool_use_id": str(turn["tool_call_id"]),
                    "content": self.blocks(turn.get("content")),
                }
                if out and out[-1]["role"] == "user" and _all_tool_results(out[-1]["content"]):
                    out[-1]["content"].append(block)
                else:
                    out.append({"role": "user", "content": [block]})
            elif role == "assistant":
                blocks: List[Dict[str, Any]] = [
                    dict(detail)
                    for detail in turn.get("reasoning_details") or ()
                    if isinstance(detail, Mapping) and detail.get("type") in ("thinking", "redacted_thinking")
                ]
                blocks += self.blocks(turn.get("content"))
                for call in turn.get("tool_calls") or ():
                    function = call.get("function") or {}
                    blocks.append(
                        {
                            "type": "tool_use",
                            "id": str(call.get("id")),
                            "name": function.get("name"),
                            "input": arguments_object(function.get("arguments"), call.get("id")),
                        }
                    )
                out.append({"role": "assistant", "content": blocks})
            else:
                out.append({"role": "user", "content": self.blocks(turn.get("content"))})
        return out

    @classmethod
    def blocks(cls, content: Any) -> List[Dict[str, Any]]:
        """Content as Anthropic blocks; a part's ``cache_control`` marker
        stays on the block made from it."""
        if not (isinstance(content, list) and _has_cache_control(content)):
            return _blocks(content)
        blocks: List[Dict[str, Any]] = []
        for part in content:
            made = _blocks([part])
            if made and isinstance(part, Mapping) and part.get("cache_control") is not None:
                made[-1]["cache_control"] = part["cache_control"]
            blocks += made
        return blocks

    # -- counting ---------------------------------------------------------

    #: where ``count_tokens`` is, below the base URL
    count_path: ClassVar[str] = "/v1/messages/count_tokens"

    def count_request(self, request: ChatRequest) -> Optional[HTTPRequest]:
        """``POST /v1/messages/count_tokens``: the Messages body without
        the output's settings."""
        body = self.body(request, stream=False)
        return self.post_json(self.count_path, {k: v for k, v in body.items() if k in COUNT_FIELDS}, request)

    def parse_count(self, data: Any) -> int:
        return token_count(require_object(data)["input_tokens"])

    # -- responses --------------------------------------------------------

    def stream_events(self, body: Iterable[bytes]) -> Iterator[Event]:
        return self.decode_frames(iter_sse(body, keep_event_names=False))

    def decode_frames(self, frames: Iterable[Any]) -> Iterator[Event]:
        """Events from Anthropic's named SSE events (any object with
        ``.event`` and ``.data``). The event's ``type`` field decides, so a
        stream without ``event:`` lines decodes the same."""
        blocks: Dict[int, Dict[str, Any]] = {}  # index -> {"type", "tool" index, "text" pieces, ...}
        tools = 0
        usage_seen: Dict[str, Any] = {}
        loads = parse_json
        for frame in frames:
            data = frame.data
            if not data:
                continue
            try:
                obj = loads(data)
                kind = obj.get("type") if isinstance(obj, dict) else None
                if kind == "content_block_delta":
                    block = blocks.get(obj["index"])
                    delta = obj["delta"]
                    delta_type = delta.get("type")
                    if delta_type == "text_delta":
                        yield Chunk(delta["text"], "", None, None)
                    elif delta_type == "thinking_delta":
                        if delta["thinking"]:
                            yield Chunk("", delta["thinking"], None, None)
                            if block is not None:
                                block["pieces"].append(delta["thinking"])
                    elif delta_type == "signature_delta" and block is not None:
                        block["signature"] = block.get("signature", "") + delta["signature"]
                    elif (
                        delta_type == "input_json_delta"
                        and block is not None
                        and "tool" in block
                        and delta.get("partial_json")
                    ):
                        block["arguments"] = True
                        yield ToolCallDelta(index=block["tool"], arguments=delta["partial_json"])
                    # citations, compaction and unknown deltas carry nothing to accumulate
                elif kind == "content_block_start":
                    index, start = obj["index"], obj["content_block"]
                    block_type = start.get("type")
                    block = blocks[index] = {"type": block_type, "pieces": []}
                    if block_type == "tool_use":
                        block["tool"] = tools
                        tools += 1
                        yield ToolCallDelta(index=block["tool"], id=start.get("id"), name=start.get("name"))
                        if start.get("input"):
                            block["arguments"] = True
                            yield ToolCallDelta(index=block["tool"], arguments=json.dumps(start["input"]))
                    elif block_type == "text" and start.get("text"):
                        yield Chunk(start["text"], "", None, None)
                    elif block_type == "thinking" and start.get("thinking"):
                        block["pieces"].append(start["thinking"])
                        yield Chunk("", start["thinking"], None, None)
                    elif block_type == "redacted_thinking":
                        yield ReasoningDetail({"type": "redacted_thinking", "data": start.get("data", "")})
                elif kind == "content_block_stop":
                    block = blocks.get(obj["index"])
                    if block is None:
                        continue
                    if "tool" in block and not block.get("arguments"):
                        # A tool without arguments streams "" (or nothing): that is {}.
                        yield ToolCallDelta(index=block["tool"], arguments="{}")
                    elif block["type"] == "thinking":
                        yield ReasoningDetail(
                            {
                                "type": "thinking",
                                "thinking": "".join(block["pieces"]),
                                "signature": block.get("signature", ""),
                            }
                        )
                elif kind == "message_start":
                    message = obj["message"]
                    yield ResponseInfo(id=message.get("id"), model=message.get("model"))
                    if isinstance(message.get("usage"), dict):
                        usage_seen = dict(message["usage"])
                        # The input is known from here on; the output count
                        # (1) is a placeholder, not a token generated: until
                        # message_delta, output is counted from the deltas.
                        usage = usage_from_anthropic({**usage_seen, "output_tokens": 0})
                        if usage is not None:
                            yield Chunk("", "", None, usage)
                elif kind == "message_delta":
                    reason = (obj.get("delta") or {}).get("stop_reason")
                    usage = None
                    if isinstance(obj.get("usage"), dict):
                        # Cumulative figures: assign over what message_start said.
                        usage_seen.update(obj["usage"])
                        usage = usage_from_anthropic(usage_seen)
                    yield Chunk("", "", FINISH_REASONS.get(reason, "stop") if reason else None, usage)
                elif kind == "message_stop":
                    yield STREAM_DONE
                elif kind == "error":
                    yield self.in_band_error(obj.get("error") or obj)
                    return
                # ping and unknown events carry nothing
            except SHAPE_ERRORS as exc:
                yield malformed_in_stream(exc, data)
                return

    def body_events(self, data: Any) -> Iterator[Event]:
        require_object(data)
        if data.get("type") == "error" or "error" in data:
            yield self.in_band_error(data.get("error") or data)
            return
        if not isinstance(data.get("content"), list):
            raise TypeError("the response has no content")
        yield ResponseInfo(id=data.get("id"), model=data.get("model"))
        tools = 0
        for block in data["content"]:
            block_type = block.get("type")
            if block_type == "text":
                yield Chunk(block.get("text", ""), "", None, None)
            elif block_type == "thinking":
                yield Chunk("", block.get("thinking", ""), None, None)
                yield ReasoningDetail(
                    {"type": "thinking", "thinking": block.get("thinking", ""), "signature": block.get("signature", "")}
                )
            elif block_type == "redacted_thinking":
                yield ReasoningDetail({"type": "redacted_thinking", "data": block.get("data", "")})
            elif block_type == "tool_use":
                yield ToolCallDelta(
                    index=tools,
                    id=block.get("id"),
                    name=block.get("name"),
                    arguments=json.dumps(block.get("input") or {}),
                )
                tools += 1
        reason = data.get("stop_reason")
        usage = usage_from_anthropic(data["usage"]) if isinstance(data.get("usage"), dict) else None
        yield Chunk("", "", FINISH_REASONS.get(reason, "stop") if reason else None, usage)
        yield STREAM_DONE


def _all_tool_results(blocks: List[Dict[str, Any]]) -> bool:
    return all(block.get("type") == "tool_result" for block in blocks)
