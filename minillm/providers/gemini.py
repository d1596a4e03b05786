"""Google's Gemini API (``POST {base}/models/{model}:streamGenerateContent?alt=sse``
and ``:generateContent``).

The key travels only in the ``x-goog-api-key`` header, never in the URL.
Messages become ``contents`` with ``parts`` (the assistant is ``model``),
the system prompt ``systemInstruction``. Every streamed chunk carries a
*snapshot* of ``usageMetadata``: the last one is the answer, never a sum.
Function calls arrive whole, with arguments as an object and (before
Gemini 3) no id, so one is made up, stable for the response; their
``thoughtSignature`` is kept so the next turn can send it back. Vertex's
streamed function arguments (``partialArgs``) are assembled too.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, ClassVar, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple

from ..errors import InvalidArgumentError
from ..events import STREAM_DONE, Event, ReasoningDetail, ResponseInfo, ToolCallDelta
from ..framing import iter_sse
from ..models import Chunk, Usage
from ..request import ChatRequest
from ..transports.base import HTTPRequest
from .base import SHAPE_ERRORS, Adapter, malformed_in_stream, path_segment, require_object, token_count
from .messages import Document, Image, arguments_object, content_parts, split_system, text_of, tool_names

if TYPE_CHECKING:  # pragma: no cover
    from ..structured import OutputFormat

__all__ = ["GeminiAdapter", "usage_from_gemini"]


FINISH_REASONS: Dict[str, str] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
    "LANGUAGE": "content_filter",
    "MALFORMED_FUNCTION_CALL": "error",
    "UNEXPECTED_TOOL_CALL": "error",
    "TOO_MANY_TOOL_CALLS": "error",
    "MISSING_THOUGHT_SIGNATURE": "error",
    "MALFORMED_RESPONSE": "error",
    "OTHER": "stop",
}

SIGNATURE = "gemini.thought_signature"

#: The fields of a ``generateContent`` body that make up its input.
_COUNT_FIELDS = frozenset({"contents", "systemInstruction", "tools", "toolConfig", "cachedContent"})


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _bare(model: str) -> str:
    """The model name without the ``models/`` prefix Google's names may carry."""
    return model[len("models/") :] if model.startswith("models/") else model


def usage_from_gemini(data: Mapping[str, Any]) -> Optional[Usage]:
    """Normalise a ``usageMetadata`` snapshot.

    Input billed is the prompt plus what tools fed back
    (``toolUsePromptTokenCount``); the cached part is inside the prompt
    count. Output billed is the candidates plus the thoughts. Vertex names
    the traffic it served (``trafficType``: ``ON_DEMAND``,
    ``ON_DEMAND_FLEX``, ``PROVISIONED_THROUGHPUT``, ...): it is the
    service tier, lower-cased. ``promptTokensDetails`` splits the prompt
    by modality: its ``IMAGE`` part is ``image_tokens``.
    """
    if not isinstance(data, Mapping) or not any(k in data for k in ("promptTokenCount", "candidatesTokenCount")):
        return None  # early Vertex chunks carry only trafficType
    prompt = _count(data.get("promptTokenCount")) + _count(data.get("toolUsePromptTokenCount"))
    thoughts = _count(data.get("thoughtsTokenCount"))
    completion = _count(data.get("candidatesTokenCount")) + thoughts
    traffic = data.get("trafficType")
    details = data.get("promptTokensDetails")
    images = sum(
        _count(detail.get("tokenCount"))
        for detail in (details if isinstance(details, list) else ())
        if isinstance(detail, Mapping) and detail.get("modality") == "IMAGE"
    )
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=_count(data.get("totalTokenCount")) or prompt + completion,
        cached_tokens=_count(data.get("cachedContentTokenCount")),
        reasoning_tokens=thoughts,
        service_tier=traffic.lower() if isinstance(traffic, str) and traffic else None,
        image_tokens=images,
    )


_PATH_STEP = re.compile(r"\.([A-Za-z_][\w-]*)|\[(\d+)\]")


