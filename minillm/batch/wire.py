"""Sending a batch API's requests through a client's route: authorized
when sent, within the route's timeouts, retried under its policy when the
request is safe to repeat, and answered with JSON -- or, for results, with
lines. An error status becomes the adapter's :class:`~minillm.APIError`
(its message scrubbed of the key), exactly as for a real-time call.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Iterator, Optional, TypeVar

from ..framing import iter_ndjson
from ..routes import Route
from ..transports.base import Exchange, HTTPRequest, HTTPResponse

__all__ = ["Wire"]

T = TypeVar("T")


class Wire:
    """The batch API requests of one route. Thread-safe, as the route is."""

    def __init__(self, route: Route) -> None:
        self.route = route

    def json(self, request: HTTPRequest, *, repeatable: bool = True, exchange: Optional[Exchange] = None) -> Any:
        """Send ``request`` and return its answer's JSON.

        :param repeatable: retry it under the route's policy (only for a
            request that may be sent twice).
        :param exchange: records whether the request went out.
        :raises APIError: the provider answered with an error, or a body
            that is not JSON.
        :raises APIConnectionError: nothing usable came back.
        """

        def once() -> Any:
            response = self._send(request, exchange)
            try:
                body = response.read()
            finally:
                response.close()
            try:
                return json.loads(body)
            except ValueError:
                route = self.route
                raise route.adapter.malformed(
                    response.status, body, response.endpoint, route.redactor, "a body that is not valid JSON"
                ) from None

        return self._retried(once) if repeatable else once()

    def lines(self, request: HTTPRequest) -> Iterator[str]:
        """The non-blank lines of ``request``'s answer, as they arrive (the
        request is retried until its answer begins, never after)."""
        response = self._retried(lambda: self._send(request, None))
        try:
            yield from iter_ndjson(response.iter_bytes())
        finally:
            response.close()

    def _retried(self, fn: Callable[[], T]) -> T:
        return self.route.retry.call(fn)

    def _send(self, request: HTTPRequest, exchange: Optional[Exchange]) -> HTTPResponse:
        route = self.route
        response = route.transport.send(
            route.authorize(request), timeouts=(route.timeout.connect, route.timeout.read), exchange=exchange
        )
        if response.status < 300:
            return response
        try:
            body = response.read_error_body()
        finally:
            response.close()
        raise route.adapter.api_error(response.status, response.headers, body, response.endpoint, route.redactor)
