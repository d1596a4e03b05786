"""Splitting a leading ``<think>...</think>`` block out of streamed text.

Open-weight reasoning models served through OpenAI-compatible servers often
put their reasoning inline, wrapped in ``<think>`` tags, at the start of the
answer. :func:`split_think_tags` moves it into ``Chunk.thinking``, also when
a tag is split across chunks. Only a block that opens the response (after
optional whitespace) is recognised, so a literal ``<think>`` later in an
answer is left alone; once the answer proper has started the splitter gets
out of the way entirely.
"""

from __future__ import annotations

from typing import Iterator, Optional

from .events import Event, StreamDone
from .models import Chunk

__all__ = ["split_think_tags"]

_OPEN = "<think>"
_CLOSE = "</think>"

_START, _THINKING, _AFTER, _PASS = range(4)


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``tag``."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-size:]):
            return size
    return 0


class _Splitter:
    __slots__ = ("mode", "pending")

    def __init__(self) -> None:
        self.mode = _START
        self.pending = ""  # text held back until we know which side it is on

    def feed(self, text: str) -> tuple[str, str]:
        """Return the (text, thinking) this piece resolves to."""
        out_text, out_thinking = "", ""
        buf = self.pending + text
        self.pending = ""
        while buf:
            if self.mode == _START:
                stripped = buf.lstrip()
                if not stripped:
                    self.pending = buf
                    return out_text, out_thinking
                if stripped.startswith(_OPEN):
                    self.mode = _THINKING
                    buf = stripped[len(_OPEN) :]
                elif _OPEN.startswith(stripped):
                    self.pending = buf
                    return out_text, out_thinking
                else:
                    self.mode = _PASS
                    return out_text + buf, out_thinking
            elif self.mode == _THINKING:
                end = buf.find(_CLOSE)
                if end >= 0:
                    out_thinking += buf[:end]
                    buf = buf[end + len(_CLOSE) :]
                    self.mode = _AFTER
                else:
                    keep = _partial_suffix(buf, _CLOSE)
                    out_thinking += buf[: len(buf) - keep]
                    self.pending = buf[len(buf) - keep :]
                    return out_text, out_thinking
            elif self.mode == _AFTER:
                # The blank line models put between reasoning and answer is
                # not part of the answer.
                stripped = buf.lstrip()
                if not stripped:
                    return out_text, out_thinking
                self.mode = _PASS
                return out_text + stripped, out_thinking
            else:
                return out_text + buf, out_thinking
        return out_text, out_thinking

    def flush(self) -> tuple[str, str]:
        pending, self.pending = self.pending, ""
        if self.mode == _THINKING:
            return "", pending
        if self.mode == _START:
            return pending, ""
        return "", ""


def _rebuild(chunk: Chunk, text: str, thinking: str) -> Optional[Chunk]:
    thinking = chunk.thinking + thinking
    if not (text or thinking or chunk.finish_reason is not None or chunk.usage is not None):
        return None
    return Chunk(text=text, thinking=thinking, finish_reason=chunk.finish_reason, usage=chunk.usage)


def split_think_tags(events: Iterator[Event]) -> Iterator[Event]:
    """Yield ``events`` with a leading ``<think>`` block moved to ``thinking``."""
    splitter = _Splitter()
    for event in events:
        if type(event) is Chunk:
            chunk = event
            if chunk.text:
                text, thinking = splitter.feed(chunk.text)
            else:
                text, thinking = "", ""
            if chunk.finish_reason is not None:
                tail_text, tail_thinking = splitter.flush()
                text, thinking = text + tail_text, thinking + tail_thinking
            if text == chunk.text and not thinking:
                yield chunk  # untouched: hand the provider's object on
            else:
                rebuilt = _rebuild(chunk, text, thinking)
                if rebuilt is not None:
                    yield rebuilt
            if splitter.mode == _PASS:
                # The answer proper has begun: hand the rest through untouched.
                yield from events
                return
        else:
            if type(event) is StreamDone:
                text, thinking = splitter.flush()
                if text or thinking:
                    yield Chunk(text=text, thinking=thinking)
            yield event
    text, thinking = splitter.flush()
    if text or thinking:
        yield Chunk(text=text, thinking=thinking)
