"""AWS event stream framing (Bedrock's ConverseStream body), fed byte pieces split anywhere."""

from __future__ import annotations

import json
import struct
import zlib
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple, Type, Union
from uuid import UUID

import pytest
from hypothesis import given, settings, strategies

from minillm.errors import StreamError
from minillm.eventstream import (
    MAX_MESSAGE_BYTES,
    EventMessage,
    HeaderValue,
    SizedInt,
    encode_message,
    iter_eventstream,
)
from minillm.testing import Reply, ScriptedServer

from .conftest import finishes

UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Headers = Mapping[str, Union[HeaderValue, SizedInt]]


def decode(pieces: Iterable[bytes]) -> List[Tuple[Dict[str, HeaderValue], bytes]]:
    return [(m.headers, m.payload) for m in iter_eventstream(pieces)]


def plain(headers: Headers) -> Dict[str, HeaderValue]:
    """What ``headers`` decode to: a sized integer is an integer."""
    return {name: v.value if isinstance(v, SizedInt) else v for name, v in headers.items()}


def raw_message(
    block: bytes, payload: bytes = b"", *, total: Optional[int] = None, headers_length: Optional[int] = None
) -> bytes:
    """A message around a hand-made header block, with both CRCs right (unless
    the lengths lie): for malformations :func:`encode_message` refuses to build."""
    total = 16 + len(block) + len(payload) if total is None else total
    prelude = struct.pack(">II", total, len(block) if headers_length is None else headers_length)
    body = prelude + struct.pack(">I", zlib.crc32(prelude)) + block + payload
    return body + struct.pack(">I", zlib.crc32(body))


def string_header(name: str, value: str) -> bytes:
    raw = value.encode()
    return bytes([len(name)]) + name.encode() + b"\x07" + struct.pack(">H", len(raw)) + raw


def failure(pieces: Iterable[bytes]) -> str:
    with pytest.raises(StreamError) as caught:
        decode(pieces)
    return str(caught.value)


# -- known answers: vectors from AWS's own test suites ------------------------------------------
# The same bytes are in botocore (tests/unit/test_eventstream.py) and aws-c-event-stream
# (tests/message_deserializer_test.c): two AWS implementations agree on them.

KNOWN: List[Tuple[str, bytes, Dict[str, Any], bytes]] = [
    ("empty", b"\x00\x00\x00\x10\x00\x00\x00\x00\x05\xc2H\xeb}\x98\xc8\xff", {}, b""),
    (
        "int8",
        b"\x00\x00\x00\x17\x00\x00\x00\x07)\x86\x01X\x04byte\x02\xff\xc2\xf8i\xdc",
        {"byte": SizedInt(-1, 1)},
        b"",
    ),
    (
        "int16",
        b"\x00\x00\x00\x19\x00\x00\x00\tq\x0e\x92>\x05short\x03\xff\xff\xb2|\xb6\xcc",
        {"short": SizedInt(-1, 2)},
        b"",
    ),
    (
        "int32",
        b"\x00\x00\x00\x1d\x00\x00\x00\r\x83\xe3\xf0\xe7\x07integer\x04\xff\xff\xff\xff\x8b\x8e\x12\xeb",
        {"integer": SizedInt(-1, 4)},
        b"",
    ),
    (
        "int64",
        b"\x00\x00\x00\x1e\x00\x00\x00\x0e]J\xdb\x8d\x04long\x05\xff\xff\xff\xff\xff\xff\xff\xffK\xc22\xda",
        {"long": -1},
        b"",
    ),
    ("payload", b"\x00\x00\x00\x1d\x00\x00\x00\x00\xfdR\x8cZ{'foo':'bar'}\xc3e96", {}, b"{'foo':'bar'}"),
    (
        "string header",
        b"\x00\x00\x00=\x00\x00\x00 \x07\xfd\x83\x96\x0ccontent-type\x07\x00\x10application/json"
        b"{'foo':'bar'}\x8d\x9c\x08\xb1",
        {"content-type": "application/json"},
        b"{'foo':'bar'}",
    ),
    (
        "all header types",
        b"\x00\x00\x00\x62\x00\x00\x00\x52\x03\xb5\xcb\x9c"
        b"\x010\x00\x011\x01\x012\x02\x02\x013\x03\x00\x03"
        b"\x014\x04\x00\x00\x00\x04\x015\x05\x00\x00\x00\x00\x00\x00\x00\x05"
        b"\x016\x06\x00\x05bytes\x017\x07\x00\x04utf8"
        b"\x018\x08\x00\x00\x00\x00\x00\x00\x00\x08\x019\x090123456789abcdef"
        b"\x63\x35\x36\x71",
        {
            "0": True,
            "1": False,
            "2": SizedInt(2, 1),
            "3": SizedInt(3, 2),
            "4": SizedInt(4, 4),
            "5": 5,
            "6": b"bytes",
            "7": "utf8",
            "8": EPOCH + timedelta(milliseconds=8),
            "9": UUID(bytes=b"0123456789abcdef"),
        },
        b"",
    ),
    (
        "error event",
        b"\x00\x00\x00\x52\x00\x00\x00\x42\xbf\x23\x63\x7e"
        b"\x0d:message-type\x07\x00\x05error"
        b"\x0b:error-code\x07\x00\x04code"
        b"\x0e:error-message\x07\x00\x07message"
        b"\x6b\x6c\xea\x3d",
        {":message-type": "error", ":error-code": "code", ":error-message": "message"},
        b"",
    ),
]


