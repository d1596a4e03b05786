"""Moving a leading <think> block out of the answer text."""

from __future__ import annotations

from typing import List, Tuple

import pytest

from minillm.events import STREAM_DONE
from minillm.models import Chunk, Usage
from minillm.thinktags import split_think_tags


def run(pieces: List[str], *, done: bool = True) -> Tuple[str, str, list]:
    events: list = [Chunk(text=p) for p in pieces]
    if done:
        events.append(STREAM_DONE)
    out = list(split_think_tags(iter(events)))
    chunks = [e for e in out if type(e) is Chunk]
    return "".join(c.text for c in chunks), "".join(c.thinking for c in chunks), out


FULL = "  <think>plan: say hi</think>\n\nHello <think> stays literal"


def test_a_leading_think_block_becomes_thinking_at_every_split_point() -> None:
    for cut in range(len(FULL) + 1):
        for cut2 in range(cut, len(FULL) + 1, 7):
            text, thinking, _ = run([FULL[:cut], FULL[cut:cut2], FULL[cut2:]])
            assert (text, thinking) == ("Hello <think> stays literal", "plan: say hi"), (cut, cut2)


def test_text_that_does_not_open_with_think_passes_through_untouched() -> None:
    chunk = Chunk(text="Hello")
    out = list(split_think_tags(iter([chunk, Chunk(text=" <think>x</think>"), STREAM_DONE])))
    assert out[0] is chunk
    assert "".join(c.text for c in out if type(c) is Chunk) == "Hello <think>x</think>"


def test_an_unclosed_think_block_is_all_thinking() -> None:
    assert run(["<think>still going", " on"])[:2] == ("", "still going on")


def test_a_prefix_that_never_becomes_a_tag_is_released_as_text() -> None:
    assert run(["<thi"])[:2] == ("<thi", "")
    assert run(["  <th", "ing>"])[:2] == ("  <thing>", "")


def test_finish_reason_and_usage_survive_and_flush_held_text() -> None:
    usage = Usage(prompt_tokens=1)
    events = [Chunk(text="<thi"), Chunk(text="", finish_reason="stop", usage=usage)]
    last = list(split_think_tags(iter(events)))[-1]
    assert isinstance(last, Chunk)
    assert last.text == "<thi" and last.finish_reason == "stop" and last.usage is usage


@pytest.mark.parametrize("pieces", [["<think>a</think>b"], ["<think>a</th", "ink>b"]])
def test_provider_thinking_is_kept_beside_tag_thinking(pieces: List[str]) -> None:
    events = [Chunk(text=pieces[0], thinking="native ")] + [Chunk(text=p) for p in pieces[1:]] + [STREAM_DONE]
    out = [e for e in split_think_tags(iter(events)) if type(e) is Chunk]
    assert "".join(c.thinking for c in out) == "native a"
    assert "".join(c.text for c in out) == "b"
