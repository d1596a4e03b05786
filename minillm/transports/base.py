"""The transport interface: :class:`Transport` sends an :class:`HTTPRequest`
and returns an :class:`HTTPResponse` whose body has not been read yet; an
:class:`Exchange` lets any thread stop that one request at any point.

How far a request got matters to the ledger. A request that never left
(connection refused, DNS, a connect timeout, a TLS failure) cannot be billed;
one written whole may be, whether or not an answer comes back. The
transport records the moment the request has been written in
:attr:`Exchange.sent`.

Stopping from another thread
----------------------------
:meth:`Exchange.stop` works in every phase: before the request is sent
(it is not sent), while the response headers are awaited (the transport's
wait is ended -- a socket is shut down, an engine aborted), and while the
body is read (:meth:`HTTPResponse.interrupt`). A send that was stopped
raises :class:`Interrupted`, which never leaves the call that owns the
exchange.
"""

from __future__ import annotations

import abc
import threading
from typing import Callable, Iterator, List, Mapping, Optional, Tuple

import attrs

from ..cancellation import Stop
from ..errors import StreamError

__all__ = ["Exchange", "HTTPRequest", "HTTPResponse", "Interrupted", "Transport", "endpoint_of"]


#: The most of an error answer's body that is read.
ERROR_BODY_LIMIT = 1 << 20


def endpoint_of(url: str) -> str:
    """``url`` without its query string, fragment and credentials (which may carry secrets).

    Works on text that is not a valid URL too (``user:pass@host/v1`` typed
    without a scheme): it is for error messages about such text."""
    from urllib.parse import urlsplit, urlunsplit

    bare = url.split("?", 1)[0].split("#", 1)[0]
    try:
        parts = urlsplit(bare)
    except ValueError:
        parts = None
    if parts is not None and parts.netloc:
        return urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[-1], parts.path, "", ""))
    scheme, sep, rest = bare.partition("://")
    if not sep:
        scheme, rest = "", bare
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = "***@" + authority.rsplit("@", 1)[-1]
    return f"{scheme}{sep}{authority}{slash}{path}"


@attrs.frozen
class HTTPRequest:
    """A request ready to send. Headers and body are kept out of ``repr``:
    the headers carry the API key."""

    method: str
    url: str
    headers: Mapping[str, str] = attrs.field(factory=dict, repr=False)
    body: Optional[bytes] = attrs.field(default=None, repr=False)
    #: read the body incrementally (an event stream)
    stream: bool = False


class Interrupted(Exception):  # noqa: N818 - it tells the caller what happened, it is not a failure
    """A send was stopped through its :class:`Exchange` before the response
    headers arrived. Internal: the call that stopped it turns it into a
    result.

    :ivar reason: why it was stopped.
    :ivar sent: whether the request had gone out whole (it may be billed).
    """

    def __init__(self, reason: Stop, *, sent: bool) -> None:
        super().__init__(f"the request was stopped ({reason.value}) {'after' if sent else 'before'} it was sent")
        self.reason = reason
        self.sent = sent


