"""An invoice-keeping provider double: :class:`BillingServer` answers the
requests of one or more provider protocols from queued :class:`Plan` s and
books every answer a provider would bill as one :class:`InvoiceLine`, so a
test can check that a ledger adds up to what the provider would invoice.

A plan says how long the answer is and how it ends: whole (``"complete"``),
stalled until the client leaves (``"hang"``), cut (``"drop"``), with an
in-band error (``"error"``), with an event the client cannot parse
(``"malformed"``), refused with an HTTP error status (``"status"``),
answered only after a delay (``"late"``) or slowly (``"drip"``). The server
counts the tokens it actually wrote before the client left, and bills
those, as a provider does.

Everything is synchronised with events: :meth:`Invoice.wait_final` waits
until the server knows how every request ended. The server is thread-safe:
plans, lines and invoices are kept under one lock, and each request is
answered on its own thread.
"""

from __future__ import annotations

import json
import re
import secrets
import select
import socket
import struct
import threading
import time
from collections import deque
from decimal import Decimal
from typing import Any, ClassVar, Deque, Dict, Iterable, List, Mapping, Optional, Tuple, Union

import attrs

from .._httpserver import RequestHandler
from .server import MAX_WAIT, RecordedRequest, Reply, ScriptedServer
from .transcripts import (
    anthropic_stream,
    chat_chunk,
    chat_completion,
    chat_stream,
    chat_usage,
    gemini_stream,
    ollama_stream,
    responses_stream,
    sse,
)

__all__ = ["ENDINGS", "PROTOCOLS", "Billing", "BillingServer", "Invoice", "InvoiceLine", "Plan"]

#: The wire protocols a :class:`BillingServer` can bill.
PROTOCOLS: Tuple[str, ...] = ("anthropic", "gemini", "ollama", "openai_chat", "openai_responses", "openrouter")

#: How a :class:`Plan` ends its answer.
ENDINGS: Tuple[str, ...] = ("complete", "hang", "drop", "error", "malformed", "status", "late", "drip")

#: The request header whose value is a line's ``tag`` (and picks tagged plans).
TAG_HEADER = "x-test-tag"


def _money(value: Union[str, int, Decimal]) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise TypeError(f"a price is a str, int or Decimal (floats are inexact), not {type(value).__name__}")
    price = Decimal(value)
    if not price.is_finite() or price < 0:
        raise ValueError(f"a price is a finite amount of at least 0, not {value!r}")
    return price


def _at_least_zero(instance: Any, attribute: Any, value: Union[int, float]) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must be at least 0, not {value!r}")


@attrs.frozen(kw_only=True)
class Plan:
    """How the server answers one request.

    :param prompt_tokens: the input tokens the request is billed for.
    :param tokens: the output tokens of the whole answer; a stream sends one
        per content delta (``"t0 "``, ``"t1 "``, ...).
    :param ending: one of :data:`ENDINGS` (see :doc:`/testing` for what each
        does per protocol, and what it bills).
    :param after: the tokens sent before a ``"hang"``, ``"drop"``,
        ``"error"`` or ``"malformed"`` takes effect, or sent at once before a
        ``"drip"``.
    :param status: the HTTP status of a ``"status"`` ending (400-599).
    :param delay: seconds: how long a ``"late"`` answer holds its headers,
        and the pause before each token of a ``"drip"``.
    :param tag: when set, the plan is served only to a request whose
        ``X-Test-Tag`` header has this value.
    """

    prompt_tokens: int = attrs.field(default=10, validator=_at_least_zero)
    tokens: int = attrs.field(default=5, validator=_at_least_zero)
    ending: str = attrs.field(default="complete", validator=attrs.validators.in_(ENDINGS))
    after: int = attrs.field(default=0, validator=_at_least_zero)
    status: int = attrs.field(default=500)
    delay: float = attrs.field(default=0.0, validator=_at_least_zero)
    tag: Optional[str] = None

    @after.validator
    def _after_at_most_tokens(self, attribute: Any, value: int) -> None:
        if value > self.tokens:
            raise ValueError(f"after ({value}) cannot exceed tokens ({self.tokens})")

    @status.validator
    def _an_error_status(self, attribute: Any, value: int) -> None:
        if not 400 <= value <= 599:
            raise ValueError(f"status must be an HTTP error status (400-599), not {value!r}")


@attrs.frozen
class Billing:
    """What one protocol's requests are billed at.

    :param protocol: one of :data:`PROTOCOLS`.
    :param input_per_mtok: USD per million input tokens (str, int or
        :class:`~decimal.Decimal`; never a float).
    :param output_per_mtok: USD per million output tokens.
    :param model: the model the answers name; None echoes the model the
        request names.
    :param default: the plan for a request when no queued plan fits it; None
        answers such a request with an HTTP 500 error (and bills nothing).
    """

    protocol: str = attrs.field(validator=attrs.validators.in_(PROTOCOLS))
    input_per_mtok: Decimal = attrs.field(converter=_money)
    output_per_mtok: Decimal = attrs.field(converter=_money)
    model: Optional[str] = None
    default: Optional[Plan] = Plan()

    def usd(self, prompt_tokens: int, completion_tokens: int) -> Decimal:
        """The exact price of ``prompt_tokens`` in and ``completion_tokens`` out."""
        return self.input_usd(prompt_tokens) + self.output_usd(completion_tokens)

    def input_usd(self, prompt_tokens: int) -> Decimal:
        """The exact price of ``prompt_tokens`` in."""
        return (Decimal(prompt_tokens) * self.input_per_mtok).scaleb(-6)

    def output_usd(self, completion_tokens: int) -> Decimal:
        """The exact price of ``completion_tokens`` out."""
        return (Decimal(completion_tokens) * self.output_per_mtok).scaleb(-6)


