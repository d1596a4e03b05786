"""Transports: how a request reaches a model and its response comes back.

:class:`Transport` is the one seam between the client and the world: it
sends an :class:`HTTPRequest` and returns an :class:`HTTPResponse` whose
body has not been read yet. :class:`HTTPTransport` goes over the network;
an in-process engine has its own transport (:mod:`minillm.transports.inprocess`)
that answers the same requests without a socket.

This is the only module that imports ``requests``. Foreign exceptions are
translated here, in exactly two places: :meth:`HTTPTransport.send` (before
the body: :class:`~minillm.APIConnectionError`,
:class:`~minillm.APITimeoutError`) and :meth:`WireResponse.iter_bytes`
(while reading it: :class:`~minillm.StreamError`).

Interrupting a blocked read from another thread
-----------------------------------------------
Closing a socket does not wake a thread blocked in ``recv`` on it;
shutting it down does. :meth:`HTTPResponse.interrupt` shuts the socket down
(``SHUT_RDWR``, which also tells the server we are gone). The danger is
shutting down a socket that has already gone back to the connection pool
and now carries somebody else's request: the response's ``release_conn``
is therefore gated by the same lock as the shutdown, so a connection is
either interrupted while still ours, or released -- never both, never in
the wrong order.

``requests`` is imported on first use, not at ``import minillm``.
"""

from __future__ import annotations

import abc
import functools
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Optional, Tuple

import attrs

from .._version import __version__
from ..errors import (
    APIConnectionError,
    APITimeoutError,
    ConfigurationError,
    InvalidArgumentError,
    MiniLLMError,
    StreamError,
    StreamTimeoutError,
)
from ..redaction import Redactor

if TYPE_CHECKING:  # pragma: no cover
    import socket

    import requests

__all__ = [
    "HTTPRequest",
    "HTTPResponse",
    "HTTPTransport",
    "RequestInterruptedError",
    "RequestSlot",
    "Transport",
    "WireResponse",
    "endpoint_of",
]

log = logging.getLogger("minillm.transports.http")

USER_AGENT = f"minillm/{__version__}"
_READ_SIZE = 65536


def endpoint_of(url: str) -> str:
    """``url`` without its query string and fragment (which may carry secrets)."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return url.split("?", 1)[0].split("#", 1)[0]
    host = parts.netloc.rsplit("@", 1)[-1]  # never credentials
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


#: Loopback never goes through a proxy (a local server, the demo, tests).
_LOOPBACK = "localhost,127.0.0.1,::1"


def _no_proxy() -> str:
    """The environment's NO_PROXY with loopback added. requests reads the
    environment on every request; passing no_proxy replaces it, so the
    user's own list is kept."""
    import os

    own = os.environ.get("no_proxy") or os.environ.get("NO_PROXY") or ""
    return f"{own},{_LOOPBACK}" if own.strip() else _LOOPBACK


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    try:
        return urlsplit(url).netloc or url
    except ValueError:
        return endpoint_of(url)


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
    def interrupted(self) -> Optional[str]:
        """Why the response was interrupted (``"cancel"``, ``"deadline"``), or None."""

    @abc.abstractmethod
    def interrupt(self, reason: str = "cancel") -> bool:
        """Stop the body from any thread, waking a blocked reader.

        Returns False when there was nothing to interrupt (the body was
        already complete).
        """

    @abc.abstractmethod
    def iter_bytes(self) -> Iterator[bytes]:
        """The body as it arrives, in pieces of whatever size was read.

        After :meth:`interrupt` the iterator simply ends (or raises
        :class:`~minillm.APITimeoutError` when the interrupt was a deadline).

        :raises StreamError: the body could not be read to its end.
        """

    def read(self) -> bytes:
        """The whole body.

        :raises StreamError: the body could not be read to its end.
        """
        return b"".join(self.iter_bytes())

    @abc.abstractmethod
    def close(self) -> None:
        """Let the response go. Idempotent; any thread."""


