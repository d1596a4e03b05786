"""The threaded HTTP/1.1 server under ``minillm serve`` and
:class:`~minillm.testing.ScriptedServer`: one thread per connection,
daemon threads, every request handed to one ``answer`` callable, and TLS
when given a server context (each handshake on its connection's thread, so
a client that never finishes one holds up nobody else)."""

from __future__ import annotations

import logging
import socket
import ssl
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional, Tuple

from .redaction import Redactor

__all__ = ["RequestHandler", "ThreadedServer"]

#: Masks key-looking query parameters and bearer tokens in log lines.
_SCRUB = Redactor()

#: How long a TLS client may take over its handshake.
_HANDSHAKE_TIMEOUT = 10.0


class ThreadedServer(ThreadingHTTPServer):
    """Serves ``answer(handler)`` for every request, whatever its method.

    :param request_log: where to log one line per request (None: nowhere).
    :param tls: a server-side :class:`ssl.SSLContext`: speak HTTPS.
    """

    daemon_threads = True
    allow_reuse_address = True
    #: Room for many clients connecting at once: the default of 5 makes the
    #: rest wait for SYN retransmits (a second or more) or be reset.
    request_queue_size = 128

    def __init__(
        self,
        address: Tuple[str, int],
        answer: Callable[[RequestHandler], None],
        *,
        request_log: Optional[logging.Logger] = None,
        tls: Optional[ssl.SSLContext] = None,
    ) -> None:
        self.answer = answer
        self.request_log = request_log
        super().__init__(address, RequestHandler)
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    def finish_request(self, request: Any, client_address: Any) -> None:
        if isinstance(request, ssl.SSLSocket):
            request.settimeout(_HANDSHAKE_TIMEOUT)
            try:
                request.do_handshake()
            except (OSError, ssl.SSLError):
                return  # the client gave up, or does not trust us: nothing to answer
            request.settimeout(None)
        super().finish_request(request, client_address)


class RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ThreadedServer

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (ConnectionError, socket.timeout, OSError):
            self.close_connection = True  # the client went away: nothing to answer

    def do_GET(self) -> None:
        self.server.answer(self)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        if self.server.request_log is not None:
            # A request line may carry a key in its query string (?key=...).
            self.server.request_log.info("%s %s", self.address_string(), _SCRUB.scrub(format % args))
