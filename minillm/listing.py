"""The models a provider offers: :func:`list_models`, behind ``Client.models()``.

Each adapter says where its list is and how to read one page of it
(:meth:`~minillm.providers.Adapter.models_request`,
:meth:`~minillm.providers.Adapter.parse_models`); this module follows the
pages. Listing is free at every provider, so nothing is booked. A page that
fails is retried under the route's policy, like a call.
"""

from __future__ import annotations

import functools
import json
from typing import List, Optional, Set, Tuple

from .errors import APIError
from .providers.base import SHAPE_ERRORS
from .routes import Route

__all__ = ["MAX_PAGES", "list_models"]

#: The most pages followed: a list that keeps pointing onwards is cut off here.
MAX_PAGES = 100


def list_models(route: Route) -> List[str]:
    """The names of the models ``route``'s provider lists, in its order,
    each once -- as the provider names them, so that ``f"{provider}/{name}"``
    is a model a client can be made for.

    :raises ConfigurationError: the provider has no such list, or no key.
    :raises APIError: the provider refused (a rejected key, say).
    :raises MalformedResponseError: an answer that is not a model list.
    """
    if route.unusable is not None:
        raise route.unusable
    names: List[str] = []
    seen: Set[str] = set()
    tokens: Set[str] = set()
    page: Optional[str] = None
    for _ in range(MAX_PAGES):
        found, page = route.retry.call(functools.partial(_page, route, page))
        for name in found:
            if name not in seen:
                seen.add(name)
                names.append(name)
        if page is None or page in tokens:
            break
        tokens.add(page)
    return names


def _page(route: Route, page: Optional[str]) -> Tuple[List[str], Optional[str]]:
    adapter = route.adapter
    request = route.authorize(adapter.models_request(page))
    response = route.transport.send(request, timeouts=(route.timeout.connect, route.timeout.read))
    try:
        if response.status >= 300:
            body = response.read_error_body()
            raise adapter.api_error(response.status, response.headers, body, response.endpoint, route.redactor)
        body = response.read()
    finally:
        response.close()
    try:
        return adapter.parse_models(json.loads(body))
    except SHAPE_ERRORS as exc:
        raise _not_a_list(route, response.status, body, response.endpoint, exc) from None


def _not_a_list(route: Route, status: int, body: bytes, endpoint: str, exc: BaseException) -> APIError:
    why = f"an answer that is not a model list ({type(exc).__name__}: {exc})"
    return route.adapter.malformed(status, body, endpoint, route.redactor, why)
