"""Ollama (``POST {base}/api/chat``), local or Ollama Cloud.

The stream is NDJSON -- one JSON object per line, the last with
``done: true``, the finish reason and the token counts. It is read as
NDJSON because the request asked for a stream, whatever the Content-Type
says: Ollama Cloud sends it as ``application/json``. Tool calls arrive
whole, with arguments as an object. No key is needed locally; Ollama Cloud
takes one as a bearer token (``OLLAMA_API_KEY``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, ClassVar, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple

from ..errors import InvalidArgumentError
from ..events import STREAM_DONE, Event, ResponseInfo, ToolCallDelta
from ..framing import iter_ndjson
from ..models import Chunk, Usage
from ..request import ChatRequest
from .base import SHAPE_ERRORS, Adapter, malformed_in_stream, require_object
from .messages import Document, Image, arguments_object, content_parts, text_of, tool_names

if TYPE_CHECKING:  # pragma: no cover
    from ..structured import OutputFormat

__all__ = ["OllamaAdapter", "ollama_host"]


FINISH_REASONS: Dict[str, str] = {"stop": "stop", "length": "length", "load": "stop", "unload": "stop"}


def ollama_host(value: str) -> str:
    """An ``OLLAMA_HOST`` value as a base URL: the scheme is optional
    (``0.0.0.0:11434``, ``localhost``), and so is the port (11434 without a
    scheme)."""
    value = value.strip().rstrip("/")
    if "://" not in value:
        host = value or "127.0.0.1"
        if host.startswith("0.0.0.0"):
            host = "127.0.0.1" + host[len("0.0.0.0") :]  # a bind address, not a destination
        return f"http://{host}" if ":" in host.rsplit("]", 1)[-1] else f"http://{host}:11434"
    return value


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


class OllamaAdapter(Adapter):
    """``ollama/<model>``."""

    name = "ollama"
    default_base_url = "http://localhost:11434"
    key_env: ClassVar[Tuple[str, ...]] = ("OLLAMA_API_KEY",)
    base_url_env = "OLLAMA_HOST"
    key_required = False
    #: Ollama answers a bad request with an error status before any output;
    #: an error line inside a stream is the runner failing (a server error).
    in_band_status = 500
    # NDJSON, which some versions label as JSON
    stream_content_types: ClassVar[Tuple[str, ...]] = ("application/x-ndjson", "application/json")

    @classmethod
    def base_url_from_env(cls, value: str) -> str:
        return ollama_host(value)

    # -- requests ---------------------------------------------------------

    def path(self, request: ChatRequest, *, stream: bool) -> str:
        return "/api/chat"

    #: the models pulled to this server
    models_path: ClassVar[Optional[str]] = "/api/tags"

    def parse_models(self, data: Any) -> Tuple[List[str], Optional[str]]:
        return [str(entry["name"]) for entry in require_object(data)["models"]], None

    def accept(self, *, stream: bool) -> str:
        return "application/x-ndjson, application/json"

    def body(self, request: ChatRequest, *, stream: bool) -> Dict[str, Any]:
        messages = self.messages(request)
        body: Dict[str, Any] = {"model": request.model, "messages": messages, "stream": stream}
        options: Dict[str, Any] = {}
        if request.max_tokens is not None:
            options["num_predict"] = request.max_tokens
        if request.temperature is not None:
            options["temperature"] = request.temperature
        if request.stop is not None:
            options["stop"] = list(request.stop)
        if options:
            body["options"] = options
        if request.thinking_budget is not None:
            body["think"] = request.thinking_budget > 0
        if request.tools is not None:
            body["tools"] = [{"type": tool["type"], "function": tool["function"]} for tool in request.tools]
        if request.extra_body:
            body.update(request.extra_body)
        return body

    def constrain_output(self, body: Dict[str, Any], output: OutputFormat, request: ChatRequest) -> None:
        body["format"] = output.schema

    @staticmethod
    def messages(request: ChatRequest) -> List[Dict[str, Any]]:
        turns: List[Mapping[str, Any]] = list(request.messages)
        names = tool_names(turns)
        out: List[Dict[str, Any]] = []
        if request.system:
            out.append({"role": "system", "content": request.system})
        for turn in turns:
            role = turn["role"]
            message: Dict[str, Any] = {"role": "system" if role == "developer" else role}
            texts: List[str] = []
            images: List[str] = []
            for part in content_parts(turn.get("content")):
                if isinstance(part, Image):
                    if part.data is None:
                        raise InvalidArgumentError("Ollama takes images as data: URLs (base64), not as links")
                    images.append(part.data)
                elif isinstance(part, Document):
                    raise InvalidArgumentError("Ollama takes text and images, not files: send the document's text")
                else:
                    texts.append(part)
            message["content"] = "".join(texts)
            if images:
                message["images"] = images
            if role == "assistant" and turn.get("tool_calls"):
                message["tool_calls"] = [
                    {
                        "function": {
                            "name": (call.get("function") or {}).get("name"),
                            "arguments": arguments_object(
                                (call.get("function") or {}).get("arguments"), call.get("id")
                            ),
                        }
                    }
                    for call in turn["tool_calls"]
                ]
            if role == "tool":
                message["tool_name"] = names.get(str(turn.get("tool_call_id")), "")
                message["content"] = text_of(turn.get("content"))
            out.append(message)
        return out

    # -- responses --------------------------------------------------------

    def stream_events(self, body: Iterable[bytes]) -> Iterator[Event]:
        identified = False
        calls = 0
        for line in iter_ndjson(body):
            try:
                obj = require_object(json.loads(line), "a line")
                if "error" in obj:
                    yield self.in_band_error(obj["error"])
                    return
                if not identified:
                    identified = True
                    yield ResponseInfo(id=None, model=obj.get("model"))
                events, calls = self._message(obj, calls)
                yield from events
            except SHAPE_ERRORS as exc:
                yield malformed_in_stream(exc, line)
                return

    def _message(self, obj: Mapping[str, Any], calls: int) -> Tuple[List[Event], int]:
        events: List[Event] = []
        message = obj.get("message") or {}
        text = message.get("content") or ""
        thinking = message.get("thinking") or ""
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            arguments = function.get("arguments")
            events.append(
                ToolCallDelta(
                    index=calls,
                    id=call.get("id") or f"ollama-call-{calls}",
                    name=function.get("name"),
                    arguments=arguments if isinstance(arguments, str) else json.dumps(arguments or {}),
                )
            )
            calls += 1
        reason: Optional[str] = None
        usage: Optional[Usage] = None
        if obj.get("done"):
            reason = FINISH_REASONS.get(obj.get("done_reason") or "stop", "stop")
            if calls and reason == "stop":
                reason = "tool_calls"
            prompt, completion = _count(obj.get("prompt_eval_count")), _count(obj.get("eval_count"))
            usage = Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)
        if text or thinking or reason or usage:
            events.append(Chunk(text, thinking, reason, usage))
        if obj.get("done"):
            events.append(STREAM_DONE)
        return events, calls

    def body_events(self, data: Any) -> Iterator[Event]:
        require_object(data)
        if "error" in data:
            yield self.in_band_error(data["error"])
            return
        events, _ = self._message({**data, "done": True}, 0)
        yield ResponseInfo(id=None, model=data.get("model"))
        yield from events