class WireResponse(HTTPResponse):
    """A response arriving over a socket (through ``requests``)."""

    def __init__(
        self,
        response: requests.Response,
        request: HTTPRequest,
        read_timeout: float,
        redactor: Redactor,
    ) -> None:
        self._response = response
        self._redactor = redactor
        self.status = response.status_code
        self.headers = response.headers
        self.endpoint = endpoint_of(request.url)
        self._read_timeout = read_timeout
        # Re-entrant: urllib3 may release the connection from inside close().
        self._lock = threading.RLock()
        self._released = False
        self._interrupt_reason: Optional[str] = None
        raw = response.raw
        connection = getattr(raw, "connection", None)
        self._sock: Optional[socket.socket] = getattr(connection, "sock", None)
        original_release: Callable[[], None] = raw.release_conn

        def release_conn() -> None:
            with self._lock:
                if self._released:
                    return
                self._released = True
                if self._interrupt_reason is not None:
                    # We shut this socket down: the connection must never go
                    # back to the pool, where another request could take it
                    # while a close() from the interrupting thread is still
                    # on its way. Closed here, it is simply dropped.
                    dropped = getattr(raw, "connection", None)
                    if dropped is not None:
                        dropped.close()
                    return
                original_release()

        # An instance attribute shadows the method: urllib3 calls
        # self.release_conn() when the body is exhausted.
        raw.release_conn = release_conn  # type: ignore[method-assign]

    @property
    def interrupted(self) -> Optional[str]:
        return self._interrupt_reason

    def interrupt(self, reason: str = "cancel") -> bool:
        # Shutting the socket down wakes a reader blocked in recv().
        with self._lock:
            if self._released or self._interrupt_reason is not None:
                return False
            self._interrupt_reason = reason
            if self._sock is not None:
                _shutdown(self._sock)
        return True

    def iter_bytes(self) -> Iterator[bytes]:
        raw = self._response.raw
        source: Iterator[bytes]
        if raw.chunked and raw.supports_chunked_reads():
            source = raw.read_chunked(None, decode_content=True)
        elif hasattr(raw, "read1"):
            source = self._read1_loop(raw)
        else:  # pragma: no cover - urllib3 < 2
            source = raw.stream(_READ_SIZE, decode_content=True)
        try:
            # Only GeneratorExit is ever thrown in at the yield, and it is
            # not an Exception: everything caught here came from the read.
            yield from source
        except Exception as exc:
            self._raise_read_error(exc)
            return
        self._check_interrupt()

    @staticmethod
    def _read1_loop(raw: Any) -> Iterator[bytes]:
        read1 = raw.read1
        while True:
            # requests leaves decode_content off: ask for it, so a gzip body
            # sent with a Content-Length arrives decompressed.
            data = read1(_READ_SIZE, decode_content=True)
            if not data:
                return
            yield data

    def _check_interrupt(self) -> None:
        if self._interrupt_reason == "deadline":
            raise StreamTimeoutError("the total deadline passed while reading the response")

    def _raise_read_error(self, exc: Exception) -> None:
        if self._interrupt_reason is not None:
            self._check_interrupt()
            return  # we shut the socket down ourselves: not a failure
        if _is_timeout(exc):
            raise StreamTimeoutError(
                f"no data arrived for {self._read_timeout:g}s while reading the response"
            ) from self._redactor.safe_cause(exc)
        raise StreamError(
            self._redactor.scrub(f"the connection failed while reading the response: {type(exc).__name__}: {exc}")
        ) from self._redactor.safe_cause(exc)

    def close(self) -> None:
        """Release the connection: back to the pool when the body was read to
        the end, otherwise closed.

        Under the same lock as the release, so a close can never reach a
        connection that has already gone back to the pool.
        """
        with self._lock:
            try:
                self._response.close()
            except Exception:  # pragma: no cover - closing must never raise
                log.debug("error while closing a response", exc_info=True)


def _is_timeout(exc: BaseException) -> bool:
    import socket

    seen = 0
    current: Optional[BaseException] = exc
    while current is not None and seen < 8:
        if isinstance(current, (socket.timeout, TimeoutError)):
            return True
        if type(current).__name__ in ("ReadTimeoutError", "ReadTimeout", "ConnectTimeoutError"):
            return True
        current = current.__cause__ or current.__context__
        seen += 1
    return False


