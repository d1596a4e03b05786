"""SSE and NDJSON framing, fed byte pieces split anywhere."""

from __future__ import annotations

from typing import List, Tuple

import pytest

from minillm.errors import StreamError
from minillm.framing import iter_ndjson, iter_sse

STREAM = (
    b": OPENROUTER PROCESSING\n\n"
    b'data: {"a": 1}\n\n'
    b": keep-alive in the middle\n\n"
    b'event: error\ndata: {"b": "\xc3\xa9\xe2\x82\xac"}\n\n'
    b'data:{"no":"space"}\n\n'
    b"data: line one\ndata: line two\n\n"
    b"data: [DONE]\n\n"
)
EXPECTED = [
    ("message", '{"a": 1}'),
    ("error", '{"b": "\u00e9\u20ac"}'),
    ("message", '{"no":"space"}'),
    ("message", "line one\nline two"),
    ("message", "[DONE]"),
]


def frames(pieces: List[bytes]) -> List[Tuple[str, str]]:
    return [(f.event, f.data) for f in iter_sse(pieces)]


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
def test_every_split_point_of_every_line_ending_frames_the_same_events(ending: bytes) -> None:
    body = STREAM.replace(b"\n", ending)
    assert frames([body]) == EXPECTED
    for cut in range(1, len(body)):
        assert frames([body[:cut], body[cut:]]) == EXPECTED, cut


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
def test_byte_by_byte_input_frames_the_same_events(ending: bytes) -> None:
    body = STREAM.replace(b"\n", ending)
    assert frames([body[i : i + 1] for i in range(len(body))]) == EXPECTED


def test_mixed_line_endings_in_one_stream_still_dispatch_on_blank_lines() -> None:
    body = b"data: a\r\n\ndata: b\n\r\ndata: c\r\r"
    assert [d for _, d in frames([body])] == ["a", "b", "c"]


def test_a_stream_of_only_comments_dispatches_nothing() -> None:
    assert frames([b": OPENROUTER PROCESSING\n\n" * 20]) == []


def test_a_leading_byte_order_mark_is_ignored() -> None:
    assert frames([b"\xef\xbb\xbfdata: x\n\n"]) == [("message", "x")]


def test_a_final_event_without_its_blank_line_is_still_yielded_for_the_adapter_to_judge() -> None:
    assert frames([b'data: {"partial": tr']) == [("message", '{"partial": tr')]


def test_invalid_utf8_is_a_stream_error() -> None:
    with pytest.raises(StreamError, match="UTF-8"):
        frames([b"data: \xff\xfe\n\n"])


def test_ndjson_lines_split_anywhere_come_out_whole() -> None:
    body = b'{"a":1}\n\n{"b":"\xc3\xa9"}\r\n{"c":3}'
    expected = ['{"a":1}', '{"b":"\u00e9"}', '{"c":3}']
    for cut in range(1, len(body)):
        assert list(iter_ndjson([body[:cut], body[cut:]])) == expected, cut


def test_ndjson_invalid_utf8_is_a_stream_error() -> None:
    with pytest.raises(StreamError):
        list(iter_ndjson([b'{"a":"\xff"}\n']))


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
def test_a_long_line_in_many_small_pieces_arrives_whole(ending: bytes) -> None:
    payload = "x" * 300_000
    body = f"data: {payload}".encode() + ending + ending + b"data: next" + ending + ending
    pieces = [body[i : i + 97] for i in range(0, len(body), 97)]
    assert frames(pieces) == [("message", payload), ("message", "next")]


NAMED = (
    b'event: message_start\ndata: {"type": "message_start"}\n\n'
    b": comment\n\n"
    b'event: ping\ndata: {"type": "ping", "note": "event: inside data"}\n\n'
    b'data: {"type": "unnamed"}\n\n'
    b'event:content_block_delta\ndata: {"type": "content_block_delta"}\n\n'
)
NAMED_DATA = [
    '{"type": "message_start"}',
    '{"type": "ping", "note": "event: inside data"}',
    '{"type": "unnamed"}',
    '{"type": "content_block_delta"}',
]


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
def test_dropping_event_names_keeps_every_data_payload_at_every_split_point(ending: bytes) -> None:
    body = NAMED.replace(b"\n", ending)
    for cut in range(1, len(body)):
        got = [(f.event, f.data) for f in iter_sse([body[:cut], body[cut:]], keep_event_names=False)]
        assert got == [("message", d) for d in NAMED_DATA], cut
    assert next(f.event for f in iter_sse([body])) == "message_start"  # kept by default