@attrs.frozen
class InvoiceLine:
    """One billed request, as the server saw it when the copy was taken.

    Until ``final`` the counts are those so far (the tokens written yet);
    once final they are what the provider bills.
    """

    #: the id the answer carried (OpenRouter's generation id; Ollama sends
    #: none, so its lines have the server's own ``ollama-...`` id)
    id: str
    protocol: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    #: ``prompt_tokens`` and ``completion_tokens`` at the billing's prices, exact
    usd: Decimal
    ending: str
    #: the request's ``X-Test-Tag`` header, or None
    tag: Optional[str]
    #: 1, 2, ...: the order in which the server accepted billed requests
    arrival: int
    #: whether the answer was a stream
    streamed: bool
    #: whether the server knows how the request ended (the line will not change)
    final: bool
    #: whether the server noticed the client leave before the answer ended
    disconnected: bool
    #: the request as the server received it (headers, body)
    request: RecordedRequest = attrs.field(eq=False, repr=False)

    @property
    def total_tokens(self) -> int:
        """``prompt_tokens`` + ``completion_tokens``."""
        return self.prompt_tokens + self.completion_tokens


class _Entry:
    """The server's mutable record of one billed request (under the book's lock)."""

    def __init__(
        self,
        *,
        id: str,  # noqa: A002 - the wire name
        billing: Billing,
        model: str,
        plan: Plan,
        streamed: bool,
        arrival: int,
        request: RecordedRequest,
    ) -> None:
        self.id = id
        self.billing = billing
        self.model = model
        self.plan = plan
        self.streamed = streamed
        self.arrival = arrival
        self.request = request
        self.tag = request.headers.get(TAG_HEADER)
        #: output tokens written (streams) or generated (whole answers) so far
        self.written = 0
        #: the output tokens billed, once final
        self.billed: Optional[int] = None
        self.disconnected = False

    @property
    def completion_tokens(self) -> int:
        return self.written if self.billed is None else self.billed

    def line(self) -> InvoiceLine:
        completion = self.completion_tokens
        return InvoiceLine(
            id=self.id,
            protocol=self.billing.protocol,
            model=self.model,
            prompt_tokens=self.plan.prompt_tokens,
            completion_tokens=completion,
            usd=self.billing.usd(self.plan.prompt_tokens, completion),
            ending=self.plan.ending,
            tag=self.tag,
            arrival=self.arrival,
            streamed=self.streamed,
            final=self.billed is not None,
            disconnected=self.disconnected,
            request=self.request,
        )


class _Book:
    """A server's billing state: billings, queued plans and entries, under one condition."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.billings: Dict[str, Billing] = {}
        self.plans: Deque[Plan] = deque()
        self.entries: List[_Entry] = []
        self.by_id: Dict[str, _Entry] = {}
        #: makes ids unique across servers (a test may book several into one ledger)
        self.prefix = secrets.token_hex(4)

    def take(self, billing: Billing, tag: Optional[str]) -> Optional[Plan]:
        """The first queued plan tagged ``tag``, else the first untagged one, else the default."""
        wanted_tags: List[Optional[str]] = [None] if tag is None else [tag, None]
        with self.lock:
            for wanted in wanted_tags:
                for index, plan in enumerate(self.plans):
                    if plan.tag == wanted:
                        del self.plans[index]
                        return plan
        return billing.default

    def open(
        self, billing: Billing, wire: _Wire, model: str, plan: Plan, streamed: bool, request: RecordedRequest
    ) -> _Entry:
        with self.lock:
            arrival = len(self.entries) + 1
            entry = _Entry(
                id=wire.response_id(f"{self.prefix}-{arrival}"),
                billing=billing,
                model=model,
                plan=plan,
                streamed=streamed,
                arrival=arrival,
                request=request,
            )
            self.entries.append(entry)
            self.by_id[entry.id] = entry
            self.lock.notify_all()
            return entry

    def wrote(self, entry: _Entry, tokens: int = 1) -> None:
        with self.lock:
            entry.written += tokens

    def close(self, entry: _Entry, billed: int, disconnected: bool) -> None:
        with self.lock:
            entry.billed = billed
            entry.disconnected = disconnected
            self.lock.notify_all()

    def final(self, generation_id: str, protocol: str) -> Optional[_Entry]:
        with self.lock:
            entry = self.by_id.get(generation_id)
            if entry is None or entry.billing.protocol != protocol or entry.billed is None:
                return None
            return entry

    def lines(self, protocol: str) -> List[InvoiceLine]:
        with self.lock:
            return [entry.line() for entry in self.entries if entry.billing.protocol == protocol]


class Invoice:
    """What one protocol's provider would invoice: a line per billed request.

    Thread-safe; every accessor returns a copy taken under the server's lock.
    """

    def __init__(self, billing: Billing, book: _Book) -> None:
        self.billing = billing
        self._book = book

    @property
    def protocol(self) -> str:
        """The billed protocol."""
        return self.billing.protocol

    @property
    def lines(self) -> List[InvoiceLine]:
        """Every line so far, in arrival order."""
        return self._book.lines(self.protocol)

    def line(self, id: str) -> InvoiceLine:  # noqa: A002 - the wire name
        """The line of the answer with ``id``; :class:`KeyError` when there is none."""
        for line in self.lines:
            if line.id == id:
                return line
        raise KeyError(id)

    def lines_for(self, tag: Optional[str]) -> List[InvoiceLine]:
        """The lines of requests tagged ``tag`` (None: untagged)."""
        return [line for line in self.lines if line.tag == tag]

    def total(self) -> Decimal:
        """The sum of every line's ``usd`` (so far: wait for :meth:`wait_final` first)."""
        return sum((line.usd for line in self.lines), Decimal(0))

    def by_tag(self) -> Dict[Optional[str], Decimal]:
        """The total per tag (None: untagged requests)."""
        totals: Dict[Optional[str], Decimal] = {}
        for line in self.lines:
            totals[line.tag] = totals.get(line.tag, Decimal(0)) + line.usd
        return totals

    def wait_for_lines(self, count: int, timeout: float = 10.0) -> bool:
        """Wait until there are at least ``count`` lines (final or not)."""
        book = self._book

        def enough() -> bool:
            return sum(entry.billing.protocol == self.protocol for entry in book.entries) >= count

        with book.lock:
            return book.lock.wait_for(enough, timeout)

    def wait_final(self, timeout: float = 10.0, *, count: Optional[int] = None) -> bool:
        """Wait until every line is final -- and, with ``count``, until there
        are at least that many lines. False when ``timeout`` passed first."""
        book = self._book

        def done() -> bool:
            entries = [entry for entry in book.entries if entry.billing.protocol == self.protocol]
            return (count is None or len(entries) >= count) and all(entry.billed is not None for entry in entries)

        with book.lock:
            return book.lock.wait_for(done, timeout)

    def __repr__(self) -> str:
        return f"<Invoice {self.protocol}: {len(self.lines)} line(s), {self.total()} USD>"