class _PartialCall:
    """A function call whose arguments stream as ``partialArgs``."""

    def __init__(self, name: str, call_id: str) -> None:
        self.name = name
        self.id = call_id
        self.args: Dict[str, Any] = {}
        self.strings: Dict[str, str] = {}

    def add(self, partials: Iterable[Mapping[str, Any]]) -> None:
        for partial in partials:
            path = partial["jsonPath"]
            if "stringValue" in partial:
                self.strings[path] = self.strings.get(path, "") + partial["stringValue"]
                value: Any = self.strings[path]
            elif "numberValue" in partial:
                value = partial["numberValue"]
            elif "boolValue" in partial:
                value = partial["boolValue"]
            else:
                value = None
            _set_path(self.args, path, value)


def _set_path(target: Dict[str, Any], path: str, value: Any) -> None:
    steps = [m.group(1) if m.group(1) is not None else int(m.group(2)) for m in _PATH_STEP.finditer(path)]
    if not path.startswith("$") or not steps:
        raise ValueError(f"unexpected jsonPath {path!r}")
    node: Any = target
    for step, following in zip(steps, [*steps[1:], None]):
        empty: Any = [] if isinstance(following, int) else {}
        if following is None:
            if isinstance(step, int):
                node.extend([None] * (step + 1 - len(node)))
            node[step] = value
        elif isinstance(step, int):
            node.extend([None] * (step + 1 - len(node)))
            node[step] = node[step] if node[step] is not None else empty
            node = node[step]
        else:
            node = node.setdefault(step, empty)


