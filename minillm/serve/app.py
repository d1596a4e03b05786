"""The OpenAI-compatible application in front of an engine, without sockets.

:class:`OpenAIApp` answers ``POST /v1/chat/completions`` (streaming, with
usage in a final chunk when asked, and whole), ``GET /v1/models`` and
``GET /health`` for one engine. The HTTP server (:mod:`minillm.serve.server`)
and the in-process transport (:mod:`minillm.transports.inprocess`) both put it to
work, so ``local/<engine>`` and ``minillm serve`` answer the same bytes.

The first output is pulled before the status is chosen, so a request that
fails before any output (a prompt too long, a broken engine) gets an HTTP
error rather than a stream that breaks at once. Errors use OpenAI's shape:
``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any, Dict, Generator, Iterator, List, Mapping, Optional, Sequence, Tuple

import attrs

from ..engines.base import (
    Engine,
    EngineConfig,
    EngineError,
    GenerationContext,
    GenerationRequest,
    Output,
    PromptTooLongError,
)

__all__ = ["AppReply", "OpenAIApp", "error_reply"]

log = logging.getLogger("minillm.serve")

_JSON = (("content-type", "application/json"),)
_SSE = (("content-type", "text/event-stream"), ("cache-control", "no-cache"), ("x-accel-buffering", "no"))


@attrs.frozen
class AppReply:
    """What the application answers: a status, headers and a body that is
    produced as it is read (a stream), or at once.

    Closing an unfinished ``body`` ends its generation.
    """

    status: int
    headers: Tuple[Tuple[str, str], ...]
    body: Iterator[bytes]
    streaming: bool = False


class _RefusedError(Exception):
    """An answer other than success, found while reading the request."""

    def __init__(
        self,
        status: int,
        message: str,
        kind: str = "invalid_request_error",
        *,
        param: Optional[str] = None,
        code: Any = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.param = param
        self.code = code


def error_reply(status: int, message: str, kind: str, param: Optional[str] = None, code: Any = None) -> AppReply:
    """An answer in OpenAI's error shape, ``{"error": {"message", "type", "param", "code"}}``."""
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return AppReply(status, _JSON, iter([_dumps(body)]))


