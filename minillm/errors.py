"""The exception tree: every error minillm raises is a :class:`MiniLLMError`.

Foreign exceptions (``requests``, ``urllib3``, ``json``) are translated into
this tree in exactly two places -- when a request is sent and while its body
is read (see :mod:`minillm.transports.http`) -- and chained with ``raise ... from``.
HTTP statuses map to classes through one table, :data:`!STATUS_ERRORS`::

    MiniLLMError
    ├── ConfigurationError          unknown provider, missing key, bad client setup
    ├── InvalidArgumentError        a call argument minillm can reject locally (also ValueError)
    ├── APIError                    the provider answered with an error
    │   ├── AuthenticationError     401, 403
    │   ├── NotFoundError           404
    │   ├── RateLimitError          429 (.retry_after)
    │   ├── BadRequestError         400, 413, 422
    │   │   └── ContextOverflowError
    │   ├── ServerError             500, 502, 503, 504, 529 and other 5xx
    │   └── MalformedResponseError  a success status with a body that cannot be used
    ├── APIConnectionError          nothing usable came back
    │   └── APITimeoutError         also a builtin TimeoutError
    ├── StreamError                 failure after the body started (.partial_text)
    ├── BudgetExceeded              a budget refused a request before it was sent
    ├── OutputValidationError       the answer did not match response_format (retries spent)
    └── LedgerError                 a durable ledger could not be read or written

A failure inside a stream that also has a more specific meaning is raised as
a class that is both: an error the provider reports inside the stream maps
through the same tables as an HTTP error -- its numeric code, else its kind
(:data:`!KIND_STATUS`: ``rate_limit_error`` is a 429, ``overloaded_error`` a
529) -- so an in-band rate limit is a :class:`RateLimitError` *and* a
:class:`StreamError`, an in-band overflow a :class:`ContextOverflowError`
*and* a :class:`StreamError`; a read timeout after the body started is an
:class:`APITimeoutError` *and* a :class:`StreamError`. ``except StreamError``
therefore catches every failure that happened after output could have
reached the caller, and ``except RateLimitError`` every rate limit.

No message, ``repr`` or attribute of these errors may carry an API key: they
are built from text that has passed through :mod:`!minillm.redaction`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Type

if TYPE_CHECKING:  # pragma: no cover
    from .models import AttemptsCost, Response

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceeded",
    "ConfigurationError",
    "ContextOverflowError",
    "InvalidArgumentError",
    "LedgerError",
    "MalformedResponseError",
    "MiniLLMError",
    "NotFoundError",
    "OutputValidationError",
    "RateLimitError",
    "ServerError",
    "StreamError",
    "KIND_STATUS",
    "STATUS_ERRORS",
    "STREAM_ERRORS",
    "error_class_for_status",
    "status_for_kind",
]


class MiniLLMError(Exception):
    """Base class of every error raised by minillm."""


class ConfigurationError(MiniLLMError):
    """The client cannot be used as configured (unknown provider, missing key)."""


class InvalidArgumentError(MiniLLMError, ValueError):
    """A call argument was rejected before anything was sent."""


class APIError(MiniLLMError):
    """The provider answered with an error status or an unusable body.

    :ivar status_code: the HTTP status.
    :ivar body: the parsed JSON error body, or a short text excerpt.
    :ivar provider: the provider name (``"openai"``, ``"openrouter"``...).
    :ivar endpoint: the URL that answered, without its query string.
    :ivar retry_after: seconds the provider asked us to wait before trying
        again (``Retry-After``, ``retry-after-ms``), when it said.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: Optional[int] = None,
        body: Any = None,
        provider: Optional[str] = None,
        endpoint: Optional[str] = None,
        retry_after: Optional[float] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.body = body
        self.provider = provider
        self.endpoint = endpoint
        self.retry_after = retry_after


class AuthenticationError(APIError):
    """The key is missing, wrong, or lacks permission (401, 403)."""


class NotFoundError(APIError):
    """The endpoint or model does not exist (404)."""


class RateLimitError(APIError):
    """The provider is rate limiting this key (429); see ``.retry_after``."""


class BadRequestError(APIError):
    """The provider rejected the request itself (400, 413, 422)."""


class ContextOverflowError(BadRequestError):
    """The prompt (plus the requested output) does not fit the model's context.

    :ivar requested_tokens: the tokens the request needed, when the provider said.
    :ivar limit_tokens: the model's limit, when the provider said.
    """

    requested_tokens: Optional[int] = None
    limit_tokens: Optional[int] = None


class ServerError(APIError):
    """The provider failed (5xx, including Anthropic's 529 overload)."""


class MalformedResponseError(APIError):
    """A response arrived but its body is not what the protocol promises
    (an HTML error page, an empty or truncated JSON body)."""


class APIConnectionError(MiniLLMError):
    """No usable response came back: DNS, refused connection, reset before the body."""


class APITimeoutError(APIConnectionError, TimeoutError):
    """A connect, read or total deadline passed."""


class StreamError(MiniLLMError):
    """The response body failed after it started: a transport failure, an
    in-band provider error, malformed data, or a body that ended before the
    provider's terminal event.

    :ivar partial_text: the text received before the failure.
    :ivar partial_response: the :class:`~minillm.Response` accumulated so far, when known.
    :ivar body: the in-band error object the provider sent, when there was one.
    """

    def __init__(
        self,
        message: str,
        *,
        partial_text: str = "",
        partial_response: Optional[Response] = None,
        body: Any = None,
        provider: Optional[str] = None,
        **kwargs: Any,
    ) -> None:
        # Cooperative: the combined classes below pass APIError's keywords on.
        if kwargs:
            super().__init__(message, body=body, provider=provider, **kwargs)  # type: ignore[call-arg]
        else:
            super().__init__(message)
        self.message = message
        self.partial_text = partial_text
        self.partial_response = partial_response
        self.body = body
        self.provider = provider


