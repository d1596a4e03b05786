"""The :class:`Client`: a frozen configuration, the routes it resolves to,
and the calls it makes.

The client never touches a wire format (the adapters do), never decides
what an attempt costs (:mod:`minillm.accounting.settlement` does) and never
drives a request itself: each ``complete()`` or ``stream()`` builds one
:class:`~minillm.call.Call`, which owns the request from its first send to
its last booking. It is safe to share between threads: its configuration
and routes are immutable, the transports pool connections for many
threads, and all per-call state lives in the call.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from . import requestlog, runtime
from .accounting.budget import Budget
from .accounting.lookups import LookupPolicy
from .accounting.pricing import TokenPrice
from .accounting.sinks import CostSink, as_sink
from .boundary import public_errors
from .call import Call
from .cancellation import CancellationToken
from .config import ClientConfig, RetryCallback, with_max_retries
from .counting import count_prompt
from .errors import ConfigurationError, InvalidArgumentError
from .meta import check_meta
from .models import CostInfo, Response
from .request import REQUEST_OPTIONS, Messages, build_chat_request, request_options
from .retry import RetryPolicy
from .routes import Route, route_for
from .streaming import TrackedStream
from .timeouts import Timeout

__all__ = ["Client"]

log = logging.getLogger("minillm.client")


class Client:
    """A synchronous client for one model (and its fallbacks).

    :param model: ``"provider/model-name"``; the rest after the first ``/``
        is sent to the provider verbatim.
    :param api_key: the key (for ``vertex`` an access token); else read
        from the provider's environment variable: ``OPENAI_API_KEY``,
        ``OPENROUTER_API_KEY``, ``XAI_API_KEY``, ``ANTHROPIC_API_KEY``,
        ``GEMINI_API_KEY`` then ``GOOGLE_API_KEY`` (``gemini``),
        ``OLLAMA_API_KEY`` (``ollama``; optional: a local Ollama needs
        none), ``AZURE_OPENAI_API_KEY``, ``DEEPSEEK_API_KEY``,
        ``GROQ_API_KEY``, ``MISTRAL_API_KEY``, ``TOGETHER_API_KEY``,
        ``FIREWORKS_API_KEY``, ``CEREBRAS_API_KEY``,
        ``AWS_BEARER_TOKEN_BEDROCK`` (``bedrock``; else the AWS credential
        chain, through ``minillm[bedrock]``) and ``VERTEX_ACCESS_TOKEN``
        (``vertex``; else application-default credentials, through
        ``minillm[vertex]``). ``local`` takes no key.
    :param base_url: the API root; else the provider's ``*_BASE_URL``
        environment variable (``OLLAMA_HOST`` for Ollama), else its default.
        Any OpenAI-compatible server is ``openai/<model>`` with its
        ``base_url`` (no key needed).
    :param on_cost: where bookings go: ``callable(cost, meta)`` or an object
        with ``record(cost, meta)`` such as :class:`~minillm.Ledger`.
    :param meta: default metadata, merged under each call's ``meta``.
    :param price: a :class:`~minillm.TokenPrice` for this model, for
        providers that send no cost of their own.
    :param retry: a :class:`~minillm.RetryPolicy`; None is the default policy.
    :param max_retries: retries after the first attempt, as the official
        SDKs count them: ``max_retries=N`` is ``RetryPolicy(max_attempts=N + 1)``
        (with ``retry=`` too, the two must agree).
    :param fallbacks: model strings (configured like this client, with their
        key and base URL from the environment, priced by the catalog) or
        clients, tried in order once this one is exhausted or unconfigured.
    :param timeout: a :class:`~minillm.Timeout`, or a number (the read
        timeout); each call may pass its own ``timeout=``.
    :param app_url: attribution sent to OpenRouter as ``HTTP-Referer``.
    :param app_title: attribution sent to OpenRouter as ``X-Title``.
    :param api: the protocol, for providers that speak several; None is
        the provider's default (for ``openai``, picked per model). The
        values: ``"chat"`` (Chat Completions: ``openai``, ``openrouter``,
        ``azure``, ``xai``, the OpenAI-compatible presets, ``ollama``,
        ``local``) or ``"responses"`` (the Responses API: ``openai``,
        ``openrouter``, ``azure``); ``"messages"`` (``anthropic``; on
        ``vertex``, Claude); ``"generate"`` (``gemini``; on ``vertex``,
        Gemini, the default); ``"converse"`` (``bedrock``).
    :param think_tags: move ``<think>...</think>`` blocks of the answer into
        ``thinking``.
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
        max_retries: Optional[int] = None,
    ) -> None:
        self._setup(
            ClientConfig(
                model=model,
                api_key=api_key,
                base_url=base_url,
                on_cost=on_cost,
                meta=meta,
                price=price,
                retry=with_max_retries(retry, max_retries),
                fallbacks=fallbacks,
                timeout=timeout,
                app_url=app_url,
                app_title=app_title,
                api=api,
                think_tags=think_tags,
                on_retry=on_retry,
                lookup=lookup,
                budget=budget,
            )
        )

    def _setup(self, config: ClientConfig) -> None:
        # MINILLM_LOG is read here, by the first client, not at import.
        requestlog.from_environment()
        primary = route_for(config)
        fallbacks, owned = _fallback_routes(config)
        if primary.unusable is not None and not fallbacks:
            raise primary.unusable
        self._config = config
        self._sink = as_sink(config.on_cost)
        self._routes: Tuple[Route, ...] = (primary, *fallbacks)
        #: routes made here from model strings: ours to close
        self._owned: Tuple[Route, ...] = (primary, *owned)
        #: groups this client's pending look-ups for flush()
        self._lookups = object()
        self._closed = False
        self.model = config.model
        self.provider = primary.provider
        self.model_name = primary.name
        self.base_url = primary.base_url

    # -- public API -----------------------------------------------------------

    @public_errors
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
        response_format: Any = None,
        validation_retries: int = 0,
        timeout: Union[Timeout, float, None] = None,
    ) -> Response:
        """Send one request and return the whole :class:`~minillm.Response`,
        already settled (``response.cost`` is set, unless the cost is being
        looked up out of band). Every attempt the provider may bill is
        booked, also those that failed before the answer.

        A call stopped through ``cancel`` returns a response whose
        ``finish_reason`` is ``"cancelled"`` (or ``"paused"``).

        :param messages: one user message (a string), or a list of
            OpenAI-shaped message dicts (``system``, ``user``, ``assistant``,
            ``tool``; content may be a list of parts).
        :param system: a system prompt, put first (each provider in its own
            place for it).
        :param max_tokens: the most output tokens (reasoning included) the
            provider may produce and bill; None leaves it to the provider
            (Anthropic, which requires one, gets a default).
        :param temperature: sampling temperature, sent as given.
        :param stop: a stop sequence, or several.
        :param tools: tool (function) definitions, OpenAI-shaped
            (``{"type": "function", "function": {...}}``); each provider gets
            its own form.
        :param tool_choice: ``"auto"``, ``"none"``, ``"required"`` or a
            tool's name (or the OpenAI-shaped dict naming it).
        :param thinking_budget: tokens the model may spend reasoning, where
            the provider takes a budget (Anthropic, Gemini; the
            OpenAI-shaped APIs get the reasoning effort nearest to it);
            reasoning tokens are output tokens, billed as such.
        :param meta: metadata booked with every attempt of this call (over
            the client's ``meta``; this call's keys win).
        :param cancel: a :class:`~minillm.CancellationToken` that stops the
            call from another thread.
        :param extra_body: keys merged into the request body as they are,
            for what minillm has no parameter for.
        :param extra_headers: headers added to each request.
        :param budget: a :class:`~minillm.Budget` this call is held to
            (instead of the client's).
        :param response_format: a JSON-schema dict or an attrs class the
            answer must match: asked of the provider in its own terms, and
            the answer read into ``response.parsed`` (the parsed JSON, or
            an instance of the class); ``response.attempts_cost`` is what
            every attempt cost together.
        :param validation_retries: how many more times to ask, showing the
            model its answer and what is wrong with it, when an answer does
            not match ``response_format``. Each attempt is booked.
        :param timeout: bounds this call alone: a :class:`~minillm.Timeout`
            replaces the client's, a number its read timeout.
        :raises APIError: the provider answered with an error (after retries).
        :raises APIConnectionError: nothing usable came back.
        :raises BudgetExceeded: ``budget`` cannot take an attempt's worst case.
        :raises OutputValidationError: no answer matched ``response_format``.
        :raises ConfigurationError: the provider cannot be asked for a
            ``response_format`` (nothing is sent).
        """
        options = dict(meta=meta, cancel=cancel, budget=budget, timeout=timeout, **request_options(locals()))
        if response_format is not None or validation_retries:
            from .structured import complete_structured

            return complete_structured(self._collect, messages, response_format, validation_retries, options)
        return self._collect(messages, **options)[0]

    def _collect(self, messages: Messages, **options: Any) -> Tuple[Response, List[CostInfo]]:
        """One call read to the end: its response, and every booking it made."""
        call = self._call(messages, stream=False, **options)
        # The same reader as a stream, read to the end.
        with TrackedStream(call, model=self.model) as stream:
            response = stream.collect()
        return response, list(call.costs)

    @public_errors
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
        response_format: Any = None,
        timeout: Union[Timeout, float, None] = None,
    ) -> TrackedStream:
        """Send one streaming request and return a :class:`~minillm.TrackedStream`.

        The request is sent before this returns: HTTP errors, connection
        errors and exhausted retries raise from here.

        :param messages: one user message (a string), or a list of
            OpenAI-shaped message dicts (``system``, ``user``, ``assistant``,
            ``tool``; content may be a list of parts).
        :param system: a system prompt, put first (each provider in its own
            place for it).
        :param max_tokens: the most output tokens (reasoning included) the
            provider may produce and bill; None leaves it to the provider
            (Anthropic, which requires one, gets a default).
        :param temperature: sampling temperature, sent as given.
        :param stop: a stop sequence, or several.
        :param tools: tool (function) definitions, OpenAI-shaped
            (``{"type": "function", "function": {...}}``); each provider gets
            its own form.
        :param tool_choice: ``"auto"``, ``"none"``, ``"required"`` or a
            tool's name (or the OpenAI-shaped dict naming it).
        :param thinking_budget: tokens the model may spend reasoning, where
            the provider takes a budget (Anthropic, Gemini; the
            OpenAI-shaped APIs get the reasoning effort nearest to it);
            reasoning tokens are output tokens, billed as such.
        :param meta: metadata booked with every attempt of this call (over
            the client's ``meta``; this call's keys win).
        :param cancel: a :class:`~minillm.CancellationToken` that stops the
            call from another thread.
        :param extra_body: keys merged into the request body as they are,
            for what minillm has no parameter for.
        :param extra_headers: headers added to each request.
        :param budget: a :class:`~minillm.Budget` this call is held to
            (instead of the client's).
        :param response_format: not taken here -- an answer is validated
            whole, and retried, by ``complete()``.
        :param timeout: bounds this call alone: a :class:`~minillm.Timeout`
            replaces the client's, a number its read timeout.
        :raises APIError: the provider answered with an error (after retries).
        :raises APIConnectionError: nothing usable came back.
        :raises BudgetExceeded: ``budget`` cannot take an attempt's worst case.
        :raises InvalidArgumentError: a ``response_format`` was given.
        """
        if response_format is not None:
            from .structured import refuse_in_stream

            refuse_in_stream(response_format)
        call = self._call(
            messages,
            stream=True,
            meta=meta,
            cancel=cancel,
            budget=budget,
            system=system,
            max_tokens=max_tokens,
            temperature=temperature,
            stop=stop,
            tools=tools,
            tool_choice=tool_choice,
            thinking_budget=thinking_budget,
            extra_body=extra_body,
            extra_headers=extra_headers,
            timeout=timeout,
        )
        return TrackedStream(call, model=self.model)

    def count_tokens(self, messages: Messages, **options: Any) -> int:
        """The input tokens ``messages`` (with ``options``, as ``complete()``
        takes them: ``system=``, ``tools=``, ...) would be billed at.

        Anthropic, OpenAI, Gemini, Vertex and Bedrock count with their own
        endpoint (one request, not retried; the provider bills nothing for
        it and nothing is booked). Other providers have none: the count is
        then minillm's estimate -- three characters a token plus a chat
        template, erring high -- the same a :class:`~minillm.Budget` holds.

        :raises InvalidArgumentError: an option ``complete()`` does not take,
            or a prompt this provider cannot be sent.
        :raises APIError: the provider refused to count (a model it cannot
            count, a bad key).
        :raises APIConnectionError: the provider could not be reached.
        """
        unknown = sorted(set(options) - set(REQUEST_OPTIONS))
        if unknown:
            raise InvalidArgumentError(f"count_tokens() takes the request's options only, not {', '.join(unknown)}")
        tokens, _ = count_prompt(self._routes[0], build_chat_request(self.model_name, messages, **options))
        return tokens

    @public_errors
    def models(self) -> List[str]:
        """The models this client's provider offers, from its list endpoint
        (OpenAI-compatible hosts' ``/models``, Anthropic's and Gemini's, page
        by page, Ollama's pulled models), named as the provider names them:
        ``f"{client.provider}/{name}"`` is a model to make a client for.
        Nothing is booked: listing is free.

        :raises ConfigurationError: the provider has no list endpoint
            (Azure, Vertex, Bedrock), or the client is closed.
        :raises APIError: the provider refused (a rejected key, say).
        """
        from .listing import list_models

        self._check_open()
        return list_models(self._routes[0])

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Wait for the bookings still on their way: dropped streams being
        settled, and this client's out-of-band cost look-ups.

        :returns: True when none is left, False if ``timeout`` passed first.
        """
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))):
            raise InvalidArgumentError(f"timeout must be a number of seconds or None, not {timeout!r}")
        end = None if timeout is None else time.monotonic() + timeout
        if not runtime.settler.wait(timeout):
            return False
        remaining = None if end is None else max(end - time.monotonic(), 0.0)
        return runtime.lookups.flush(owner=self._lookups, timeout=remaining)

    def close(self) -> None:
        """Close pooled connections; idempotent. Streams already open read
        on, and pending cost look-ups still complete, but the client makes
        no new calls: they raise :class:`~minillm.ConfigurationError`."""
        self._closed = True
        for route in self._owned:
            route.close()

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
        return {"config": self._config}

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self._setup(state["config"])

    # -- one call -------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ConfigurationError(f"this client for {self.model} is closed: make a new Client to call it again")

    def _call(
        self,
        messages: Messages,
        *,
        stream: bool,
        meta: Optional[Mapping[str, Any]],
        cancel: Optional[CancellationToken],
        budget: Optional[Budget],
        timeout: Union[Timeout, float, None] = None,
        **options: Any,
    ) -> Call:
        """Validate a call's arguments, build its request once, and open it.

        :raises InvalidArgumentError: an argument minillm can reject before sending.
        """
        self._check_open()
        own = check_meta(meta)  # refused before anything is sent, as every ledger would refuse it
        if cancel is not None and not isinstance(cancel, CancellationToken):
            raise InvalidArgumentError(f"cancel must be a minillm.CancellationToken, not {type(cancel).__name__}")
        if budget is not None and not isinstance(budget, Budget):
            raise InvalidArgumentError(f"budget must be a minillm.Budget, not {type(budget).__name__}")
        deadlines = self._config.timeout.for_call(timeout)
        held_to = budget or self._config.budget
        if held_to is not None and options.get("max_tokens") is None:
            # A budgeted call always has a max_tokens, so its worst case is bounded.
            options["max_tokens"] = held_to.default_max_tokens
        request = build_chat_request(self.model_name, messages, **options)
        merged = {**self._config.meta, **own}
        call = Call(
            self._routes,
            request,
            stream=stream,
            meta=merged,
            sink=self._sink,
            budget=held_to,
            token=cancel,
            lookup_policy=self._config.lookup,
            owner=self._lookups,
            total=(deadlines or self._config.timeout).total,
            timeout=deadlines,
        )
        call.open()
        return call


def _fallback_routes(config: ClientConfig) -> Tuple[List[Route], List[Route]]:
    """The fallbacks' routes, and those of them made here (from model strings).

    A fallback client contributes its primary route (its own fallbacks are
    not followed). A model string is configured like this client, without
    its price; one that cannot be used is skipped with a warning rather than
    failing this client.
    """
    from .client import Client

    routes: List[Route] = []
    owned: List[Route] = []
    for spec in config.fallbacks:
        if isinstance(spec, Client):
            routes.append(spec._routes[0])
            continue
        try:
            route = route_for(config.for_fallback(spec))
        except ConfigurationError as exc:
            log.warning("fallback %s is unusable: %s", spec, exc)
            continue
        if route.unusable is not None:
            log.warning("fallback %s is unusable: %s", spec, route.unusable)
            continue
        if config.price is not None:
            log.warning(
                "fallback %s has no price of its own (price= belongs to %s): it is priced by the catalog, "
                "or booked UNPRICED; pass a Client(%r, price=...) to price it",
                spec,
                config.model,
                spec,
            )
        routes.append(route)
        owned.append(route)
    return routes, owned
