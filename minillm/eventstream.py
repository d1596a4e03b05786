"""Sans-IO framing of the AWS event stream (``application/vnd.amazon.eventstream``,
the body of Bedrock's ConverseStream): byte chunks in, messages out. The
only module that knows the binary format, both ways: the decoder for the
adapters and an encoder for tests and the loopback servers.

Unlike SSE and NDJSON (see :mod:`minillm.framing`), the format is binary and
length-prefixed, so a frame is found by arithmetic, not by scanning for a
delimiter. Each message is::

    total length    uint32 BE   the whole message, these 4 bytes included
    headers length  uint32 BE
    prelude CRC     uint32 BE   CRC32 of the 8 bytes above
    headers         (headers length bytes)
    payload         (the rest)
    message CRC     uint32 BE   CRC32 of every byte before it

and each header is a name (uint8 length + UTF-8) and a typed value (a type
byte, then the value: see :data:`HeaderValue`). The reference is the Smithy
"Amazon Event Stream Specification"; the known-answer tests use vectors from
AWS's own implementations (botocore, aws-c-event-stream).

Both CRCs are checked, as the specification requires: a transport that
corrupts or loses bytes must fail the stream, not mis-frame it. The prelude
is checked as soon as its 12 bytes are here, so an absurd length fails at
once instead of making the decoder wait for (and buffer) bytes that will
never make sense. Every malformation is a :class:`~minillm.errors.StreamError`
that says what was wrong; no struct, index or Unicode error escapes.
"""

from __future__ import annotations

import struct
import zlib
from datetime import datetime, timedelta, timezone
from typing import Dict, Iterable, Iterator, List, Mapping, Tuple, Union
from uuid import UUID

import attrs

from .errors import StreamError

__all__ = ["EventMessage", "HeaderValue", "MAX_MESSAGE_BYTES", "SizedInt", "encode_message", "iter_eventstream"]

#: The longest message accepted. The specification leaves its size limits
#: (24 MiB of payload, 128 KiB of headers) to services and asks clients not
#: to check them; this one bound is kept all the same, set at the largest
#: message those limits allow (plus 16 bytes of framing), because a stream
#: must not be able to claim unbounded memory. How a message splits its
#: bytes between headers and payload is not checked.
MAX_MESSAGE_BYTES = 24 * 1024 * 1024 + 128 * 1024 + 16

#: The type of a decoded header value. Each wire type has its own Python type
#: (so :func:`encode_message` can tell them apart again), except the four
#: integer widths, which all decode to ``int``: boolean true/false (types 0
#: and 1) are ``bool``; byte, short, integer and long (2 to 5: signed, 1, 2,
#: 4 and 8 bytes) ``int``; byte array (6) ``bytes``; string (7) ``str``;
#: timestamp (8: milliseconds since the epoch) an aware UTC ``datetime``;
#: uuid (9) ``UUID``.
HeaderValue = Union[bool, int, bytes, str, datetime, UUID]

_PRELUDE = struct.Struct(">III")
_PRELUDE_BYTES = _PRELUDE.size  # 12
_CRC = struct.Struct(">I")
_CRC_BYTES = _CRC.size  # 4
_MIN_MESSAGE_BYTES = _PRELUDE_BYTES + _CRC_BYTES  # 16: no headers, no payload
_LENGTH = struct.Struct(">H")  # of a byte array or string header value
_INT64 = struct.Struct(">q")  # a long, and a timestamp
#: The integer types (byte, short, integer, long): type byte -> their signed big-endian format.
_INTS: Dict[int, struct.Struct] = {2: struct.Struct(">b"), 3: struct.Struct(">h"), 4: struct.Struct(">i"), 5: _INT64}
_TYPE_OF_WIDTH = {s.size: t for t, s in _INTS.items()}
_BYTES, _STRING, _TIMESTAMP, _UUID = 6, 7, 8, 9
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MILLISECOND = timedelta(milliseconds=1)
#: What AWS's own decoders accept in a byte array or string value (2**15 - 1,
#: though the length field could say more): the encoder stays within it.
_MAX_VALUE_BYTES = 32767


@attrs.frozen
class EventMessage:
    """One message of an event stream. What it means is the adapter's to
    judge: for AWS protocols the ``:message-type`` header says whether it is
    an ``event`` (then ``:event-type`` names it), an ``exception`` (then
    ``:exception-type`` does) or an ``error`` (``:error-code`` and
    ``:error-message``), and ``payload`` is usually JSON."""

    headers: Dict[str, HeaderValue]
    payload: bytes


@attrs.frozen
class SizedInt:
    """An integer header value for :func:`encode_message` sent at a chosen
    width (1, 2, 4 or 8 bytes: byte, short, integer or long). A plain
    ``int`` is sent as a long, which holds any value; this is for a receiver
    that expects a narrower type. It decodes to a plain ``int``."""

    value: int
    width: int = attrs.field(validator=attrs.validators.in_(tuple(_TYPE_OF_WIDTH)))