def _dumps(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _sse(data: Any) -> bytes:
    return b"data: " + (data if isinstance(data, bytes) else _dumps(data)) + b"\n\n"


class OpenAIApp:
    """Serves one engine over the OpenAI Chat Completions protocol.

    Thread-safe: :meth:`handle` is called concurrently, one call per request.

    :param engine: the engine; started on the first request if it is not yet.
    :param aliases: model names accepted besides the one the engine serves.
    """

    def __init__(self, engine: Engine, *, aliases: Sequence[str] = ()) -> None:
        self.engine = engine
        self._aliases = frozenset(aliases)
        self._created = int(time.time())

    def handle(self, method: str, path: str, body: bytes, ctx: GenerationContext) -> AppReply:
        """Answer one request. For a chat completion this blocks until the
        first output (the whole answer when not streaming); stop ``ctx`` to
        end it early."""
        route = path.split("?", 1)[0].rstrip("/")
        if route.startswith("/v1/"):
            route = route[3:]
        try:
            if route == "/chat/completions":
                _allow(method, "POST")
                return self._chat(body, ctx)
            if route == "/models":
                _allow(method, "GET")
                return self._models()
            if route.startswith("/models/"):
                _allow(method, "GET")
                return self._model(route[len("/models/") :])
            if route == "/health":
                _allow(method, "GET")
                return self._health()
            raise _RefusedError(404, f"there is nothing at {route or '/'}", code="not_found")
        except _RefusedError as refused:
            return error_reply(refused.status, refused.message, refused.kind, refused.param, refused.code)

    # -- the small routes ------------------------------------------------------

    def _config(self) -> EngineConfig:
        try:
            return self.engine.start()
        except EngineError as exc:
            raise _RefusedError(503, str(exc), "server_error", code="engine_unavailable") from exc

    def _models(self) -> AppReply:
        config = self._config()
        listing = {"object": "list", "data": [self._model_card(config.model, config)]}
        return AppReply(200, _JSON, iter([_dumps(listing)]))

    def _model(self, name: str) -> AppReply:
        config = self._config()
        if name != config.model and name not in self._aliases:
            raise _RefusedError(404, f"the model {name!r} does not exist", code="model_not_found")
        return AppReply(200, _JSON, iter([_dumps(self._model_card(name, config))]))

    def _model_card(self, name: str, config: EngineConfig) -> Dict[str, Any]:
        return {
            "id": name,
            "object": "model",
            "created": self._created,
            "owned_by": config.owned_by,
            "context_length": config.context_length,
        }

    def _health(self) -> AppReply:
        health = self.engine.health()
        return AppReply(200 if health.get("status") == "ok" else 503, _JSON, iter([_dumps(health)]))

    # -- chat completions ------------------------------------------------------

    def _chat(self, body: bytes, ctx: GenerationContext) -> AppReply:
        config = self._config()
        data = _parse(body)
        model = data.get("model")
        if not isinstance(model, str) or not model:
            raise _RefusedError(400, "model is required", param="model")
        if model != config.model and model not in self._aliases:
            raise _RefusedError(
                404,
                f"the model {model!r} does not exist: this server serves {config.model!r}",
                param="model",
                code="model_not_found",
            )
        request = _generation_request(data, ctx)
        stream = data.get("stream") is True
        options = data.get("stream_options")
        if not isinstance(options, dict):
            options = {}
        try:
            outputs = self.engine.generate(request, ctx)
            first = next(outputs)
        except StopIteration:
            return error_reply(500, "the engine produced no output at all", "server_error")
        except PromptTooLongError as exc:
            return error_reply(
                400,
                f"This model's maximum context length is {exc.context_length} tokens. "
                f"However, your messages resulted in {exc.prompt_tokens} tokens.",
                "invalid_request_error",
                param="messages",
                code="context_length_exceeded",
            )
        except EngineError as exc:
            return error_reply(503, str(exc), "server_error", code="engine_unavailable")
        except Exception as exc:
            log.exception("the %s engine failed before its first output", self.engine.name)
            return error_reply(500, f"the engine failed: {type(exc).__name__}: {exc}", "server_error")
        completion = _Completion(model, first, outputs)
        if stream:
            # vLLM's continuous_usage_stats: usage on every chunk, so a
            # stream cut short still says what it had cost so far.
            running = options.get("continuous_usage_stats") is True
            prompt_tokens = self.engine.prompt_tokens(request) if running else None
            return AppReply(
                200,
                _SSE,
                _Body(
                    completion.events(include_usage=options.get("include_usage") is True, prompt_tokens=prompt_tokens),
                    completion.close,
                ),
                streaming=True,
            )
        return completion.whole(ctx)


class _Completion:
    """One chat completion's outputs, turned into wire data."""

    def __init__(self, model: str, first: Output, rest: Iterator[Output]) -> None:
        self.model = model
        self.first = first
        self.rest = rest
        self.id = "chatcmpl-" + uuid.uuid4().hex
        self.created = int(time.time())

    def outputs(self) -> Generator[Output, None, None]:
        """Every output, the terminal one last; an exception the engine
        raised becomes a terminal error. Reading goes on after the terminal
        output, so that a validating engine can object to what follows it."""
        terminal: Optional[Output] = None
        try:
            for output in _chain(self.first, self.rest):
                if terminal is not None:
                    log.error("an engine output followed its terminal output and was dropped: %r", output)
                    break
                if output.is_terminal:
                    terminal = output
                    continue
                yield output
        except Exception as exc:
            if terminal is None:
                log.warning("the engine failed mid-stream: %s: %s", type(exc).__name__, exc)
                # An engine's own error says what happened; anything else is named too.
                said = str(exc) if isinstance(exc, EngineError) else f"{type(exc).__name__}: {exc}"
                terminal = Output(finish_reason="error", error=said)
            else:
                log.error("the engine failed after its terminal output: %s: %s", type(exc).__name__, exc)
        finally:
            self.close()
        if terminal is None:
            log.error("the engine's stream ended without a terminal output")
            terminal = Output(finish_reason="error", error="the engine's stream ended without a terminal output")
        yield terminal

    def close(self) -> None:
        """End the engine's generation (idempotent)."""
        close = getattr(self.rest, "close", None)
        if close is not None:
            close()

    def _chunk(self, delta: Dict[str, Any], finish_reason: Optional[str] = None) -> Dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }

    def events(self, *, include_usage: bool, prompt_tokens: Optional[int]) -> Generator[bytes, None, None]:
        """The SSE stream: a role chunk, a chunk per output, the finish
        chunk, the usage chunk when asked, ``[DONE]``. A failure becomes an
        ``error`` event and the stream ends without ``[DONE]``.

        :param prompt_tokens: when given, every chunk carries the usage so far.
        """
        outputs = self.outputs()
        try:
            yield _sse(self._chunk({"role": "assistant", "content": ""}))
            produced = 0
            for output in outputs:
                if not output.is_terminal:
                    produced += 1
                    chunk = self._chunk({"content": output.text})
                    if prompt_tokens is not None:
                        chunk["usage"] = _usage_counts(prompt_tokens, produced)
                    yield _sse(chunk)
                    continue
                reason = output.finish_reason
                if reason in ("stop", "length"):
                    yield _sse(self._chunk({}, reason))
                    if include_usage and output.usage is not None:
                        usage = {**self._chunk({}), "choices": [], "usage": _usage_dict(output)}
                        yield _sse(usage)
                    yield _sse(b"[DONE]")
                else:
                    yield _sse(_failure(output))
        finally:
            outputs.close()

    def whole(self, ctx: GenerationContext) -> AppReply:
        """The whole answer as one ``chat.completion``."""
        texts: List[str] = []
        terminal: Optional[Output] = None
        for output in self.outputs():
            if output.is_terminal:
                terminal = output
            else:
                texts.append(output.text)
        assert terminal is not None
        if terminal.finish_reason not in ("stop", "length"):
            failure = _failure(terminal)["error"]
            return error_reply(
                503 if terminal.finish_reason == "cancelled" else 500, failure["message"], failure["type"]
            )
        body = {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(texts)},
                    "finish_reason": terminal.finish_reason,
                }
            ],
            "usage": _usage_dict(terminal),
        }
        return AppReply(200, _JSON, iter([_dumps(body)]))


