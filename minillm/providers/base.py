"""The adapter interface: everything that differs between providers, and
nothing else.

An adapter builds the HTTP request for a :class:`!ChatRequest`,
turns response bodies into typed events, normalises usage, classifies
errors, and declares its capabilities (an out-of-band cost look-up, say).
It is data and parsing only: it never does I/O, never picks a transport
(the client does, by the base URL's scheme) and knows nothing about cost
accounting. The client sends what the adapter builds and folds what it
parses. Adapters are created per
client with a resolved :class:`!ProviderConfig`; the few things they learn at
run time (a server that rejects an option) are kept under a lock.
"""

from __future__ import annotations

import abc
import json
import re
from typing import TYPE_CHECKING, Any, ClassVar, Dict, Iterable, Iterator, List, Mapping, Optional, Pattern, Tuple, Type

import attrs

from ..errors import (
    STREAM_ERRORS,
    APIError,
    ConfigurationError,
    ContextOverflowError,
    InvalidArgumentError,
    MalformedResponseError,
    MiniLLMError,
    StreamError,
    error_class_for_status,
    status_for_kind,
)
from ..events import Event, ProviderError
from ..models import Usage
from ..redaction import Redactor, excerpt
from ..request import ChatRequest
from ..retry import parse_retry_after
from ..transports.base import HTTPRequest
from ..transports.credentials import NO_CREDENTIALS, Credentials

if TYPE_CHECKING:  # pragma: no cover
    from ..structured import OutputFormat

__all__ = [
    "OVERFLOW_COUNTS",
    "OVERFLOW_MARKERS",
    "SHAPE_ERRORS",
    "Adapter",
    "check_forced_tool",
    "ProviderConfig",
    "malformed_in_stream",
    "overflow_counts",
    "parse_json",
    "path_segment",
    "require_object",
    "token_count",
]

#: Fragments of provider messages that mean "the prompt does not fit"
#: (OpenAI, OpenRouter, Groq, DeepSeek, vLLM, Anthropic, Gemini, Ollama).
OVERFLOW_MARKERS: Tuple[str, ...] = (
    "context_length_exceeded",
    "maximum context length",
    "context window",
    "context length",
    "prompt is too long",
    "input tokens exceed",
    "too many tokens",
    "reduce the length of the messages",
    "exceeds the maximum number of tokens",
    "input length exceeds",
)

#: Where the requested size and the limit are in those messages.
OVERFLOW_COUNTS: Tuple[Pattern[str], ...] = tuple(
    re.compile(pattern, re.IGNORECASE | re.DOTALL)
    for pattern in (
        r"maximum context length is (?P<limit>[\d,]+) tokens.*?"
        r"(?:resulted in|requested(?: about)?) (?P<requested>[\d,]+) tokens",
        r"prompt is too long: (?P<requested>[\d,]+) tokens > (?P<limit>[\d,]+) maximum",
        r"input token count \((?P<requested>[\d,]+)\) exceeds the maximum number of tokens allowed "
        r"\((?P<limit>[\d,]+)\)",
        r"configured limit of (?P<limit>[\d,]+) tokens.*?resulted in (?P<requested>[\d,]+) tokens",
        r"current length is (?P<requested>[\d,]+) while limit is (?P<limit>[\d,]+)",
    )
)


def effort_for_budget(budget: int) -> str:
    """The reasoning effort nearest a thinking budget, for APIs that take an
    effort level rather than a token budget."""
    if budget == 0:
        return "minimal"
    if budget <= 2048:
        return "low"
    if budget <= 8192:
        return "medium"
    return "high"


def overflow_counts(
    message: str, patterns: Tuple[Pattern[str], ...] = OVERFLOW_COUNTS
) -> Tuple[Optional[int], Optional[int]]:
    """``(requested, limit)`` token counts from an overflow message, when it gives them."""
    for pattern in patterns:
        match = pattern.search(message)
        if match:
            return int(match.group("requested").replace(",", "")), int(match.group("limit").replace(",", ""))
    return None, None


_raw_decode = json.JSONDecoder().raw_decode


def parse_json(text: str) -> Any:
    """``json.loads(text)``, a microsecond faster on the usual event: the
    decoder without ``loads``' whitespace checks either side. Anything it
    does not take whole (whitespace around it, extra data, an error) goes
    to ``json.loads``, so results and errors are exactly as it has them."""
    try:
        value, end = _raw_decode(text)
    except (ValueError, TypeError, RecursionError):
        return json.loads(text)
    if end != len(text):
        return json.loads(text)
    return value