@pytest.mark.parametrize(("wire", "headers", "payload"), [k[1:] for k in KNOWN], ids=[k[0] for k in KNOWN])
def test_aws_vectors_decode_and_the_encoder_spells_them_byte_for_byte(
    wire: bytes, headers: Headers, payload: bytes
) -> None:
    assert decode([wire]) == [(plain(headers), payload)]
    assert encode_message(headers, payload) == wire


def test_the_aws_vectors_decode_back_to_back_in_one_stream() -> None:
    body = b"".join(k[1] for k in KNOWN)
    assert decode([body]) == [(plain(k[2]), k[3]) for k in KNOWN]


# -- round trips ----------------------------------------------------------------------------------

EVERY_TYPE: Dict[str, Union[HeaderValue, SizedInt]] = {
    "true": True,
    "false": False,
    "byte min": SizedInt(-128, 1),
    "byte max": SizedInt(127, 1),
    "short min": SizedInt(-32768, 2),
    "short max": SizedInt(32767, 2),
    "integer min": SizedInt(-(2**31), 4),
    "integer max": SizedInt(2**31 - 1, 4),
    "long min": -(2**63),
    "long max": 2**63 - 1,
    "long sized": SizedInt(42, 8),
    "bytes": b"\x00\xff binary",
    "no bytes": b"",
    "string": "h\u00e9llo \u20ac \U0001f600",
    "no string": "",
    "long string": "x" * 32767,
    "timestamp": datetime(2024, 5, 17, 12, 30, 45, 123000, tzinfo=UTC),
    "before 1970": datetime(1969, 7, 20, 20, 17, 40, tzinfo=UTC),
    "another zone": datetime(2024, 1, 1, 9, 0, tzinfo=timezone(timedelta(hours=9))),
    "uuid": UUID("12345678-1234-5678-1234-567812345678"),
    "n\u00e4me " + "x" * 249: "a 255-byte name",
}


def test_every_header_value_type_round_trips() -> None:
    wire = encode_message(EVERY_TYPE, b"payload")
    (message,) = iter_eventstream([wire])
    assert message == EventMessage(plain(EVERY_TYPE), b"payload")
    assert [type(v) for v in message.headers.values()] == [
        bool, bool, int, int, int, int, int, int, int, int, int, bytes, bytes, str, str, str,
        datetime, datetime, datetime, UUID, str,
    ]  # fmt: skip
    assert all(v.tzinfo == UTC for v in message.headers.values() if isinstance(v, datetime))
    # Each value went out as its own wire type: the type byte follows the name.
    types = []
    pos = 12
    for name, value in EVERY_TYPE.items():
        pos += 1 + len(name.encode())
        types.append(wire[pos])
        pos += len(encode_message({name: value})) - 16 - 1 - len(name.encode())
    assert types == [0, 1, 2, 2, 3, 3, 4, 4, 5, 5, 5, 6, 6, 7, 7, 7, 8, 8, 8, 9, 7]


def test_a_message_without_headers_or_payload_is_sixteen_bytes() -> None:
    assert len(encode_message({})) == 16
    assert decode([encode_message({})]) == [({}, b"")]


# -- splits ---------------------------------------------------------------------------------------