class StreamTimeoutError(StreamError, APITimeoutError):
    """A read or total deadline passed after the body had started."""


class _InBandError(StreamError):
    """An error the provider reported inside a response body: a
    :class:`StreamError` that is also the :class:`APIError` its status means."""

    def __init__(self, message: str, **kwargs: Any) -> None:
        kwargs.setdefault("status_code", None)
        super().__init__(message, **kwargs)


class StreamAPIError(_InBandError, APIError):
    """The provider reported an error inside the stream."""


class StreamAuthenticationError(_InBandError, AuthenticationError):
    """The provider reported an authentication error inside the stream."""


class StreamNotFoundError(_InBandError, NotFoundError):
    """The provider reported a missing model or resource inside the stream."""


class StreamRateLimitError(_InBandError, RateLimitError):
    """The provider reported a rate limit inside the stream."""


class StreamBadRequestError(_InBandError, BadRequestError):
    """The provider rejected the request inside the stream."""


class StreamContextOverflowError(_InBandError, ContextOverflowError):
    """The provider reported a context overflow inside the stream."""


class StreamServerError(_InBandError, ServerError):
    """The provider reported a failure or an overload inside the stream."""


#: The one status -> class table. Statuses not listed fall back by range:
#: other 4xx are plain :class:`APIError`, other 5xx are :class:`ServerError`.
STATUS_ERRORS: Dict[int, Type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: AuthenticationError,
    404: NotFoundError,
    413: BadRequestError,
    422: BadRequestError,
    429: RateLimitError,
    500: ServerError,
    502: ServerError,
    503: ServerError,
    504: ServerError,
    529: ServerError,
}


#: What the kind of an in-band error object (its ``type``) means, as an HTTP
#: status: the same :data:`!STATUS_ERRORS` then name its class.
KIND_STATUS: Dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "rate_limit_exceeded": 429,
    "insufficient_quota": 429,
    "api_error": 500,
    "server_error": 500,
    "service_unavailable": 503,
    "timeout_error": 504,
    "overloaded_error": 529,
}

#: The stream class of each error class: what an in-band error is raised as.
STREAM_ERRORS: Dict[Type[APIError], Type[StreamError]] = {
    APIError: StreamAPIError,
    AuthenticationError: StreamAuthenticationError,
    NotFoundError: StreamNotFoundError,
    RateLimitError: StreamRateLimitError,
    BadRequestError: StreamBadRequestError,
    ContextOverflowError: StreamContextOverflowError,
    ServerError: StreamServerError,
}


def status_for_kind(code: Any, kind: Any) -> Optional[int]:
    """The HTTP status an in-band error stands for: its numeric ``code`` when
    that is an error status, else what its ``kind`` means, else what a
    ``code`` that names a kind means, else None."""
    if isinstance(code, int) and not isinstance(code, bool) and 400 <= code < 600:
        return code
    if isinstance(code, str) and code.isdigit() and 400 <= int(code) < 600:
        return int(code)
    if isinstance(kind, str) and kind in KIND_STATUS:
        return KIND_STATUS[kind]
    if isinstance(code, str):
        # OpenAI's Responses API names the kind in ``code`` ("server_error",
        # "rate_limit_exceeded") and sends no ``type``.
        return KIND_STATUS.get(code)
    return None


def error_class_for_status(status: int) -> Type[APIError]:
    """Return the :class:`APIError` subclass for an HTTP status."""
    cls = STATUS_ERRORS.get(status)
    if cls is not None:
        return cls
    if 500 <= status < 600:
        return ServerError
    return APIError


class BudgetExceeded(MiniLLMError):  # noqa: N818 - the name says what happened
    """A :class:`~minillm.Budget` refused a request: its worst case would
    take the spending past the limit. Nothing was sent, nothing is booked.

    :ivar limit: the budget's limit in USD.
    :ivar spent: what was already booked or held, in USD.
    :ivar requested: the request's worst case, in USD.
    :ivar key: the ``meta`` key the budget is per (None: the whole ledger).
    :ivar value: the value of that key for this request.
    """

    def __init__(
        self, message: str, *, limit: Any, spent: Any, requested: Any, key: Optional[str] = None, value: Any = None
    ) -> None:
        super().__init__(message)
        self.limit = limit
        self.spent = spent
        self.requested = requested
        self.key = key
        self.value = value


class LedgerError(MiniLLMError):
    """A durable ledger could not be opened, read or written."""


class OutputValidationError(MiniLLMError):
    """The answer did not match the ``response_format`` asked for, on the
    first attempt and on every one of the ``validation_retries``. Each
    attempt was booked.

    :ivar text: the last answer as the model wrote it.
    :ivar problems: what is wrong with it (each names its JSON path).
    :ivar responses: every attempt's :class:`~minillm.Response`, in order.
    :ivar attempts_cost: what they cost together (an
        :class:`~minillm.AttemptsCost`).
    """

    def __init__(
        self,
        message: str,
        *,
        text: str,
        problems: Sequence[str],
        responses: Sequence[Response],
        attempts_cost: Optional[AttemptsCost],
    ) -> None:
        super().__init__(message)
        self.message = message
        self.text = text
        self.problems: List[str] = list(problems)
        self.responses: List[Response] = list(responses)
        self.attempts_cost = attempts_cost
