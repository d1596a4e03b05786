"""Builders for provider wire transcripts, to feed :class:`ScriptedServer`.

They produce what the providers send: SSE pieces (``data: {...}\\n\\n``),
Chat Completions chunks with the usage-only final chunk, OpenRouter's
``usage.cost`` and ``/generation`` records.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Iterable, List, Optional, Sequence

__all__ = [
    "chat_chunk",
    "chat_completion",
    "chat_stream",
    "chat_usage",
    "openrouter_generation",
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
