"""The threaded HTTP/1.1 server under ``minillm serve`` and
:class:`~minillm.testing.ScriptedServer`: one thread per connection,
daemon threads, and every request handed to one ``answer`` callable."""

from __future__ import annotations

import logging
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional, Tuple

__all__ = ["RequestHandler", "ThreadedServer"]


class ThreadedServer(ThreadingHTTPServer):
    """Serves ``answer(handler)`` for every request, whatever its method.

    :param request_log: where to log one line per request (None: nowhere).
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
    ) -> None:
        self.answer = answer
        self.request_log = request_log
        super().__init__(address, RequestHandler)


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
            self.server.request_log.info("%s %s", self.address_string(), format % args)
