"""The engine contract: what a generation engine is, and the lifecycle
every engine shares.

An engine turns a :class:`GenerationRequest` into a stream of
:class:`Output` objects. Its lifecycle is one path, kept by
:class:`Engine` itself so that no engine has to get it right alone:

``start()``
    loads the engine once (concurrent callers wait for the one load) and
    returns its :class:`EngineConfig`. A load that fails is cleaned up at
    once -- ``cleanup()`` must be safe on a partially started engine -- and
    raised as :class:`~minillm.engines.EngineError`.
``generate(request, ctx)``
    returns an iterator of outputs; called concurrently for many requests.
``abort(ctx, reason)``
    asks one generation to stop, for a :class:`~minillm.cancellation.Stop`
    reason: its context is stopped, and the engine's own ``_abort`` hook
    runs.
``drain(timeout)``
    refuses new generations and waits for the running ones to finish.
``cleanup()``
    aborts what still runs and releases the engine's resources, exactly
    once; later calls do nothing.

The stream contract
-------------------
Non-terminal outputs carry token text. Exactly one terminal output carries
the finish reason -- ``"stop"``, ``"length"``, ``"cancelled"`` or ``"error"``
-- and the usage, and nothing follows it. An exception raised mid-stream is
itself terminal. The engine polls :meth:`~minillm.engines.GenerationContext.is_stopped`
between outputs and ends with a terminal ``"cancelled"`` output when asked
to stop, whatever the reason: the reason -- a cancel, a pause, a deadline --
is the context's :attr:`~minillm.engines.GenerationContext.stop_reason`, and
only whoever stopped the generation turns it into what its caller sees.
:func:`~minillm.engines.validate` checks all of this.
"""

from __future__ import annotations

import abc
import enum
import logging
import threading
import uuid
from typing import Any, ClassVar, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import attrs

from ..cancellation import Stop
from ..errors import InvalidArgumentError, MiniLLMError
from ..models import Usage

__all__ = [
    "FINISH_REASONS",
    "MAX_TOKEN_COUNT",
    "Engine",
    "EngineConfig",
    "EngineContractError",
    "EngineError",
    "GenerationContext",
    "GenerationRequest",
    "Output",
    "PromptTooLongError",
    "saturating_usage",
]

log = logging.getLogger("minillm.engines")

#: The finish reasons a terminal output may carry.
FINISH_REASONS = frozenset({"stop", "length", "cancelled", "error"})

#: The largest token count an engine reports: the largest integer every JSON
#: reader (JavaScript's included) keeps exactly.
MAX_TOKEN_COUNT = 2**53 - 1


class EngineError(MiniLLMError):
    """An engine could not do what was asked (it failed to start, is
    draining, or was cleaned up)."""


class EngineContractError(EngineError):
    """An engine's output stream broke the stream contract."""


class PromptTooLongError(EngineError):
    """The prompt does not fit the engine's context.

    :ivar prompt_tokens: the prompt's size in tokens.
    :ivar context_length: the most the engine takes.
    """

    def __init__(self, prompt_tokens: int, context_length: int) -> None:
        super().__init__(f"the prompt has {prompt_tokens} tokens; the engine's context holds at most {context_length}")
        self.prompt_tokens = prompt_tokens
        self.context_length = context_length


def _saturate(count: int) -> int:
    return max(0, min(int(count), MAX_TOKEN_COUNT))


def saturating_usage(prompt_tokens: int, completion_tokens: int) -> Usage:
    """A :class:`~minillm.Usage` whose counts (and their total) stop at
    :data:`MAX_TOKEN_COUNT` instead of growing past what a reader can hold."""
    prompt, completion = _saturate(prompt_tokens), _saturate(completion_tokens)
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=_saturate(prompt + completion))


@attrs.frozen
class EngineConfig:
    """What :meth:`Engine.start` reports about a started engine.

    :param model: the model name the engine serves.
    :param context_length: the most tokens a prompt may have.
    :param owned_by: shown by ``GET /v1/models``.
    """

    model: str
    context_length: int
    owned_by: str = "minillm"


def _messages(value: Sequence[Mapping[str, Any]]) -> Tuple[Mapping[str, Any], ...]:
    return tuple(dict(m) for m in value)


