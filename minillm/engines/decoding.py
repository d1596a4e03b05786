"""What every built-in engine shares: word-piece tokens, and the decoding
loop that turns a source of tokens into a contract-abiding output stream.

A token is a word with the whitespace after it (``"Hello, "``), so the
token counts the engines report are real counts of what they read and
wrote. :func:`decode` applies what every request may ask -- ``max_tokens``,
stop strings, cancellation, pacing -- in one place.
"""

from __future__ import annotations

import re
from typing import Iterable, Iterator, List, Optional

from .base import Engine, GenerationContext, GenerationRequest, Output, PromptTooLongError, saturating_usage

__all__ = ["WordPieceEngine", "count_tokens", "decode", "tokenize"]

_TOKEN = re.compile(r"\S+\s*|\s+")


def tokenize(text: str) -> List[str]:
    """``text`` as word pieces, each with its trailing whitespace; joined
    again they give back ``text`` exactly."""
    return _TOKEN.findall(text)


def count_tokens(text: str) -> int:
    """How many word pieces ``text`` has."""
    return sum(1 for _ in _TOKEN.finditer(text))


def decode(
    tokens: Iterable[str],
    request: GenerationRequest,
    ctx: GenerationContext,
    *,
    prompt_tokens: int,
    max_tokens: Optional[int] = None,
    pace: float = 0.0,
) -> Iterator[Output]:
    """Outputs for the ``tokens`` an engine generates, ending in exactly one
    terminal output:

    * ``"cancelled"`` as soon as ``ctx`` is stopped (also during a pace wait);
    * ``"length"`` once ``request.max_tokens`` (else ``max_tokens``) tokens
      were generated and more would follow;
    * ``"stop"`` at a stop string (cut from the output) or when ``tokens`` ends.

    Text that could be the start of a stop string is held back until it is
    clear that it is not, so a stop string split across tokens never leaks.
    The usage counts every token generated, the one holding a stop string
    included (the model did generate it).

    :param pace: seconds to wait after each token (for demos).
    """
    limit = request.max_tokens if request.max_tokens is not None else max_tokens
    stops = [s for s in request.stop if s]
    generated = 0
    held: List[str] = []

    def final(reason: str) -> Output:
        return Output.final(reason, saturating_usage(prompt_tokens, generated))

    for token in tokens:
        if ctx.is_stopped():
            yield final("cancelled")
            return
        if limit is not None and generated >= limit:
            yield final("length")
            return
        generated += 1
        held.append(token)
        pending = "".join(held)
        cut = min((i for i in (pending.find(s) for s in stops) if i >= 0), default=-1)
        if cut >= 0:
            if pending[:cut]:
                yield Output(pending[:cut])
            yield final("stop")
            return
        if stops and any(_ends_with_prefix(pending, s) for s in stops):
            continue  # the next token decides whether this is a stop string
        for piece in held:
            yield Output(piece)
        held = []
        if pace and ctx.wait(pace):
            yield final("cancelled")
            return
    for piece in held:
        yield Output(piece)
    yield final("stop")


def _ends_with_prefix(text: str, stop: str) -> bool:
    """Whether ``text`` ends with a proper prefix of ``stop``."""
    return any(text.endswith(stop[:n]) for n in range(1, len(stop)))


class WordPieceEngine(Engine):
    """An engine that reads and writes word pieces (every built-in one):
    its prompt size is known before it generates."""

    _context_length: int

    def prompt_tokens(self, request: GenerationRequest) -> int:
        return count_tokens(request.prompt())

    def _measure(self, request: GenerationRequest) -> int:
        """The prompt's size in tokens.

        :raises PromptTooLongError: it does not fit the context.
        """
        size = self.prompt_tokens(request)
        if size > self._context_length:
            raise PromptTooLongError(size, self._context_length)
        return size