# -- JSON with exact money ------------------------------------------------------------------------

_DECIMAL_MARK = re.compile(r'"@@decimal:(\d+)@@"')


def _json(data: Any, *, indent: Optional[int] = None) -> str:
    """``data`` as JSON; a :class:`~decimal.Decimal` becomes a JSON number with exactly its digits."""
    numbers: List[str] = []

    def number(value: Any) -> str:
        if isinstance(value, Decimal):
            numbers.append(format(value, "f"))
            return f"@@decimal:{len(numbers) - 1}@@"
        raise TypeError(f"{type(value).__name__} is not JSON")

    separators = (",", ": ") if indent is not None else (",", ":")
    text = json.dumps(data, default=number, indent=indent, separators=separators, ensure_ascii=False)
    return _DECIMAL_MARK.sub(lambda match: numbers[int(match.group(1))], text)


def _pieces(count: int) -> List[str]:
    return [f"t{n} " for n in range(count)]


def _cut_in_half(piece: bytes) -> bytes:
    """``piece`` -- an SSE event or an NDJSON line -- with its JSON cut off
    half-way and its framing kept: an event that arrives whole but cannot be
    parsed. A proper prefix of a JSON object is never valid JSON."""
    newline = b"\r\n" if b"\r\n" in piece else b"\n"
    lines = piece.split(newline)
    for index, line in enumerate(lines):
        payload = line[len(b"data: ") :] if line.startswith(b"data: ") else line
        if payload.startswith(b"{"):
            lines[index] = line[: len(line) - (len(payload) + 1) // 2]
            break
    return newline.join(lines)


# -- the wire formats -----------------------------------------------------------------------------


@attrs.frozen
class _Stream:
    """A whole answer as framed pieces: ``head``, one piece per token, ``tail``."""

    head: List[bytes]
    tokens: List[bytes]
    tail: List[bytes]

    def garbled(self, after: int) -> bytes:
        """The event that would follow token ``after``, cut in half (when
        none would -- Gemini's last token is its terminal chunk -- the last
        one again)."""
        following = [*self.tokens[after:], *self.tail] or self.tokens[-1:]
        return _cut_in_half(following[0])


class _Wire:
    """One protocol's paths, ids, bodies and streams (one subclass per protocol)."""

    protocol: ClassVar[str]
    id_prefix: ClassVar[str]
    #: the path (suffix) answered with POST
    path_suffix: ClassVar[str] = ""
    stream_type: ClassVar[str] = "text/event-stream; charset=utf-8"
    #: non-streaming bodies are pretty-printed by OpenAI and Google
    indent: ClassVar[Optional[int]] = None

    def response_id(self, serial: str) -> str:
        return f"{self.id_prefix}{serial}"

    def accepts(self, method: str, path: str) -> bool:
        return method == "POST" and path.endswith(self.path_suffix)

    def streamed(self, path: str, body: Mapping[str, Any]) -> bool:
        return body.get("stream") is True

    def requested_model(self, path: str, body: Mapping[str, Any]) -> str:
        model = body.get("model")
        return model if isinstance(model, str) and model else "test-model"

    def headers(self, entry: _Entry) -> List[Tuple[str, str]]:
        return []

    def stream(self, entry: _Entry, body: Mapping[str, Any]) -> _Stream:
        raise NotImplementedError

    def stream_error(self, entry: _Entry) -> List[bytes]:
        """The in-band error event(s) sent after ``entry.plan.after`` tokens."""
        raise NotImplementedError

    def whole(self, entry: _Entry) -> Dict[str, Any]:
        """The non-streaming answer with the whole text and its usage."""
        raise NotImplementedError

    def whole_error(self, entry: _Entry) -> Any:
        """A 200 body that carries an error after ``entry.plan.after`` tokens."""
        raise NotImplementedError

    def status_error(self, status: int) -> Any:
        """The body of an HTTP error ``status``."""
        raise NotImplementedError

    def encode(self, data: Any) -> bytes:
        return _json(data, indent=self.indent).encode("utf-8")


_OPENAI_ERRORS = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: (
        "invalid_request_error",
        "unsupported_country_region_territory",
        "Country, region, or territory not supported.",
    ),
    404: ("invalid_request_error", "model_not_found", "The model does not exist or you do not have access to it."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests. Please try again in 1s."),
}
_OPENAI_SERVER_ERROR = {
    "message": "The server had an error while processing your request. Sorry about that!",
    "type": "server_error",
    "param": None,
    "code": None,
}


def _openai_status_error(status: int) -> Dict[str, Any]:
    if status in _OPENAI_ERRORS:
        kind, code, message = _OPENAI_ERRORS[status]
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return {"error": dict(_OPENAI_SERVER_ERROR)}


class _ChatWire(_Wire):
    protocol = "openai_chat"
    id_prefix = "chatcmpl-"
    path_suffix = "/chat/completions"
    indent: ClassVar[Optional[int]] = 2

    def usage(self, entry: _Entry, completion: int) -> Dict[str, Any]:
        return chat_usage(entry.plan.prompt_tokens, completion)

    def wants_usage(self, body: Mapping[str, Any]) -> bool:
        options = body.get("stream_options")
        return isinstance(options, dict) and options.get("include_usage") is True

    def stream(self, entry: _Entry, body: Mapping[str, Any]) -> _Stream:
        n = entry.plan.tokens
        tokens = chat_stream(_pieces(n), id=entry.id, model=entry.model, finish_reason=None, done=False)
        finish = sse(chat_chunk(id=entry.id, model=entry.model, content="", finish_reason="stop"))
        tail = [finish]
        if self.wants_usage(body):
            usage = chat_chunk(id=entry.id, model=entry.model, usage=self.usage(entry, n), choices=False)
            tail.append(sse(_json(usage)))
        return _Stream(head=[], tokens=tokens, tail=[*tail, sse("[DONE]")])

    def stream_error(self, entry: _Entry) -> List[bytes]:
        return [sse({"error": _OPENAI_SERVER_ERROR})]

    def whole(self, entry: _Entry) -> Dict[str, Any]:
        text = "".join(_pieces(entry.plan.tokens))
        return chat_completion(text, id=entry.id, model=entry.model, usage=self.usage(entry, entry.plan.tokens))

    def whole_error(self, entry: _Entry) -> Any:
        return {"error": dict(_OPENAI_SERVER_ERROR)}

    def status_error(self, status: int) -> Any:
        return _openai_status_error(status)


class _OpenRouterWire(_ChatWire):
    protocol = "openrouter"
    id_prefix = "gen-"
    stream_type = "text/event-stream"
    indent: ClassVar[Optional[int]] = None
    error: ClassVar[Dict[str, Any]] = {"code": 502, "message": "Provider returned error"}

    def headers(self, entry: _Entry) -> List[Tuple[str, str]]:
        return [("X-Generation-Id", entry.id)]

    def wants_usage(self, body: Mapping[str, Any]) -> bool:
        return True  # OpenRouter always ends a stream with usage and cost

    def usage(self, entry: _Entry, completion: int) -> Dict[str, Any]:
        usage = chat_usage(entry.plan.prompt_tokens, completion)
        prompt_cost = entry.billing.input_usd(entry.plan.prompt_tokens)
        completion_cost = entry.billing.output_usd(completion)
        cost = prompt_cost + completion_cost
        usage["cost"] = cost
        usage["is_byok"] = False
        # Filled on non-BYOK calls too (2026): a client must not add it to cost.
        usage["cost_details"] = {
            "upstream_inference_cost": cost,
            "upstream_inference_prompt_cost": prompt_cost,
            "upstream_inference_completions_cost": completion_cost,
        }
        return usage

    def stream(self, entry: _Entry, body: Mapping[str, Any]) -> _Stream:
        whole = super().stream(entry, body)
        return attrs.evolve(whole, head=[b": OPENROUTER PROCESSING\n\n"])

    def stream_error(self, entry: _Entry) -> List[bytes]:
        chunk = chat_chunk(id=entry.id, model=entry.model, content="", finish_reason="error")
        chunk["error"] = dict(self.error)
        chunk["usage"] = self.usage(entry, entry.plan.after)
        return [sse(_json(chunk)), sse("[DONE]")]

    def whole(self, entry: _Entry) -> Dict[str, Any]:
        return {**super().whole(entry), "provider": "Scripted"}

    def whole_error(self, entry: _Entry) -> Any:
        text = "".join(_pieces(entry.plan.after))
        body = chat_completion(
            text, id=entry.id, model=entry.model, usage=self.usage(entry, entry.plan.after), finish_reason="error"
        )
        return {**body, "provider": "Scripted", "error": dict(self.error)}

    def status_error(self, status: int) -> Any:
        message = "Rate limit exceeded" if status == 429 else f"Provider returned error ({status})"
        return {"error": {"message": message, "code": status}}

    def generation(self, entry: _Entry) -> Dict[str, Any]:
        """The ``GET /generation`` record of a final line."""
        line = entry.line()
        reason: Optional[str] = None  # cut short by the client
        if entry.plan.ending in ("error", "malformed", "drop"):
            reason = "error"
        elif entry.plan.ending != "hang" and line.completion_tokens == entry.plan.tokens:
            reason = "stop"
        return {
            "data": {
                "id": entry.id,
                "upstream_id": f"chatcmpl-{entry.id}",
                "request_id": f"req-{entry.id}",
                "created_at": "2026-01-01T00:00:00.000Z",
                "model": entry.model,
                "app_id": None,
                "external_user": None,
                "streamed": entry.streamed,
                "cancelled": reason is None,
                "latency": 100,
                "moderation_latency": None,
                "generation_time": 100,
                "tokens_prompt": line.prompt_tokens,
                "tokens_completion": line.completion_tokens,
                "native_tokens_prompt": line.prompt_tokens,
                "native_tokens_completion": line.completion_tokens,
                "native_tokens_completion_images": None,
                "native_tokens_reasoning": 0,
                "native_tokens_cached": 0,
                "num_media_prompt": None,
                "num_media_completion": 0,
                "num_search_results": None,
                "origin": "",
                "is_byok": False,
                "finish_reason": reason,
                "native_finish_reason": reason,
                "service_tier": None,
                "usage": line.usd,
                "total_cost": line.usd,
                "cache_discount": None,
                "upstream_inference_cost": 0,
                "provider_name": "Scripted",
                "api_type": "completions",
                "data_region": "global",
            }
        }

    @staticmethod
    def not_found(generation_id: str) -> Dict[str, Any]:
        return {"error": {"message": f"Generation {generation_id} not found", "code": 404}}


class _ResponsesWire(_Wire):
    protocol = "openai_responses"
    id_prefix = "resp_"
    path_suffix = "/responses"
    indent: ClassVar[Optional[int]] = 2
    error: ClassVar[Dict[str, Any]] = {
        "code": "server_error",
        "message": "An error occurred while processing your request.",
    }

    def stream(self, entry: _Entry, body: Mapping[str, Any]) -> _Stream:
        n = entry.plan.tokens
        events = responses_stream(_pieces(n), id=entry.id, model=entry.model, input_tokens=entry.plan.prompt_tokens)
        return _Stream(head=events[:1], tokens=events[1 : 1 + n], tail=events[1 + n :])

    def response(self, entry: _Entry, status: str) -> Dict[str, Any]:
        return {
            "id": entry.id,
            "object": "response",
            "created_at": 1700000000,
            "status": status,
            "error": None,
            "incomplete_details": None,
            "model": entry.model,
            "output": [],
            "usage": None,
        }

    def stream_error(self, entry: _Entry) -> List[bytes]:
        failed = {**self.response(entry, "failed"), "error": dict(self.error)}
        return [
            sse({"type": "error", "error": {"type": "server_error", **self.error, "param": None}}, event="error"),
            sse({"type": "response.failed", "response": failed}, event="response.failed"),
        ]

    def whole(self, entry: _Entry) -> Dict[str, Any]:
        p, n = entry.plan.prompt_tokens, entry.plan.tokens
        text = "".join(_pieces(n))
        content = [{"type": "output_text", "annotations": [], "logprobs": [], "text": text}]
        message = {"id": f"msg_{entry.id}", "type": "message", "status": "completed", "content": content}
        usage = {
            "input_tokens": p,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": n,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": p + n,
        }
        return {**self.response(entry, "completed"), "output": [{**message, "role": "assistant"}], "usage": usage}

    def whole_error(self, entry: _Entry) -> Any:
        return {**self.response(entry, "failed"), "error": dict(self.error)}

    def status_error(self, status: int) -> Any:
        return _openai_status_error(status)


_ANTHROPIC_ERRORS = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "The requested resource could not be found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "This request would exceed the rate limit for your organization."),
    529: ("overloaded_error", "Overloaded"),
}


