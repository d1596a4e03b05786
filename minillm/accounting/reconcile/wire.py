"""Reaching a provider's account: the route an admin key is sent on, and
JSON fetched through it.

The route is the one a client of the provider would use -- its adapter
(which puts the key in the provider's header), its transport, retry policy,
timeouts and redactor -- built with the admin key and never with the
provider's ordinary API key variable, so an error, a ``repr`` or a log line
masks the admin key as it masks API keys. JSON numbers are read as
``Decimal``, so no figure passes through a float.
"""

from __future__ import annotations

import json
import os
from decimal import Decimal
from typing import Any, Optional

from ...errors import ConfigurationError
from ...retry import RetryPolicy
from ...routes import Route
from ...timeouts import Timeout
from ...transports.base import HTTPRequest

__all__ = ["account_route", "get_json"]


def account_route(
    provider: str,
    key_env: str,
    key: Optional[str],
    base_url: Optional[str],
    retry: Optional[RetryPolicy],
    timeout: Optional[Timeout],
) -> Route:
    """The route to ``provider``'s account, with ``key`` or else the
    ``key_env`` variable; the base URL is ``base_url``, else the provider's
    ``*_BASE_URL`` variable, else its default.

    :raises ConfigurationError: no key (the message names ``key_env``), or a
        malformed key or base URL.
    """
    from ...config import ClientConfig
    from ...routes import route_for

    if key is None:
        key = os.environ.get(key_env) or None
    if key is None or (isinstance(key, str) and not key.strip()):
        raise ConfigurationError(f"no key for {provider}'s account: pass admin_key= or set {key_env}")
    # The model is never sent: the route only lends its adapter, transport and policies.
    config = ClientConfig(model=f"{provider}/account", api_key=key, base_url=base_url, retry=retry, timeout=timeout)
    return route_for(config)


def get_json(route: Route, request: HTTPRequest) -> Any:
    """Send ``request`` (retried under the route's policy) and return its
    answer's JSON, numbers as ``Decimal``.

    :raises APIError: an error status (the adapter's class for it: a 401 is
        an :class:`~minillm.AuthenticationError`), or a body that is not JSON.
    :raises APIConnectionError: nothing usable came back.
    """

    def once() -> Any:
        response = route.transport.send(route.authorize(request), timeouts=(route.timeout.connect, route.timeout.read))
        try:
            if response.status >= 300:
                raise route.adapter.api_error(
                    response.status, response.headers, response.read_error_body(), response.endpoint, route.redactor
                )
            body = response.read()
        finally:
            response.close()
        try:
            return json.loads(body, parse_float=Decimal)
        except ValueError:
            raise route.adapter.malformed(
                response.status, body, response.endpoint, route.redactor, "a body that is not valid JSON"
            ) from None

    return route.retry.call(once)