def iter_eventstream(chunks: Iterable[bytes]) -> Iterator[EventMessage]:
    """Frame a byte stream as event stream messages.

    The bytes wait in one ``bytearray`` read from an offset, and the read
    part is cut off once per chunk: each byte is copied a fixed number of
    times however long the stream and however small its chunks (a message
    that arrives a byte at a time is not re-copied per byte).

    :param chunks: the body, in pieces of any size (empty ones too) split
        anywhere.
    :returns: an iterator of messages, each yielded as soon as its last byte
        is here. A body that ends between messages simply ends: whether the
        stream is *complete* is for the adapter to judge by the provider's
        terminal event.
    :raises StreamError: when a checksum fails, a length is impossible or
        larger than :data:`MAX_MESSAGE_BYTES`, the headers are malformed, or
        the body ends inside a message.
    """
    buffer = bytearray()
    start = 0  # where the unread bytes begin in ``buffer``
    total = 0  # the length of the message at ``start``, once its prelude is read
    headers_length = 0
    need = _PRELUDE_BYTES  # how many unread bytes the next step waits for
    for chunk in chunks:
        buffer += chunk
        while len(buffer) - start >= need:
            if not total:
                total, headers_length = _read_prelude(buffer, start)
                need = total
                continue
            yield _read_message(buffer, start, total, headers_length)
            start += total
            total = 0
            need = _PRELUDE_BYTES
        if start:
            # What is left is part of the last chunk: never longer than it.
            del buffer[:start]
            start = 0
    if buffer:
        if total:
            raise StreamError(f"the event stream ended inside a message: {len(buffer)} of its {total} bytes arrived")
        raise StreamError(
            f"the event stream ended inside a message: {len(buffer)} bytes arrived, "
            f"not even its {_PRELUDE_BYTES}-byte prelude"
        )


def _read_prelude(buffer: bytearray, start: int) -> Tuple[int, int]:
    """The total and header lengths of the message at ``start``, checked.

    The CRC is checked first: when it fails, the lengths are noise, and the
    error should say so rather than complain about them.
    """
    total, headers_length, expected = _PRELUDE.unpack_from(buffer, start)
    computed = zlib.crc32(buffer[start : start + 8])
    if computed != expected:
        raise StreamError(
            f"an event stream message prelude fails its CRC check (it says {expected:#010x}, "
            f"its bytes give {computed:#010x}): the stream is corrupt or out of step"
        )
    if total < _MIN_MESSAGE_BYTES:
        raise StreamError(
            f"an event stream message says it is {total} bytes long, "
            f"shorter than the {_MIN_MESSAGE_BYTES} bytes of its own framing"
        )
    if total > MAX_MESSAGE_BYTES:
        raise StreamError(
            f"an event stream message says it is {total} bytes long, "
            f"more than the {MAX_MESSAGE_BYTES} bytes a message may have"
        )
    if headers_length > total - _MIN_MESSAGE_BYTES:
        raise StreamError(
            f"an event stream message of {total} bytes says it has {headers_length} bytes of headers: "
            f"it has room for {total - _MIN_MESSAGE_BYTES}"
        )
    return total, headers_length


def _read_message(buffer: bytearray, start: int, total: int, headers_length: int) -> EventMessage:
    """The whole message at ``start``, its prelude already checked."""
    # Copied out through views that are released at once: a live view of
    # ``buffer`` would forbid the next chunk from growing it.
    with memoryview(buffer) as view, view[start : start + total] as region:
        message = bytes(region)
    end = total - _CRC_BYTES
    (expected,) = _CRC.unpack_from(message, end)
    with memoryview(message) as view:
        computed = zlib.crc32(view[:end])
    if computed != expected:
        raise StreamError(
            f"an event stream message fails its CRC check (it says {expected:#010x}, "
            f"its bytes give {computed:#010x}): the stream is corrupt"
        )
    headers_end = _PRELUDE_BYTES + headers_length
    return EventMessage(_read_headers(message, _PRELUDE_BYTES, headers_end), message[headers_end:end])