STREAM_PARTS: List[Tuple[Headers, bytes]] = [
    ({":event-type": "first", ":message-type": "event"}, b'{"a":1}'),
    ({}, b""),
    ({"number": SizedInt(7, 2), "flag": True}, b"\x00\x01\x02"),
    ({"when": EPOCH, "id": UUID(int=1)}, b"x" * 300),
    ({":event-type": "last"}, b"{}"),
]
STREAM = b"".join(encode_message(h, p) for h, p in STREAM_PARTS)
STREAM_MESSAGES = [(plain(h), p) for h, p in STREAM_PARTS]


def test_every_split_point_frames_the_same_messages() -> None:
    assert decode([STREAM]) == STREAM_MESSAGES
    for cut in range(len(STREAM) + 1):
        assert decode([STREAM[:cut], STREAM[cut:]]) == STREAM_MESSAGES, cut


def test_byte_by_byte_input_with_empty_reads_between_frames_the_same_messages() -> None:
    assert decode([STREAM[i : i + 1] for i in range(len(STREAM))]) == STREAM_MESSAGES
    assert decode(piece for i in range(len(STREAM)) for piece in (b"", STREAM[i : i + 1], b"")) == STREAM_MESSAGES


def test_each_message_is_yielded_as_soon_as_its_last_byte_is_here() -> None:
    first = encode_message({"n": 1})
    arrived: List[bytes] = []

    def pieces() -> Iterator[bytes]:
        for i in range(len(first)):
            arrived.append(first[i : i + 1])
            yield first[i : i + 1]
        raise AssertionError("read past the first message before yielding it")

    messages = iter_eventstream(pieces())
    assert next(messages).headers == {"n": 1}
    assert b"".join(arrived) == first


def test_no_body_is_no_messages_and_no_error() -> None:
    assert decode([]) == []
    assert decode([b"", b""]) == []


def test_many_messages_in_one_read_and_one_message_in_many_reads() -> None:
    many = [({"i": i}, str(i).encode()) for i in range(5000)]
    body = b"".join(encode_message(h, p) for h, p in many)
    assert decode([body]) == many
    assert decode([body[i : i + 7] for i in range(0, len(body), 7)]) == many


def test_a_large_message_in_small_reads_is_not_copied_over_and_over() -> None:
    # 8 MiB in 16384 reads of 512 bytes: a decoder that re-copies what it
    # holds on every read moves ~64 GiB, this one ~32 MiB.
    payload = bytes(range(256)) * (8 * 1024 * 4)
    body = encode_message({"big": True}, payload) + encode_message({"after": True})

    def run() -> None:
        got = decode(body[i : i + 512] for i in range(0, len(body), 512))
        assert got == [({"big": True}, payload), ({"after": True}, b"")]

    finishes(run, within=10)


def test_a_message_of_the_largest_size_is_framed() -> None:
    payload = b"x" * (MAX_MESSAGE_BYTES - 16 - 5)  # the header takes 5
    body = encode_message({"n": b""}, payload)
    assert len(body) == MAX_MESSAGE_BYTES == 24 * 1024 * 1024 + 128 * 1024 + 16
    (message,) = iter_eventstream(body[i : i + (1 << 20)] for i in range(0, len(body), 1 << 20))
    assert message.headers == {"n": b""} and len(message.payload) == len(payload)
    with pytest.raises(ValueError, match="longer than"):
        encode_message({"n": b"x"}, payload)


# -- malformed streams ----------------------------------------------------------------------------

GOOD = encode_message({":event-type": "contentBlockDelta"}, b'{"delta":{"text":"Hello"}}')


def corrupt(body: bytes, at: int) -> bytes:
    return body[:at] + bytes([body[at] ^ 0x01]) + body[at + 1 :]


def test_a_corrupt_prelude_fails_its_crc() -> None:
    for at in range(12):  # the lengths and the CRC itself
        assert "prelude fails its CRC check" in failure([GOOD + corrupt(GOOD, at)]), at


def test_a_corrupt_header_payload_or_message_crc_fails_the_message_crc() -> None:
    for at in range(12, len(GOOD)):
        message = failure([corrupt(GOOD, at)])
        assert message.startswith("an event stream message fails its CRC check"), at


def test_crc_failures_name_both_checksums() -> None:
    body = corrupt(GOOD, len(GOOD) - 10)  # in the payload
    expected = struct.unpack(">I", GOOD[-4:])[0]
    computed = zlib.crc32(body[:-4])
    with pytest.raises(StreamError, match=f"it says {expected:#010x}, its bytes give {computed:#010x}"):
        decode([body])