@attrs.frozen
class GenerationRequest:
    """One request to an engine.

    :param messages: OpenAI-shaped chat messages (``role``, ``content``),
        system messages included.
    :param max_tokens: the most tokens to generate (None: the engine decides).
    :param temperature: sampling temperature (None: the engine's default).
    :param stop: strings that end the generation (not included in the output).
    :param seed: makes sampling repeatable.
    :param request_id: identifies the request in logs.
    """

    messages: Tuple[Mapping[str, Any], ...] = attrs.field(converter=_messages)
    max_tokens: Optional[int] = None
    temperature: Optional[float] = None
    stop: Tuple[str, ...] = attrs.field(default=(), converter=tuple)
    seed: Optional[int] = None
    request_id: str = attrs.field(factory=lambda: uuid.uuid4().hex)

    def texts(self, role: Optional[str] = None) -> List[str]:
        """The text of each message (of ``role`` only, when given); content
        given as typed parts contributes its text parts."""
        found: List[str] = []
        for message in self.messages:
            if role is not None and message.get("role") != role:
                continue
            content = message.get("content")
            if isinstance(content, str):
                found.append(content)
            elif isinstance(content, list):
                found.append(
                    "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
                )
        return found

    def prompt(self) -> str:
        """The messages as the one text an engine reads: ``role: content`` lines."""
        lines = []
        for message, text in zip(self.messages, self.texts()):
            lines.append(f"{message.get('role', 'user')}: {text}")
        return "\n".join(lines)