def _read_headers(data: bytes, pos: int, end: int) -> Dict[str, HeaderValue]:
    """The headers in ``data[pos:end]``. Every read is bounds-checked
    against ``end`` first: a header that runs past its block must not read
    the payload as its value."""
    headers: Dict[str, HeaderValue] = {}
    while pos < end:
        name_size = data[pos]
        pos += 1
        if not name_size:
            raise StreamError("an event stream message has a header with an empty name")
        if pos + name_size + 1 > end:  # the name and the type byte
            raise _overrun("a header name")
        name = _utf8(data[pos : pos + name_size], "a header name")
        pos += name_size
        kind = data[pos]
        pos += 1
        value: HeaderValue
        if kind <= 1:
            value = kind == 0
        elif kind in _INTS:
            fixed = _INTS[kind]
            if pos + fixed.size > end:
                raise _overrun(f"the value of the header {name!r}")
            (value,) = fixed.unpack_from(data, pos)
            pos += fixed.size
        elif kind in (_BYTES, _STRING):
            if pos + 2 > end:
                raise _overrun(f"the value of the header {name!r}")
            (length,) = _LENGTH.unpack_from(data, pos)
            pos += 2
            if pos + length > end:
                raise _overrun(f"the value of the header {name!r}")
            raw = data[pos : pos + length]
            pos += length
            value = raw if kind == _BYTES else _utf8(raw, f"the value of the header {name!r}")
        elif kind == _TIMESTAMP:
            if pos + 8 > end:
                raise _overrun(f"the value of the header {name!r}")
            (millis,) = _INT64.unpack_from(data, pos)
            pos += 8
            try:
                value = _EPOCH + millis * _MILLISECOND
            except OverflowError:
                raise StreamError(
                    f"the timestamp header {name!r} ({millis} ms from 1970) is out of the range of Python dates"
                ) from None
        elif kind == _UUID:
            if pos + 16 > end:
                raise _overrun(f"the value of the header {name!r}")
            value = UUID(bytes=data[pos : pos + 16])
            pos += 16
        else:
            raise StreamError(f"the event stream header {name!r} has an unknown value type ({kind})")
        if name in headers:
            raise StreamError(f"an event stream message has the header {name!r} twice")
        headers[name] = value
    return headers


def _overrun(what: str) -> StreamError:
    return StreamError(f"in an event stream message, {what} runs past the end of the headers")


def _utf8(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StreamError(f"in an event stream message, {what} is not valid UTF-8: {exc.reason}") from None


# -- encoding --------------------------------------------------------------------------------------


def encode_message(headers: Mapping[str, Union[HeaderValue, SizedInt]], payload: bytes = b"") -> bytes:
    """One event stream message, as a service sends it: what tests and the
    loopback servers play to the decoder. Headers go out in the mapping's
    order, each value as the wire type of its Python type (see
    :data:`HeaderValue`; an ``int`` as a long unless it is a
    :class:`SizedInt`).

    :raises ValueError: for what a conforming sender may not send (so a
        test cannot build it by accident): an empty or overlong name, an
        integer out of its type's range, a byte array or string over 32767
        bytes, a naive or sub-millisecond ``datetime``, a message over
        :data:`MAX_MESSAGE_BYTES`.
    :raises TypeError: for a value of no header type.
    """
    block = bytearray()
    for name, value in headers.items():
        raw_name = name.encode("utf-8")
        if not 1 <= len(raw_name) <= 255:
            raise ValueError(f"a header name is 1 to 255 bytes of UTF-8, not {len(raw_name)}: {name!r}")
        block.append(len(raw_name))
        block += raw_name
        block += _encode_value(name, value)
    total = _MIN_MESSAGE_BYTES + len(block) + len(payload)
    if total > MAX_MESSAGE_BYTES:
        raise ValueError(f"a message of {total} bytes is longer than the {MAX_MESSAGE_BYTES} bytes allowed")
    prelude = struct.pack(">II", total, len(block))
    parts: List[bytes] = [prelude, _CRC.pack(zlib.crc32(prelude)), bytes(block), bytes(payload)]
    crc = 0
    for part in parts:
        crc = zlib.crc32(part, crc)
    parts.append(_CRC.pack(crc))
    return b"".join(parts)


def _encode_value(name: str, value: Union[HeaderValue, SizedInt]) -> bytes:
    """The type byte and the value of one header."""
    # bool before int: True is an int too.
    if isinstance(value, bool):
        return bytes((0 if value else 1,))
    if isinstance(value, (int, SizedInt)):
        number, width = (value.value, value.width) if isinstance(value, SizedInt) else (value, 8)
        kind = _TYPE_OF_WIDTH[width]
        bound = 1 << (8 * width - 1)
        if not -bound <= number < bound:
            raise ValueError(f"the header {name!r} does not fit in {8 * width} bits: {number}")
        return bytes((kind,)) + _INTS[kind].pack(number)
    if isinstance(value, (bytes, str)):
        kind, raw = (_BYTES, value) if isinstance(value, bytes) else (_STRING, value.encode("utf-8"))
        if len(raw) > _MAX_VALUE_BYTES:
            raise ValueError(f"the header {name!r} is {len(raw)} bytes long, more than {_MAX_VALUE_BYTES}")
        return bytes((kind,)) + _LENGTH.pack(len(raw)) + raw
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            raise ValueError(f"the timestamp header {name!r} needs a time zone: {value!r}")
        millis, rest = divmod(value - _EPOCH, _MILLISECOND)
        if rest:
            raise ValueError(f"the timestamp header {name!r} carries whole milliseconds: {value!r}")
        return bytes((_TIMESTAMP,)) + _INT64.pack(millis)
    if isinstance(value, UUID):
        return bytes((_UUID,)) + value.bytes
    raise TypeError(f"the header {name!r} has a value of no event stream type: {type(value).__name__}")
