"""A scripted HTTP server on 127.0.0.1 for testing code that uses minillm.

:class:`ScriptedServer` is a real, threaded HTTP/1.1 server, over plain
TCP or TLS: replies are sent piece by piece, so a client sees exactly the
framing a provider -- or a proxy in front of one -- would send. A reply's
body goes out with chunked transfer encoding (the default), with a
``Content-Length``, or read to the close of the connection; the connection
is kept alive or closed (``Connection: close``); the status line says
HTTP/1.1 or HTTP/1.0. A reply is a script of steps -- byte pieces, pauses
(for a time or until an event is set), a dropped connection, or a hang that
lasts until the client goes away -- and every request is recorded.

Synchronise tests with events, not sleeps: :class:`Gate` holds a reply
until the test opens it, :meth:`ScriptedServer.wait_for_requests` waits for
requests to arrive, and each :class:`RecordedRequest` has a ``disconnected``
event set when the server notices that the client left.
"""

from __future__ import annotations

import json
import select
import socket
import ssl
import struct
import threading
import time
from collections import deque
from typing import Any, Callable, Deque, Dict, Iterable, List, Mapping, Optional, Tuple, Union
from urllib.parse import parse_qs, urlsplit

import attrs

from .._httpserver import RequestHandler, ThreadedServer
from ..engines.scripted import MAX_WAIT as MAX_WAIT  # the bound every scripted wait shares
from ..engines.scripted import Gate, Pause

__all__ = [
    "Drop",
    "Gate",
    "Hang",
    "Pause",
    "RecordedRequest",
    "Reply",
    "ScriptedServer",
    "Step",
]


@attrs.frozen
class Drop:
    """Close the connection abruptly: mid-body (no terminating chunk), or --
    as a reply's ``before_headers`` -- before any response at all, with a
    TCP reset."""


@attrs.frozen
class Hang:
    """Send nothing more until the client disconnects."""


Step = Union[bytes, Pause, Gate, Drop, Hang]


def _step(value: Union[Step, str]) -> Step:
    if isinstance(value, str):
        return value.encode("utf-8")
    return value


def _steps(values: Iterable[Union[Step, str]]) -> Tuple[Step, ...]:
    return tuple(_step(v) for v in values)


@attrs.frozen
class Reply:
    """One scripted response.

    :param status: the HTTP status.
    :param headers: extra headers (``Content-Type`` included).
    :param body: the script: byte pieces (each sent as one HTTP chunk) and
        control steps.
    :param coalesce: send all byte pieces in one write (still one HTTP chunk
        each): for benchmarks, where the server must not be the bottleneck.
    :param before_headers: a :class:`Pause` or :class:`Gate` to wait on before
        even the status line is sent (for timeouts before the first byte),
        or :class:`Drop` to reset the connection instead of answering.
    :param framing: how the body is delimited: ``"chunked"`` (transfer
        encoding), ``"length"`` (a ``Content-Length`` of all the byte
        pieces, sent piece by piece all the same) or ``"close"`` (no length:
        the body ends when the server closes the connection, as HTTP/1.0
        servers and many proxies do).
    :param keep_alive: False answers ``Connection: close`` and closes the
        connection after the reply.
    :param http_version: ``"1.1"`` or ``"1.0"`` (a 1.0 reply always closes
        the connection, and cannot be chunked).
    :param header_pause: seconds between one header line and the next: a
        server (or a proxy) whose headers drip in.
    """

    status: int = 200
    headers: Tuple[Tuple[str, str], ...] = ()
    body: Tuple[Step, ...] = attrs.field(default=(), converter=_steps)
    coalesce: bool = False
    before_headers: Union[Pause, Gate, Drop, None] = None
    framing: str = attrs.field(default="chunked", validator=attrs.validators.in_(("chunked", "length", "close")))
    keep_alive: bool = True
    http_version: str = attrs.field(default="1.1", validator=attrs.validators.in_(("1.1", "1.0")))
    header_pause: float = 0.0

    def __attrs_post_init__(self) -> None:
        if self.http_version == "1.0" and self.framing == "chunked":
            raise ValueError("an HTTP/1.0 reply cannot be chunked: use framing='length' or 'close'")

    @property
    def closes(self) -> bool:
        """Whether the connection is closed after this reply."""
        return not self.keep_alive or self.framing == "close" or self.http_version == "1.0"

    def framed(self, framing: str, *, keep_alive: bool = True, http_version: str = "1.1") -> Reply:
        """This reply with another framing (see the parameters)."""
        return attrs.evolve(self, framing=framing, keep_alive=keep_alive, http_version=http_version)

    def held(self, until: Union[Pause, Gate, Drop]) -> Reply:
        """This reply, sent only after ``until`` (a :class:`Pause` or an
        opened :class:`Gate`): not even the status line goes out before.
        ``Drop`` never sends it: the connection is reset instead."""
        return attrs.evolve(self, before_headers=until)

    @classmethod
    def sse(
        cls,
        events: Iterable[Union[Step, str]],
        *,
        status: int = 200,
        headers: Iterable[Tuple[str, str]] = (),
        coalesce: bool = False,
    ) -> Reply:
        """An event stream: ``events`` are already framed SSE pieces (see
        :mod:`!minillm.testing.transcripts`) and control steps."""
        return cls(
            status=status,
            headers=(("Content-Type", "text/event-stream"), *headers),
            body=tuple(events),
            coalesce=coalesce,
        )

    @classmethod
    def ndjson(
        cls, lines: Iterable[Union[Step, str]], *, status: int = 200, headers: Iterable[Tuple[str, str]] = ()
    ) -> Reply:
        """A newline-delimited JSON stream (Ollama's): ``lines`` are already
        framed pieces (see :func:`~minillm.testing.ollama_stream`) and control steps."""
        return cls(status=status, headers=(("Content-Type", "application/x-ndjson"), *headers), body=tuple(lines))

    @classmethod
    def eventstream(
        cls, messages: Iterable[Union[Step, str]], *, status: int = 200, headers: Iterable[Tuple[str, str]] = ()
    ) -> Reply:
        """An AWS event stream (Bedrock's ConverseStream): ``messages`` are
        encoded messages (see :func:`~minillm.testing.bedrock_stream`) -- or
        any byte pieces: split them to send a message in parts -- and
        control steps."""
        return cls(
            status=status,
            headers=(("Content-Type", "application/vnd.amazon.eventstream"), *headers),
            body=tuple(messages),
        )

    @classmethod
    def json(cls, data: Any, *, status: int = 200, headers: Iterable[Tuple[str, str]] = ()) -> Reply:
        """A JSON document."""
        return cls(
            status=status,
            headers=(("Content-Type", "application/json"), *headers),
            body=(json.dumps(data).encode("utf-8"),),
        )

    @classmethod
    def text(
        cls, text: str, *, status: int = 200, content_type: str = "text/plain", headers: Iterable[Tuple[str, str]] = ()
    ) -> Reply:
        """A text body (an HTML error page, say)."""
        return cls(status=status, headers=(("Content-Type", content_type), *headers), body=(text.encode("utf-8"),))