@pytest.mark.parametrize("cut", [1, 11, 12, 13, 30, len(GOOD) - 1])
def test_a_body_that_ends_inside_a_message_is_a_stream_error(cut: int) -> None:
    body = GOOD + GOOD[:cut]
    got: List[Tuple[Dict[str, HeaderValue], bytes]] = []
    with pytest.raises(StreamError, match="the event stream ended inside a message") as caught:
        for message in iter_eventstream([body[: len(GOOD) + 1], body[len(GOOD) + 1 :]]):
            got.append((message.headers, message.payload))
    assert len(got) == 1  # the whole message before it still came out
    if cut < 12:
        assert str(caught.value).endswith(f"{cut} bytes arrived, not even its 12-byte prelude")
    else:
        assert str(caught.value).endswith(f"{cut} of its {len(GOOD)} bytes arrived")
    for split in range(len(body) + 1):
        with pytest.raises(StreamError, match="ended inside a message"):
            decode([body[:split], body[split:]])


def test_an_absurd_total_length_fails_at_the_prelude_without_waiting_for_the_rest() -> None:
    read = 0

    def endless() -> Iterator[bytes]:
        nonlocal read
        yield raw_message(b"", total=0xFFFFFFFF)[:12]
        while True:
            read += 1
            yield b"\x00" * 65536

    with pytest.raises(
        StreamError, match=rf"says it is 4294967295 bytes long, more than the {MAX_MESSAGE_BYTES} bytes"
    ):
        decode(endless())
    assert read == 0
    over = raw_message(b"", total=MAX_MESSAGE_BYTES + 1)[:12]
    assert f"says it is {MAX_MESSAGE_BYTES + 1} bytes long" in failure([over])


@pytest.mark.parametrize("total", [0, 1, 12, 15])
def test_a_total_length_shorter_than_the_framing_is_a_stream_error(total: int) -> None:
    body = raw_message(b"", total=total)
    with pytest.raises(
        StreamError, match=f"says it is {total} bytes long, shorter than the 16 bytes of its own framing"
    ):
        decode([body])


def test_a_header_length_larger_than_the_message_is_a_stream_error() -> None:
    block = string_header("a", "b")
    body = raw_message(block, b"{}", headers_length=len(block) + 3)
    with pytest.raises(StreamError, match=r"of 24 bytes says it has 9 bytes of headers: it has room for 8"):
        decode([body])
    huge = raw_message(b"", headers_length=0xFFFFFFFF)
    assert "says it has 4294967295 bytes of headers" in failure([huge])


def test_an_unknown_header_value_type_is_a_stream_error() -> None:
    for kind in (10, 42, 255):
        body = raw_message(b"\x04kind" + bytes([kind]) + b"\x00\x00")
        with pytest.raises(StreamError, match=rf"the event stream header 'kind' has an unknown value type \({kind}\)"):
            decode([body])


@pytest.mark.parametrize(
    "block",
    [
        b"\x05ab",  # the name
        b"\x02ab",  # the type byte
        b"\x02ab\x02",  # a byte
        b"\x02ab\x03\x00",  # a short
        b"\x02ab\x04\x00\x00\x00",  # an integer
        b"\x02ab\x05" + b"\x00" * 7,  # a long
        b"\x02ab\x06\x00",  # a byte array's length
        b"\x02ab\x06\x00\x05abcd",  # a byte array
        b"\x02ab\x07\x00\x05abcd",  # a string
        b"\x02ab\x07\xff\xff",  # a string, far past the block
        b"\x02ab\x08" + b"\x00" * 7,  # a timestamp
        b"\x02ab\x09" + b"\x00" * 15,  # a uuid
        string_header("ok", "fine") + b"\x09",  # after a good header
    ],
)
def test_a_header_that_runs_past_the_header_block_is_a_stream_error(block: bytes) -> None:
    # The payload that follows must not be read as the rest of the header.
    body = raw_message(block, b"\x00" * 64)
    with pytest.raises(StreamError, match="runs past the end of the headers"):
        decode([body])


def test_malformed_header_contents_are_stream_errors() -> None:
    cases = [
        (b"\x02\xff\xfe\x00", r"a header name is not valid UTF-8"),
        (b"\x01s\x07\x00\x02\xc3\x28", r"the value of the header 's' is not valid UTF-8"),
        (b"\x00\x00", r"a header with an empty name"),
        (string_header("dup", "a") + string_header("dup", "b"), r"has the header 'dup' twice"),
        (b"\x01t\x08" + struct.pack(">q", 2**62), r"the timestamp header 't' \(4611686018427387904 ms from 1970\)"),
        (b"\x01t\x08" + struct.pack(">q", -(2**63)), r"is out of the range of Python dates"),
    ]
    for block, expected in cases:
        with pytest.raises(StreamError, match=expected):
            decode([raw_message(block)])