class _Body(Iterator[bytes]):
    """A streamed body whose closing always ends the generation behind it,
    even when it was never read (a generator that never started runs no
    ``finally``)."""

    def __init__(self, events: Generator[bytes, None, None], end: Any) -> None:
        self._events = events
        self._end = end

    def __next__(self) -> bytes:
        return next(self._events)

    def close(self) -> None:
        try:
            self._events.close()
        finally:
            self._end()


def _chain(first: Output, rest: Iterator[Output]) -> Iterator[Output]:
    yield first
    yield from rest


def _usage_counts(prompt: int, completion: int) -> Dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _usage_dict(output: Output) -> Dict[str, int]:
    usage = output.usage
    if usage is None:
        return _usage_counts(0, 0)
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def _failure(output: Output) -> Dict[str, Any]:
    if output.finish_reason == "cancelled":
        return {"error": {"message": "the generation was cancelled", "type": "server_error", "code": 503}}
    message = output.error or "the engine failed"
    return {"error": {"message": message, "type": "server_error", "code": 500}}


# -- reading the request --------------------------------------------------------


def _allow(method: str, allowed: str) -> None:
    if method.upper() != allowed:
        raise _RefusedError(405, f"use {allowed} here", code="method_not_allowed")


def _parse(body: bytes) -> Dict[str, Any]:
    try:
        data = json.loads(body or b"null")
    except ValueError:
        raise _RefusedError(400, "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise _RefusedError(400, "the body must be a JSON object")
    return data


#: The request fields an engine honours (``tools`` and ``n`` are checked on their own).
HONOURED = frozenset(
    {"model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens", "temperature"}
    | {"stop", "seed", "n", "tools", "functions"}
)
#: Fields that change nothing an engine produces: bookkeeping for the caller.
HARMLESS = frozenset({"user", "metadata", "store", "safety_identifier", "prompt_cache_key"})
#: Fields an engine cannot honour, accepted only at the value that asks for
#: nothing (what the official client sends by default, or an explicit no).
NEUTRAL: Mapping[str, Tuple[Any, ...]] = {
    "logprobs": (None, False),
    "top_logprobs": (None, 0),
    "top_p": (None, 1),
    "frequency_penalty": (None, 0),
    "presence_penalty": (None, 0),
    "logit_bias": (None, {}),
    "response_format": (None, {"type": "text"}),
    "tool_choice": (None, "none", "auto"),
    "function_call": (None, "none", "auto"),
    "parallel_tool_calls": (None, True, False),
    "modalities": (None, ["text"]),
    "audio": (None,),
    "prediction": (None,),
    "reasoning_effort": (None,),
    "verbosity": (None,),
    "service_tier": (None, "auto", "default"),
    "web_search_options": (None,),
}


def _refuse_unsupported(data: Mapping[str, Any]) -> None:
    """Refuse what would otherwise be ignored: an answer that silently is
    not what was asked for is worse than an error naming the field."""
    for name in sorted(data):
        if name in HONOURED or name in HARMLESS:
            continue
        if name not in NEUTRAL:
            raise _RefusedError(400, f"Unrecognized request argument supplied: {name}", param=name)
        value = data[name]
        if not any(_same(value, neutral) for neutral in NEUTRAL[name]):
            raise _RefusedError(400, f"{name}={json.dumps(value)} is not supported by this server's engine", param=name)


def _same(value: Any, neutral: Any) -> bool:
    """JSON equality: ``1.0`` is ``1``, but ``true`` is not ``1``."""
    if isinstance(neutral, bool) or neutral is None:
        return value is neutral
    if isinstance(neutral, (int, float)):
        return not isinstance(value, bool) and isinstance(value, (int, float)) and value == neutral
    return bool(value == neutral)


def _generation_request(data: Mapping[str, Any], ctx: GenerationContext) -> GenerationRequest:
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _RefusedError(400, "messages must be a non-empty list", param="messages")
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise _RefusedError(400, "each message needs a role", param="messages")
        if not isinstance(message.get("content"), (str, list, type(None))):
            raise _RefusedError(400, "a message's content is a string or a list of parts")
    _refuse_unsupported(data)
    if data.get("tools") or data.get("functions"):
        raise _RefusedError(400, "this engine does not call tools", param="tools")
    n = data.get("n", 1)
    if n != 1:
        raise _RefusedError(400, "only n=1 is supported", param="n")
    max_tokens = data.get("max_completion_tokens", data.get("max_tokens"))
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise _RefusedError(400, "max_tokens must be a positive integer", param="max_tokens")
    temperature = data.get("temperature")
    if temperature is not None and (
        isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0 <= temperature <= 2
    ):
        raise _RefusedError(400, "temperature must be a number from 0 to 2", param="temperature")
    stop = data.get("stop")
    stops = [stop] if isinstance(stop, str) else stop if stop is not None else []
    if not isinstance(stops, list) or len(stops) > 4 or not all(isinstance(s, str) for s in stops):
        raise _RefusedError(400, "stop must be a string or up to 4 strings", param="stop")
    seed = data.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise _RefusedError(400, "seed must be an integer", param="seed")
    return GenerationRequest(
        messages=messages,
        max_tokens=max_tokens,
        temperature=None if temperature is None else float(temperature),
        stop=tuple(stops),
        seed=seed,
        request_id=ctx.request_id,
    )