#: A name that may stand as one segment of a URL path as it is (``_`` is
#: unreserved in URLs, and Azure deployment names use it).
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+_-]*$")


def path_segment(name: str, what: str = "model name") -> str:
    """``name`` as one segment of a URL path: it must not climb (``..``),
    add segments (``/``) or end the path (``?``, ``#``) -- a provider that
    puts the model in the URL would otherwise send the request, key and
    all, somewhere else.

    :raises ConfigurationError: ``name`` is not a plain segment.
    """
    if not isinstance(name, str) or not _SEGMENT.match(name) or ".." in name:
        raise ConfigurationError(
            f"the {what} {name!r} cannot be part of a URL: letters, digits and ._:@+_- only, no '/', '?', '#' or '..'"
        )
    return name


#: What reading JSON of an unexpected shape raises.
SHAPE_ERRORS = (ValueError, TypeError, AttributeError, KeyError, IndexError, RecursionError)


def require_object(data: Any, what: str = "the body") -> Dict[str, Any]:
    """``data`` if it is a JSON object; else a ``TypeError`` (a shape error)."""
    if not isinstance(data, dict):
        raise TypeError(f"{what} is a JSON {type(data).__name__}, not an object")
    return data


def token_count(value: Any) -> int:
    """A token count from a counting endpoint's answer: a non-negative
    integer, else a ``TypeError`` (a shape error)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TypeError(f"the token count is {value!r}, not a non-negative integer")
    return value


def malformed_in_stream(exc: BaseException, data: Any) -> ProviderError:
    """The error event for stream data of an unexpected shape."""
    return ProviderError(
        message=f"malformed data in the stream ({type(exc).__name__}: {exc}): {excerpt(data, 120)}", type="malformed"
    )


def check_forced_tool(provider: str, output: OutputFormat, request: ChatRequest) -> None:
    """Refuse what cannot go with an answer made through a forced tool
    named ``output.name``: a ``tool_choice`` of the caller's (the format
    takes the choice), a tool of the caller's of the same name, and
    thinking (Claude cannot think while a tool is forced).

    :raises InvalidArgumentError: naming the option to leave out.
    """
    if request.tool_choice is not None:
        raise InvalidArgumentError(f"{provider} answers a response_format through a forced tool: leave tool_choice out")
    if any(tool["function"]["name"] == output.name for tool in request.tools or ()):
        raise InvalidArgumentError(f"a tool is named {output.name!r}, as the response_format is: rename one of them")
    if request.thinking_budget:
        raise InvalidArgumentError(
            f"{provider} answers a response_format through a forced tool, which thinking does not allow: "
            "leave thinking_budget out"
        )


@attrs.frozen
class ProviderConfig:
    """A provider resolved for one client."""

    provider: str
    model: str
    base_url: str
    api_key: Optional[str] = attrs.field(default=None, repr=False)
    app_url: Optional[str] = None
    app_title: Optional[str] = None
    #: base_url is the provider's own service (not a compatible server)
    official: bool = True


class Adapter(abc.ABC):
    """One provider's wire protocol. Subclasses set the class attributes and
    implement the abstract methods; see :mod:`minillm.providers.openai_chat`."""

    #: registry name, the first segment of ``"provider/model"``
    name: ClassVar[str]
    default_base_url: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "authorize" in vars(cls):
            # It would never be called: requests are authorized by the
            # route's credentials, and a request sent unsigned is worse than
            # an adapter that does not load.
            raise TypeError(
                f"{cls.__name__} defines authorize(request): return a minillm.transports.credentials.Credentials "
                "from credentials() instead"
            )

    #: environment variables holding the key, tried in order
    key_env: ClassVar[Tuple[str, ...]] = ()
    #: environment variable holding the base URL
    base_url_env: ClassVar[Optional[str]] = None
    #: whether the provider's own service needs a key (compatible servers never do)
    key_required: ClassVar[bool] = True
    #: whether :meth:`lookup_request` / :meth:`parse_lookup` are implemented
    has_cost_lookup: ClassVar[bool] = False
    #: the ``api=`` name of this protocol (a provider may offer several)
    api: ClassVar[str] = "chat"
    #: model name prefixes that only this protocol serves (chosen for them
    #: when ``api=`` is not given)
    only_models: ClassVar[Tuple[str, ...]] = ()
    #: the Content-Types of this protocol's streams; any other (but JSON,
    #: which is one whole answer, and none at all) is not a stream
    stream_content_types: ClassVar[Tuple[str, ...]] = ("text/event-stream",)
    #: what "the prompt does not fit" looks like in this provider's errors
    overflow_markers: ClassVar[Tuple[str, ...]] = OVERFLOW_MARKERS
    #: the URL schemes a base URL may have
    url_schemes: ClassVar[Tuple[str, ...]] = ("http", "https")
    #: the provider's name in the maintained price catalog (None: not in it)
    catalog_provider: ClassVar[Optional[str]] = None
    #: every base URL is the provider's own service (a cloud platform's
    #: regional or per-resource endpoints), not only the default one
    own_endpoints: ClassVar[bool] = False
    #: the provider batch API its host offers at half price, by name (see
    #: :mod:`minillm.batch.apis`: ``"openai"`` for Files + Batches,
    #: ``"anthropic"`` for Message Batches); None when it offers none
    batch_protocol: ClassVar[Optional[str]] = None
    #: the HTTP status an in-band error with neither a code nor a known kind
    #: stands for, for hosts that report request errors with a status and
    #: only failures of their own inside a response (None: unknown)
    in_band_status: ClassVar[Optional[int]] = None

    def __init__(self, config: ProviderConfig) -> None:
        self.check_model(config.model)
        self.config = config

    @classmethod  # noqa: B027 - most protocols take any name
    def check_model(cls, model: str) -> None:
        """Refuse a model name this protocol cannot send (one that would be
        part of the URL, say): a :class:`~minillm.ConfigurationError`."""

    @classmethod
    def base_url_from_env(cls, value: str) -> str:
        """The base URL an environment variable names (a host may use its own
        form, such as ``OLLAMA_HOST``'s optional scheme)."""
        return value

    @classmethod
    def default_base(cls) -> str:
        """The base URL when neither ``base_url=`` nor the environment
        variable gives one. A platform computes it (from a region or a
        project in the environment).

        :raises ConfigurationError: there is none to be had; the message
            names what to set.
        """
        return cls.default_base_url

    @classmethod
    def missing_credentials(cls, key: Optional[str]) -> Optional[str]:
        """Why this provider's own service cannot be called with ``key``
        (None: it can). The message names what to set."""
        if key or not cls.key_required:
            return None
        names = " or ".join(cls.key_env) or "an API key"
        return f"no API key for {cls.name}: pass api_key= or set {names}"

    @classmethod
    def catalog_model(cls, model: str) -> str:
        """The name the price catalog knows ``model`` by."""
        return model

    def credentials(self) -> Credentials:
        """What this adapter's requests need added as they are sent, each
        time (see :mod:`minillm.transports.credentials`): nothing, for a key
        that is in the headers already. Called once, when the route is made;
        the route holds what it returns."""
        return NO_CREDENTIALS

    # -- requests ---------------------------------------------------------

    #: the header that carries the key, and how (``{key}`` is the key)
    key_header: ClassVar[Tuple[str, str]] = ("Authorization", "Bearer {key}")

    def build_request(self, request: ChatRequest, *, stream: bool) -> HTTPRequest:
        """The HTTP request for ``request``: a POST to :meth:`path` with
        :meth:`headers` (then the caller's ``extra_headers``) and :meth:`body`."""
        headers = self.headers(stream=stream)
        if request.extra_headers:
            headers.update(request.extra_headers)
        body = self.body(request, stream=stream)
        if request.output_format is not None:
            self.constrain_output(body, request.output_format, request)
        self.check_body(body)
        return HTTPRequest(
            method="POST",
            url=self.url(self.path(request, stream=stream)),
            headers=headers,
            body=self.encode(body),
            stream=stream,
        )

    def check_body(self, body: Dict[str, Any]) -> None:  # noqa: B027 - most providers refuse nothing up front
        """Refuse, before it is sent, a body the provider is known to refuse
        -- a field its API does not have, or parameters it does not take
        together -- which would cost a round trip to learn (``extra_body``
        included: it is merged in by now).

        :raises InvalidArgumentError: naming the parameters, and what to do.
        """

    @abc.abstractmethod
    def path(self, request: ChatRequest, *, stream: bool) -> str:
        """The endpoint's path below the base URL."""

    @abc.abstractmethod
    def body(self, request: ChatRequest, *, stream: bool) -> Dict[str, Any]:
        """The JSON body for ``request``."""

    def constrain_output(self, body: Dict[str, Any], output: OutputFormat, request: ChatRequest) -> None:
        """Ask, in ``body``, for an answer that matches ``output``'s schema:
        the provider's own structured-output fields, or a forced tool whose
        input is the schema (the answer is then that tool call's arguments,
        and the tool is named ``output.name``).

        :raises ConfigurationError: the provider cannot be asked for one
            (the default): nothing is sent.
        :raises InvalidArgumentError: it cannot be combined with another
            option of the call.
        """
        raise ConfigurationError(
            f"{self.name} cannot be asked for an answer that matches a schema (response_format): "
            "use a provider that can (see the structured output docs)"
        )

    def headers(self, *, stream: bool) -> Dict[str, str]:
        """JSON in, the stream's or JSON's media type accepted, the key in
        :attr:`key_header`, and the host's own headers."""
        headers = {"Content-Type": "application/json", "Accept": self.accept(stream=stream)}
        if self.config.api_key:
            name, form = self.key_header
            headers[name] = form.format(key=self.config.api_key)
        headers.update(self.host_headers())
        return headers

    def accept(self, *, stream: bool) -> str:
        """The ``Accept`` header."""
        return "text/event-stream" if stream else "application/json"

    def learn_from(self, error: APIError) -> bool:
        """Given an error that rejected a request, adjust how requests are
        built and return True if the request is worth rebuilding and sending
        once more. The adjustment is remembered for this client."""
        return False

    # -- responses --------------------------------------------------------

    @abc.abstractmethod
    def stream_events(self, body: Iterable[bytes]) -> Iterator[Event]:
        """Events from a streamed body, given as byte chunks split anywhere."""

    def parse_body(self, data: Any) -> Iterator[Event]:
        """Events from a parsed (JSON) non-streaming body: those of
        :meth:`body_events`, or one ``malformed`` error when the body is
        not of the shape the provider sends."""
        try:
            events = list(self.body_events(data))
        except SHAPE_ERRORS as exc:
            message = f"the response has an unexpected shape ({type(exc).__name__}: {exc})"
            events = [ProviderError(message=message, type="malformed")]
        return iter(events)

    @abc.abstractmethod
    def body_events(self, data: Any) -> Iterator[Event]:
        """The events of a non-streaming body; may raise any of
        :data:`SHAPE_ERRORS` on a body it cannot read."""

    def generation_id(self, headers: Mapping[str, str]) -> Optional[str]:
        """The generation id a provider puts in response headers, if any."""
        return None

    # -- errors -----------------------------------------------------------

    def error_object(self, data: Any) -> Any:
        """The error object inside a parsed error body."""
        if isinstance(data, dict):
            return data.get("error", data)
        return data

    def error_message(self, error: Any) -> Optional[str]:
        """The human message inside an error object."""
        if isinstance(error, str):
            return error
        if isinstance(error, dict):
            for key in ("message", "detail", "error", "msg"):
                value = error.get(key)
                if isinstance(value, str) and value:
                    return value
                if isinstance(value, (dict, list)):
                    return json.dumps(value)
        return None

    def is_overflow(self, error: Any, message: str) -> bool:
        """Whether an error reports a context-length overflow."""
        haystack = message.lower()
        if isinstance(error, dict):
            haystack += " " + str(error.get("code", "")).lower() + " " + str(error.get("type", "")).lower()
        return any(marker in haystack for marker in self.overflow_markers)

    def api_error(
        self,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        endpoint: str,
        redactor: Redactor,
    ) -> APIError:
        """The :class:`~minillm.APIError` for an HTTP error response."""
        text = body.decode("utf-8", "replace")
        content_type = headers.get("content-type", "").lower()
        data: Any
        try:
            data = json.loads(text) if text.strip() else None
        except ValueError:
            data = None
        error = self.error_object(data) if data is not None else None
        detail = self.error_message(error) if error is not None else None
        if detail is None:
            if "html" in content_type or text.lstrip().lower().startswith(("<!doctype", "<html")):
                detail = f"an HTML page instead of an API response: {excerpt(text, 200)}"
            elif text.strip():
                detail = excerpt(text, 300)
            else:
                detail = "an empty body"
        cls = self.error_class(status, headers, error)
        if status in (400, 413, 422) and self.is_overflow(error, detail):
            cls = ContextOverflowError
        message = redactor.scrub(f"{self.name} returned HTTP {status}: {self.explain(status, detail)} ({endpoint})")
        error_ = cls(
            message,
            status_code=status,
            body=redactor.scrub_obj(data) if data is not None else redactor.scrub(excerpt(text, 1000)),
            provider=self.name,
            endpoint=endpoint,
            retry_after=parse_retry_after(headers),
        )
        if isinstance(error_, ContextOverflowError):
            error_.requested_tokens, error_.limit_tokens = overflow_counts(detail)
        return error_

    def error_class(self, status: int, headers: Mapping[str, str], error: Any) -> Type[APIError]:
        """The class of the error for an HTTP error response: the one its
        status means, unless the provider names the error's kind (a header,
        a field) and that kind means more than the status says."""
        return error_class_for_status(status)

    def explain(self, status: int, detail: str) -> str:
        """The provider's error message, with a hint when minillm knows what
        to do about it."""
        return detail

    def malformed(self, status: int, body: bytes, endpoint: str, redactor: Redactor, why: str) -> APIError:
        """The error for a success status whose body cannot be used."""
        text = body.decode("utf-8", "replace")
        shown = excerpt(text, 200) if text.strip() else "(empty)"
        message = redactor.scrub(f"{self.name} returned HTTP {status} with {why}: {shown} ({endpoint})")
        return MalformedResponseError(
            message, status_code=status, body=redactor.scrub(excerpt(text, 1000)), provider=self.name, endpoint=endpoint
        )

    def in_band_error(self, error: Any) -> ProviderError:
        """A :class:`~minillm.events.ProviderError` for an error object found
        inside a response body; its status comes from its numeric code (or
        ``status_code``), else from its kind, through the same tables as an
        HTTP error's."""
        message = self.error_message(error) or "the provider reported an error"
        code = error.get("code") if isinstance(error, dict) else None
        kind = error.get("type") if isinstance(error, dict) else None
        status = status_for_kind(code, kind)
        if status is None and isinstance(error, dict):
            status = status_for_kind(error.get("status_code"), None)
        if status is None:
            status = self.in_band_status
        return ProviderError(
            message=message,
            code=code,
            type=kind if isinstance(kind, str) else None,
            overflow=self.is_overflow(error, message),
            status=status,
            body=error,
        )

    def in_band_error_class(self, event: ProviderError) -> Type[APIError]:
        """The :class:`~minillm.APIError` class an error reported inside a
        stream stands for: what an HTTP error of its status would be (an
        adapter whose HTTP errors are classed by more than the status
        classes these the same way)."""
        return error_class_for_status(event.status) if event.status is not None else APIError

    def error_for(
        self,
        event: ProviderError,
        *,
        streamed: bool,
        status: int,
        headers: Mapping[str, str],
        endpoint: str,
        redactor: Redactor,
    ) -> MiniLLMError:
        """The exception for an error the provider reported inside a
        response with a success ``status``.

        In a stream it is a :class:`~minillm.StreamError` that is also the
        :class:`~minillm.APIError` its status means (an in-band rate limit is
        a ``RateLimitError`` too); in a whole body it is that ``APIError``, as
        an HTTP error of the same status would be.
        """
        if event.type == "malformed":
            if streamed:
                return StreamError(
                    redactor.scrub(f"the stream from {self.name} could not be parsed: {event.message}"),
                    provider=self.name,
                )
            return self.malformed(status, b"", endpoint, redactor, redactor.scrub(event.message))
        if not streamed:
            code = event.status or status
            body = json.dumps({"error": event.body}).encode() if event.body is not None else b""
            error = self.api_error(code, headers, body, endpoint, redactor)
            if event.overflow and not isinstance(error, ContextOverflowError):
                overflow = ContextOverflowError(
                    error.message, status_code=code, body=error.body, provider=self.name, endpoint=endpoint
                )
                overflow.requested_tokens, overflow.limit_tokens = overflow_counts(event.message)
                return overflow
            return error
        message = redactor.scrub(f"{self.name} reported an error mid-stream: {event.message}")
        cls: Type[APIError] = ContextOverflowError if event.overflow else self.in_band_error_class(event)
        stream_error = STREAM_ERRORS.get(cls, STREAM_ERRORS[APIError])(
            message,
            body=redactor.scrub_obj(event.body),
            provider=self.name,
            status_code=event.status,
            endpoint=endpoint,
        )
        if isinstance(stream_error, ContextOverflowError):
            stream_error.requested_tokens, stream_error.limit_tokens = overflow_counts(event.message)
        return stream_error

    # -- counting input tokens --------------------------------------------

    def count_request(self, request: ChatRequest) -> Optional[HTTPRequest]:
        """The request that has the provider count ``request``'s input
        tokens without generating anything (a request no provider bills);
        None when the provider has no counting endpoint -- the caller then
        estimates. Built from the same translation as :meth:`body`, so a
        count sees the prompt exactly as it would be sent.

        :raises InvalidArgumentError: the prompt cannot be sent to this provider.
        """
        return None

    def parse_count(self, data: Any) -> int:
        """The input token count in a counting endpoint's answer; may raise
        any of :data:`SHAPE_ERRORS` on an answer it cannot read."""
        raise NotImplementedError(f"{self.name} has no token counting endpoint")

    def post_json(self, path: str, body: Dict[str, Any], request: ChatRequest) -> HTTPRequest:
        """A JSON POST to ``path`` with this provider's headers (and the
        caller's ``extra_headers``): for endpoints beside generation."""
        headers = self.headers(stream=False)
        if request.extra_headers:
            headers.update(request.extra_headers)
        return HTTPRequest(method="POST", url=self.url(path), headers=headers, body=self.encode(body))

    # -- out-of-band cost -------------------------------------------------

    def lookup_request(self, generation_id: str) -> HTTPRequest:
        """The request that fetches what generation ``generation_id`` cost."""
        raise NotImplementedError(f"{self.name} has no cost look-up")

    def parse_lookup(self, status: int, data: Any) -> Optional[Usage]:
        """The usage (with native cost) from a look-up answer, or None when
        the provider does not have it yet."""
        raise NotImplementedError(f"{self.name} has no cost look-up")

    def host_headers(self) -> Dict[str, str]:
        """Headers a host adds to every request (attribution, say)."""
        return {}

    # -- the model list ---------------------------------------------------

    #: the path below the base URL that lists the provider's models (the
    #: OpenAI shape, ``{"data": [{"id": ...}]}``, unless :meth:`parse_models`
    #: says otherwise); None when it has none
    models_path: ClassVar[Optional[str]] = None

    def models_request(self, page: Optional[str]) -> HTTPRequest:
        """The request for one page of the provider's model list: the first
        when ``page`` is None, else the one the previous page pointed to.

        :raises ConfigurationError: the provider has no such list.
        """
        if self.models_path is None:
            raise ConfigurationError(f"{self.name} has no endpoint that lists its models")
        headers = {key: value for key, value in self.headers(stream=False).items() if key != "Content-Type"}
        return HTTPRequest(method="GET", url=self.url(self.models_path + self.models_query(page)), headers=headers)

    def models_query(self, page: Optional[str]) -> str:
        """The query string (with its ``?``) asking for ``page`` of the list."""
        return ""

    def parse_models(self, data: Any) -> Tuple[List[str], Optional[str]]:
        """The model names on one page of the list, and the next page's
        token (None after the last).

        :raises SHAPE_ERRORS: a body that is not a model list.
        """
        # OpenAI's shape; Together answers with the bare list.
        entries = data if isinstance(data, list) else require_object(data)["data"]
        return [str(entry["id"]) for entry in entries], None

    # -- helpers for subclasses -------------------------------------------

    def url(self, path: str) -> str:
        return self.config.base_url.rstrip("/") + path

    @staticmethod
    def encode(body: Dict[str, Any]) -> bytes:
        """The body as JSON.

        :raises InvalidArgumentError: something in it (a message, a tool,
            ``extra_body``) is not JSON.
        """
        try:
            return json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise InvalidArgumentError(f"the request cannot be sent as JSON: {exc}") from None
