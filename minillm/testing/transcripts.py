"""Builders for provider wire transcripts, to feed :class:`ScriptedServer`.

They produce what the providers send: SSE pieces (``data: {...}\\n\\n``),
Chat Completions chunks with the usage-only final chunk, OpenRouter's
``usage.cost`` and ``/generation`` records, and Bedrock's binary event
stream messages.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

__all__ = [
    "anthropic_stream",
    "bedrock_converse",
    "bedrock_event",
    "bedrock_stream",
    "bedrock_usage",
    "chat_chunk",
    "chat_completion",
    "chat_stream",
    "chat_usage",
    "gemini_stream",
    "ollama_stream",
    "openrouter_generation",
    "responses_stream",
    "sse",
]


def sse(data: Any, *, event: Optional[str] = None) -> bytes:
    """One SSE event: ``data`` is a string sent as-is or an object sent as JSON."""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


def chat_usage(
    prompt_tokens: int,
    completion_tokens: int,
    *,
    cached_tokens: int = 0,
    reasoning_tokens: int = 0,
    cost: Optional[float] = None,
    is_byok: Optional[bool] = None,
    upstream_inference_cost: Optional[float] = None,
) -> Dict[str, Any]:
    """A Chat Completions ``usage`` object (with OpenRouter's money fields when given)."""
    usage: Dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": reasoning_tokens},
    }
    if cost is not None:
        usage["cost"] = cost
        usage["cost_details"] = {"upstream_inference_cost": upstream_inference_cost}
    if is_byok is not None:
        usage["is_byok"] = is_byok
    return usage


