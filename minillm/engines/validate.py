"""The stream-contract validator: wraps any engine's output stream and
raises :class:`~minillm.engines.EngineContractError` the moment it breaks
the contract (see :mod:`minillm.engines.base`).

Used by minillm's own tests on every built-in engine, and switched on for
any engine with ``strict=True``.
"""

from __future__ import annotations

from typing import Iterable, Iterator, Optional

from ..models import Usage
from .base import FINISH_REASONS, EngineContractError, Output

__all__ = ["validate"]


def validate(outputs: Iterable[Output]) -> Iterator[Output]:
    """Yield ``outputs`` unchanged, checking the stream contract as they pass.

    An exception the engine raises before its terminal output is itself
    terminal and passes through unchanged.

    :raises EngineContractError: an item that is not an :class:`Output`; a
        non-terminal output carrying usage or an error; a terminal output
        with an unknown finish reason or without usage; anything after the
        terminal output (another output, or an exception); no terminal
        output at all.
    """
    terminal: Optional[Output] = None
    iterator = iter(outputs)
    position = 0
    try:
        while True:
            try:
                output = next(iterator)
            except StopIteration:
                break
            except Exception as exc:
                if terminal is not None:
                    raise EngineContractError(
                        f"the engine raised {type(exc).__name__} after its terminal output"
                    ) from exc
                raise  # an exception mid-stream is the stream's terminal
            if terminal is not None:
                raise EngineContractError(f"output #{position} came after the terminal output: {output!r}")
            _check(output, position)
            if output.is_terminal:
                terminal = output
            position += 1
            yield output
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()  # stopped early by the consumer: the engine's generator ends too
    if terminal is None:
        raise EngineContractError(f"the stream ended after {position} outputs without a terminal output")


def _check(output: object, position: int) -> None:
    if not isinstance(output, Output):
        raise EngineContractError(f"output #{position} is a {type(output).__name__}, not an Output")
    if output.is_terminal:
        if output.finish_reason not in FINISH_REASONS:
            allowed = ", ".join(sorted(FINISH_REASONS))
            raise EngineContractError(
                f"the terminal output's finish reason {output.finish_reason!r} is not one of {allowed}"
            )
        if not isinstance(output.usage, Usage):
            raise EngineContractError("the terminal output carries no usage")
    elif output.usage is not None or output.error is not None:
        raise EngineContractError(f"output #{position} is not terminal but carries usage or an error")
