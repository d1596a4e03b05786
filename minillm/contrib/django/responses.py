"""``stream_response``: a :class:`~minillm.TrackedStream` as a Django
``StreamingHttpResponse`` that settles exactly once.

The response iterates a generator that holds the stream in a ``with``
block. The WSGI server closes the response when it is done with it --
after the last byte, and also when the browser went away mid-answer --
and Django closes the generator, which leaves the block: the stream stops
reading and settles (as a cancellation when it was cut short).

Under ASGI, Django reads a synchronous iterator one chunk at a time in a
worker thread: a disconnect is acted on between chunks, so a chunk being
waited for is read first, and settlement comes then (or from the stream's
finalizer); Django also warns that it consumes a synchronous iterator. For
an immediate stop, serve these views under WSGI.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Optional

from ...errors import MiniLLMError
from ...serialization import cost_to_dict
from ...streaming import TrackedStream

if TYPE_CHECKING:  # pragma: no cover
    from django.http import StreamingHttpResponse

__all__ = ["stream_response"]


def stream_response(
    stream: TrackedStream,
    *,
    sse: bool = False,
    status: int = 200,
    headers: Optional[Mapping[str, str]] = None,
) -> StreamingHttpResponse:
    """A response that streams ``stream``'s text and settles it once.

    :param sse: send Server-Sent Events -- ``data: {"text": ...}`` per piece,
        then ``event: done`` with the settled cost (or ``event: error``) --
        instead of plain text.
    :param headers: extra response headers.
    """
    from django.http import StreamingHttpResponse

    body = _events(stream) if sse else _text(stream)
    response = StreamingHttpResponse(
        body,
        status=status,
        content_type="text/event-stream" if sse else "text/plain; charset=utf-8",
    )
    # Proxies (nginx) must pass each piece on at once, and nobody may cache it.
    response["X-Accel-Buffering"] = "no"
    response["Cache-Control"] = "no-cache"
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _text(stream: TrackedStream) -> Iterator[str]:
    with stream:
        yield from stream.text_stream()


def _events(stream: TrackedStream) -> Iterator[str]:
    try:
        with stream:
            for piece in stream.text_stream():
                yield _event({"text": piece})
    except MiniLLMError as exc:
        # The status line went out long ago: say what happened in the stream.
        yield _event({"error": str(exc), "partial_text": getattr(exc, "partial_text", "")}, "error")
        return
    cost = stream.cost
    yield _event({"cost": cost_to_dict(cost) if cost is not None else None}, "done")


def _event(data: Mapping[str, Any], name: Optional[str] = None) -> str:
    head = f"event: {name}\n" if name else ""
    return f"{head}data: {json.dumps(data, separators=(',', ':'))}\n\n"