def chat_chunk(
    *,
    id: str = "chatcmpl-test",  # noqa: A002 - the wire name
    model: str = "test-model",
    content: Optional[str] = None,
    reasoning: Optional[str] = None,
    tool_calls: Optional[List[Dict[str, Any]]] = None,
    finish_reason: Optional[str] = None,
    usage: Optional[Dict[str, Any]] = None,
    choices: bool = True,
) -> Dict[str, Any]:
    """One ``chat.completion.chunk`` object."""
    chunk: Dict[str, Any] = {
        "id": id,
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": model,
        "choices": [],
        "usage": usage,
    }
    if choices:
        delta: Dict[str, Any] = {}
        if content is not None:
            delta["content"] = content
        if reasoning is not None:
            delta["reasoning"] = reasoning
        if tool_calls is not None:
            delta["tool_calls"] = tool_calls
        chunk["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish_reason}]
    return chunk


def chat_stream(
    pieces: Sequence[str],
    *,
    id: str = "chatcmpl-test",  # noqa: A002 - the wire name
    model: str = "test-model",
    usage: Optional[Dict[str, Any]] = None,
    finish_reason: Optional[str] = "stop",
    done: bool = True,
) -> List[bytes]:
    """A whole Chat Completions stream as SSE pieces: one chunk per text
    piece, a finish chunk, a usage-only chunk (when ``usage`` is given) and
    ``[DONE]`` (when ``done``)."""
    events = [sse(chat_chunk(id=id, model=model, content=piece)) for piece in pieces]
    if finish_reason is not None:
        events.append(sse(chat_chunk(id=id, model=model, content="", finish_reason=finish_reason)))
    if usage is not None:
        events.append(sse(chat_chunk(id=id, model=model, usage=usage, choices=False)))
    if done:
        events.append(sse("[DONE]"))
    return events


def chat_completion(
    text: str,
    *,
    id: str = "chatcmpl-test",  # noqa: A002 - the wire name
    model: str = "test-model",
    usage: Optional[Dict[str, Any]] = None,
    finish_reason: str = "stop",
    tool_calls: Optional[Iterable[Dict[str, Any]]] = None,
) -> Dict[str, Any]:
    """A non-streaming ``chat.completion`` object."""
    message: Dict[str, Any] = {"role": "assistant", "content": text}
    if tool_calls is not None:
        message["tool_calls"] = list(tool_calls)
    body: Dict[str, Any] = {
        "id": id,
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
    }
    if usage is not None:
        body["usage"] = usage
    return body


def openrouter_generation(
    generation_id: str,
    *,
    total_cost: float,
    native_tokens_prompt: int = 0,
    native_tokens_completion: int = 0,
    native_tokens_reasoning: int = 0,
    native_tokens_cached: int = 0,
    is_byok: bool = False,
    upstream_inference_cost: Optional[float] = None,
    cancelled: bool = False,
) -> Dict[str, Any]:
    """A ``GET /generation`` answer."""
    return {
        "data": {
            "id": generation_id,
            "total_cost": total_cost,
            "usage": total_cost,
            "is_byok": is_byok,
            "upstream_inference_cost": upstream_inference_cost,
            "native_tokens_prompt": native_tokens_prompt,
            "native_tokens_completion": native_tokens_completion,
            "native_tokens_reasoning": native_tokens_reasoning,
            "native_tokens_cached": native_tokens_cached,
            "cancelled": cancelled,
            "streamed": True,
        }
    }


# -- other wire formats ----------------------------------------------------------------------------


def _named(data: Dict[str, Any]) -> bytes:
    """An SSE event named after its ``type``, as Anthropic and OpenAI send them."""
    return sse(data, event=data["type"])


def anthropic_stream(
    pieces: Sequence[str],
    *,
    id: str = "msg_test",  # noqa: A002 - the wire name
    model: str = "claude-test",
    input_tokens: int = 10,
    output_tokens: Optional[int] = None,
    cache_read: int = 0,
    cache_write: int = 0,
    cache_write_1h: int = 0,
    web_searches: int = 0,
    service_tier: str = "standard",
    stop_reason: str = "end_turn",
    thinking: Optional[str] = None,
    tool_calls: Sequence[Dict[str, Any]] = (),
    done: bool = True,
) -> List[bytes]:
    """An Anthropic Messages stream: ``message_start`` (with input usage),
    an optional thinking block, a text block, ``tool_use`` blocks
    (``{"id", "name", "input"}``), ``message_delta`` and ``message_stop``.
    ``cache_write`` tokens are written to the cache, ``cache_write_1h`` of
    them with a one-hour lifetime; ``web_searches`` are reported in the
    final usage, as Anthropic reports its server tools."""
    usage: Dict[str, Any] = {
        "input_tokens": input_tokens,
        "cache_read_input_tokens": cache_read,
        "cache_creation_input_tokens": cache_write,
        "cache_creation": {
            "ephemeral_5m_input_tokens": cache_write - cache_write_1h,
            "ephemeral_1h_input_tokens": cache_write_1h,
        },
        "output_tokens": 1,
        "service_tier": service_tier,
    }
    message: Dict[str, Any] = {
        "id": id,
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": model,
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage,
    }
    events = [_named({"type": "message_start", "message": message}), _named({"type": "ping"})]
    index = 0

    def block(start: Dict[str, Any], *deltas: Dict[str, Any]) -> None:
        nonlocal index
        events.append(_named({"type": "content_block_start", "index": index, "content_block": start}))
        for delta in deltas:
            events.append(_named({"type": "content_block_delta", "index": index, "delta": delta}))
        events.append(_named({"type": "content_block_stop", "index": index}))
        index += 1

    if thinking is not None:
        block(
            {"type": "thinking", "thinking": ""},
            {"type": "thinking_delta", "thinking": thinking},
            {"type": "signature_delta", "signature": "sig"},
        )
    if pieces:
        block({"type": "text", "text": ""}, *({"type": "text_delta", "text": piece} for piece in pieces))
    for call in tool_calls:
        block(
            {"type": "tool_use", "id": call["id"], "name": call["name"], "input": {}},
            {"type": "input_json_delta", "partial_json": json.dumps(call.get("input", {}))},
        )
    output = output_tokens if output_tokens is not None else len(pieces)
    final: Dict[str, Any] = {"output_tokens": output}
    if web_searches:
        final["server_tool_use"] = {"web_search_requests": web_searches}
    events.append(
        _named(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": final,
            }
        )
    )
    if done:
        events.append(_named({"type": "message_stop"}))
    return events


def gemini_stream(
    pieces: Sequence[str],
    *,
    response_id: str = "resp-test",
    model: str = "gemini-test",
    prompt_tokens: int = 10,
    thoughts: Optional[str] = None,
    function_calls: Sequence[Dict[str, Any]] = (),
    finish_reason: str = "STOP",
) -> List[bytes]:
    """A Gemini ``streamGenerateContent?alt=sse`` stream: one chunk per text
    piece, each with a running ``usageMetadata`` snapshot, the last with
    ``finishReason``; ``function_calls`` are ``{"name", "args"}``."""
    events: List[bytes] = []
    parts_so_far = 0

    def chunk(parts: List[Dict[str, Any]], last: bool) -> bytes:
        thought_tokens = len((thoughts or "").split())
        usage = {
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": parts_so_far,
            "totalTokenCount": prompt_tokens + parts_so_far + thought_tokens,
        }
        if thoughts:
            usage["thoughtsTokenCount"] = thought_tokens
        candidate: Dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
        if last:
            candidate["finishReason"] = finish_reason
        return sse(
            {"candidates": [candidate], "usageMetadata": usage, "modelVersion": model, "responseId": response_id}
        ).replace(b"\n", b"\r\n")

    if thoughts:
        events.append(chunk([{"text": thoughts, "thought": True}], False))
    for n, piece in enumerate(pieces):
        parts_so_far += 1
        events.append(chunk([{"text": piece}], n == len(pieces) - 1 and not function_calls))
    if function_calls:
        parts_so_far += len(function_calls)
        events.append(chunk([{"functionCall": dict(call), "thoughtSignature": "sig"} for call in function_calls], True))
    if not pieces and not function_calls:
        events.append(chunk([{"text": ""}], True))
    return events


