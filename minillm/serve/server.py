"""``minillm serve``: any engine as an OpenAI-compatible HTTP server.

A threaded HTTP/1.1 server (the standard library's), one thread per
connection, in front of :class:`~minillm.serve.app.OpenAIApp`. A streaming
answer goes out with chunked transfer encoding, a piece per event. A
client that goes away mid-stream stops its generation at once -- a
watcher notices the closed connection even while the engine is between
tokens -- and the server keeps serving.
"""

from __future__ import annotations

import hmac
import logging
import select
import socket
import threading
from typing import Any, Callable, Optional

from .._httpserver import RequestHandler, ThreadedServer
from ..engines.base import Engine, GenerationContext
from .app import AppReply, OpenAIApp, error_reply

__all__ = ["EngineServer"]

log = logging.getLogger("minillm.serve")

#: How often the disconnect watcher looks at a streaming connection.
_WATCH_INTERVAL = 0.05


class _DisconnectWatcher:
    """Calls ``on_disconnect`` when the peer closes a connection that is
    streaming: the engine may be silent for a long time between tokens, so
    waiting for the next write to fail is not enough."""

    def __init__(self, sock: socket.socket, on_disconnect: Any) -> None:
        self._sock = sock
        self._on_disconnect = on_disconnect
        self._done = threading.Event()
        self.disconnected = False
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._watch, name="minillm-serve-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def _watch(self) -> None:
        while not self._done.is_set():
            try:
                readable, _, _ = select.select([self._sock], [], [], _WATCH_INTERVAL)
                if not readable:
                    continue
                if self._sock.recv(1, socket.MSG_PEEK):
                    return  # the client sent its next request: it is still there
            except (OSError, ValueError):
                pass  # reset, or closed under us: gone either way
            self.disconnected = True
            self._on_disconnect()
            return


class EngineServer:
    """Serves ``engine`` on ``host:port`` (port 0: any free port).

    Use as a context manager, or :meth:`start` and :meth:`stop`;
    :meth:`serve_forever` blocks (``minillm serve``).

    :param own_engine: clean the engine up on :meth:`stop`.
    :param api_key: when given, every request but ``GET /health`` (which a
        load balancer probes without credentials) must carry
        ``Authorization: Bearer <api_key>``; others get OpenAI's 401.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        own_engine: bool = True,
        api_key: Optional[str] = None,
    ) -> None:
        self.app = OpenAIApp(engine)
        self._expected = None if api_key is None else b"Bearer " + api_key.encode("utf-8")
        self._counts_lock = threading.Lock()
        #: Requests answered so far, and how many of them were refused.
        self.requests = 0
        self.refused = 0
        self._host = host
        self._port = port
        self._own_engine = own_engine
        self._server: Optional[ThreadedServer] = None
        self._thread: Optional[threading.Thread] = None
        #: the thread in serve_forever(), which shutdown() waits for
        self._serving: Optional[threading.Thread] = None

    def start(self) -> EngineServer:
        """Start the engine, then listen, serving from a background thread."""
        self._bind()
        self._thread = self._serving = threading.Thread(target=self._serve, name="minillm-serve", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self, on_ready: Optional[Callable[[EngineServer], object]] = None) -> None:
        """Start the engine, listen, and serve on this thread until
        :meth:`stop` (or Ctrl-C) ends it.

        :param on_ready: called once the server listens (its port is known).
        """
        self._bind()
        if on_ready is not None:
            on_ready(self)
        self._serving = threading.current_thread()
        try:
            self._serve()
        finally:
            self._serving = None
            self.stop()

    def _bind(self) -> None:
        self.app.engine.start()
        self._server = ThreadedServer((self._host, self._port), self._answer, request_log=log)

    def _serve(self) -> None:
        server = self._server
        if server is not None:
            server.serve_forever(poll_interval=0.05)

    def stop(self, drain_timeout: float = 10.0) -> None:
        """Stop listening, let running generations finish (up to
        ``drain_timeout`` seconds), then clean the engine up (when owned)."""
        server, self._server = self._server, None
        if server is not None:
            serving = self._serving
            if serving is not None and serving is not threading.current_thread():
                server.shutdown()  # waits for the serving loop to end
            server.server_close()
        if self._own_engine:
            self.app.engine.drain(drain_timeout)
            self.app.engine.cleanup()

    # -- answering -------------------------------------------------------------

    def _answer(self, handler: RequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length > 0 else b""
        ctx = GenerationContext()
        if self._authorized(handler):
            reply = self.app.handle(handler.command, handler.path, body, ctx)
        else:
            reply = error_reply(
                401,
                "Incorrect API key provided: send it as 'Authorization: Bearer <key>'",
                "invalid_request_error",
                code="invalid_api_key",
            )
        with self._counts_lock:
            self.requests += 1
            self.refused += reply.status >= 400
        if reply.streaming:
            self._stream(handler, reply, ctx)
        else:
            self._whole(handler, reply)

    def _authorized(self, handler: RequestHandler) -> bool:
        route = handler.path.split("?", 1)[0].rstrip("/")
        if self._expected is None or route in ("/health", "/v1/health"):
            return True
        given = (handler.headers.get("Authorization") or "").encode("utf-8", "replace")
        return hmac.compare_digest(given, self._expected)  # in constant time: no guessing it byte by byte

    @staticmethod
    def _head(handler: RequestHandler, reply: AppReply) -> None:
        handler.send_response(reply.status)
        for name, value in reply.headers:
            handler.send_header(name, value)

    def _whole(self, handler: RequestHandler, reply: AppReply) -> None:
        data = b"".join(reply.body)
        self._head(handler, reply)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _stream(self, handler: RequestHandler, reply: AppReply, ctx: GenerationContext) -> None:
        engine = self.app.engine
        watcher = _DisconnectWatcher(handler.connection, lambda: engine.abort(ctx))
        body = reply.body
        out = handler.wfile
        try:
            self._head(handler, reply)
            handler.send_header("Transfer-Encoding", "chunked")
            handler.end_headers()
            out.flush()
            watcher.start()
            for piece in body:
                if watcher.disconnected:
                    break
                out.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                out.flush()
            else:
                out.write(b"0\r\n\r\n")
                out.flush()
                return
            handler.close_connection = True
        except OSError:
            # The client went away while we wrote: stop its generation.
            engine.abort(ctx)
            handler.close_connection = True
        finally:
            watcher.stop()
            close = getattr(body, "close", None)
            if close is not None:
                close()

    @property
    def port(self) -> int:
        assert self._server is not None, "the server is not started"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://host:port`` (add ``/v1`` for an OpenAI client's base URL)."""
        host = self._host if ":" not in self._host else f"[{self._host}]"
        return f"http://{host}:{self.port}"

    def __enter__(self) -> EngineServer:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()