class RecordedRequest:
    """A request the server received."""

    def __init__(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes, client_address: Tuple[str, int]
    ) -> None:
        parts = urlsplit(target)
        #: (host, port) of the client: the same port means the same connection
        self.client_address = client_address
        self.method = method
        self.path = parts.path
        self.query: Dict[str, List[str]] = parse_qs(parts.query)
        #: lower-cased header names
        self.headers: Dict[str, str] = {k.lower(): v for k, v in headers.items()}
        self.body = body
        #: set when the server notices that the client went away mid-reply
        self.disconnected = threading.Event()
        #: set when the server has finished handling the request
        self.finished = threading.Event()

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<RecordedRequest {self.method} {self.path}>"


Handler = Callable[[RecordedRequest], Reply]


class ScriptedServer:
    """A threaded HTTP server on 127.0.0.1 that replies from a script.

    Queue replies with :meth:`reply` (served in order, per method and path)
    or answer dynamically with :meth:`route`. Unmatched requests get a 404
    JSON error. Use as a context manager, or call :meth:`start` and
    :meth:`stop`.
    """

    def __init__(self, *, tls: Optional[ssl.SSLContext] = None) -> None:
        #: a server-side TLS context: the server speaks HTTPS (``url`` says so)
        self._tls = tls
        self._lock = threading.Condition()
        self._queues: Dict[Tuple[Optional[str], Optional[str]], Deque[Reply]] = {}
        self._routes: Dict[Tuple[str, str], Handler] = {}
        self.requests: List[RecordedRequest] = []
        self._stopping = threading.Event()
        self._server: Optional[ThreadedServer] = None
        self._thread: Optional[threading.Thread] = None

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> ScriptedServer:
        """Start serving on a free loopback port; returns the server."""
        server = ThreadedServer(("127.0.0.1", 0), self._serve, tls=self._tls)
        self._server = server
        # A short poll interval makes stop() prompt (shutdown waits for a poll).
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="minillm-scripted-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        self._stopping.set()
        server = self._server
        if server is not None:
            server.shutdown()
            server.server_close()
            self._server = None

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port the server listens on (once started)."""
        assert self._server is not None, "the server is not started"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (``https://`` with TLS)"""
        return f"{'https' if self._tls is not None else 'http'}://127.0.0.1:{self.port}"

    # -- scripting -----------------------------------------------------------------

    def reply(self, *replies: Reply, method: Optional[str] = None, path: Optional[str] = None) -> None:
        """Queue ``replies`` for requests matching ``method`` and ``path``
        (None matches any). More specific queues are served first."""
        with self._lock:
            self._queues.setdefault((method, path), deque()).extend(replies)

    def route(self, method: str, path: str, handler: Handler) -> None:
        """Answer every ``method path`` request with ``handler(request)``,
        when no queued reply matches it."""
        with self._lock:
            self._routes[(method.upper(), path)] = handler

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> bool:
        """Wait until at least ``count`` requests have arrived."""
        with self._lock:
            return self._lock.wait_for(lambda: len(self.requests) >= count, timeout)

    # -- serving ---------------------------------------------------------------------

    def _queued(self, request: RecordedRequest) -> Optional[Reply]:
        """The next queued reply that matches ``request``, taken off its queue."""
        with self._lock:
            for key in ((request.method, request.path), (None, request.path), (request.method, None), (None, None)):
                queue = self._queues.get(key)
                if queue:
                    return queue.popleft()
        return None

    def _next_reply(self, request: RecordedRequest) -> Reply:
        queued = self._queued(request)
        if queued is not None:
            return queued
        with self._lock:
            handler = self._routes.get((request.method, request.path))
        if handler is not None:
            return handler(request)
        return Reply.json(
            {"error": {"message": f"no scripted reply for {request.method} {request.path}", "code": 404}},
            status=404,
        )

    def _serve(self, handler: RequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        request = RecordedRequest(
            handler.command, handler.path, dict(handler.headers.items()), body, handler.client_address
        )
        with self._lock:
            self.requests.append(request)
            self._lock.notify_all()
        try:
            reply = self._next_reply(request)
            self._send(handler, request, reply)
        except (ConnectionError, OSError):
            request.disconnected.set()
            handler.close_connection = True
        finally:
            request.finished.set()

    def _send(self, handler: RequestHandler, request: RecordedRequest, reply: Reply) -> None:
        if isinstance(reply.before_headers, Pause):
            self._stopping.wait(reply.before_headers.seconds)
        elif isinstance(reply.before_headers, Gate):
            self._wait_for_gate(reply.before_headers)
        elif isinstance(reply.before_headers, Drop):
            # Linger 0: closing sends a reset, not an orderly end.
            handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            handler.close_connection = True
            request.disconnected.set()
            return
        if reply.http_version == "1.0":
            handler.protocol_version = "HTTP/1.0"  # this response's status line only
        handler.send_response(reply.status)
        for name, value in reply.headers:
            handler.send_header(name, value)
            if reply.header_pause:
                handler.flush_headers()  # this line goes out now; the next one later
                self._stopping.wait(reply.header_pause)
        if reply.closes:
            handler.send_header("Connection", "close")
            handler.close_connection = True
        pieces = [p for p in reply.body if isinstance(p, bytes)]
        if reply.framing == "length":
            handler.send_header("Content-Length", str(sum(len(p) for p in pieces)))
        elif reply.framing == "chunked":
            handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        handler.wfile.flush()
        out = handler.wfile
        chunked = reply.framing == "chunked"
        if reply.coalesce:
            if chunked:
                out.write(b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces if p) + b"0\r\n\r\n")
            else:
                out.write(b"".join(pieces))
            out.flush()
            return
        for step in reply.body:
            if isinstance(step, bytes):
                if step:
                    out.write(b"%x\r\n%s\r\n" % (len(step), step) if chunked else step)
                    out.flush()
            elif isinstance(step, Pause):
                self._stopping.wait(step.seconds)
            elif isinstance(step, Gate):
                self._wait_for_gate(step)
            elif isinstance(step, Drop):
                handler.close_connection = True
                try:
                    handler.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            elif isinstance(step, Hang):
                self._wait_for_disconnect(handler, request)
                handler.close_connection = True
                return
        if chunked:
            out.write(b"0\r\n\r\n")
            out.flush()

    def _wait_for_gate(self, gate: Gate) -> None:
        deadline = time.monotonic() + MAX_WAIT
        while not gate.event.wait(0.05):
            if self._stopping.is_set() or time.monotonic() > deadline:
                return

    def _wait_for_disconnect(self, handler: RequestHandler, request: RecordedRequest) -> None:
        sock = handler.connection
        deadline = time.monotonic() + MAX_WAIT
        while not self._stopping.is_set() and time.monotonic() < deadline:
            readable, _, _ = select.select([sock], [], [], 0.05)
            if not readable:
                continue
            gone = _client_gone(sock)
            if gone is None:
                continue  # part of a TLS record: not yet known
            if gone:
                break
            # A pipelined request is not a disconnect; keep waiting.
            return
        request.disconnected.set()


def _client_gone(sock: socket.socket) -> Optional[bool]:
    """On a readable connection: whether the client closed it (True), sent
    something (False), or -- for TLS, mid-record -- cannot tell yet (None)."""
    if isinstance(sock, ssl.SSLSocket):
        # TLS allows no peeking: read. The connection closes after a hang
        # anyway, so a byte taken from a pipelined request is lost to nobody.
        sock.setblocking(False)
        try:
            return not sock.recv(1)
        except ssl.SSLWantReadError:
            return None
        except (ssl.SSLError, OSError):
            return True
        finally:
            sock.setblocking(True)
    try:
        return not sock.recv(1, socket.MSG_PEEK)
    except OSError:
        return True