def ollama_stream(
    pieces: Sequence[str],
    *,
    model: str = "llama-test",
    prompt_tokens: int = 10,
    thinking: Optional[str] = None,
    tool_calls: Sequence[Dict[str, Any]] = (),
    done_reason: str = "stop",
    done: bool = True,
) -> List[bytes]:
    """An Ollama ``/api/chat`` NDJSON stream ending in a ``done: true`` line."""

    def line(message: Dict[str, Any], **fields: Any) -> bytes:
        data = {"model": model, "created_at": "2026-01-01T00:00:00.000000Z", "message": message, **fields}
        return json.dumps(data).encode("utf-8") + b"\n"

    lines: List[bytes] = []
    if thinking is not None:
        lines.append(line({"role": "assistant", "content": "", "thinking": thinking}, done=False))
    for piece in pieces:
        lines.append(line({"role": "assistant", "content": piece}, done=False))
    if tool_calls:
        calls = [{"function": dict(call)} for call in tool_calls]
        lines.append(line({"role": "assistant", "content": "", "tool_calls": calls}, done=False))
    if done:
        counts = {"prompt_eval_count": prompt_tokens, "eval_count": len(pieces)}
        lines.append(line({"role": "assistant", "content": ""}, done=True, done_reason=done_reason, **counts))
    return lines