class GeminiAdapter(Adapter):
    """``gemini/<model>``."""

    name = "gemini"
    api = "generate"
    default_base_url = "https://generativelanguage.googleapis.com/v1beta"
    key_env: ClassVar[Tuple[str, ...]] = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    base_url_env = "GEMINI_BASE_URL"
    catalog_provider = "google"

    # -- requests ---------------------------------------------------------

    # The key only ever in a header, never in the URL.
    key_header = ("x-goog-api-key", "{key}")
    models_path: ClassVar[Optional[str]] = "/models"

    def models_query(self, page: Optional[str]) -> str:
        from urllib.parse import quote

        return "?pageSize=1000" + ("" if page is None else "&pageToken=" + quote(page, safe=""))

    def parse_models(self, data: Any) -> Tuple[List[str], Optional[str]]:
        # Named "models/<name>"; the client is given "gemini/<name>".
        body = require_object(data)
        names = [_bare(str(entry["name"])) for entry in body.get("models", [])]
        token = body.get("nextPageToken")
        return names, token if isinstance(token, str) and token else None

    @classmethod
    def check_model(cls, model: str) -> None:
        # The model is a segment of the URL: it must not make another path.
        path_segment(_bare(model))

    def path(self, request: ChatRequest, *, stream: bool) -> str:
        model = path_segment(_bare(request.model))
        return f"/models/{model}" + (":streamGenerateContent?alt=sse" if stream else ":generateContent")

    def body(self, request: ChatRequest, *, stream: bool) -> Dict[str, Any]:
        system, turns = split_system(request.messages, request.system)
        body: Dict[str, Any] = {"contents": self.contents(turns)}
        if system:
            body["systemInstruction"] = {"parts": [{"text": system}]}
        config: Dict[str, Any] = {}
        if request.max_tokens is not None:
            config["maxOutputTokens"] = request.max_tokens
        if request.temperature is not None:
            config["temperature"] = request.temperature
        if request.stop is not None:
            config["stopSequences"] = list(request.stop)
        if request.thinking_budget is not None:
            budget = request.thinking_budget
            config["thinkingConfig"] = {"thinkingBudget": budget, "includeThoughts": budget > 0}
        if config:
            body["generationConfig"] = config
        if request.tools is not None:
            body["tools"] = [
                {
                    "functionDeclarations": [
                        {
                            "name": tool["function"]["name"],
                            "description": tool["function"].get("description", ""),
                            "parameters": tool["function"].get("parameters") or {"type": "object", "properties": {}},
                        }
                        for tool in request.tools
                    ]
                }
            ]
        if request.tool_choice is not None:
            body["toolConfig"] = {"functionCallingConfig": self.tool_choice(request.tool_choice)}
        if request.extra_body:
            body.update(request.extra_body)
        return body

    def constrain_output(self, body: Dict[str, Any], output: OutputFormat, request: ChatRequest) -> None:
        # responseJsonSchema takes JSON Schema as it is (responseSchema
        # would need it converted to Gemini's OpenAPI subset).
        config = body.setdefault("generationConfig", {})
        config["responseMimeType"] = "application/json"
        config["responseJsonSchema"] = output.schema

    # -- counting ---------------------------------------------------------

    def count_body(self, request: ChatRequest) -> Dict[str, Any]:
        """What makes up the input of ``request``: its contents, system
        instruction and tools (the output's settings left out)."""
        body = self.body(request, stream=False)
        return {key: value for key, value in body.items() if key in _COUNT_FIELDS}

    def count_request(self, request: ChatRequest) -> Optional[HTTPRequest]:
        """``POST models/{model}:countTokens`` with the whole request as a
        ``generateContentRequest``, so that the system instruction and the
        tools are counted too."""
        model = path_segment(_bare(request.model))
        wrapped = {"generateContentRequest": {"model": f"models/{model}", **self.count_body(request)}}
        return self.post_json(f"/models/{model}:countTokens", wrapped, request)

    def parse_count(self, data: Any) -> int:
        return token_count(require_object(data)["totalTokens"])

    @staticmethod
    def tool_choice(choice: Any) -> Dict[str, Any]:
        if choice == "auto":
            return {"mode": "AUTO"}
        if choice == "required":
            return {"mode": "ANY"}
        if choice == "none":
            return {"mode": "NONE"}
        return {"mode": "ANY", "allowedFunctionNames": [choice["function"]["name"]]}

    def contents(self, turns: List[Mapping[str, Any]]) -> List[Dict[str, Any]]:
        """OpenAI chat turns as Gemini contents; tool results become
        ``functionResponse`` parts (consecutive ones share a turn)."""
        names = tool_names(turns)
        contents: List[Dict[str, Any]] = []
        for turn in turns:
            role = turn["role"]
            if role == "tool":
                call_id = str(turn["tool_call_id"])
                text = text_of(turn.get("content"))
                try:
                    result = json.loads(text)
                except ValueError:
                    result = None
                response: Dict[str, Any] = {
                    "name": names.get(call_id, call_id),
                    "response": result if isinstance(result, dict) else {"result": text},
                }
                if not call_id.startswith("gemini-"):
                    response["id"] = call_id
                result_part = {"functionResponse": response}
                if contents and contents[-1]["role"] == "user" and "functionResponse" in contents[-1]["parts"][0]:
                    contents[-1]["parts"].append(result_part)
                else:
                    contents.append({"role": "user", "parts": [result_part]})
            elif role == "assistant":
                signatures = {
                    detail.get("tool_call_id"): detail.get("signature")
                    for detail in turn.get("reasoning_details") or ()
                    if isinstance(detail, Mapping) and detail.get("type") == SIGNATURE
                }
                parts = self.parts(turn.get("content"))
                for call in turn.get("tool_calls") or ():
                    function = call.get("function") or {}
                    call_id = str(call.get("id"))
                    function_call: Dict[str, Any] = {
                        "name": function.get("name"),
                        "args": arguments_object(function.get("arguments"), call_id),
                    }
                    if not call_id.startswith("gemini-"):
                        function_call["id"] = call_id
                    call_part: Dict[str, Any] = {"functionCall": function_call}
                    signature = signatures.get(call_id)
                    if signature:
                        call_part["thoughtSignature"] = signature
                    parts.append(call_part)
                contents.append({"role": "model", "parts": parts})
            else:
                contents.append({"role": "user", "parts": self.parts(turn.get("content"))})
        return contents

    @staticmethod
    def parts(content: Any) -> List[Dict[str, Any]]:
        parts: List[Dict[str, Any]] = []
        for part in content_parts(content):
            if isinstance(part, Image):
                parts.append(
                    {"fileData": {"fileUri": part.url}}
                    if part.url
                    else {"inlineData": {"mimeType": part.media_type, "data": part.data}}
                )
            elif isinstance(part, Document):
                if part.file_id is not None:
                    raise InvalidArgumentError(
                        "gemini: a file_id is OpenAI's; give a Gemini file's URI as file_url, or the bytes as file_data"
                    )
                if part.url is not None:
                    data: Dict[str, Any] = {"fileUri": part.url}
                    if part.media_type:
                        data["mimeType"] = part.media_type
                    parts.append({"fileData": data})
                else:
                    parts.append({"inlineData": {"mimeType": part.media_type, "data": part.data}})
            elif part:
                parts.append({"text": part})
        return parts

    # -- responses --------------------------------------------------------

    def stream_events(self, body: Iterable[bytes]) -> Iterator[Event]:
        return self.decode_frames(iter_sse(body))

    def decode_frames(self, frames: Iterable[Any]) -> Iterator[Event]:
        """Events from SSE frames (anything with ``.data``), one
        ``GenerateContentResponse`` each."""
        decoder = _Decoder(self)
        for frame in frames:
            data = frame.data
            if not data:
                continue
            try:
                yield from decoder.chunk(json.loads(data))
            except SHAPE_ERRORS as exc:
                yield malformed_in_stream(exc, data)
                return
            if decoder.failed:
                return
        yield from decoder.finish()

    def body_events(self, data: Any) -> Iterator[Event]:
        """A ``generateContent`` answer -- or a whole stream fetched without
        ``alt=sse``, which is a JSON array of chunks."""
        decoder = _Decoder(self)
        for chunk in data if isinstance(data, list) else [data]:
            yield from decoder.chunk(chunk)
            if decoder.failed:
                return
        yield from decoder.finish()
        yield STREAM_DONE


