"""The network transport: :class:`!HTTPTransport`, over ``requests``.

This is the only module that imports ``requests``. Foreign exceptions are
translated here, in exactly two places: :meth:`!HTTPTransport.send` (before
the body: :class:`~minillm.APIConnectionError`,
:class:`~minillm.APITimeoutError`) and :meth:`!WireResponse.iter_bytes`
(while reading it: :class:`~minillm.StreamError`).

Interrupting a blocked read from another thread
-----------------------------------------------
Closing a socket does not wake a thread blocked in ``recv`` on it;
shutting it down does (``SHUT_RDWR``, which also tells the server we are
gone). The socket is taken from the connection *as the wait for the headers
begins*: once a response says ``Connection: close`` (every HTTP/1.0
response does), ``http.client`` detaches the socket from the connection and
only the response's file object still reaches it -- asking the connection
later finds nothing to shut down. The same socket then serves the wait for
the headers and the body, whatever the framing: chunked, ``Content-Length``
or read to the close, plain or TLS.

The danger is shutting down a socket that has already gone back to the
connection pool and now carries somebody else's request: the response's
``release_conn`` is therefore gated by the same lock as the shutdown, so a
connection is either interrupted while still ours, or released -- never
both, never in the wrong order.

How far a request got is read off the same connection: once the request
is written whole -- and in any case once the wait for the headers begins --
it may be billed (:attr:`!Exchange.sent`).

``requests`` is imported on first use, not at ``import minillm``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional, Tuple

from .._version import __version__
from ..cancellation import Stop
from ..errors import (
    APIConnectionError,
    APITimeoutError,
    ConfigurationError,
    InvalidArgumentError,
    StreamError,
    StreamTimeoutError,
)
from ..redaction import Redactor
from .base import Exchange, HTTPRequest, HTTPResponse, Interrupted, Transport, endpoint_of

if TYPE_CHECKING:  # pragma: no cover
    import requests

__all__ = ["HTTPTransport", "WireResponse"]

log = logging.getLogger("minillm.transports.http")

USER_AGENT = f"minillm/{__version__}"
_READ_SIZE = 65536

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


def _shutdown(sock: Any) -> None:
    # TLS inside a TLS proxy tunnel is urllib3's SSLTransport, which wraps
    # the real socket. An SSLSocket is shut down as the plain socket it is:
    # its own shutdown() drops the TLS state that the reading thread is
    # still using.
    target = getattr(sock, "socket", sock)
    try:
        if isinstance(target, socket.socket):
            socket.socket.shutdown(target, socket.SHUT_RDWR)
        else:
            target.shutdown(socket.SHUT_RDWR)
    except Exception:
        pass  # already closed or never connected: nothing blocks on it


class _Sending(threading.local):
    """What the sending thread's connection needs to reach: the exchange of
    the request on its way, and the socket it was sent on. Confined to this
    module: requests offers no other path from ``send`` to the connection."""

    exchange: Optional[Exchange] = None
    sock: Any = None


_sending = _Sending()


class WireResponse(HTTPResponse):
    """A response arriving over a socket (through ``requests``)."""

    def __init__(
        self, response: requests.Response, request: HTTPRequest, sock: Any, read_timeout: float, redactor: Redactor
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
        self._interrupted: Optional[Stop] = None
        self._sock = sock
        raw = response.raw
        original_release: Callable[[], None] = raw.release_conn

        def release_conn() -> None:
            with self._lock:
                if self._released:
                    return
                self._released = True
                if self._interrupted is not None:
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
    def interrupted(self) -> Optional[Stop]:
        return self._interrupted

    def interrupt(self, reason: Stop) -> bool:
        with self._lock:
            if self._released or self._interrupted is not None:
                return False
            self._interrupted = reason
            if self._sock is not None:
                _shutdown(self._sock)
        return True

    def bound_silence(self, seconds: float) -> None:
        sock = getattr(self._sock, "socket", self._sock)
        if sock is not None:
            try:
                sock.settimeout(seconds)
            except OSError:
                pass  # already closed: nothing is left to read
        self._read_timeout = seconds

    def iter_bytes(self) -> Iterator[bytes]:
        raw = self._response.raw
        source: Iterator[bytes]
        if raw.chunked and raw.supports_chunked_reads():
            source = raw.read_chunked(None, decode_content=True)
        elif hasattr(raw, "read1"):
            source = self._read1_loop(raw)
        else:
            source = self._read1_loop_urllib3_1(raw)
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

    @staticmethod
    def _read1_loop_urllib3_1(raw: Any) -> Iterator[bytes]:
        # urllib3 1.26 (which botocore still requires on Python 3.9) has no
        # read1, and its read(amt) waits until amt bytes have come: a
        # stream not sent in chunks would arrive in lumps of _READ_SIZE,
        # events held back for as long as the server takes to send that
        # much. http.client's read1 returns what has arrived; urllib3's
        # decoder still undoes a Content-Encoding.
        body = raw._fp
        raw._init_decoder()
        while True:
            data = body.read1(_READ_SIZE)
            if not data:
                break
            decoded = raw._decode(data, True, False)
            if decoded:
                yield decoded
        tail = raw._decode(b"", True, True)
        if tail:
            yield tail
        if body.isclosed():  # read to its end: the connection may serve another request
            raw.release_conn()

    def _check_interrupt(self) -> None:
        if self._interrupted is Stop.DEADLINE:
            raise StreamTimeoutError("the total deadline passed while reading the response")

    def _raise_read_error(self, exc: Exception) -> None:
        if self._interrupted is not None:
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


def _interruptible_adapter(**kwargs: Any) -> Any:
    """A requests ``HTTPAdapter`` whose connections, as they start waiting
    for the response headers, mark the sending thread's exchange as sent and
    let it shut their socket down -- directly and through proxies."""
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class Waiting:
        def request(self, *args: Any, **kw: Any) -> Any:
            result = super().request(*args, **kw)  # type: ignore[misc]
            exchange = _sending.exchange
            if exchange is not None:
                exchange.mark_sent()  # written whole: it may be billed from here on
            return result

        def getresponse(self, *args: Any, **kw: Any) -> Any:
            exchange = _sending.exchange
            if exchange is None:
                return super().getresponse(*args, **kw)  # type: ignore[misc]
            # The request is written: from here on it may be billed. Take the
            # socket now -- http.client detaches it from this connection as
            # soon as the response says Connection: close.
            sock = self.sock  # type: ignore[attr-defined]
            _sending.sock = sock
            exchange.mark_sent()
            exchange.waiting(lambda: _shutdown(sock))
            try:
                return super().getresponse(*args, **kw)  # type: ignore[misc]
            finally:
                exchange.done_waiting()

    class Connection(Waiting, HTTPConnection):
        pass

    class SecureConnection(Waiting, HTTPSConnection):
        pass

    class Pool(HTTPConnectionPool):
        ConnectionCls = Connection

    class SecurePool(HTTPSConnectionPool):
        ConnectionCls = SecureConnection

    pools = {"http": Pool, "https": SecurePool}

    class Adapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kw: Any) -> None:
            super().init_poolmanager(*args, **kw)
            self.poolmanager.pool_classes_by_scheme = pools

        def proxy_manager_for(self, *args: Any, **kw: Any) -> Any:
            manager = super().proxy_manager_for(*args, **kw)
            if hasattr(manager, "pool_classes_by_scheme"):  # not a SOCKS manager
                manager.pool_classes_by_scheme = pools
            return manager

    return Adapter(**kwargs)


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
        self._pid = os.getpid()

    def _get_session(self) -> requests.Session:
        session = self._session
        if session is not None and self._pid == os.getpid():
            return session
        with self._lock:
            if self._pid != os.getpid():
                # A forked child: the pooled connections are the parent's.
                # Left alone (closing them could end the parent's TLS
                # sessions); the child opens its own.
                self._session, self._pid = None, os.getpid()
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
        self, request: HTTPRequest, *, timeouts: Tuple[float, float], exchange: Optional[Exchange] = None
    ) -> HTTPResponse:
        if exchange is None:
            exchange = Exchange()
        exchange.check()
        session = self._get_session()
        host = _host(request.url)
        started = time.monotonic()
        _sending.exchange, _sending.sock = exchange, None
        try:
            response = self._send(session, request, timeouts, host, exchange)
            sock = _sending.sock
        finally:
            _sending.exchange = _sending.sock = None
        log.debug(
            "%s %s -> %d in %.1f ms",
            request.method,
            endpoint_of(request.url),
            response.status_code,
            (time.monotonic() - started) * 1000,
        )
        wire = WireResponse(response, request, sock, timeouts[1], self._redactor)
        exchange.attach(wire)
        return wire

    def _send(
        self,
        session: requests.Session,
        request: HTTPRequest,
        timeouts: Tuple[float, float],
        host: str,
        exchange: Exchange,
    ) -> requests.Response:
        import requests

        try:
            return session.request(
                request.method,
                request.url,
                headers=dict(request.headers),
                data=request.body,
                stream=True,
                timeout=timeouts,
                allow_redirects=False,
                proxies={"no_proxy": _no_proxy()},
            )
        except requests.exceptions.RequestException as exc:
            if exchange.stopped is not None:
                raise Interrupted(exchange.stopped, sent=exchange.sent) from None
            raise self._translate(exc, host, timeouts) from self._redactor.safe_cause(exc)
        except ValueError as exc:
            raise ConfigurationError(self._scrub(f"cannot send to {host}: {exc}")) from self._redactor.safe_cause(exc)

    def _translate(self, exc: Exception, host: str, timeouts: Tuple[float, float]) -> Exception:
        import requests

        if isinstance(exc, requests.exceptions.ConnectTimeout):
            return APITimeoutError(self._scrub(f"connecting to {host} timed out after {timeouts[0]:g}s"))
        if isinstance(exc, requests.exceptions.ReadTimeout):
            return APITimeoutError(self._scrub(f"{host} sent no response within {timeouts[1]:g}s"))
        if isinstance(exc, requests.exceptions.InvalidHeader):
            # Its message quotes the header's value, which may be a key.
            return InvalidArgumentError("a request header is invalid (its value is not shown: headers carry keys)")
        if isinstance(
            exc, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema)
        ):
            return ConfigurationError(self._scrub(f"cannot send to {host}: {exc}"))
        if _is_timeout(exc):
            return APITimeoutError(self._scrub(f"{host} timed out: {exc}"))
        return APIConnectionError(self._scrub(f"could not reach {host}: {type(exc).__name__}: {exc}"))

    def _scrub(self, text: str) -> str:
        return self._redactor.scrub(text)

    def close(self) -> None:
        """Close pooled connections; a later request opens new ones."""
        with self._lock:
            session, self._session = self._session, None
        if session is not None:
            session.close()