def responses_stream(
    pieces: Sequence[str],
    *,
    id: str = "resp_test",  # noqa: A002 - the wire name
    model: str = "gpt-test",
    input_tokens: int = 10,
    function_calls: Sequence[Dict[str, Any]] = (),
    status: str = "completed",
) -> List[bytes]:
    """An OpenAI Responses stream: created, text deltas, function calls
    (``{"call_id", "name", "arguments"}``) with argument deltas, and
    ``response.completed`` (or ``response.incomplete``) with usage."""
    response = {"id": id, "object": "response", "model": model, "status": "in_progress", "output": []}
    events = [_named({"type": "response.created", "response": response})]
    for piece in pieces:
        events.append(
            _named({"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0, "delta": piece})
        )
    for n, call in enumerate(function_calls, start=1):
        item = {"type": "function_call", "id": f"fc_{n}", "call_id": call["call_id"], "name": call["name"]}
        item.update(arguments="", status="in_progress")
        arguments = {"item_id": f"fc_{n}", "output_index": n}
        events += [
            _named({"type": "response.output_item.added", "output_index": n, "item": item}),
            _named({"type": "response.function_call_arguments.delta", **arguments, "delta": call["arguments"]}),
            _named({"type": "response.function_call_arguments.done", **arguments, "arguments": call["arguments"]}),
        ]
    usage = {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": len(pieces),
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + len(pieces),
    }
    final = {**response, "status": status, "usage": usage}
    if status == "incomplete":
        final["incomplete_details"] = {"reason": "max_output_tokens"}
    events.append(_named({"type": f"response.{status}", "response": final}))
    return events


# -- AWS Bedrock (Converse) ------------------------------------------------------------------------

#: Real ConverseStream payloads carry a random-length ``"p"`` field (padding,
#: so that a message's length does not tell its content): decoders ignore it.
_PADDING = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0"


def bedrock_event(name: str, payload: Mapping[str, Any], *, exception: bool = False) -> bytes:
    """One AWS event stream message as ConverseStream sends it: an event
    named ``name`` (``:event-type``) whose payload is ``payload`` as JSON
    (with padding), or -- with ``exception`` -- an exception frame
    (``:message-type`` ``exception``, ``:exception-type`` ``name``, such as
    ``throttlingException``)."""
    from ..eventstream import encode_message

    headers: Dict[str, Any]
    if exception:
        headers = {":exception-type": name, ":content-type": "application/json", ":message-type": "exception"}
        data = dict(payload)
    else:
        headers = {":event-type": name, ":content-type": "application/json", ":message-type": "event"}
        data = {**payload, "p": _PADDING[: 1 + len(name) % len(_PADDING)]}
    return encode_message(headers, json.dumps(data, separators=(",", ":")).encode("utf-8"))


def bedrock_usage(
    input_tokens: int,
    output_tokens: int,
    *,
    cache_read: int = 0,
    cache_write: int = 0,
    cache_write_1h: int = 0,
) -> Dict[str, Any]:
    """A Converse ``usage`` object: ``inputTokens`` leaves out the cache,
    which is reported beside it (``cache_write_1h`` of the writes with a
    one-hour lifetime, in ``cacheDetails``)."""
    usage: Dict[str, Any] = {
        "inputTokens": input_tokens,
        "outputTokens": output_tokens,
        "totalTokens": input_tokens + cache_read + cache_write + output_tokens,
    }
    if cache_read or cache_write:
        usage["cacheReadInputTokens"] = cache_read
        usage["cacheWriteInputTokens"] = cache_write
    details = [{"ttl": "1h", "inputTokens": cache_write_1h}] if cache_write_1h else []
    if cache_write - cache_write_1h:
        details.append({"ttl": "5m", "inputTokens": cache_write - cache_write_1h})
    if details:
        usage["cacheDetails"] = details
    return usage


def bedrock_stream(
    pieces: Sequence[str],
    *,
    input_tokens: int = 10,
    output_tokens: Optional[int] = None,
    cache_read: int = 0,
    cache_write: int = 0,
    cache_write_1h: int = 0,
    stop_reason: str = "end_turn",
    reasoning: Optional[str] = None,
    signature: str = "sig",
    tool_calls: Sequence[Dict[str, Any]] = (),
    service_tier: Optional[str] = None,
    metadata: bool = True,
) -> List[bytes]:
    """A ConverseStream body as event stream messages, one per item:
    ``messageStart``, an optional reasoning block (its text and
    ``signature``), a text block (a delta per piece), ``toolUse`` blocks
    (``{"id", "name", "input"}``, the input streamed as JSON text),
    ``messageStop`` and -- when ``metadata`` -- the ``metadata`` event with
    the usage (see :func:`bedrock_usage`) that follows it."""
    events = [bedrock_event("messageStart", {"role": "assistant"})]
    index = 0

    def block(start: Optional[Dict[str, Any]], deltas: Iterable[Dict[str, Any]]) -> None:
        nonlocal index
        if start is not None:
            events.append(bedrock_event("contentBlockStart", {"contentBlockIndex": index, "start": start}))
        for delta in deltas:
            events.append(bedrock_event("contentBlockDelta", {"contentBlockIndex": index, "delta": delta}))
        events.append(bedrock_event("contentBlockStop", {"contentBlockIndex": index}))
        index += 1

    if reasoning is not None:
        block(None, [{"reasoningContent": {"text": reasoning}}, {"reasoningContent": {"signature": signature}}])
    if pieces:
        block(None, [{"text": piece} for piece in pieces])
    for call in tool_calls:
        arguments = json.dumps(call.get("input", {}))
        middle = len(arguments) // 2
        fragments = [arguments[:middle], arguments[middle:]] if call.get("input") else []
        block(
            {"toolUse": {"toolUseId": call["id"], "name": call["name"]}},
            [{"toolUse": {"input": fragment}} for fragment in fragments],
        )
    events.append(bedrock_event("messageStop", {"stopReason": stop_reason}))
    if metadata:
        output = output_tokens if output_tokens is not None else len(pieces)
        data: Dict[str, Any] = {
            "usage": bedrock_usage(
                input_tokens, output, cache_read=cache_read, cache_write=cache_write, cache_write_1h=cache_write_1h
            ),
            "metrics": {"latencyMs": 100},
        }
        if service_tier is not None:
            data["serviceTier"] = {"type": service_tier}
        events.append(bedrock_event("metadata", data))
    return events


def bedrock_converse(
    text: str,
    *,
    input_tokens: int = 10,
    output_tokens: Optional[int] = None,
    cache_read: int = 0,
    cache_write: int = 0,
    cache_write_1h: int = 0,
    stop_reason: str = "end_turn",
    reasoning: Optional[str] = None,
    signature: str = "sig",
    tool_calls: Sequence[Dict[str, Any]] = (),
    service_tier: Optional[str] = None,
) -> Dict[str, Any]:
    """A Converse (non-streaming) answer: the assistant message (reasoning,
    text, ``toolUse`` blocks of ``{"id", "name", "input"}``), the stop
    reason, the usage and the metrics."""
    content: List[Dict[str, Any]] = []
    if reasoning is not None:
        content.append({"reasoningContent": {"reasoningText": {"text": reasoning, "signature": signature}}})
    if text:
        content.append({"text": text})
    for call in tool_calls:
        content.append({"toolUse": {"toolUseId": call["id"], "name": call["name"], "input": call.get("input", {})}})
    output = output_tokens if output_tokens is not None else max(1, len(text.split()))
    body: Dict[str, Any] = {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop_reason,
        "usage": bedrock_usage(
            input_tokens, output, cache_read=cache_read, cache_write=cache_write, cache_write_1h=cache_write_1h
        ),
        "metrics": {"latencyMs": 100},
    }
    if service_tier is not None:
        body["serviceTier"] = {"type": service_tier}
    return body
