"""SSE and NDJSON framing, fed byte pieces split anywhere."""

from __future__ import annotations

import json
from typing import Any, Iterable, Iterator, List, Optional, Tuple

import attrs
import pytest
from hypothesis import given, settings, strategies

from minillm import framing
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


def test_a_byte_order_mark_split_across_the_first_reads_is_ignored() -> None:
    body = b"\xef\xbb\xbfdata: x\n\n"
    for cut in range(len(body) + 1):
        assert frames([body[:cut], body[cut:]]) == [("message", "x")], cut
        for second in range(cut, len(body) + 1):
            assert frames([body[:cut], body[cut:second], body[second:]]) == [("message", "x")], (cut, second)
    assert frames([body[i : i + 1] for i in range(len(body))]) == [("message", "x")]
    assert frames([b"", b"\xef", b"", b"\xbb\xbf", b"data: x\n\n"]) == [("message", "x")]


def test_only_a_leading_byte_order_mark_is_dropped() -> None:
    # A second BOM is part of the first line, whose field name is then unknown.
    assert frames([b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\ndata: y\n\n"]) == [("message", "y")]
    assert frames([b"data: x\n\n\xef\xbb\xbfdata: y\n\n"]) == [("message", "x")]
    assert frames([b"\xef\xbb"]) == []


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
@pytest.mark.parametrize(
    "unfinished",
    [b'data: {"partial": tr', b'data: {"whole": true}', b'data: {"whole": true}\n', b"data: a\ndata: b\n"],
    ids=["cut-in-a-line", "no-line-end", "no-blank-line", "two-lines"],
)
def test_an_unfinished_last_event_is_not_dispatched_at_any_split(ending: bytes, unfinished: bytes) -> None:
    body = (b"data: first\n\n" + unfinished).replace(b"\n", ending)
    assert frames([body]) == [("message", "first")]
    for cut in range(1, len(body)):
        assert frames([body[:cut], body[cut:]]) == [("message", "first")], cut
    assert frames([body[i : i + 1] for i in range(len(body))]) == [("message", "first")]
    # ... while its blank line, even a lone CR at the very end, dispatches it.
    assert frames([body + ending + ending])[1:] != []
    assert frames([body.replace(ending, b"\r") + b"\r\r"])[1:] != []


def test_every_frame_is_an_sseclient_py_event_whatever_its_shape() -> None:
    import sseclient

    shapes = [b"data: a\n\n", b"event: e\ndata: b\n\n", b"id: 1\ndata: c\n\n", b"data: d\ndata: e\n\n"]
    got = list(iter_sse(shapes))
    assert [(f.event, f.data) for f in got] == [("message", "a"), ("e", "b"), ("message", "c"), ("message", "d\ne")]
    assert all(type(f) is sseclient.Event for f in got)
    assert [f.event for f in iter_sse(shapes, keep_event_names=False)] == ["message"] * 4


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


def frames_until_error(pieces: Iterable[bytes], **options: bool) -> Tuple[List[Tuple[str, str]], Optional[str]]:
    """The frames before the stream failed, and the failure (None if it did not)."""
    out: List[Tuple[str, str]] = []
    try:
        for frame in iter_sse(pieces, **options):
            out.append((frame.event, frame.data))
    except StreamError as exc:
        return out, str(exc)
    return out, None


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
def test_a_line_longer_than_the_limit_is_a_stream_error_at_every_split(
    monkeypatch: pytest.MonkeyPatch, ending: bytes
) -> None:
    monkeypatch.setattr(framing, "MAX_LINE_BYTES", 32)
    ok = b"data: " + b"x" * 26  # 32 bytes: the longest line accepted
    for line, failure in [(ok, None), (ok + b"x", "the stream has a line longer than 32 bytes")]:
        # alone, among other lines, unfinished at the end of the body
        for shape in [b"%s\n\ndata: after\n\n", b": c\n%s\ndata: y\n\ndata: after\n\n", b"data: z\n%s"]:
            body = (b"data: before\n\n" + shape % line).replace(b"\n", ending)
            expected = frames_until_error([body])
            assert expected[1] == failure, (shape, line)
            assert expected[0][:1] == [("message", "before")]
            for cut in range(1, len(body)):
                assert frames_until_error([body[:cut], body[cut:]]) == expected, (shape, line, cut)
            assert frames_until_error([body[i : i + 1] for i in range(len(body))]) == expected


def test_a_line_that_never_ends_fails_at_16_mib_not_at_the_end_of_the_body() -> None:
    read = 0

    def endless() -> Iterator[bytes]:
        nonlocal read
        yield b"data: ok\n\ndata: "
        while True:
            read += 65536
            yield b"x" * 65536

    got, failure = frames_until_error(endless())
    assert got == [("message", "ok")]
    assert failure is not None and "longer than 16777216 bytes" in failure
    assert framing.MAX_LINE_BYTES == 16 * 1024 * 1024 <= read < 17 * 1024 * 1024


def test_a_line_of_exactly_16_mib_is_framed() -> None:
    payload = b"x" * (framing.MAX_LINE_BYTES - len(b"data: "))
    body = b"data: " + payload + b"\n\n"
    assert [len(f.data) for f in iter_sse([body])] == [len(payload)]
    assert [len(f.data) for f in iter_sse(body[i : i + 1 << 20] for i in range(0, len(body), 1 << 20))] == [
        len(payload)
    ]
    with pytest.raises(StreamError, match="longer than"):
        frames([b"data: x" + payload + b"\n\n"])


# -- the fast path gives exactly what sseclient-py gives ----------------------------------------

FRAGMENTS = [
    b"data:",
    b"data: ",
    b"data:  ",
    b"event:",
    b"event: ",
    b"id: 7",
    b"retry: 10",
    b"dat",
    b"a:",
    b":",
    b": comment",
    b" ",
    b"x",
    b'{"a": 1}',
    b"[DONE]",
    b"event: error",
    b"\xc3\xa9",
    b"\xe2\x80\xa8",  # U+2028 is not a line end
    b"\n",
    b"\n\n",
    b"\r",
    b"\r\n",
    b"\xef\xbb\xbf",
]


def sseclient_reference(body: bytes, keep_event_names: bool) -> Tuple[List[Tuple[str, str]], bool]:
    """What stock sseclient-py frames from ``body`` once the spec's rules it
    leaves to its caller are applied: a leading BOM dropped, line ends
    normalised, an unfinished last event dropped."""
    import sseclient

    if body.startswith(b"\xef\xbb\xbf"):
        body = body[3:]
    body = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    end = body.rfind(b"\n\n")
    body = body[: end + 2] if end >= 0 else b""
    out: List[Tuple[str, str]] = []
    try:
        for event in sseclient.SSEClient(iter([body])).events():
            out.append((event.event if keep_event_names else "message", event.data))
    except UnicodeDecodeError:
        return out, True
    return out, False


@settings(max_examples=400, deadline=None)
@given(
    parts=strategies.lists(strategies.sampled_from(FRAGMENTS), max_size=40),
    invalid_at=strategies.one_of(strategies.none(), strategies.integers(min_value=0, max_value=400)),
    cuts=strategies.lists(strategies.integers(min_value=0, max_value=400), max_size=6),
    keep_event_names=strategies.booleans(),
)
def test_frames_are_what_sseclient_py_gives_whatever_the_stream_and_its_splits(
    parts: List[bytes], invalid_at: Optional[int], cuts: List[int], keep_event_names: bool
) -> None:
    body = b"".join(parts)
    if invalid_at is not None:
        at = min(invalid_at, len(body))
        body = body[:at] + b"\xff" + body[at:]
    points = sorted({min(c, len(body)) for c in cuts})
    pieces = [body[a:b] for a, b in zip([0, *points], [*points, len(body)])]
    got, failure = frames_until_error(pieces, keep_event_names=keep_event_names)
    assert (got, failure is not None) == sseclient_reference(body, keep_event_names)
    if failure is not None:
        assert "UTF-8" in failure


# -- the adapters read each frame's data exactly as json.loads does -------------------------------


@attrs.frozen
class Frame:
    data: str
    event: str = "message"


def decoded(provider: str, api: str, frames: List[Frame]) -> List[Any]:
    from minillm.providers import APIS, ProviderConfig

    cls = next(c for c in APIS[provider] if c.api == api)
    adapter: Any = cls(ProviderConfig(provider=provider, model="m", base_url="http://127.0.0.1:9"))
    return list(adapter.decode_frames(frames))


@pytest.mark.parametrize(
    ("provider", "api", "payload"),
    [
        ("openai", "chat", '{"id":"c","choices":[{"delta":{"content":"hi"}}]}'),
        ("anthropic", "messages", '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}'),
    ],
)
def test_the_adapters_read_data_exactly_as_json_loads_does(provider: str, api: str, payload: str) -> None:
    plain = decoded(provider, api, [Frame(payload)])
    assert plain and all(type(e).__name__ != "ProviderError" for e in plain)
    for padded in (f" {payload}", f"{payload}\r\n ", f"\t{payload}\n"):
        assert decoded(provider, api, [Frame(padded)]) == plain
    for bad in (f"{payload} x", f"{payload}{payload}", payload[:-1], f"\ufeff{payload}", "[" * 100_000):
        try:
            json.loads(bad)
        except (ValueError, RecursionError) as exc:
            expected = f"malformed data in the stream ({type(exc).__name__}: {exc})"
        [error] = decoded(provider, api, [Frame(bad)])
        assert error.type == "malformed" and error.message.startswith(expected), bad
