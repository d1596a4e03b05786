"""The :class:`Client`: resolves a ``"provider/model"`` through the
registry, owns the transport, the retry policy and the sink, and turns
calls into requests, responses and bookings.

The client never touches wire formats (that is the adapter's job) and never
decides what a request costs (that is :mod:`minillm.accounting.settlement`'s). It is
safe to share between threads: its configuration is immutable, the
transport pools connections for many threads, and all per-call state lives
in per-call objects.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, TypeVar, Union

from .accounting.budget import Budget, worst_case
from .accounting.catalog import catalog_price
from .accounting.lookups import LookupPolicy, lookups
from .accounting.pricing import TokenPrice, cost_from_usage
from .accounting.settlement import Booking, Ending, release, settle
from .accounting.sinks import CostSink, SinkFunction, as_sink
from .accumulate import StreamState, accumulate
from .cancellation import CancellationToken
from .errors import (
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    BudgetExceeded,
    ConfigurationError,
    ContextOverflowError,
    InvalidArgumentError,
    MiniLLMError,
    StreamContextOverflowError,
    StreamError,
)
from .events import Event, ProviderError
from .ids import new_booking_id
from .models import CostInfo, Response
from .providers import Adapter, ProviderConfig, adapter_class, split_model
from .providers.base import overflow_counts
from .redaction import Redactor, excerpt
from .request import ChatRequest, Messages, build_chat_request, request_options
from .retry import RetryPolicy
from .scheduler import Scheduler
from .streaming import Opened, TrackedStream, _StreamCore
from .thinktags import split_think_tags
from .timeouts import Timeout
from .transports.http import HTTPResponse, RequestInterruptedError, RequestSlot

__all__ = ["Client"]

log = logging.getLogger("minillm.client")

#: Total deadlines are enforced from here: it only ever shuts sockets down.
_deadlines = Scheduler("minillm-deadlines")

#: The most of an error body we read.
_ERROR_BODY_LIMIT = 1 << 20

RetryCallback = Callable[[int, BaseException, float], None]
T = TypeVar("T")


class _Attempts:
    """How many attempts one call has made, across its re-sends."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