class HTTPResponse(abc.ABC):
    """A response whose headers have arrived and whose body is unread.

    Not shared: one thread reads it. :meth:`interrupt` and :meth:`close` may
    be called from any thread.
    """

    status: int
    #: case-insensitive
    headers: Mapping[str, str]
    #: the URL without its query string: safe to show
    endpoint: str

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    @property
    @abc.abstractmethod
    def interrupted(self) -> Optional[Stop]:
        """Why the body was interrupted, or None."""

    @abc.abstractmethod
    def interrupt(self, reason: Stop) -> bool:
        """Stop the body from any thread, waking a blocked reader.

        :returns: False when there was nothing to interrupt (the body was
            already complete, or interrupted before).
        """

    @abc.abstractmethod
    def iter_bytes(self) -> Iterator[bytes]:
        """The body as it arrives, in pieces of whatever size was read.

        After :meth:`interrupt` the iterator simply ends -- or raises
        :class:`~minillm.APITimeoutError` (a ``StreamError`` too) when the
        interrupt was the total deadline.

        :raises StreamError: the body could not be read to its end.
        """

    def read(self) -> bytes:
        """The whole body.

        :raises StreamError: the body could not be read to its end.
        """
        return b"".join(self.iter_bytes())

    def read_error_body(self, limit: int = ERROR_BODY_LIMIT) -> bytes:
        """The body of an error answer, up to ``limit`` bytes: a failure to
        read it ends it (the status says enough; the body is a courtesy)."""
        pieces: List[bytes] = []
        size = 0
        try:
            for piece in self.iter_bytes():
                pieces.append(piece)
                size += len(piece)
                if size >= limit:
                    break
        except StreamError:
            pass
        return b"".join(pieces)

    def bound_silence(self, seconds: float) -> None:  # noqa: B027 - most bodies need nothing
        """From now on, let the body be silent for at most ``seconds`` (the
        rest of a complete answer is read within a short bound)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Let the response go. Idempotent; any thread."""


class Exchange:
    """One request on its way, as every thread sees it. Thread-safe.

    The sending thread's transport calls :meth:`waiting` / :meth:`done_waiting`
    around the wait for the headers, :meth:`mark_sent` once the request is
    written, and :meth:`attach` with the response; any thread may call
    :meth:`stop`.
    """

    __slots__ = ("_lock", "_on_stop", "response", "sent", "stopped")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: why it was stopped (None while it runs)
        self.stopped: Optional[Stop] = None
        #: the request was written whole: the provider may bill it
        self.sent = False
        #: ends the transport's wait for the headers
        self._on_stop: Optional[Callable[[], None]] = None
        self.response: Optional[HTTPResponse] = None

    def stop(self, reason: Stop) -> None:
        """Stop the exchange wherever it is (the first reason wins)."""
        with self._lock:
            if self.stopped is not None:
                return
            self.stopped = reason
            on_stop, response = self._on_stop, self.response
        if on_stop is not None:
            on_stop()
        if response is not None:
            response.interrupt(reason)

    # -- the transport's side ---------------------------------------------------

    def check(self) -> None:
        """:raises Interrupted: the exchange was stopped before the request went out."""
        reason = self.stopped
        if reason is not None:
            raise Interrupted(reason, sent=self.sent)

    def mark_sent(self) -> None:
        self.sent = True

    def waiting(self, on_stop: Callable[[], None]) -> None:
        """While the headers are awaited, a stop calls ``on_stop`` (at once
        if the exchange is already stopped)."""
        with self._lock:
            self._on_stop = on_stop
            stopped = self.stopped is not None
        if stopped:
            on_stop()

    def done_waiting(self) -> None:
        with self._lock:
            self._on_stop = None

    def attach(self, response: HTTPResponse) -> None:
        """From now on a stop interrupts ``response``'s body.

        :raises Interrupted: the exchange was stopped first (``response`` is closed).
        """
        with self._lock:
            reason = self.stopped
            if reason is None:
                self.response = response
                return
        response.close()
        raise Interrupted(reason, sent=True)


class Transport(abc.ABC):
    """Sends requests and hands back their responses. Thread-safe."""

    @abc.abstractmethod
    def send(
        self, request: HTTPRequest, *, timeouts: Tuple[float, float], exchange: Optional[Exchange] = None
    ) -> HTTPResponse:
        """Send ``request`` and return once the response headers are in.

        :param timeouts: ``(connect, read)`` in seconds; ``read`` bounds the
            wait for the headers and, later, every silence in the body.
        :param exchange: lets another thread stop the request, and records
            whether it was sent (None: nobody will stop it).
        :raises APIConnectionError: nothing usable came back.
        :raises APITimeoutError: connecting or waiting for the headers timed out.
        :raises Interrupted: ``exchange`` was stopped first.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Let go of what the transport holds. It stays usable."""
