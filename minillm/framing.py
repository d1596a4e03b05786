"""Sans-IO framing: byte chunks in, frames out. The only module that knows
Server-Sent Events and NDJSON.

SSE framing is done in three steps, each at C speed per read rather than
per line:

1. Line ends are normalised to LF (a trailing CR is held back until the
   next read says whether it is half of a CRLF), so CRLF, LF and CR
   streams -- mixtures too -- frame the same way; a leading UTF-8 BOM is
   dropped, even when it arrives over several reads.
2. The body is cut into events on blank lines (``b"\\n\\n"``): one
   ``rfind`` and one ``split`` per read. What follows the last blank line
   waits for the next read. At the end of the body it is dropped, as the
   SSE specification says: an event is only dispatched by its blank line.
   So end of framing is *not* completion either way: the adapters require
   the provider's own terminal event.
3. Each event is parsed by sseclient-py's own parser (``SSEClient.events``,
   fed whole events: its per-line stitching in ``_read`` is replaced by the
   cut above) -- except the two shapes that nearly every event of every
   provider has, ``data: ...`` and ``event: ...`` + ``data: ...``, one line
   each. Those are read off with a few string operations that give exactly
   what sseclient-py gives for them (a test checks it against sseclient-py
   on generated streams), because its line loop costs more than the JSON
   decoding of the event. Comments, multi-line data, ``id:``/``retry:``
   fields and anything unusual still go through sseclient-py.

Frames are sseclient-py ``Event`` objects either way. A single line longer
than :data:`MAX_LINE_BYTES` is a :class:`~minillm.errors.StreamError`, so a
server that never ends a line cannot grow memory without bound.
"""

from __future__ import annotations

from itertools import chain
from typing import Any, Callable, Iterable, Iterator, List, Optional, Protocol

from .errors import StreamError

__all__ = ["MAX_LINE_BYTES", "SSEFrame", "iter_ndjson", "iter_sse"]

#: The longest SSE line accepted (without its line end): 16 MiB.
MAX_LINE_BYTES = 16 * 1024 * 1024

_BOM = b"\xef\xbb\xbf"
# A byte value, not a one-byte string: "13 in chunk" is a plain memchr.
_CR = 13


class SSEFrame(Protocol):
    """The shape of a dispatched SSE event (sseclient-py's ``Event`` has it):
    ``event`` is the event name (``"message"`` when unnamed), ``data`` the
    data lines joined with ``\\n``."""

    event: str
    data: str


_parser_class: Any = None


def _block_parser() -> Any:
    """An sseclient-py client that parses one whole event at a time (see
    ``BlockParser.parse``); one per stream."""
    global _parser_class
    if _parser_class is None:
        import sseclient  # imported on first use: ``import minillm`` stays light

        class BlockParser(sseclient.SSEClient):
            """sseclient-py's own parser, fed events already cut at their
            blank line (which they keep, so the stock ``_read`` would cut
            them the same way: this one only skips its per-line stitching)."""

            _event_source: Iterable[bytes]

            def _read(self) -> Iterator[bytes]:
                return iter(self._event_source)

            def parse(self, block: bytes) -> Iterator[SSEFrame]:
                self._event_source = (block + b"\n\n",)
                return self.events()

        _parser_class = BlockParser
    return _parser_class(())


def _parse_blocks(parser: Any, blocks: Iterable[bytes], keep_event_names: bool) -> Iterator[SSEFrame]:
    """Frames from whole events (LF line ends, without their blank line),
    by sseclient-py: events of an unusual shape, reads that are not valid
    UTF-8 (sseclient-py raises at the event that is not) and reads larger
    than :data:`MAX_LINE_BYTES` (whose lines are measured here first)."""
    limit = MAX_LINE_BYTES
    for block in blocks:
        if len(block) > limit and max(map(len, block.split(b"\n"))) > limit:
            raise _line_too_long()
        for event in parser.parse(block):
            if not keep_event_names:
                event.event = "message"
            yield event


def _line_after(piece: bytes, line: int) -> int:
    """The length of the unfinished line once ``piece`` is added to an
    unfinished event whose unfinished line has ``line`` bytes.

    :raises StreamError: when a line grows longer than :data:`MAX_LINE_BYTES`.
    """
    limit = MAX_LINE_BYTES
    first = piece.find(b"\n")
    if first < 0:
        line += len(piece)
    elif line + first > limit or (len(piece) > limit and max(map(len, piece.split(b"\n"))) > limit):
        raise _line_too_long()
    else:
        line = len(piece) - piece.rfind(b"\n") - 1
    if line > limit:
        raise _line_too_long()
    return line


def _line_too_long() -> StreamError:
    return StreamError(f"the stream has a line longer than {MAX_LINE_BYTES} bytes")


