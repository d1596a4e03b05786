"""The ``scripted`` engine: replays scripts, faults included, for testing
code that uses engines (or ``minillm serve``) the way
:class:`~minillm.testing.ScriptedServer` tests code that uses providers.

A script is a sequence of steps: a string is one token; :class:`Pause`
waits (waking at once when the generation is stopped); :class:`Gate` waits
until the test opens it; :class:`Fail` raises mid-stream; :class:`Finish`
ends with a chosen finish reason and usage; an :class:`Output` is passed on
as it is (to test a consumer against a stream that breaks the contract).
A script without a terminal step ends with ``"stop"``. Tokens are replayed
exactly: ``max_tokens`` and stop strings do not apply.

:class:`Pause` and :class:`Gate` are the steps the scripted server
(:mod:`minillm.testing`) waits on too; they live here so that an engine
never loads the test helpers.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Deque, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import attrs

from ..models import Usage
from .base import EngineConfig, EngineError, GenerationContext, GenerationRequest, Output, saturating_usage
from .decoding import WordPieceEngine

__all__ = ["Fail", "Finish", "Gate", "Pause", "ScriptStep", "ScriptedEngine"]

#: The longest any step waits, so that a forgotten gate cannot hang a test run.
MAX_WAIT = 30.0


@attrs.frozen
class Pause:
    """Wait ``seconds`` before the next step (for demos and pacing, not for
    synchronising tests: use :class:`Gate`)."""

    seconds: float


@attrs.frozen(eq=False)
class Gate:
    """Wait until ``event`` is set (at most :data:`!MAX_WAIT` seconds)."""

    event: threading.Event = attrs.field(factory=threading.Event)

    def open(self) -> None:
        self.event.set()


@attrs.frozen
class Fail:
    """Raise :class:`~minillm.engines.EngineError` with ``message`` here."""

    message: str = "the scripted engine failed"


@attrs.frozen
class Finish:
    """End here with ``reason``; ``usage`` defaults to the real counts."""

    reason: str = "stop"
    usage: Optional[Usage] = None
    error: Optional[str] = None


ScriptStep = Union[str, Pause, Gate, Fail, Finish, Output]


class ScriptedEngine(WordPieceEngine):
    """Replays one script per generation, in order.

    :param scripts: the scripts to replay, one per request.
    :param repeat: replay the last script for every request after the others.
    :ivar requests: every request received, in order.
    """

    name = "scripted"

    def __init__(
        self,
        *scripts: Sequence[ScriptStep],
        model: str = "scripted",
        context_length: int = 8192,
        repeat: bool = False,
        strict: bool = False,
    ) -> None:
        super().__init__(strict=strict)
        self._model = model
        self._context_length = context_length
        self._repeat = repeat
        self._scripts: Deque[Tuple[ScriptStep, ...]] = deque(tuple(s) for s in scripts)
        self._script_lock = threading.Lock()
        self.requests: List[GenerationRequest] = []

    def add(self, *steps: ScriptStep) -> None:
        """Queue one more script."""
        with self._script_lock:
            self._scripts.append(tuple(steps))

    def _load(self) -> EngineConfig:
        return EngineConfig(model=self._model, context_length=self._context_length)

    def _generate(self, request: GenerationRequest, ctx: GenerationContext) -> Iterator[Output]:
        prompt_tokens = self._measure(request)
        with self._script_lock:
            self.requests.append(request)
            if not self._scripts:
                raise EngineError("the scripted engine has no script left for this request")
            script = self._scripts[0] if self._repeat and len(self._scripts) == 1 else self._scripts.popleft()
        return _play(script, prompt_tokens, ctx)


def _play(script: Iterable[ScriptStep], prompt_tokens: int, ctx: GenerationContext) -> Iterator[Output]:
    generated = 0

    def cancelled() -> Output:
        return Output.final("cancelled", saturating_usage(prompt_tokens, generated))

    for step in script:
        if ctx.is_stopped():
            yield cancelled()
            return
        if isinstance(step, str):
            generated += 1
            yield Output(step)
        elif isinstance(step, Pause):
            if ctx.wait(step.seconds):
                yield cancelled()
                return
        elif isinstance(step, Gate):
            if not _wait_for(step, ctx):
                yield cancelled()
                return
        elif isinstance(step, Fail):
            raise EngineError(step.message)
        elif isinstance(step, Finish):
            usage = step.usage or saturating_usage(prompt_tokens, generated)
            yield Output.final(step.reason, usage, error=step.error)
            return
        elif isinstance(step, Output):
            yield step
        else:
            raise TypeError(f"not a script step: {step!r}")
    yield Output.final("stop", saturating_usage(prompt_tokens, generated))


def _wait_for(gate: Gate, ctx: GenerationContext) -> bool:
    """Wait until ``gate`` opens (True) or ``ctx`` is stopped (False)."""
    for _ in range(int(MAX_WAIT / 0.01)):
        if gate.event.wait(0.01):
            return True
        if ctx.is_stopped():
            return False
    return gate.event.is_set()