class Client:
    """A synchronous client for one model.

    :param model: ``"provider/model-name"``; the rest after the first ``/``
        is sent to the provider verbatim.
    :param api_key: the key; else read from the provider's environment
        variable (``OPENAI_API_KEY``, ``OPENROUTER_API_KEY``, ``XAI_API_KEY``).
    :param base_url: the API root; else the provider's ``*_BASE_URL``
        environment variable, else its default. Any OpenAI-compatible server
        is ``openai/<model>`` with its ``base_url`` (no key needed).
    :param on_cost: where bookings go: ``callable(cost, meta)`` or an object
        with ``record(cost, meta)`` such as :class:`~minillm.Ledger`.
    :param meta: default metadata, merged under each call's ``meta``.
    :param price: a :class:`~minillm.TokenPrice` for providers that send no cost.
    :param retry: a :class:`~minillm.RetryPolicy`; None is the default policy.
    :param fallbacks: model strings or clients tried in order once this one
        is exhausted or unconfigured.
    :param timeout: a :class:`~minillm.Timeout`, or a number (the read timeout).
    :param app_url: attribution sent to OpenRouter as ``HTTP-Referer``.
    :param app_title: attribution sent to OpenRouter as ``X-Title``.
    :param api: ``openai`` only: ``"chat"`` (None picks per model).
    :param think_tags: move a leading ``<think>...</think>`` block of the
        answer into ``thinking``.
    :param on_retry: called as ``on_retry(attempt, exc, delay)`` before each retry.
    :param lookup: how patiently out-of-band cost look-ups are made.
    :param budget: a :class:`~minillm.Budget` every call is held to (a
        call's own ``budget=`` wins).
    :raises ConfigurationError: unknown provider, malformed model or base
        URL, or a missing key (unless there are fallbacks to go to).
    """

    def __init__(
        self,
        model: str,
        api_key: Optional[str] = None,
        base_url: Optional[str] = None,
        on_cost: Optional[CostSink] = None,
        meta: Optional[Mapping[str, Any]] = None,
        price: Optional[TokenPrice] = None,
        retry: Optional[RetryPolicy] = None,
        fallbacks: Sequence[Union[str, Client]] = (),
        timeout: Union[Timeout, float, None] = None,
        app_url: Optional[str] = None,
        app_title: Optional[str] = None,
        api: Optional[str] = None,
        think_tags: bool = True,
        *,
        on_retry: Optional[RetryCallback] = None,
        lookup: Optional[LookupPolicy] = None,
        budget: Optional[Budget] = None,
    ) -> None:
        # What it takes to make this client again in another process
        # (pickle). The key stays out: it lives only where repr hides it.
        self._init_args = {name: value for name, value in locals().items() if name not in ("self", "api_key")}
        self._explicit_key = api_key is not None
        provider, name = split_model(model)
        cls = adapter_class(provider, api, name)
        if price is not None and not isinstance(price, TokenPrice):
            raise ConfigurationError(f"price must be a minillm.TokenPrice, not {type(price).__name__}")
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise ConfigurationError(f"retry must be a minillm.RetryPolicy, not {type(retry).__name__}")
        if meta is not None and not isinstance(meta, Mapping):
            raise ConfigurationError(f"meta must be a dict, not {type(meta).__name__}")
        if budget is not None and not isinstance(budget, Budget):
            raise ConfigurationError(f"budget must be a minillm.Budget, not {type(budget).__name__}")
        if isinstance(fallbacks, (str, Client)):
            fallbacks = (fallbacks,)
        for fallback in fallbacks:
            if not isinstance(fallback, (str, Client)):
                raise ConfigurationError(
                    f"a fallback must be a model string or a Client, not {type(fallback).__name__}"
                )
        try:
            self._timeout = Timeout.coerce(timeout)
        except InvalidArgumentError as exc:
            raise ConfigurationError(str(exc)) from exc

        self.model = model
        self.provider = provider
        self.model_name = name
        self._price = price
        self._retry = retry or RetryPolicy()
        self._sink: Optional[SinkFunction] = as_sink(on_cost)
        self._on_cost = on_cost
        self._meta: Dict[str, Any] = dict(meta or {})
        self._think_tags = bool(think_tags)
        self._on_retry = on_retry
        self._lookup_policy = lookup or LookupPolicy()
        self._budget = budget
        self._fallback_specs: Tuple[Union[str, Client], ...] = tuple(fallbacks)

        key = _clean_key(api_key or next((os.environ[v] for v in cls.key_env if os.environ.get(v)), None), provider)
        if base_url is not None and not isinstance(base_url, str):
            raise ConfigurationError(f"base_url must be a string, not {type(base_url).__name__}")
        env_base = os.environ.get(cls.base_url_env) if cls.base_url_env else None
        if env_base:
            env_base = cls.base_url_from_env(env_base)
        default = cls.default_base_url.rstrip("/")
        root = (base_url or env_base or default).rstrip("/")
        _check_base_url(root, Redactor([api_key if isinstance(api_key, str) else None]), cls.url_schemes)
        official = root == default
        self.base_url = root
        self._redactor = Redactor([key])
        self._config_error: Optional[ConfigurationError] = None
        if not key and cls.key_required and official:
            names = " or ".join(cls.key_env) or "an API key"
            self._config_error = ConfigurationError(f"no API key for {provider}: pass api_key= or set {names}")
            if not self._fallback_specs:
                raise self._config_error
        self._adapter: Adapter = cls(
            ProviderConfig(
                provider=provider,
                model=name,
                base_url=root,
                api_key=key,
                app_url=app_url,
                app_title=app_title,
                official=official,
            )
        )
        self._transport = self._adapter.transport(self._redactor)
        # List prices apply to a provider's own service only, never to a
        # compatible server that serves a model of the same name.
        self._catalog = catalog_price(cls.catalog_provider, name) if official else None
        self._fallbacks = self._resolve_fallbacks()

    # -- public API -----------------------------------------------------------

    def complete(
        self,
        messages: Messages,
        *,
        system: Optional[str] = None,
        max_tokens: Optional[int] = None,
        temperature: Optional[float] = None,
        stop: Union[str, Sequence[str], None] = None,
        tools: Optional[Sequence[Mapping[str, Any]]] = None,
        tool_choice: Any = None,
        thinking_budget: Optional[int] = None,
        meta: Optional[Mapping[str, Any]] = None,
        cancel: Optional[CancellationToken] = None,
        extra_body: Optional[Mapping[str, Any]] = None,
        extra_headers: Optional[Mapping[str, str]] = None,
        budget: Optional[Budget] = None,
    ) -> Response:
        """Send one request and return the whole :class:`~minillm.Response`,
        already settled (``response.cost`` is set, unless the cost is being
        looked up out of band).

        :raises APIError: the provider answered with an error (after retries).
        :raises APIConnectionError: nothing usable came back.
        """
        options = request_options(locals())
        merged = self._merged_meta(meta)
        token = self._token(cancel)
        held_to = self._budget_for(budget, options)
        return self._with_fallbacks(
            lambda client: client._complete_once(messages, options, merged, token, self, held_to)
        )

    def stream(
        self,
        messages: Messages,
        *,
        system: Optional[str] = None,
        max_tokens: Optional[int] = None,
        temperature: Optional[float] = None,
        stop: Union[str, Sequence[str], None] = None,
        tools: Optional[Sequence[Mapping[str, Any]]] = None,
        tool_choice: Any = None,
        thinking_budget: Optional[int] = None,
        meta: Optional[Mapping[str, Any]] = None,
        cancel: Optional[CancellationToken] = None,
        extra_body: Optional[Mapping[str, Any]] = None,
        extra_headers: Optional[Mapping[str, str]] = None,
        budget: Optional[Budget] = None,
    ) -> TrackedStream:
        """Send one streaming request and return a :class:`~minillm.TrackedStream`.

        The request is sent before this returns: HTTP errors, connection
        errors and exhausted retries raise from here.
        """
        options = request_options(locals())
        merged = self._merged_meta(meta)
        token = self._token(cancel)
        held_to = self._budget_for(budget, options)
        return self._with_fallbacks(lambda client: client._stream_once(messages, options, merged, token, self, held_to))

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Wait for this client's pending out-of-band cost look-ups.

        :returns: True when none is left, False if ``timeout`` passed first.
        """
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))):
            raise InvalidArgumentError(f"timeout must be a number of seconds or None, not {timeout!r}")
        return lookups.flush(owner=self, timeout=timeout)

    def close(self) -> None:
        """Close pooled connections. Pending cost look-ups still complete."""
        self._transport.close()
        for fallback in self._fallbacks:
            if fallback not in self._fallback_specs:
                fallback.close()  # made here from a model string: ours to close

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.model!r}, base_url={self.base_url!r})"

    def __getstate__(self) -> Dict[str, Any]:
        # A client travels as its configuration (for process pools and
        # cluster executors): connections, locks and pending look-ups stay.
        # Its sink must be picklable too -- a durable ledger, not a Ledger --
        # and a key given as api_key travels with it.
        state = dict(self._init_args)
        if self._explicit_key:
            state["api_key"] = self._adapter.config.api_key
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    # -- one attempt on one client -------------------------------------------

    def _request(self, messages: Messages, options: Dict[str, Any]) -> ChatRequest:
        return build_chat_request(self.model_name, messages, **options)

    def _booking(
        self, meta: Dict[str, Any], primary: Client, request: ChatRequest, budget: Optional[Budget]
    ) -> Booking:
        """How this call is booked -- after holding its worst case when it
        has a budget.

        :raises BudgetExceeded: the budget cannot take the worst case.
        """
        booking_id = new_booking_id()
        held = None
        if budget is not None:
            amount = worst_case(request, price=self._price, catalog=self._catalog, model=self.model)
            held = budget.hold(booking_id, amount, meta)
        return Booking(
            provider=self.provider,
            model=self.model_name,
            price=self._price,
            sink=primary._sink,
            meta=meta,
            lookup=self._lookup if self._adapter.has_cost_lookup else None,
            lookup_policy=primary._lookup_policy,
            owner=primary,
            catalog=self._catalog,
            held=held,
            id=booking_id,
        )

    def _budget_for(self, budget: Optional[Budget], options: Dict[str, Any]) -> Optional[Budget]:
        """The budget a call is held to (its own, else the client's); a
        budgeted call always has a ``max_tokens``, so its worst case is bounded."""
        if budget is not None and not isinstance(budget, Budget):
            raise InvalidArgumentError(f"budget must be a minillm.Budget, not {type(budget).__name__}")
        chosen = budget or self._budget
        if chosen is not None and options.get("max_tokens") is None:
            options["max_tokens"] = chosen.default_max_tokens
        return chosen

    def _stream_once(
        self,
        messages: Messages,
        options: Dict[str, Any],
        meta: Dict[str, Any],
        token: Optional[CancellationToken],
        primary: Client,
        budget: Optional[Budget] = None,
    ) -> TrackedStream:
        request = self._request(messages, options)
        booking = self._booking(meta, primary, request, budget)
        if token is not None and token.is_cancelled:
            return TrackedStream._stopped(booking, token.disposition, model=self.model, sent=False)
        deadline = self._deadline()
        attempts = _Attempts()
        slot = RequestSlot()
        unsubscribe = token._subscribe(lambda: slot.interrupt(token.disposition)) if token is not None else None
        try:
            opened = self._send(
                request,
                stream=True,
                deadline=deadline,
                slot=slot,
                attempts=attempts,
                receive=lambda response: self._receive_stream(response, slot),
            )
        except RequestInterruptedError as stopped:
            return TrackedStream._stopped(booking, slot.reason or "cancelled", model=self.model, sent=stopped.sent)
        except BaseException:
            release(booking)  # an error books nothing: what a budget held goes
            raise
        finally:
            if unsubscribe is not None:
                unsubscribe()  # from here on the stream itself listens
        response = opened.response
        if response.interrupted == "cancel":
            response.close()
            return TrackedStream._stopped(
                booking, slot.reason or "cancelled", model=self.model, sent=True, generation_id=opened.generation_id
            )

        def reopen(core: _StreamCore, error: ProviderError) -> Optional[Opened]:
            return self._reopen(core, request, error, deadline, attempts)

        core = _StreamCore(
            events=opened.events,
            booking=booking,
            response=response,
            generation_id=opened.generation_id,
            to_error=self._stream_error,
            scrub=self._redactor.scrub,
            reopen=reopen,
        )
        stream = TrackedStream(core, model=self.model)
        if deadline is not None:
            handle = _deadlines.call_at(deadline, lambda: core.interrupt("deadline"))
            if handle is not None:
                core.on_release(handle.cancel)
        if token is not None:
            reason = token

            def on_token() -> None:
                core.stop(Ending.EARLY, reason.disposition)
                core.book()

            core.on_release(token._subscribe(on_token))
        return stream

    def _receive_stream(self, response: HTTPResponse, slot: RequestSlot) -> Opened:
        slot.attach_response(response)  # a whole JSON answer read here can be interrupted too
        try:
            events = self._stream_events(response)
        except BaseException:
            response.close()
            raise
        return Opened(response, events, self._adapter.generation_id(response.headers))

    def _reopen(
        self,
        core: _StreamCore,
        request: ChatRequest,
        error: ProviderError,
        deadline: Optional[float],
        attempts: _Attempts,
    ) -> Optional[Opened]:
        """Send a stream's request again after ``error``, a retryable error
        the provider reported before any output; None if the stream was
        stopped meanwhile.

        :raises MiniLLMError: the retries ran out (the error of the last).
        """
        slot = RequestSlot()
        core.on_release(lambda: slot.interrupt("cancelled"))

        def receive(response: HTTPResponse) -> Opened:
            opened = self._receive_stream(response, slot)
            slot.attach_response(None)  # from here on the stream interrupts it
            return opened

        try:
            opened = self._send(
                request,
                stream=True,
                deadline=deadline,
                slot=slot,
                attempts=attempts,
                receive=receive,
                resume_after=self._stream_error(error, core.state),
                before_attempt=core.sending,
                after_failure=core.attempt_failed,
            )
        except RequestInterruptedError:
            return None
        if opened.response.interrupted == "cancel":
            opened.response.close()
            return None
        return opened

    def _complete_once(
        self,
        messages: Messages,
        options: Dict[str, Any],
        meta: Dict[str, Any],
        token: Optional[CancellationToken],
        primary: Client,
        budget: Optional[Budget] = None,
    ) -> Response:
        request = self._request(messages, options)
        if token is not None and token.is_cancelled:
            return Response(finish_reason=token.disposition, model=self.model_name)
        booking = self._booking(meta, primary, request, budget)
        deadline = self._deadline()
        slot = RequestSlot()
        unsubscribe = token._subscribe(lambda: slot.interrupt(token.disposition)) if token is not None else None
        try:
            response, body = self._send(
                request,
                stream=False,
                deadline=deadline,
                slot=slot,
                attempts=_Attempts(),
                receive=lambda response: self._receive_body(response, slot, deadline),
            )
        except RequestInterruptedError as stopped:
            return self._stopped_early(booking, slot.reason or "cancelled", sent=stopped.sent)
        except BaseException:
            release(booking)  # an error books nothing: what a budget held goes
            raise
        finally:
            if unsubscribe is not None:
                unsubscribe()
        state = StreamState()
        if body is None:
            result = state.to_response(finish_reason=slot.reason or "cancelled")
            ending = Ending.EARLY
        else:
            data, events = body
            for event in events:
                accumulate(state, event)
            if not state.is_terminal:  # pragma: no cover - parse_body always ends the body
                raise self._adapter.malformed(
                    response.status, b"", response.endpoint, self._redactor, "an incomplete response"
                )
            result = state.to_response(raw=data)
            ending = Ending.COMPLETED

        def on_booked(cost: CostInfo) -> None:
            result.cost = cost

        settle(
            booking,
            state,
            ending,
            generation_id=self._adapter.generation_id(response.headers),
            on_booked=on_booked,
        )
        return result

    def _receive_body(
        self, response: HTTPResponse, slot: RequestSlot, deadline: Optional[float]
    ) -> Tuple[HTTPResponse, Optional[Tuple[Any, List[Event]]]]:
        """Read and parse a whole answer: its JSON and its events, or None
        when the call was cancelled meanwhile.

        An error object inside a success body raises here, within the
        attempt, so a retryable one is retried like an HTTP error.
        """
        slot.attach_response(response)
        handle = _deadlines.call_at(deadline, lambda: response.interrupt("deadline")) if deadline is not None else None
        try:
            body = response.read()
        finally:
            if handle is not None:
                handle.cancel()
            response.close()
        if response.interrupted == "cancel":
            return response, None
        data = self._json_body(response, body)
        events = list(self._pipeline(self._adapter.parse_body(data)))
        for event in events:
            if isinstance(event, ProviderError):
                raise self._body_error(event, response)
        return response, (data, events)

    def _stopped_early(self, booking: Booking, reason: str, *, sent: bool) -> Response:
        """The result of a call stopped before its response arrived: booked
        UNKNOWN if the request had gone out (it may cost), else nothing."""
        result = Response(finish_reason=reason, model=self.model_name)

        def on_booked(cost: CostInfo) -> None:
            result.cost = cost

        if sent:
            settle(booking, StreamState(), Ending.EARLY, generation_id=None, on_booked=on_booked)
        else:
            release(booking)
        return result

    # -- sending ---------------------------------------------------------------

    def _deadline(self) -> Optional[float]:
        total = self._timeout.total
        return None if total is None else time.monotonic() + total

    def _send(
        self,
        request: ChatRequest,
        *,
        stream: bool,
        deadline: Optional[float],
        slot: RequestSlot,
        attempts: _Attempts,
        receive: Callable[[HTTPResponse], T],
        resume_after: Optional[MiniLLMError] = None,
        before_attempt: Optional[Callable[[], None]] = None,
        after_failure: Optional[Callable[[], None]] = None,
    ) -> T:
        """Send with retries, and ``receive`` the first response with a
        success status: what ``receive`` raises is an attempt's failure too.

        :param attempts: counts the attempts made, across re-sends.
        :param resume_after: the error that ended the previous attempt, when
            this carries on after one (a retryable in-band error).
        :param before_attempt: called as each attempt starts.
        :param after_failure: called when an attempt fails.
        :raises RequestInterruptedError: ``slot`` was interrupted first.
        """
        if self._config_error is not None:
            raise self._config_error
        adapter = self._adapter

        def attempt() -> T:
            http_request = adapter.build_request(request, stream=stream)
            response = self._transport.send(http_request, timeouts=self._timeouts(deadline), slot=slot)
            if response.status < 300:
                return receive(response)
            try:
                body = self._read_error_body(response)
            finally:
                response.close()
            if 300 <= response.status < 400:
                where = response.headers.get("location", "elsewhere")
                raise APIError(
                    self._redactor.scrub(
                        f"{self.provider} redirected the request to {where}: set base_url to the final address"
                    ),
                    status_code=response.status,
                    provider=self.provider,
                    endpoint=response.endpoint,
                )
            raise adapter.api_error(response.status, response.headers, body, response.endpoint, self._redactor)

        def attempt_and_learn() -> T:
            attempts.count += 1
            if before_attempt is not None:
                before_attempt()
            try:
                try:
                    return attempt()
                except APIError as exc:
                    if adapter.learn_from(exc):
                        return attempt()  # once: the rebuilt request leaves the option out
                    raise
            except RequestInterruptedError:
                raise
            except MiniLLMError:
                if after_failure is not None:
                    after_failure()
                raise

        if resume_after is not None:
            return self._retry.resume(
                attempt_and_learn,
                failed=attempts.count,
                error=resume_after,
                deadline=deadline,
                on_retry=self._retrying,
                wake=slot.woken,
            )
        return self._retry.call(attempt_and_learn, deadline=deadline, on_retry=self._retrying, wake=slot.woken)

    def _timeouts(self, deadline: Optional[float]) -> Tuple[float, float]:
        connect, read = self._timeout.connect, self._timeout.read
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise APITimeoutError(f"the total deadline of {self._timeout.total:g}s passed")
            connect, read = min(connect, remaining), min(read, remaining)
        return connect, read

    def _retrying(self, attempt: int, exc: BaseException, delay: float) -> None:
        status = getattr(exc, "status_code", None)
        if status:
            why = f"HTTP {status}"
        elif isinstance(exc, StreamError):
            why = f"an error in the response body: {excerpt(str(exc), 120)}"
        else:
            why = type(exc).__name__
        log.warning(
            "retrying %s request (attempt %d of %d failed: %s) in %.2fs",
            self.provider,
            attempt,
            self._retry.max_attempts,
            why,
            delay,
        )
        if self._on_retry is not None:
            self._on_retry(attempt, exc, delay)

    @staticmethod
    def _read_error_body(response: HTTPResponse) -> bytes:
        pieces: List[bytes] = []
        size = 0
        try:
            for piece in response.iter_bytes():
                pieces.append(piece)
                size += len(piece)
                if size >= _ERROR_BODY_LIMIT:
                    break
        except StreamError:
            pass  # the status says enough; the body is a courtesy
        return b"".join(pieces)

    # -- reading ---------------------------------------------------------------

    def _pipeline(self, events: Iterator[Event]) -> Iterator[Event]:
        return split_think_tags(events) if self._think_tags else events

    def _stream_events(self, response: HTTPResponse) -> Iterator[Event]:
        content_type = response.content_type
        if not content_type or content_type in self._adapter.stream_content_types:
            return self._pipeline(self._adapter.stream_events(response.iter_bytes()))
        if content_type == "application/json":
            # The server ignored stream=true and sent the whole answer (or an
            # error with a success status): read it as a body, and raise its
            # error from stream() itself, as complete() would.
            body = response.read()
            if response.interrupted:
                return iter(())
            events = list(self._adapter.parse_body(self._json_body(response, body)))
            for event in events:
                if isinstance(event, ProviderError):
                    raise self._body_error(event, response)
            return self._pipeline(iter(events))
        body = self._read_error_body(response)
        what = "an HTML page" if "html" in content_type else f"Content-Type {content_type}"
        raise self._adapter.malformed(
            response.status, body, response.endpoint, self._redactor, f"{what} instead of a stream"
        )

    def _json_body(self, response: HTTPResponse, body: bytes) -> Any:
        if not body.strip():
            raise self._adapter.malformed(response.status, body, response.endpoint, self._redactor, "an empty body")
        try:
            return json.loads(body)
        except ValueError:
            why = "an HTML page" if b"<html" in body[:512].lower() else "a body that is not valid JSON"
            raise self._adapter.malformed(response.status, body, response.endpoint, self._redactor, why) from None

    def _body_error(self, error: ProviderError, response: HTTPResponse) -> MiniLLMError:
        """The error for an error object found in a non-streaming body."""
        if error.type == "malformed":
            return self._adapter.malformed(
                response.status, b"", response.endpoint, self._redactor, self._redactor.scrub(error.message)
            )
        status = error.code if isinstance(error.code, int) and 400 <= error.code < 600 else response.status
        body = json.dumps({"error": error.body}).encode() if error.body is not None else b""
        api_error = self._adapter.api_error(status, response.headers, body, response.endpoint, self._redactor)
        if error.overflow and not isinstance(api_error, ContextOverflowError):
            overflow = ContextOverflowError(
                api_error.message,
                status_code=status,
                body=api_error.body,
                provider=self.provider,
                endpoint=response.endpoint,
            )
            overflow.requested_tokens, overflow.limit_tokens = overflow_counts(error.message)
            return overflow
        return api_error

    def _stream_error(self, error: ProviderError, state: StreamState) -> MiniLLMError:
        """The error for an in-band error event in a stream."""
        if error.type == "malformed":
            message = self._redactor.scrub(f"the stream from {self.provider} could not be parsed: {error.message}")
        else:
            message = self._redactor.scrub(f"{self.provider} reported an error mid-stream: {error.message}")
        body = self._redactor.scrub_obj(error.body)
        if error.overflow:
            overflow = StreamContextOverflowError(message, body=body, provider=self.provider)
            overflow.requested_tokens, overflow.limit_tokens = overflow_counts(error.message)
            return overflow
        return StreamError(message, body=body, provider=self.provider)

    # -- cost look-ups -----------------------------------------------------------

    def _lookup(self, generation_id: str, cancelled: bool) -> Optional[CostInfo]:
        """One attempt at fetching what ``generation_id`` cost."""
        request = self._adapter.lookup_request(generation_id)
        response = self._transport.send(request, timeouts=(self._timeout.connect, min(self._timeout.read, 30.0)))
        try:
            body = response.read()
        finally:
            response.close()
        try:
            data = json.loads(body) if body.strip() else None
        except ValueError:
            data = None
        usage = self._adapter.parse_lookup(response.status, data)
        if usage is None:
            return None
        return cost_from_usage(
            usage,
            price=self._price,
            model=self.model_name,
            provider=self.provider,
            response_id=generation_id,
            cancelled=cancelled,
            catalog=self._catalog,
        )

    # -- fallbacks ---------------------------------------------------------------

    def _resolve_fallbacks(self) -> Tuple[Client, ...]:
        """Clients for the fallbacks: given ones as they are, model strings as
        clients configured from the environment (sharing this client's
        retry policy, timeouts and hooks). An unusable one is skipped with a
        warning rather than failing this client."""
        resolved: List[Client] = []
        for spec in self._fallback_specs:
            if isinstance(spec, Client):
                resolved.append(spec)
                continue
            try:
                resolved.append(
                    Client(
                        spec,
                        retry=self._retry,
                        timeout=self._timeout,
                        think_tags=self._think_tags,
                        on_retry=self._on_retry,
                    )
                )
            except ConfigurationError as exc:
                log.warning("fallback %s is unusable: %s", spec, exc)
        return tuple(resolved)

    def _with_fallbacks(self, call: Callable[[Client], T]) -> T:
        last: Optional[BaseException] = None
        for client in (self, *self._fallbacks):
            if last is not None:
                log.warning("%s failed (%s); falling back to %s", self.model, type(last).__name__, client.model)
            try:
                return call(client)
            except (BadRequestError, AuthenticationError, InvalidArgumentError, BudgetExceeded):
                raise  # the same request would fail the same way elsewhere; a budget is a decision
            except MiniLLMError as exc:
                if not self._fallback_specs:
                    raise
                last = exc
        assert last is not None
        raise last

    # -- helpers -------------------------------------------------------------------

    def _merged_meta(self, meta: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
        if meta is not None and not isinstance(meta, Mapping):
            raise InvalidArgumentError(f"meta must be a dict, not {type(meta).__name__}")
        merged = dict(self._meta)
        if meta:
            merged.update(meta)
        return merged

    @staticmethod
    def _token(cancel: Optional[CancellationToken]) -> Optional[CancellationToken]:
        if cancel is not None and not isinstance(cancel, CancellationToken):
            raise InvalidArgumentError(f"cancel must be a minillm.CancellationToken, not {type(cancel).__name__}")
        return cancel


def _check_base_url(url: str, redactor: Redactor, schemes: Tuple[str, ...]) -> None:
    """A URL of one of ``schemes`` with a host and nothing after its path:
    paths are appended to it, and a key must never travel in a URL."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        valid = parts.scheme in schemes and bool(parts.hostname)
    except ValueError:
        valid = False
    if not valid:
        wanted = " or ".join(f"{scheme}://" for scheme in schemes)
        raise ConfigurationError(redactor.scrub(f"base_url must be a {wanted} URL with a host, not {url!r}"))
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigurationError(
            "base_url must not carry a query string, a fragment or credentials: "
            "pass the key as api_key (or its environment variable)"
        )


def _clean_key(key: Optional[str], provider: str) -> Optional[str]:
    """The key without surrounding whitespace (a key read from a file keeps
    its newline); a key with whitespace or control characters inside cannot
    be sent in a header and is refused -- without repeating it."""
    if key is None:
        return None
    if not isinstance(key, str):
        raise ConfigurationError(f"the API key for {provider} must be a string, not {type(key).__name__}")
    key = key.strip()
    if any(ch.isspace() or not ch.isprintable() for ch in key):
        raise ConfigurationError(f"the API key for {provider} contains whitespace or control characters")
    return key or None