def iter_sse(chunks: Iterable[bytes], *, keep_event_names: bool = True) -> Iterator[SSEFrame]:
    """Frame a byte stream as Server-Sent Events.

    :param chunks: the body, in pieces of any size split anywhere.
    :param keep_event_names: False gives every frame the ``event``
        ``"message"``, for protocols whose data repeat the name as ``type``
        (Anthropic, the Responses API).
    :returns: an iterator of frames with ``.event`` and ``.data``. An event
        not ended by a blank line before the end of the body is not
        dispatched.
    :raises StreamError: when the bytes are not valid UTF-8, or a line is
        longer than :data:`MAX_LINE_BYTES`.
    """
    import sseclient

    frame: Callable[..., SSEFrame] = sseclient.Event  # Event(id, event, data): its stub omits __init__
    parser = _block_parser()
    source = iter(chunks)
    # A BOM may arrive over several reads: look at the first three bytes.
    first = b""
    for piece in source:
        first += piece
        if len(first) >= 3 or not _BOM.startswith(first):
            break
    if first.startswith(_BOM):
        first = first[3:]

    limit = MAX_LINE_BYTES
    pending: List[bytes] = []  # the unfinished event, in reads (joined once its blank line is here)
    line = 0  # the length of the unfinished line at the end of ``pending``
    carry_cr = False
    try:
        for chunk in chain((first,), source):
            if carry_cr or _CR in chunk:
                if carry_cr:
                    chunk = b"\r" + chunk
                # A trailing CR may be the first half of a CRLF: decide with the next read.
                carry_cr = chunk.endswith(b"\r")
                if carry_cr:
                    chunk = chunk[:-1]
                chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            if pending:
                if b"\n\n" not in chunk and not (chunk[:1] == b"\n" and pending[-1].endswith(b"\n")):
                    # Still no blank line. The pieces wait in a list: joining
                    # them now would copy a long line over and over.
                    if chunk:
                        line = _line_after(chunk, line)
                        pending.append(chunk)
                    continue
                pending.append(chunk)
                chunk = b"".join(pending)
                pending = []
            end = chunk.rfind(b"\n\n") + 2
            if end == 1:  # no blank line in this read
                if chunk:
                    line = _line_after(chunk, 0)
                    pending = [chunk]
                continue
            rest = b""
            if end != len(chunk):
                rest = chunk[end:]
                chunk = chunk[:end]
            text: Optional[str] = None
            if len(chunk) <= limit:  # longer: the lines need measuring
                try:
                    text = chunk.decode()
                except UnicodeDecodeError:
                    pass  # sseclient-py decodes line by line: it raises at the bad event
            if text is None:
                yield from _parse_blocks(parser, chunk.split(b"\n\n")[:-1], keep_event_names)
            else:
                # The usual read: whole events, valid UTF-8, lines of sane length.
                blocks = text.split("\n\n")
                blocks.pop()  # "" or "\n": what follows the last blank line, never an event
                for block in blocks:
                    if block.startswith("data:"):
                        if "\n" not in block:
                            yield frame(None, "message", block[6:] if block.startswith(" ", 5) else block[5:])
                            continue
                    elif block.startswith("event:"):
                        # Exactly an event: line and a data: line
                        cut = block.find("\n") + 1
                        if cut and block.startswith("data:", cut) and block.find("\n", cut) < 0:
                            data = block[cut + 6 :] if block.startswith(" ", cut + 5) else block[cut + 5 :]
                            if keep_event_names:
                                name = block[7 : cut - 1] if block.startswith(" ", 6) else block[6 : cut - 1]
                                yield frame(None, name or "message", data)
                            else:
                                yield frame(None, "message", data)
                            continue
                    # Any other shape: sseclient-py parses it.
                    for event in parser.parse(block.encode()):
                        if not keep_event_names:
                            event.event = "message"
                        yield event
            if rest:
                line = _line_after(rest, 0)
                pending = [rest]
        if carry_cr and pending and pending[-1].endswith(b"\n"):
            # The body ended on a CR: a line end, and here a blank line that ends the event.
            yield from _parse_blocks(parser, (b"".join(pending)[:-1],), keep_event_names)
        # Anything else left in ``pending`` is an unfinished event: not dispatched.
    except UnicodeDecodeError as exc:
        raise StreamError(f"the stream is not valid UTF-8: {exc.reason}") from exc


def iter_ndjson(chunks: Iterable[bytes]) -> Iterator[str]:
    """Frame a byte stream as newline-delimited JSON: one string per
    non-blank line, without surrounding whitespace (CRLF included). A final
    line without a newline is yielded as well, for the adapter to judge.

    :raises StreamError: when the bytes are not valid UTF-8.
    """
    buffer = b""
    try:
        for chunk in chunks:
            buffer += chunk
            if b"\n" not in chunk:
                continue
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                line = line.strip()
                if line:
                    yield line.decode("utf-8")
        buffer = buffer.strip()
        if buffer:
            yield buffer.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StreamError(f"the stream is not valid UTF-8: {exc.reason}") from exc
