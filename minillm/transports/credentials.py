"""Credentials: what a request needs added at the moment it is sent.

Most providers take a key, which the adapter puts in the request's headers
when it builds it -- plain data. Some need more, each time a request goes
out: a cloud platform's access token that expires and is refreshed (Vertex,
through google-auth), a signature that covers the moment of sending (AWS
SigV4, with credentials botocore's chain may fetch from an instance's
metadata service). That work may read files, take locks and reach outside
the process, so it is not the adapter's -- adapters stay data and parsing
-- but a :class:`Credentials` object's: the adapter says which one its
route needs (:meth:`~minillm.providers.Adapter.credentials`), the route
holds it, and every request the route sends -- a call's attempts, a
look-up, a count, a listing, a batch's files -- goes through its
:meth:`~Credentials.authorize` just before the transport sends it.
"""

from __future__ import annotations

from .base import HTTPRequest

__all__ = ["NO_CREDENTIALS", "Credentials"]


class Credentials:
    """Adds what a request needs as it is sent; this base class adds
    nothing (the key, if any, is in the headers already). Shared by the
    threads of a route: an implementation guards its own state."""

    def authorize(self, request: HTTPRequest) -> HTTPRequest:
        """``request`` as it is sent now.

        :raises ConfigurationError: no credential could be had.
        """
        return request

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"  # never what it holds


#: For every route whose key travels in its headers.
NO_CREDENTIALS = Credentials()
