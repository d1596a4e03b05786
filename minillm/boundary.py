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

import copy
import functools
from typing import Any, Callable, Optional, TypeVar, cast

from .errors import MiniLLMError

__all__ = ["kept", "public_errors", "shortened"]

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


def kept(error: MiniLLMError) -> MiniLLMError:
    """A twin of ``error`` to keep -- on a call, to raise again later --
    without a traceback, its own or its causes'. The frames ``error`` passes
    on its way out hold the stream being read, and from Python 3.12 a frame
    that outlives its run keeps its caller's frame too, so even the HTTP
    library's error behind it reaches them: a call that kept those frames
    would keep an abandoned stream alive -- and its finalizer, which books
    it, from ever running."""
    twin = type(error).__new__(type(error), *error.args)  # no __init__: it may want keywords
    twin.__dict__.update(error.__dict__)
    twin.__cause__, twin.__suppress_context__ = _detached(error.__cause__), error.__suppress_context__
    return twin


def _detached(cause: Optional[BaseException], depth: int = 0) -> Optional[BaseException]:
    """A copy of ``cause``, and of its own causes, without tracebacks."""
    if cause is None or depth > 8:
        return None
    try:
        copied = copy.copy(cause)  # args and __dict__: never the traceback
    except Exception:
        return None
    copied.__traceback__ = None
    copied.__cause__ = _detached(cause.__cause__, depth + 1)
    copied.__context__ = None
    return copied
