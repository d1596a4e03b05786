"""Sans-IO framing: byte chunks in, frames out. The only module that knows
Server-Sent Events and NDJSON.

SSE is parsed by sseclient-py, fed whatever the transport read (never byte
by byte). Line endings are normalised to LF first, carrying a trailing CR
over to the next chunk, so CRLF, LF and CR streams -- and mixtures, and a
CRLF split across two reads -- all frame the same way. Comment lines
(``: OPENROUTER PROCESSING``) never dispatch an event.

Note that sseclient-py yields a partial final event when the input ends
without a blank line. End of framing is therefore *not* completion: the
adapters require the provider's own terminal event.
"""

from __future__ import annotations

from typing import Iterable, Iterator, List, Protocol

from .errors import StreamError

__all__ = ["SSEFrame", "iter_ndjson", "iter_sse"]

_BOM = b"\xef\xbb\xbf"
# Byte values, not one-byte strings: "13 in chunk" is a plain memchr, several
# times faster than a substring search, and it runs once per chunk.
_CR = 13
_LF = 10


class SSEFrame(Protocol):
    """The shape of a dispatched SSE event (sseclient-py's ``Event`` has it):
    ``event`` is the event name (``"message"`` when unnamed), ``data`` the
    data lines joined with ``\\n``."""

    event: str
    data: str


def _lf_only(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Yield ``chunks`` with CRLF and lone CR turned into LF, each ending at
    a line end (or the end of the body).

    Most streams never contain a CR: their chunks pass through untouched
    until the first one appears, and only then is each chunk rewritten.
    Pieces of one long line are joined before they are passed on: framing
    them one by one would copy the line over and over (sseclient-py grows a
    line by concatenation).
    """
    source = iter(chunks)
    pending: List[bytes] = []
    for chunk in source:
        if chunk.startswith(_BOM):
            chunk = chunk[len(_BOM) :]
        if _CR in chunk:
            yield from _rewrite_cr(chunk, source)
            return
        if _LF in chunk:
            yield chunk
        elif chunk:
            pending.append(chunk)
        break
    for chunk in source:
        if _CR in chunk:
            yield from _rewrite_cr(b"".join(pending) + chunk, source)
            return
        if _LF in chunk:
            if pending:
                pending.append(chunk)
                chunk = b"".join(pending)
                pending = []
            yield chunk
        else:
            pending.append(chunk)
    if pending:
        yield b"".join(pending)


def _rewrite_cr(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    carry_cr = False
    pending: List[bytes] = []
    chunk = first
    while True:
        if carry_cr:
            chunk = b"\r" + chunk
        # A trailing CR may be the first half of a CRLF: decide with the next read.
        carry_cr = chunk.endswith(b"\r")
        if carry_cr:
            chunk = chunk[:-1]
        chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if b"\n" in chunk or carry_cr:
            if pending:
                pending.append(chunk)
                chunk = b"".join(pending)
                pending = []
            if chunk:
                yield chunk
        elif chunk:
            pending.append(chunk)
        try:
            chunk = next(rest)
        except StopIteration:
            break
    if pending:
        yield b"".join(pending)
    if carry_cr:
        yield b"\n"


def _without_event_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Drop ``event:`` lines from an LF-only byte stream, whole lines only
    (a line cut between two chunks waits for the rest of it)."""
    carry = b""
    for chunk in chunks:
        if carry:
            chunk = carry + chunk
            carry = b""
        if b"event:" not in chunk:
            yield chunk
            continue
        cut = chunk.rfind(b"\n") + 1
        chunk, carry = chunk[:cut], chunk[cut:]
        if chunk.startswith(b"event:") and chunk.count(b"event:") == 1:
            yield chunk[chunk.index(b"\n") + 1 :]  # the usual shape: one named event per read
        elif chunk:
            yield b"\n".join(line for line in chunk.split(b"\n") if not line.startswith(b"event:"))
    if carry and not carry.startswith(b"event:"):
        yield carry


def iter_sse(chunks: Iterable[bytes], *, keep_event_names: bool = True) -> Iterator[SSEFrame]:
    """Frame a byte stream as Server-Sent Events.

    :param chunks: the body, in pieces of any size split anywhere.
    :param keep_event_names: False drops the ``event:`` lines before they
        are framed, for protocols whose data repeat the name as ``type``
        (Anthropic, the Responses API). sseclient-py spends as much on a
        line as on the JSON it carries: a stream with one name line per
        event frames in about half the time without them. Every frame's
        ``event`` is then ``"message"``.
    :returns: an iterator of frames with ``.event`` and ``.data``.
    :raises StreamError: when the bytes are not valid UTF-8.
    """
    import sseclient

    source = _lf_only(chunks) if keep_event_names else _without_event_lines(_lf_only(chunks))
    events: Iterator[SSEFrame] = sseclient.SSEClient(source).events()
    try:
        yield from events
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
