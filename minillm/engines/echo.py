"""The ``echo`` engine: answers with the last user message, token by token.

Deterministic and instant (unless paced): the engine for tests that need a
real generation -- real token counts, ``max_tokens``, stop strings,
cancellation -- without caring what is said.
"""

from __future__ import annotations

from typing import Iterator

from .base import EngineConfig, GenerationContext, GenerationRequest, Output
from .decoding import WordPieceEngine, decode, tokenize

__all__ = ["EchoEngine"]


class EchoEngine(WordPieceEngine):
    """Echoes the last user message.

    :param model: the model name it serves.
    :param context_length: prompts longer than this (in tokens) are refused.
    :param pace: seconds between tokens.
    """

    name = "echo"

    def __init__(self, *, model: str = "echo", context_length: int = 8192, pace: float = 0.0, strict: bool = False):
        super().__init__(strict=strict)
        self._model = model
        self._context_length = context_length
        self._pace = pace

    def _load(self) -> EngineConfig:
        return EngineConfig(model=self._model, context_length=self._context_length)

    def _generate(self, request: GenerationRequest, ctx: GenerationContext) -> Iterator[Output]:
        prompt_tokens = self._measure(request)
        users = request.texts("user")
        return decode(tokenize(users[-1] if users else ""), request, ctx, prompt_tokens=prompt_tokens, pace=self._pace)