def test_the_messages_before_a_malformed_one_come_out_first() -> None:
    got: List[EventMessage] = []
    with pytest.raises(StreamError, match="CRC"):
        for message in iter_eventstream([GOOD, GOOD, corrupt(GOOD, 20)]):
            got.append(message)
    assert len(got) == 2


@settings(max_examples=300, deadline=None)
@given(
    body=strategies.one_of(
        strategies.binary(max_size=200),
        strategies.builds(
            lambda at, byte: STREAM[: at % len(STREAM)] + bytes([byte]) + STREAM[at % len(STREAM) + 1 :],
            strategies.integers(min_value=0),
            strategies.integers(min_value=0, max_value=255),
        ),
        strategies.builds(lambda n: STREAM[: n % len(STREAM)], strategies.integers(min_value=0)),
    ),
    cuts=strategies.lists(strategies.integers(min_value=0, max_value=len(STREAM)), max_size=5),
)
def test_any_bytes_give_messages_or_a_stream_error_never_another_exception(body: bytes, cuts: List[int]) -> None:
    points = sorted({min(c, len(body)) for c in cuts})
    pieces = [body[a:b] for a, b in zip([0, *points], [*points, len(body)])]
    try:
        decode(pieces)
    except StreamError:
        pass


def test_hand_made_header_blocks_with_forged_crcs_fail_only_as_stream_errors() -> None:
    # Past both CRCs (they are recomputed), every header block of a few
    # bytes: only StreamError, never struct.error, IndexError, UnicodeDecodeError...
    alphabet = [0, 1, 2, 5, 6, 7, 8, 9, 10, 0x80, 0xFF]
    for a in alphabet:
        for b in alphabet:
            for c in alphabet:
                for block in (bytes([a, b, c]), bytes([1, 0x41, a, b, c]), bytes([1, 0x41, 7, 0, a, b, c])):
                    try:
                        decode([raw_message(block, b"xyz")])
                    except StreamError:
                        pass


