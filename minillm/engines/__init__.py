"""Generation engines: models that run in this process.

An engine follows one lifecycle (see :mod:`minillm.engines.base`) and
streams :class:`Output` objects that end in exactly one terminal output.
``Client("local/<engine>")`` runs one with the whole client API, and
``minillm serve`` exposes one as an OpenAI-compatible server.

Built in: ``echo`` (:class:`EchoEngine`), ``ngram`` (:class:`NGramEngine`),
and :class:`ScriptedEngine` for tests.
"""

from __future__ import annotations

from .base import (
    FINISH_REASONS,
    MAX_TOKEN_COUNT,
    Engine,
    EngineConfig,
    EngineContractError,
    EngineError,
    GenerationContext,
    GenerationRequest,
    Output,
    PromptTooLongError,
    saturating_usage,
)
from .decoding import count_tokens, decode, tokenize
from .echo import EchoEngine
from .ngram import NGramEngine
from .registry import available, get_engine, register, registered, unregister
from .scripted import Fail, Finish, ScriptedEngine, ScriptStep
from .validate import validate

__all__ = [
    "FINISH_REASONS",
    "MAX_TOKEN_COUNT",
    "EchoEngine",
    "Engine",
    "EngineConfig",
    "EngineContractError",
    "EngineError",
    "Fail",
    "Finish",
    "GenerationContext",
    "GenerationRequest",
    "NGramEngine",
    "Output",
    "PromptTooLongError",
    "ScriptStep",
    "ScriptedEngine",
    "available",
    "count_tokens",
    "decode",
    "get_engine",
    "register",
    "registered",
    "saturating_usage",
    "tokenize",
    "unregister",
    "validate",
]