class _AnthropicWire(_Wire):
    protocol = "anthropic"
    id_prefix = "msg_"
    path_suffix = "/v1/messages"

    def stream(self, entry: _Entry, body: Mapping[str, Any]) -> _Stream:
        n = entry.plan.tokens
        events = anthropic_stream(_pieces(n), id=entry.id, model=entry.model, input_tokens=entry.plan.prompt_tokens)
        head = 3 if n else 2  # message_start, ping (and the text block's start)
        return _Stream(head=events[:head], tokens=events[head : head + n], tail=events[head + n :])

    def envelope(self, kind: str, message: str, entry_id: str) -> Dict[str, Any]:
        return {"type": "error", "error": {"type": kind, "message": message}, "request_id": f"req_{entry_id}"}

    def stream_error(self, entry: _Entry) -> List[bytes]:
        error = {"details": None, "type": "overloaded_error", "message": "Overloaded"}
        return [sse({"type": "error", "error": error, "request_id": f"req_{entry.id}"}, event="error")]

    def whole(self, entry: _Entry) -> Dict[str, Any]:
        p, n = entry.plan.prompt_tokens, entry.plan.tokens
        usage = {"input_tokens": p, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": n}
        return {
            "id": entry.id,
            "type": "message",
            "role": "assistant",
            "model": entry.model,
            "content": [{"type": "text", "text": "".join(_pieces(n))}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": usage,
        }

    def whole_error(self, entry: _Entry) -> Any:
        return self.envelope("api_error", "Internal server error", entry.id)

    def status_error(self, status: int) -> Any:
        kind, message = _ANTHROPIC_ERRORS.get(status, ("api_error", "Internal server error"))
        return self.envelope(kind, message, secrets.token_hex(6))


_GOOGLE_STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_GEMINI_PATH = re.compile(r"/models/(?P<model>[^/:]+):(?P<method>streamGenerateContent|generateContent)$")


def _google_error(status: int, message: str) -> Dict[str, Any]:
    return {"error": {"code": status, "message": message, "status": _GOOGLE_STATUSES.get(status, "UNKNOWN")}}


class _GeminiWire(_Wire):
    protocol = "gemini"
    id_prefix = "gemini-"
    stream_type = "text/event-stream"
    indent: ClassVar[Optional[int]] = 2
    internal = "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting"

    def accepts(self, method: str, path: str) -> bool:
        return method == "POST" and _GEMINI_PATH.search(path) is not None

    def streamed(self, path: str, body: Mapping[str, Any]) -> bool:
        match = _GEMINI_PATH.search(path)
        return match is not None and match.group("method") == "streamGenerateContent"

    def requested_model(self, path: str, body: Mapping[str, Any]) -> str:
        match = _GEMINI_PATH.search(path)
        return match.group("model") if match else "gemini-test"

    def stream(self, entry: _Entry, body: Mapping[str, Any]) -> _Stream:
        # One chunk per token with a running usageMetadata; the last carries
        # finishReason (with no tokens: one empty chunk).
        n = entry.plan.tokens
        events = gemini_stream(
            _pieces(n), response_id=entry.id, model=entry.model, prompt_tokens=entry.plan.prompt_tokens
        )
        return _Stream(head=[], tokens=events[:n], tail=events[n:])

    def stream_error(self, entry: _Entry) -> List[bytes]:
        return [sse(_google_error(500, self.internal)).replace(b"\n", b"\r\n")]

    def whole(self, entry: _Entry) -> Dict[str, Any]:
        p, n = entry.plan.prompt_tokens, entry.plan.tokens
        candidate = {
            "content": {"parts": [{"text": "".join(_pieces(n))}], "role": "model"},
            "finishReason": "STOP",
            "index": 0,
        }
        usage = {"promptTokenCount": p, "candidatesTokenCount": n, "totalTokenCount": p + n}
        return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": entry.model, "responseId": entry.id}

    def whole_error(self, entry: _Entry) -> Any:
        return _google_error(500, self.internal)

    def status_error(self, status: int) -> Any:
        messages = {429: "Resource has been exhausted (e.g. check quota).", 503: "The model is overloaded."}
        return _google_error(status, messages.get(status, self.internal if status >= 500 else "Request failed."))


class _OllamaWire(_Wire):
    protocol = "ollama"
    id_prefix = "ollama-"
    path_suffix = "/api/chat"
    stream_type = "application/x-ndjson"
    failure = "an error was encountered while running the model: unexpected EOF"

    def streamed(self, path: str, body: Mapping[str, Any]) -> bool:
        return body.get("stream") is not False  # Ollama streams unless told not to

    def stream(self, entry: _Entry, body: Mapping[str, Any]) -> _Stream:
        n = entry.plan.tokens
        lines = ollama_stream(_pieces(n), model=entry.model, prompt_tokens=entry.plan.prompt_tokens)
        return _Stream(head=[], tokens=lines[:n], tail=lines[n:])

    def stream_error(self, entry: _Entry) -> List[bytes]:
        return [self.encode({"error": self.failure}) + b"\n"]

    def whole(self, entry: _Entry) -> Dict[str, Any]:
        n = entry.plan.tokens
        return {
            "model": entry.model,
            "created_at": "2026-01-01T00:00:00.000000Z",
            "message": {"role": "assistant", "content": "".join(_pieces(n))},
            "done_reason": "stop",
            "done": True,
            "total_duration": 1000000,
            "load_duration": 1000,
            "prompt_eval_count": entry.plan.prompt_tokens,
            "prompt_eval_duration": 1000,
            "eval_count": n,
            "eval_duration": 1000,
        }

    def whole_error(self, entry: _Entry) -> Any:
        return {"error": self.failure}

    def status_error(self, status: int) -> Any:
        return {
            "error": "server busy, please try again. maximum pending requests exceeded"
            if status == 503
            else self.failure
        }


_WIRES: Dict[str, _Wire] = {
    wire.protocol: wire
    for wire in (_ChatWire(), _OpenRouterWire(), _ResponsesWire(), _AnthropicWire(), _GeminiWire(), _OllamaWire())
}


# -- the server -----------------------------------------------------------------------------------


class _Out:
    """Writes one response; a write that fails means the client has gone."""

    def __init__(self, handler: RequestHandler) -> None:
        self.handler = handler
        self.gone = False

    def start(self, status: int, headers: Iterable[Tuple[str, str]]) -> bool:
        handler = self.handler
        try:
            handler.send_response(status)
            for name, value in headers:
                handler.send_header(name, value)
            handler.send_header("Transfer-Encoding", "chunked")
            handler.end_headers()
            handler.wfile.flush()
        except OSError:
            self.gone = True
        return not self.gone

    def chunk(self, data: bytes) -> bool:
        if self.gone:
            return False
        try:
            self.handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.handler.wfile.flush()
        except OSError:
            self.gone = True
        return not self.gone

    def end(self) -> bool:
        """The terminating chunk; False when the client has gone."""
        if not self.gone:
            try:
                self.handler.wfile.write(b"0\r\n\r\n")
                self.handler.wfile.flush()
            except OSError:
                self.gone = True
        return not self.gone


class BillingServer(ScriptedServer):
    """A :class:`ScriptedServer` that also plays billed providers.

    :meth:`bill` a protocol to have the server answer that protocol's
    paths below :attr:`~ScriptedServer.url` from the plans queued with :meth:`plan`, and
    keep its :class:`Invoice`. Other paths are scripted as usual
    (:meth:`~ScriptedServer.reply`, :meth:`~ScriptedServer.route`). The paths, whatever comes before them
    (so ``base_url=server.url`` works, and so does ``server.url + "/v1"``):

    - ``openai_chat``, ``openrouter``: ``POST .../chat/completions``;
      ``openrouter`` also ``GET .../generation?id=ID``
    - ``openai_responses``: ``POST .../responses``
    - ``anthropic``: ``POST .../v1/messages``
    - ``gemini``: ``POST .../models/{model}:streamGenerateContent`` (SSE) and
      ``POST .../models/{model}:generateContent``
    - ``ollama``: ``POST .../api/chat``

    Thread-safe: plans may be queued and invoices read from any thread
    while requests are answered.
    """

    def __init__(self) -> None:
        super().__init__()
        self._book = _Book()

    def start(self) -> BillingServer:
        super().start()
        return self

    def __enter__(self) -> BillingServer:
        return self.start()

    def bill(self, billing: Billing) -> Invoice:
        """Answer ``billing.protocol`` from plans and return its invoice.

        :raises ValueError: when that protocol, or another on the same path
            (``openai_chat`` and ``openrouter``), is billed already.
        """
        wire = _WIRES[billing.protocol]
        with self._book.lock:
            for protocol in self._book.billings:
                if protocol == billing.protocol or _WIRES[protocol].path_suffix == wire.path_suffix:
                    raise ValueError(f"{protocol} is billed on this server already")
            self._book.billings[billing.protocol] = billing
        return Invoice(billing, self._book)

    def plan(self, *plans: Plan) -> None:
        """Queue ``plans``, served in order to the billed requests (a tagged
        plan only to a request with that ``X-Test-Tag``; one fits before an
        untagged plan does). A request no plan fits gets the billing's
        ``default``."""
        with self._book.lock:
            self._book.plans.extend(plans)

    # -- serving --------------------------------------------------------------------------

    def _billed(self, method: str, path: str) -> Optional[Tuple[Billing, _Wire]]:
        with self._book.lock:
            billings = list(self._book.billings.values())
        for billing in billings:
            wire = _WIRES[billing.protocol]
            if wire.accepts(method, path):
                return billing, wire
        return None

    def _serve(self, handler: RequestHandler) -> None:
        path = handler.path.split("?", 1)[0]
        with self._book.lock:
            looks_up = "openrouter" in self._book.billings
        lookup = looks_up and handler.command == "GET" and path.endswith("/generation")
        billed = None if lookup else self._billed(handler.command, path)
        if not lookup and billed is None:
            super()._serve(handler)
            return
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        request = RecordedRequest(
            handler.command, handler.path, dict(handler.headers.items()), body, handler.client_address
        )
        with self._lock:
            self.requests.append(request)
            self._lock.notify_all()
        try:
            if billed is None:
                self._lookup(handler, request)
            else:
                self._answer(handler, request, *billed)
        except OSError:
            request.disconnected.set()
            handler.close_connection = True
        finally:
            request.finished.set()

    def _send_json(
        self, handler: RequestHandler, request: RecordedRequest, wire: _Wire, status: int, data: Any, headers: Any = ()
    ) -> None:
        self._send_body(handler, request, status, wire.encode(data), headers)

    def _send_body(
        self, handler: RequestHandler, request: RecordedRequest, status: int, body: bytes, headers: Any = ()
    ) -> None:
        """``body`` as ``application/json`` -- whether or not it parses."""
        reply = Reply(
            status=status,
            headers=(("Content-Type", "application/json"), *headers),
            body=(body,),
            framing="length",
        )
        self._send(handler, request, reply)

    def _lookup(self, handler: RequestHandler, request: RecordedRequest) -> None:
        wire = _WIRES["openrouter"]
        assert isinstance(wire, _OpenRouterWire)
        generation_id = (request.query.get("id") or [""])[0]
        entry = self._book.final(generation_id, "openrouter")
        if entry is None:
            self._send_json(handler, request, wire, 404, wire.not_found(generation_id))
        else:
            self._send_json(handler, request, wire, 200, wire.generation(entry))

    def _answer(self, handler: RequestHandler, request: RecordedRequest, billing: Billing, wire: _Wire) -> None:
        try:
            body = request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self._send_json(handler, request, wire, 400, wire.status_error(400))
            return
        plan = self._book.take(billing, request.headers.get(TAG_HEADER))
        if plan is None:
            self._send_json(handler, request, wire, 500, wire.status_error(500))
            return
        if plan.ending == "status":
            self._send_json(handler, request, wire, plan.status, wire.status_error(plan.status))
            return
        model = billing.model or wire.requested_model(request.path, body)
        streamed = wire.streamed(request.path, body)
        entry = self._book.open(billing, wire, model, plan, streamed, request)
        result: Optional[Tuple[int, bool]] = None
        try:
            if streamed:
                result = self._stream(handler, request, wire, entry, body)
            else:
                result = self._whole(handler, request, wire, entry)
        finally:
            # Whatever happened, the line is closed: by what was written when
            # something unforeseen escaped.
            billed, disconnected = result if result is not None else (entry.written, True)
            if plan.ending == "late":
                billed = plan.tokens  # answered in full, whoever was still listening
            if disconnected:
                request.disconnected.set()
            self._book.close(entry, billed, disconnected)

    def _stream(
        self, handler: RequestHandler, request: RecordedRequest, wire: _Wire, entry: _Entry, body: Mapping[str, Any]
    ) -> Tuple[int, bool]:
        """A streamed answer; returns the tokens billed and whether the client left."""
        plan = entry.plan
        pieces = wire.stream(entry, body)
        out = _Out(handler)
        if plan.ending == "late" and self._stopping.wait(plan.delay):
            handler.close_connection = True
            return plan.tokens, False
        headers = [("Content-Type", wire.stream_type), ("Cache-Control", "no-cache"), *wire.headers(entry)]
        if not out.start(200, headers):
            return 0, True
        for piece in pieces.head:
            out.chunk(piece)
        sent = plan.tokens if plan.ending in ("complete", "late") else plan.after
        for piece in pieces.tokens[:sent]:
            if not self._token(out, entry, piece):
                break
        stopped = False
        if plan.ending == "drip":
            for piece in pieces.tokens[sent:]:
                if not self._pause(handler, plan.delay, out):
                    stopped = not out.gone  # the server is stopping
                    break
                if not self._token(out, entry, piece):
                    break
        if out.gone:
            handler.close_connection = True
            return entry.written, True
        if stopped:
            handler.close_connection = True
            return entry.written, False
        if plan.ending == "hang":
            self._wait_for_disconnect(handler, request)
            handler.close_connection = True
            return entry.written, request.disconnected.is_set()
        if plan.ending == "drop":
            self._drop(handler)
            return entry.written, False
        if plan.ending == "error":
            ending = wire.stream_error(entry)
        elif plan.ending == "malformed":
            ending = [pieces.garbled(plan.after)]  # and nothing after it: the body ends there
        else:
            ending = pieces.tail
        for piece in ending:
            out.chunk(piece)
        if not out.end():
            handler.close_connection = True
            return entry.written, True
        return entry.written, False

    def _token(self, out: _Out, entry: _Entry, piece: bytes) -> bool:
        """Write one token's piece. It is counted before the write, so that a
        client never holds more tokens than the line counts; False (and not
        counted) when the write failed."""
        self._book.wrote(entry)
        if out.chunk(piece):
            return True
        self._book.wrote(entry, -1)
        return False

    def _whole(self, handler: RequestHandler, request: RecordedRequest, wire: _Wire, entry: _Entry) -> Tuple[int, bool]:
        """A non-streamed answer; returns the tokens billed and whether the client left."""
        plan = entry.plan
        headers = wire.headers(entry)
        billed = plan.tokens
        if plan.ending == "late":
            if self._stopping.wait(plan.delay):
                handler.close_connection = True
                return plan.tokens, False
        elif plan.ending in ("hang", "drop", "error", "malformed"):
            self._book.wrote(entry, plan.after)  # generated before the stall, the cut, the error or the garbled body
            if plan.ending == "hang":
                self._wait_for_disconnect(handler, request)
                handler.close_connection = True
                return plan.after, request.disconnected.is_set()
            if plan.ending == "drop":
                handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                handler.close_connection = True
                return plan.after, False
            if plan.ending == "malformed":
                whole = wire.encode(wire.whole(entry))
                body = whole[: len(whole) // 2]  # cut off half-way: not JSON, though it says it is
            else:
                body = wire.encode(wire.whole_error(entry))
            return self._send_whole(handler, request, body, headers, plan.after)
        elif plan.ending == "drip":
            self._book.wrote(entry, plan.after)
            out = _Out(handler)
            for _ in range(plan.after, plan.tokens):
                if not self._pause(handler, plan.delay, out):
                    handler.close_connection = True
                    return entry.written, out.gone
                self._book.wrote(entry)
        return self._send_whole(handler, request, wire.encode(wire.whole(entry)), headers, billed)

    def _send_whole(
        self,
        handler: RequestHandler,
        request: RecordedRequest,
        body: bytes,
        headers: List[Tuple[str, str]],
        billed: int,
    ) -> Tuple[int, bool]:
        """A 200 JSON answer, billed ``billed`` output tokens whether or not the client is still there."""
        try:
            self._send_body(handler, request, 200, body, headers)
        except OSError:
            handler.close_connection = True
            return billed, True
        return billed, False

    @staticmethod
    def _drop(handler: RequestHandler) -> None:
        """Close the connection mid-body: no terminating chunk."""
        handler.close_connection = True
        try:
            handler.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _pause(self, handler: RequestHandler, seconds: float, out: _Out) -> bool:
        """Wait ``seconds``, watching the connection: False (and ``out.gone``
        set) when the client leaves, False when the server stops."""
        sock = handler.connection
        deadline = time.monotonic() + min(seconds, MAX_WAIT)
        while not self._stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            readable, _, _ = select.select([sock], [], [], min(remaining, 0.05))
            if not readable:
                continue
            try:
                departed = not sock.recv(1, socket.MSG_PEEK)
            except OSError:
                departed = True
            if departed:
                out.gone = True
                return False
            # Bytes from the client (a pipelined request) are not a departure,
            # but the socket stays readable: just wait.
            return not self._stopping.wait(max(0.0, deadline - time.monotonic()))
        return False