class GenerationContext:
    """One generation's line to whoever started it: whether to stop.

    Thread-safe: :meth:`stop` is called from other threads (a cancelled
    request, a client that went away, an engine being cleaned up).
    """

    def __init__(self, request_id: Optional[str] = None) -> None:
        self.request_id = request_id or uuid.uuid4().hex
        self._stopped = threading.Event()
        self._reason: Optional[Stop] = None
        self._lock = threading.Lock()

    def stop(self, reason: Stop = Stop.CANCELLED) -> None:
        """Ask the generation to stop (the first reason given is kept).

        :raises InvalidArgumentError: ``reason`` is not a :class:`~minillm.cancellation.Stop`.
        """
        if not isinstance(reason, Stop):
            # A reason spelled as text would pass unnoticed until someone
            # asks whether the caller chose it.
            raise InvalidArgumentError(f"a generation stops for a Stop, not {reason!r}")
        with self._lock:
            if self._reason is None:
                self._reason = reason
        self._stopped.set()

    def is_stopped(self) -> bool:
        """Whether the generation has been asked to stop: poll it between outputs."""
        return self._stopped.is_set()

    @property
    def stop_reason(self) -> Optional[Stop]:
        """Why it was asked to stop, or None."""
        return self._reason

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``, waking at once when asked to stop.

        :returns: True when asked to stop.
        """
        return self._stopped.wait(max(seconds, 0.0))

    def __repr__(self) -> str:
        reason = self._reason
        state = f"stopped ({reason.value})" if reason is not None else "running"
        return f"<GenerationContext {self.request_id} {state}>"


@attrs.frozen
class Output:
    """One step of a generation: a token, or the terminal output.

    Build terminal outputs with :meth:`final`.
    """

    text: str = ""
    #: set on the terminal output only
    finish_reason: Optional[str] = None
    #: set on the terminal output only
    usage: Optional[Usage] = None
    #: what went wrong, on a terminal ``"error"`` output
    error: Optional[str] = None

    @property
    def is_terminal(self) -> bool:
        return self.finish_reason is not None

    @classmethod
    def final(cls, finish_reason: str, usage: Usage, *, text: str = "", error: Optional[str] = None) -> Output:
        """The terminal output."""
        return cls(text=text, finish_reason=finish_reason, usage=usage, error=error)


class _State(enum.Enum):
    NEW = "new"
    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"
    STOPPED = "stopped"


class Engine(abc.ABC):
    """Base class of every engine: implement :meth:`_load` and
    :meth:`_generate`; optionally :meth:`_abort`, :meth:`_cleanup` and
    :meth:`_health`. The public methods keep the lifecycle.

    :param strict: check every output stream against the contract
        (:func:`~minillm.engines.validate`); a violation raises
        :class:`EngineContractError`.
    """

    #: a short name for logs and ``minillm serve``
    name: ClassVar[str] = "engine"

    def __init__(self, *, strict: bool = False) -> None:
        self.strict = strict
        self._lock = threading.Condition()
        self._state = _State.NEW
        self._config: Optional[EngineConfig] = None
        self._running: Dict[GenerationContext, None] = {}
        self._cleaned = False

    # -- to implement --------------------------------------------------------

    @abc.abstractmethod
    def _load(self) -> EngineConfig:
        """Acquire what the engine needs; return its configuration."""

    @abc.abstractmethod
    def _generate(self, request: GenerationRequest, ctx: GenerationContext) -> Iterator[Output]:
        """The output stream for ``request`` (see the stream contract)."""

    def _abort(self, ctx: GenerationContext) -> None:  # noqa: B027 - optional hook
        """Engine-specific work to stop one generation (its context is
        already stopped; ``ctx.stop_reason`` says why)."""

    def _cleanup(self) -> None:  # noqa: B027 - optional hook
        """Release what :meth:`_load` acquired; must cope with a load that
        failed halfway."""

    def _health(self) -> Optional[Dict[str, Any]]:
        """Extra fields for the ``/health`` answer."""
        return None

    def prompt_tokens(self, request: GenerationRequest) -> Optional[int]:
        """How many tokens the engine reads for ``request``, when it can tell
        before generating (None: it cannot). Lets a server report usage
        while a stream is still running."""
        return None

    # -- the lifecycle ---------------------------------------------------------

    def start(self) -> EngineConfig:
        """Load the engine (once) and return its configuration.

        :raises EngineError: it failed to load, or was cleaned up.
        """
        with self._lock:
            while self._state is _State.STARTING:
                self._lock.wait()
            if self._config is not None:
                return self._config
            if self._state is not _State.NEW:
                raise EngineError(f"the {self.name} engine was cleaned up: make a new one")
            self._state = _State.STARTING
        try:
            config = self._load()
        except BaseException as exc:
            with self._lock:
                self._state = _State.NEW
                self._lock.notify_all()
            self.cleanup()  # whatever the failed load acquired
            if isinstance(exc, EngineError):
                raise
            if not isinstance(exc, Exception):
                raise
            raise EngineError(f"the {self.name} engine failed to start: {type(exc).__name__}: {exc}") from exc
        with self._lock:
            self._config = config
            self._state = _State.READY
            self._lock.notify_all()
        return config

    @property
    def config(self) -> Optional[EngineConfig]:
        """The configuration, once started."""
        return self._config

    def generate(self, request: GenerationRequest, ctx: GenerationContext) -> Iterator[Output]:
        """The output stream for ``request``; stop it with :meth:`abort`.

        :raises EngineError: the engine is not started, draining or cleaned up.
        """
        with self._lock:
            if self._state is not _State.READY:
                raise EngineError(f"the {self.name} engine is {self._state.value}: it takes no new requests")
            self._running[ctx] = None
        try:
            outputs = iter(self._generate(request, ctx))
        except BaseException:
            self._finished(ctx)
            raise
        if self.strict:
            from .validate import validate

            outputs = validate(outputs)
        return _Generation(outputs, lambda: self._finished(ctx))

    def abort(self, ctx: GenerationContext, reason: Stop = Stop.CANCELLED) -> None:
        """Ask the generation of ``ctx`` to stop. Any thread; idempotent
        (the first reason is kept)."""
        ctx.stop(reason)
        try:
            self._abort(ctx)
        except Exception:
            log.exception("aborting a %s generation failed", self.name)

    def drain(self, timeout: Optional[float] = None) -> bool:
        """Take no new requests and wait for the running ones to end.

        :returns: True when none is left, False if ``timeout`` passed first.
        """
        with self._lock:
            if self._state is _State.READY:
                self._state = _State.DRAINING
        return self.wait_idle(timeout)

    def wait_idle(self, timeout: Optional[float] = None) -> bool:
        """Wait until no generation is running (new ones are still taken).

        :returns: True when none is, False if ``timeout`` passed first.
        """
        with self._lock:
            return self._lock.wait_for(lambda: not self._running, timeout)

    def cleanup(self) -> None:
        """Abort what still runs and release the engine, once. Idempotent,
        any thread, and safe whether or not the engine ever started."""
        with self._lock:
            while self._state is _State.STARTING:
                self._lock.wait()  # clean up what the start leaves, not half of it
            if self._cleaned:
                return
            self._cleaned = True
            self._state = _State.STOPPED
            running = list(self._running)
        for ctx in running:
            self.abort(ctx)
        try:
            self._cleanup()
        except Exception:
            log.exception("cleaning up the %s engine failed", self.name)

    def health(self) -> Dict[str, Any]:
        """``{"status": "ok" | "starting" | "draining" | ..., "model": ..., "running": n}``
        and the engine's own fields."""
        with self._lock:
            state, running, config = self._state, len(self._running), self._config
        payload: Dict[str, Any] = {
            "status": "ok" if state is _State.READY else state.value,
            "engine": self.name,
            "running": running,
        }
        if config is not None:
            payload["model"] = config.model
        if state is _State.READY:
            try:
                payload.update(self._health() or {})
            except Exception as exc:
                payload.update(status="unhealthy", error=f"{type(exc).__name__}: {exc}")
        return payload

    def _finished(self, ctx: GenerationContext) -> None:
        with self._lock:
            self._running.pop(ctx, None)
            self._lock.notify_all()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._state.value}>"


class _Generation(Iterator[Output]):
    """A running generation: iterates the engine's outputs and tells the
    engine, once, when it is over -- exhausted, failed, closed, or dropped
    without ever being read."""

    def __init__(self, outputs: Iterator[Output], done: Any) -> None:
        self._outputs = outputs
        self._done = done
        self._over = False

    def __next__(self) -> Output:
        try:
            return next(self._outputs)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._over:
            return
        self._over = True
        close = getattr(self._outputs, "close", None)
        try:
            if close is not None:
                close()
        finally:
            self._done()

    def __del__(self) -> None:
        self.close()
