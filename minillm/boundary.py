"""How minillm's errors leave its public API: with a short traceback.

An error minillm raises on purpose (a :class:`~minillm.MiniLLMError`) has
said what went wrong in its message; the frames it passed on the way out --
the call, the retry loop, tenacity and ``concurrent.futures`` inside it --
say nothing more to the person reading it, and buried a rejected key under
forty lines. :func:`public_errors` re-raises such an error from the public
method the caller called, without those frames and without the exceptions
handled on the way (the retry loop's), but with its ``__cause__`` -- the
HTTP library's error, say -- intact. Any other exception is a bug, and
keeps every frame.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar, cast

from .errors import MiniLLMError

__all__ = ["public_errors", "shortened"]

F = TypeVar("F", bound=Callable[..., Any])


def public_errors(method: F) -> F:
    """Wrap a public method so that its :class:`~minillm.MiniLLMError`
    tracebacks end where the caller called it."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except MiniLLMError as exc:
            raise shortened(exc) from exc.__cause__

    return cast(F, wrapper)


def shortened(exc: MiniLLMError) -> MiniLLMError:
    """``exc`` without the frames it has passed, to be raised again (``from
    exc.__cause__``, which keeps the cause and hides the context)."""
    return exc.with_traceback(None)