class _Decoder:
    """The state of one response's decoding: identity, tool calls."""

    def __init__(self, adapter: GeminiAdapter) -> None:
        self.adapter = adapter
        self.response_id: Optional[str] = None
        self.identified = False
        self.calls = 0
        self.partial: Optional[_PartialCall] = None
        self.failed = False

    def _call_id(self, given: Any) -> str:
        if given:
            return str(given)
        # No id before Gemini 3: one made up, the same every time this
        # response is read, unique across responses when there is an id.
        return f"gemini-{self.response_id or 'call'}-{self.calls}"

    def chunk(self, obj: Any) -> Iterator[Event]:
        require_object(obj, "a chunk")
        if obj.get("error"):
            self.failed = True
            yield self.adapter.in_band_error(obj["error"])
            return
        if not self.identified:
            self.identified = True
            self.response_id = obj.get("responseId")
            yield ResponseInfo(id=self.response_id, model=obj.get("modelVersion"))
        usage = usage_from_gemini(obj["usageMetadata"]) if obj.get("usageMetadata") else None
        candidates = obj.get("candidates") or []
        reason: Optional[str] = None
        if not candidates and (obj.get("promptFeedback") or {}).get("blockReason"):
            reason = "content_filter"  # the prompt itself was blocked
        for candidate in candidates[:1]:
            for part in (candidate.get("content") or {}).get("parts") or ():
                yield from self.part(part)
            if candidate.get("finishReason"):
                reason = FINISH_REASONS.get(candidate["finishReason"], "stop")
                if reason == "stop" and (self.calls or self.partial is not None):
                    reason = "tool_calls"  # Gemini says STOP when it calls tools
        if reason is not None or usage is not None:
            yield Chunk("", "", reason, usage)

    def part(self, part: Mapping[str, Any]) -> Iterator[Event]:
        call = part.get("functionCall")
        if call is not None:
            yield from self.function_call(call, part.get("thoughtSignature"))
            return
        text = part.get("text")
        if text:
            if part.get("thought"):
                yield Chunk("", text, None, None)
            else:
                yield Chunk(text, "", None, None)
        if part.get("thoughtSignature"):
            yield ReasoningDetail({"type": SIGNATURE, "signature": part["thoughtSignature"]})

    def function_call(self, call: Mapping[str, Any], signature: Any) -> Iterator[Event]:
        if call.get("partialArgs") is not None and self.partial is not None:
            self.partial.add(call["partialArgs"])
            return
        if not call.get("name"):
            yield from self.finish()  # an empty functionCall ends a streamed one
            return
        yield from self.finish()
        call_id = self._call_id(call.get("id"))
        if signature:
            yield ReasoningDetail({"type": SIGNATURE, "signature": signature, "tool_call_id": call_id})
        if call.get("willContinue") and "args" not in call:
            self.partial = _PartialCall(call["name"], call_id)
            return
        index = self.calls
        self.calls += 1
        yield ToolCallDelta(index=index, id=call_id, name=call["name"], arguments=json.dumps(call.get("args") or {}))

    def finish(self) -> Iterator[Event]:
        """Emit a streamed call whose arguments are complete."""
        partial, self.partial = self.partial, None
        if partial is not None:
            index = self.calls
            self.calls += 1
            yield ToolCallDelta(index=index, id=partial.id, name=partial.name, arguments=json.dumps(partial.args))
