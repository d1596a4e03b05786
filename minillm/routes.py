"""Routes: the places a call can be sent.

A :class:`Route` is one provider endpoint, resolved once when a client is
made: the adapter that speaks its protocol, the transport that reaches it
(chosen by the base URL's scheme), the credentials each request needs as
it is sent, the :class:`~minillm.accounting.pricing.Pricer` that prices
its usage, its retry policy and timeouts, and -- where the provider has
one -- how to look a generation's cost up. A client's routes are its
primary and then its fallbacks. Routes hold no reference to the
client that made them; they are shared, immutable, and safe between threads.
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterator, Optional, Tuple

import attrs

from .accounting.catalog import catalog_price
from .accounting.pricing import Pricer
from .config import ClientConfig, RetryCallback
from .errors import ConfigurationError
from .events import Event
from .models import Usage
from .providers import Adapter, ProviderConfig, adapter_class, split_model
from .providers.base import SHAPE_ERRORS
from .redaction import Redactor
from .request import ChatRequest
from .retry import RetryPolicy
from .thinktags import split_think_tags
from .timeouts import Timeout
from .transports import HTTPRequest, Transport, endpoint_of, transport_for
from .transports.credentials import NO_CREDENTIALS, Credentials

__all__ = ["Route", "route_for"]


@attrs.frozen(eq=False)
class Route:
    """One provider endpoint a call may go to. Immutable; thread-safe."""

    #: ``"provider/model-name"`` as the client was given it
    model: str
    provider: str
    #: the model name sent to the provider
    name: str
    base_url: str
    adapter: Adapter
    transport: Transport
    pricer: Pricer
    retry: RetryPolicy
    timeout: Timeout
    think_tags: bool
    redactor: Redactor = attrs.field(repr=False)
    #: what each request needs added as it is sent (a token, a signature)
    credentials: Credentials = attrs.field(default=NO_CREDENTIALS, repr=False)
    on_retry: Optional[RetryCallback] = None
    #: why the route cannot be used (a missing key): a call skips it for
    #: the next route, or raises this when it has none
    unusable: Optional[ConfigurationError] = None

    def build(self, request: ChatRequest, *, stream: bool) -> HTTPRequest:
        """The HTTP request for ``request`` on this route (which names its own model)."""
        if request.model != self.name:
            request = attrs.evolve(request, model=self.name)
        return self.adapter.build_request(request, stream=stream)

    def authorize(self, request: HTTPRequest) -> HTTPRequest:
        """``request`` as this route sends it now (see :attr:`credentials`).

        :raises ConfigurationError: no credential could be had.
        """
        return self.credentials.authorize(request)

    def pipeline(self, events: Iterator[Event]) -> Iterator[Event]:
        """The adapter's events as the call folds them (``<think>`` blocks split out)."""
        return split_think_tags(events) if self.think_tags else events

    @property
    def has_lookup(self) -> bool:
        return self.adapter.has_cost_lookup

    def lookup(self, generation_id: str) -> Optional[Usage]:
        """One attempt at fetching what ``generation_id`` cost: its usage
        with the provider's own figure, or None when not recorded yet."""
        request = self.authorize(self.adapter.lookup_request(generation_id))
        response = self.transport.send(request, timeouts=(self.timeout.connect, min(self.timeout.read, 30.0)))
        try:
            body = response.read()
        finally:
            response.close()
        try:
            data = json.loads(body) if body.strip() else None
        except ValueError:
            data = None
        return self.adapter.parse_lookup(response.status, data)

    def count_tokens(self, request: ChatRequest) -> Optional[int]:
        """The provider's own count of ``request``'s input tokens, through
        its counting endpoint (one request, not retried, never billed);
        None when it has no such endpoint.

        :raises MiniLLMError: the count failed (the provider's error, a
            connection error, an answer that is not a count).
        """
        if request.model != self.name:
            request = attrs.evolve(request, model=self.name)
        http = self.adapter.count_request(request)
        if http is None:
            return None
        if self.unusable is not None:
            raise self.unusable
        response = self.transport.send(self.authorize(http), timeouts=(self.timeout.connect, self.timeout.read))
        try:
            if response.status >= 300:
                body = response.read_error_body()
                raise self.adapter.api_error(response.status, response.headers, body, response.endpoint, self.redactor)
            body = response.read()
        finally:
            response.close()
        try:
            return self.adapter.parse_count(json.loads(body))
        except SHAPE_ERRORS as exc:
            why = f"no token count in it ({type(exc).__name__})"
            raise self.adapter.malformed(response.status, body, response.endpoint, self.redactor, why) from None

    def close(self) -> None:
        self.transport.close()


