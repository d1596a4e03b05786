"""Splitting ``<think>...</think>`` blocks out of streamed text.

Open-weight reasoning models served through OpenAI-compatible servers (and
Ollama) often put their reasoning inline, wrapped in ``<think>`` tags.
:func:`split_think_tags` moves every such block into ``Chunk.thinking``:
tags split across chunks at any byte, several blocks, text before and after.
The state lives in one splitter per stream.

Whitespace that only separates reasoning from the answer (before the first
block, or right after a block while no answer text has appeared) is not
part of the answer and is dropped. A chunk that cannot touch a tag passes
through as the very same object.
"""

from __future__ import annotations

from typing import Iterator, List, Optional, Tuple

from .events import Event, StreamDone
from .models import Chunk

__all__ = ["split_think_tags"]

_OPEN = "<think>"
_CLOSE = "</think>"


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``tag``."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-size:]):
            return size
    return 0


class _Splitter:
    __slots__ = ("answered", "lead", "pending", "seen_block", "thinking")

    def __init__(self) -> None:
        self.thinking = False  # inside a block
        self.pending = ""  # a possible partial tag, held back
        self.lead = ""  # whitespace before any answer text and any block, held back
        self.answered = False  # answer text (not only whitespace) has gone out
        self.seen_block = False  # a block has opened

    def quiet(self) -> bool:
        """Whether a chunk without "<" passes through untouched."""
        return self.answered and not self.thinking and not self.pending

    def feed(self, piece: str) -> Tuple[str, str]:
        """The (text, thinking) that ``piece`` resolves to now."""
        texts: List[str] = []
        thoughts: List[str] = []
        buf = self.pending + piece
        self.pending = ""
        while buf:
            tag = _CLOSE if self.thinking else _OPEN
            at = buf.find(tag)
            if at < 0:
                keep = _partial_suffix(buf, tag)
                self.pending = buf[len(buf) - keep :]
                buf = buf[: len(buf) - keep]
                if self.thinking:
                    thoughts.append(buf)
                else:
                    self._text(buf, texts)
                break
            if self.thinking:
                thoughts.append(buf[:at])
            else:
                self._text(buf[:at], texts)
                self.seen_block = True
                self.lead = ""  # it only led up to the reasoning
            self.thinking = not self.thinking
            buf = buf[at + len(tag) :]
        return "".join(texts), "".join(thoughts)

    def _text(self, text: str, out: List[str]) -> None:
        if self.answered:
            out.append(text)
        elif text.strip():
            # The answer begins: after reasoning, without the blank lines
            # that separated it; otherwise exactly as sent.
            out.append(text.lstrip() if self.seen_block else self.lead + text)
            self.lead = ""
            self.answered = True
        elif not self.seen_block:
            self.lead += text

    def flush(self) -> Tuple[str, str]:
        """What is still held back, at the end of the stream."""
        pending, self.pending = self.pending, ""
        if self.thinking:
            return "", pending
        texts: List[str] = []
        self._text(pending, texts)
        lead, self.lead = self.lead, ""
        return lead + "".join(texts), ""


def _rebuild(chunk: Chunk, text: str, thinking: str) -> Optional[Chunk]:
    if text == chunk.text and not thinking:
        return chunk  # untouched: hand the provider's object on
    thinking = chunk.thinking + thinking
    if not (text or thinking or chunk.finish_reason is not None or chunk.usage is not None):
        return None
    return Chunk(text=text, thinking=thinking, finish_reason=chunk.finish_reason, usage=chunk.usage)


def split_think_tags(events: Iterator[Event]) -> Iterator[Event]:
    """Yield ``events`` with every ``<think>`` block moved to ``thinking``."""
    splitter = _Splitter()
    for event in events:
        if type(event) is Chunk:
            chunk = event
            text = chunk.text
            if text and splitter.quiet() and "<" not in text:
                yield chunk
                continue
            thinking = ""
            if text:
                text, thinking = splitter.feed(text)
            if chunk.finish_reason is not None:
                tail_text, tail_thinking = splitter.flush()
                text, thinking = text + tail_text, thinking + tail_thinking
            rebuilt = _rebuild(chunk, text, thinking)
            if rebuilt is not None:
                yield rebuilt
        else:
            if type(event) is StreamDone:
                text, thinking = splitter.flush()
                if text or thinking:
                    yield Chunk(text=text, thinking=thinking)
            yield event
    text, thinking = splitter.flush()
    if text or thinking:
        yield Chunk(text=text, thinking=thinking)
