"""Transports: how a request reaches a model and its response comes back.

:class:`~minillm.transports.base.Transport` is the one seam between a call
and the world. The client picks a transport by the scheme of a route's base
URL, as ``requests`` mounts its adapters -- ``http``/``https`` go over the
network (:mod:`minillm.transports.http`), ``local`` to an engine in this
process (:mod:`minillm.transports.inprocess`). Adapters never choose.
"""

from __future__ import annotations

from typing import Callable, Dict

from ..errors import ConfigurationError
from ..redaction import Redactor
from .base import Exchange, HTTPRequest, HTTPResponse, Interrupted, Transport, endpoint_of

__all__ = [
    "Exchange",
    "HTTPRequest",
    "HTTPResponse",
    "Interrupted",
    "Transport",
    "endpoint_of",
    "transport_for",
]

#: Makes the transport of a route: ``(model name, redactor)``.
TransportFactory = Callable[[str, Redactor], Transport]


def _network(model: str, redactor: Redactor) -> Transport:
    from .http import HTTPTransport

    return HTTPTransport(redactor=redactor)


def _in_process(model: str, redactor: Redactor) -> Transport:
    from ..engines.registry import get_engine
    from .inprocess import InProcessTransport

    return InProcessTransport(get_engine(model), redactor=redactor, aliases=(model,))


#: URL scheme -> the transport that serves it.
TRANSPORTS: Dict[str, TransportFactory] = {"http": _network, "https": _network, "local": _in_process}


def transport_for(base_url: str, *, model: str, redactor: Redactor) -> Transport:
    """The transport for a route to ``base_url`` (its scheme decides).

    :raises ConfigurationError: no transport serves that scheme.
    """
    scheme = base_url.partition(":")[0].lower()
    factory = TRANSPORTS.get(scheme)
    if factory is None:
        raise ConfigurationError(f"no transport for {scheme!r} URLs; minillm speaks {', '.join(sorted(TRANSPORTS))}")
    return factory(model, redactor)
