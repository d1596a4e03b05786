"""Moving <think> blocks out of the answer text."""

from __future__ import annotations

from typing import List, Tuple

import pytest

from minillm.events import STREAM_DONE
from minillm.models import Chunk, Usage
from minillm.thinktags import split_think_tags


def run(pieces: List[str], *, done: bool = True) -> Tuple[str, str]:
    events: list = [Chunk(text=p) for p in pieces]
    if done:
        events.append(STREAM_DONE)
    chunks = [e for e in split_think_tags(iter(events)) if type(e) is Chunk]
    return "".join(c.text for c in chunks), "".join(c.thinking for c in chunks)


CASES = [
    ("  <think>plan: say hi</think>\n\nHello there", "Hello there", "plan: say hi"),
    ("Before <think>one</think> middle <think>two</think> after", "Before  middle  after", "onetwo"),
    ("<think>a</think><think>b</think>\nAnswer", "Answer", "ab"),
    ("No tags at all, just < and > signs", "No tags at all, just < and > signs", ""),
    ("  indented answer", "  indented answer", ""),
    ("x <thinking> is not a tag", "x <thinking> is not a tag", ""),
]


@pytest.mark.parametrize(("whole", "text", "thinking"), CASES)
def test_blocks_split_at_every_byte_become_thinking(whole: str, text: str, thinking: str) -> None:
    for cut in range(len(whole) + 1):
        for cut2 in range(cut, len(whole) + 1, 5):
            assert run([whole[:cut], whole[cut:cut2], whole[cut2:]]) == (text, thinking), (cut, cut2)
    assert run(list(whole)) == (text, thinking)


def test_answer_text_passes_through_as_the_same_object() -> None:
    chunks = [Chunk(text="Hello"), Chunk(text=" world")]
    out = list(split_think_tags(iter([*chunks, STREAM_DONE])))
    assert out[0] is chunks[0] and out[1] is chunks[1]


def test_an_unclosed_block_is_all_thinking() -> None:
    assert run(["<think>still going", " on"]) == ("", "still going on")


def test_a_prefix_that_never_becomes_a_tag_is_released_as_text() -> None:
    assert run(["<thi"]) == ("<thi", "")
    assert run(["ok <th", "ing>"]) == ("ok <thing>", "")


def test_finish_reason_and_usage_survive_and_flush_held_text() -> None:
    usage = Usage(prompt_tokens=1)
    events = [Chunk(text="done <thi"), Chunk(text="", finish_reason="stop", usage=usage)]
    last = list(split_think_tags(iter(events)))[-1]
    assert isinstance(last, Chunk)
    assert last.text == "<thi" and last.finish_reason == "stop" and last.usage is usage


@pytest.mark.parametrize("pieces", [["<think>a</think>b"], ["<think>a</th", "ink>b"]])
def test_provider_thinking_is_kept_beside_tag_thinking(pieces: List[str]) -> None:
    events = [Chunk(text=pieces[0], thinking="native ")] + [Chunk(text=p) for p in pieces[1:]] + [STREAM_DONE]
    out = [e for e in split_think_tags(iter(events)) if type(e) is Chunk]
    assert "".join(c.thinking for c in out) == "native a"
    assert "".join(c.text for c in out) == "b"


def test_each_stream_has_its_own_state() -> None:
    first = split_think_tags(iter([Chunk(text="<think>half")]))
    second = split_think_tags(iter([Chunk(text="plain"), STREAM_DONE]))
    assert [e.thinking for e in first if type(e) is Chunk] == ["half"]
    assert [e.text for e in second if type(e) is Chunk] == ["plain"]