class RequestInterruptedError(MiniLLMError):
    """A request was interrupted (cancelled) before its response headers
    arrived. Internal: the client turns it into a cancelled result.

    :ivar sent: whether the request had gone out (and may cost something).
    """

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


class RequestSlot:
    """Lets another thread interrupt a request at any point: while it waits
    between retries, while it waits for its response headers (for a
    non-streaming call, that is the whole generation), and -- once a
    response is attached -- while its body is read. Thread-safe; one per
    call (and its retries).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: stops the wait for the response headers (shuts the socket down)
        self._stop_wait: Optional[Callable[[], None]] = None
        self._response: Optional[HTTPResponse] = None
        #: set once interrupted: what a retry's backoff waits on
        self.woken = threading.Event()
        self.reason: Optional[str] = None

    def interrupt(self, reason: str = "cancelled") -> None:
        with self._lock:
            if self.reason is not None:
                return
            self.reason = reason
            stop_wait, response = self._stop_wait, self._response
            self.woken.set()
        if stop_wait is not None:
            stop_wait()
        if response is not None:
            response.interrupt("cancel")

    def attach_response(self, response: Optional[HTTPResponse]) -> None:
        """From now on an interrupt stops reading ``response`` (None: no
        response any more)."""
        with self._lock:
            self._response = response
            interrupted = self.reason is not None
        if interrupted and response is not None:
            response.interrupt("cancel")

    def _attach(self, stop_wait: Callable[[], None]) -> None:
        """While waiting for the headers, an interrupt calls ``stop_wait``."""
        with self._lock:
            self._stop_wait = stop_wait
            interrupted = self.reason is not None
        if interrupted:
            stop_wait()

    def _detach(self) -> None:
        with self._lock:
            self._stop_wait = None


def _shutdown(sock: Any) -> None:
    import socket

    # TLS inside a TLS proxy tunnel is urllib3's SSLTransport, which wraps
    # the real socket and cannot shut down itself.
    target = getattr(sock, "socket", sock)
    try:
        target.shutdown(socket.SHUT_RDWR)
    except Exception:
        pass  # already closed or never connected: nothing blocks on it


#: The request slot of the request this thread is sending, if any.
_sending = threading.local()


def _interruptible_adapter(**kwargs: Any) -> Any:
    """A requests ``HTTPAdapter`` whose connections register their socket
    with the sending thread's :class:`RequestSlot` while they wait for the
    response headers. (Requests through a proxy wait uninterruptibly; their
    body can still be interrupted.)"""
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class Waiting:
        def getresponse(self, *args: Any, **kw: Any) -> Any:
            slot: Optional[RequestSlot] = getattr(_sending, "slot", None)
            if slot is None:
                return super().getresponse(*args, **kw)  # type: ignore[misc]
            slot._attach(functools.partial(_shutdown, self.sock))  # type: ignore[attr-defined]
            try:
                return super().getresponse(*args, **kw)  # type: ignore[misc]
            finally:
                slot._detach()

    class Connection(Waiting, HTTPConnection):
        pass

    class SecureConnection(Waiting, HTTPSConnection):
        pass

    class Pool(HTTPConnectionPool):
        ConnectionCls = Connection

    class SecurePool(HTTPSConnectionPool):
        ConnectionCls = SecureConnection

    class Adapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kw: Any) -> None:
            super().init_poolmanager(*args, **kw)
            self.poolmanager.pool_classes_by_scheme = {"http": Pool, "https": SecurePool}

    return Adapter(**kwargs)


class Transport(abc.ABC):
    """Sends requests and hands back their responses. Thread-safe."""

    @abc.abstractmethod
    def send(
        self,
        request: HTTPRequest,
        *,
        timeouts: Tuple[float, float],
        slot: Optional[RequestSlot] = None,
    ) -> HTTPResponse:
        """Send ``request`` and return once the response headers are in.

        :param timeouts: ``(connect, read)`` in seconds; ``read`` bounds the
            wait for the headers and, later, every silence in the body.
        :param slot: lets another thread interrupt the wait for the headers.
        :raises APIConnectionError: nothing usable came back.
        :raises APITimeoutError: connecting or waiting for the headers timed out.
        :raises RequestInterruptedError: ``slot`` was interrupted first.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Let go of what the transport holds. It stays usable."""


class HTTPTransport(Transport):
    """Sends requests over one pooled ``requests.Session``.

    Thread-safe: one transport is shared by every thread using a client. The
    pool keeps up to ``pool_size`` idle connections per host; more
    concurrent requests than that still proceed, on extra connections.
    """

    def __init__(self, *, redactor: Redactor, pool_size: int = 64) -> None:
        self._redactor = redactor
        self._pool_size = pool_size
        self._session: Optional[requests.Session] = None
        self._lock = threading.Lock()

    def _get_session(self) -> requests.Session:
        session = self._session
        if session is not None:
            return session
        with self._lock:
            if self._session is None:
                import requests

                session = requests.Session()
                adapter = _interruptible_adapter(
                    pool_connections=8, pool_maxsize=self._pool_size, max_retries=0, pool_block=False
                )
                session.mount("https://", adapter)
                session.mount("http://", adapter)
                session.headers["User-Agent"] = USER_AGENT
                self._session = session
            return self._session

    def send(
        self,
        request: HTTPRequest,
        *,
        timeouts: Tuple[float, float],
        slot: Optional[RequestSlot] = None,
    ) -> HTTPResponse:
        if slot is not None and slot.reason is not None:
            raise RequestInterruptedError(f"the request was {slot.reason} before it was sent", sent=False)
        session = self._get_session()
        host = _host(request.url)
        started = time.monotonic()
        _sending.slot = slot
        try:
            return self._send(session, request, timeouts, host, started)
        except MiniLLMError:
            if slot is not None and slot.reason is not None:
                raise RequestInterruptedError(
                    f"the request was {slot.reason} while waiting for the response", sent=True
                ) from None
            raise
        finally:
            _sending.slot = None

    def _send(
        self,
        session: requests.Session,
        request: HTTPRequest,
        timeouts: Tuple[float, float],
        host: str,
        started: float,
    ) -> HTTPResponse:
        import requests

        try:
            response = session.request(
                request.method,
                request.url,
                headers=dict(request.headers),
                data=request.body,
                stream=True,
                timeout=timeouts,
                allow_redirects=False,
                proxies={"no_proxy": _no_proxy()},
            )
        except requests.exceptions.ConnectTimeout as exc:
            raise APITimeoutError(
                self._scrub(f"connecting to {host} timed out after {timeouts[0]:g}s")
            ) from self._redactor.safe_cause(exc)
        except requests.exceptions.ReadTimeout as exc:
            raise APITimeoutError(
                self._scrub(f"{host} sent no response within {timeouts[1]:g}s")
            ) from self._redactor.safe_cause(exc)
        except requests.exceptions.InvalidHeader as exc:
            raise InvalidArgumentError(
                self._scrub(f"a request header is invalid: {exc}")
            ) from self._redactor.safe_cause(exc)
        except (
            requests.exceptions.InvalidURL,
            requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema,
            ValueError,
        ) as exc:
            raise ConfigurationError(self._scrub(f"cannot send to {host}: {exc}")) from self._redactor.safe_cause(exc)
        except requests.exceptions.RequestException as exc:
            if _is_timeout(exc):
                raise APITimeoutError(self._scrub(f"{host} timed out: {exc}")) from self._redactor.safe_cause(exc)
            raise APIConnectionError(
                self._scrub(f"could not reach {host}: {type(exc).__name__}: {exc}")
            ) from self._redactor.safe_cause(exc)
        log.debug(
            "%s %s -> %d in %.1f ms",
            request.method,
            endpoint_of(request.url),
            response.status_code,
            (time.monotonic() - started) * 1000,
        )
        return WireResponse(response, request, timeouts[1], self._redactor)

    def _scrub(self, text: str) -> str:
        return self._redactor.scrub(text)

    def close(self) -> None:
        """Close pooled connections; a later request opens new ones."""
        with self._lock:
            session, self._session = self._session, None
        if session is not None:
            session.close()