def route_for(config: ClientConfig) -> Route:
    """Resolve ``config`` into a route: the provider and its adapter, the key
    (the argument, else the provider's environment variables), the base URL
    (the argument, else the environment, else the provider's default), the
    transport for its scheme, and the price.

    :raises ConfigurationError: unknown provider, a malformed model, key or
        base URL. A missing key does not raise here: the route is marked
        unusable, so a client with fallbacks can still be made.
    """
    provider, name = split_model(config.model)
    cls = adapter_class(provider, config.api, name)
    explicit = config.api_key
    key = _clean_key(explicit or next((os.environ[v] for v in cls.key_env if os.environ.get(v)), None), provider)
    env_base = os.environ.get(cls.base_url_env) if cls.base_url_env else None
    if env_base:
        env_base = cls.base_url_from_env(env_base)
    unusable: Optional[ConfigurationError] = None
    try:
        default = cls.default_base().rstrip("/")
    except ConfigurationError as exc:
        # A platform whose endpoint only the caller knows (an Azure
        # resource) or computes from settings that are missing: without a
        # base URL given, the route is unusable (a fallback may serve).
        default = ""
        if not (config.base_url or env_base):
            unusable = exc
    root = (config.base_url or env_base or default).rstrip("/")
    if not root:
        root = "https://endpoint.invalid"  # never sent: the route is unusable
    _check_base_url(root, Redactor([explicit if isinstance(explicit, str) else None]), cls.url_schemes)
    official = root == default or cls.own_endpoints
    redactor = Redactor([key])
    missing = cls.missing_credentials(key) if official else None
    if missing is not None and unusable is None:
        unusable = ConfigurationError(missing)
    adapter = cls(
        ProviderConfig(
            provider=provider,
            model=name,
            base_url=root,
            api_key=key,
            app_url=config.app_url,
            app_title=config.app_title,
            official=official,
        )
    )
    # List prices apply to a provider's own service only, never to a
    # compatible server that serves a model of the same name.
    catalog = catalog_price(cls.catalog_provider, cls.catalog_model(name)) if official else None
    return Route(
        model=config.model,
        provider=provider,
        name=name,
        base_url=root,
        adapter=adapter,
        transport=transport_for(root, model=name, redactor=redactor),
        pricer=Pricer(config.price, catalog),
        retry=config.retry,
        timeout=config.timeout,
        think_tags=config.think_tags,
        redactor=redactor,
        credentials=adapter.credentials(),
        on_retry=config.on_retry,
        unusable=unusable,
    )


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
        shown = redactor.scrub(endpoint_of(url))  # never its credentials or query
        raise ConfigurationError(f"base_url must be a {wanted} URL with a host, not {shown!r}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigurationError(
            "base_url must not carry a query string, a fragment or credentials: "
            "pass the key as api_key (or its environment variable)"
        )


def _clean_key(key: Any, provider: str) -> Optional[str]:
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
    if not key.isascii():  # a header could not carry it; checked, never tried (an error would keep it)
        raise ConfigurationError(f"the API key for {provider} contains characters that are not ASCII")
    return key or None