# -- the encoder refuses what a sender may not send --------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "error", "match"),
    [
        ({"": "x"}, ValueError, "1 to 255 bytes"),
        ({"x" * 256: "x"}, ValueError, "1 to 255 bytes"),
        ({"n": SizedInt(128, 1)}, ValueError, "does not fit in 8 bits"),
        ({"n": SizedInt(-32769, 2)}, ValueError, "does not fit in 16 bits"),
        ({"n": 2**63}, ValueError, "does not fit in 64 bits"),
        ({"s": "x" * 32768}, ValueError, "more than 32767"),
        ({"b": b"x" * 32768}, ValueError, "more than 32767"),
        ({"t": datetime(2024, 1, 1)}, ValueError, "needs a time zone"),
        ({"t": datetime(2024, 1, 1, 0, 0, 0, 1, tzinfo=UTC)}, ValueError, "whole milliseconds"),
        ({"f": 1.5}, TypeError, "no event stream type: float"),
    ],
)
def test_the_encoder_refuses_what_a_conforming_sender_may_not_send(
    headers: Dict[str, Any], error: Type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        encode_message(headers)


def test_a_sized_int_has_a_width_of_a_wire_type() -> None:
    with pytest.raises(ValueError):
        SizedInt(1, 3)


# -- Bedrock ConverseStream ------------------------------------------------------------------------


def converse_event(event_type: str, body: Dict[str, Any]) -> bytes:
    """A ConverseStream event as Bedrock sends it: three string headers, a
    JSON payload with the ``p`` field it pads events with (so that their
    sizes do not give the text away)."""
    headers = {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}
    return encode_message(headers, json.dumps(body, separators=(",", ":")).encode())


CONVERSE = [
    converse_event("messageStart", {"role": "assistant", "p": "abcd"}),
    converse_event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hello"}, "p": "abcdefghijkl"}),
    converse_event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": ", world"}, "p": "abcdefgh"}),
    converse_event("contentBlockStop", {"contentBlockIndex": 0, "p": "abcdefghijklmnopqrstuvwx"}),
    converse_event("messageStop", {"stopReason": "end_turn", "p": "abcdefghijklmnopqrstuvwxyzABCDEFGH"}),
    converse_event(
        "metadata",
        {
            "usage": {"inputTokens": 10, "outputTokens": 5, "totalTokens": 15},
            "metrics": {"latencyMs": 100},
            "p": "abcdefghijklmnopqrstuvwxyzABCDEF",
        },
    ),
]
THROTTLED = encode_message(
    {":exception-type": "throttlingException", ":content-type": "application/json", ":message-type": "exception"},
    b'{"message":"Too many requests"}',
)


def test_a_converse_stream_frames_into_its_events() -> None:
    body = b"".join(CONVERSE)
    for pieces in (
        [body],
        [body[i : i + 1] for i in range(len(body))],
        [body[i : i + 13] for i in range(0, len(body), 13)],
    ):
        messages = list(iter_eventstream(pieces))
        assert [m.headers[":event-type"] for m in messages] == [
            "messageStart", "contentBlockDelta", "contentBlockDelta", "contentBlockStop", "messageStop", "metadata",
        ]  # fmt: skip
        assert all(m.headers[":message-type"] == "event" for m in messages)
        assert all(m.headers[":content-type"] == "application/json" for m in messages)
        data = [json.loads(m.payload) for m in messages]
        assert data[0]["role"] == "assistant"
        assert "".join(d["delta"]["text"] for d in data[1:3]) == "Hello, world"
        assert data[4]["stopReason"] == "end_turn"
        assert data[5]["usage"] == {"inputTokens": 10, "outputTokens": 5, "totalTokens": 15}


def test_an_exception_in_a_converse_stream_is_a_message_like_any_other() -> None:
    # The framing does not judge it: the adapter reads :message-type.
    messages = list(iter_eventstream([CONVERSE[0] + CONVERSE[1] + THROTTLED]))
    assert messages[-1] == EventMessage(
        {":exception-type": "throttlingException", ":content-type": "application/json", ":message-type": "exception"},
        b'{"message":"Too many requests"}',
    )
    assert json.loads(messages[-1].payload) == {"message": "Too many requests"}


def test_a_converse_stream_from_the_loopback_server_frames_over_real_http(server: ScriptedServer) -> None:
    import requests

    content_type = ("Content-Type", "application/vnd.amazon.eventstream")
    server.reply(
        Reply(headers=(content_type,), body=tuple(CONVERSE)),  # one HTTP chunk each
        Reply(headers=(content_type,), body=(b"".join(CONVERSE),), framing="length"),
    )
    for _ in range(2):
        with requests.post(server.url + "/model/m/converse-stream", json={}, stream=True) as response:
            assert response.headers["Content-Type"] == "application/vnd.amazon.eventstream"
            messages = list(iter_eventstream(response.iter_content(chunk_size=None)))
        assert [json.loads(m.payload).get("delta", {}).get("text") for m in messages[1:3]] == ["Hello", ", world"]
        assert len(messages) == 6


# -- the property ---------------------------------------------------------------------------------

names = strategies.text(min_size=1, max_size=20).filter(lambda s: len(s.encode()) <= 255)
values = strategies.one_of(
    strategies.booleans(),
    strategies.integers(min_value=-(2**63), max_value=2**63 - 1),
    strategies.builds(SizedInt, strategies.integers(min_value=-128, max_value=127), strategies.just(1)),
    strategies.builds(SizedInt, strategies.integers(min_value=-(2**15), max_value=2**15 - 1), strategies.just(2)),
    strategies.builds(SizedInt, strategies.integers(min_value=-(2**31), max_value=2**31 - 1), strategies.just(4)),
    strategies.binary(max_size=40),
    strategies.text(max_size=40),
    strategies.builds(
        lambda ms: EPOCH + timedelta(milliseconds=ms),
        strategies.integers(min_value=-62135596800000, max_value=253402300799999),  # years 1 to 9999
    ),
    strategies.uuids(),
)
message_lists = strategies.lists(
    strategies.tuples(strategies.dictionaries(names, values, max_size=5), strategies.binary(max_size=100)),
    max_size=6,
)


@settings(max_examples=300, deadline=None)
@given(parts=message_lists, cuts=strategies.lists(strategies.integers(min_value=0, max_value=2000), max_size=8))
def test_any_messages_decode_back_through_any_chunking(
    parts: List[Tuple[Dict[str, Union[HeaderValue, SizedInt]], bytes]], cuts: List[int]
) -> None:
    body = b"".join(encode_message(h, p) for h, p in parts)
    points = sorted(min(c, len(body)) for c in cuts)  # repeated points: empty reads
    pieces = [body[a:b] for a, b in zip([0, *points], [*points, len(body)])]
    assert decode(pieces) == [(plain(h), p) for h, p in parts]
