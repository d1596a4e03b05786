"""Engines by name: the built-ins, the ones registered by the program, and
any ``"package.module:factory"``.

``Client("local/<name>")`` and ``minillm serve --engine <name>`` look
engines up here. A built-in is made the first time it is asked for and
then shared; every engine started through the registry is cleaned up at
interpreter exit.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
from typing import Callable, Dict, Iterator, List, Union

from ..errors import ConfigurationError
from .base import Engine

__all__ = ["available", "get_engine", "register", "registered", "unregister"]

EngineSource = Union[Engine, Callable[[], Engine]]


def _echo() -> Engine:
    from .echo import EchoEngine

    return EchoEngine()


def _ngram() -> Engine:
    from .ngram import NGramEngine

    return NGramEngine()


#: name -> how to make the built-in engine
BUILTINS: Dict[str, Callable[[], Engine]] = {"echo": _echo, "ngram": _ngram}

_lock = threading.Lock()
_sources: Dict[str, EngineSource] = {}
_made: Dict[str, Engine] = {}
_exit_hook = False


def register(name: str, engine: EngineSource, *, replace: bool = False) -> None:
    """Make ``engine`` (an :class:`~minillm.engines.Engine`, or a callable
    that makes one when first needed) available as ``local/<name>``.

    :raises ConfigurationError: the name is taken (and not ``replace``).
    """
    if not isinstance(name, str) or not name or "/" in name:
        raise ConfigurationError(f"an engine name is a non-empty string without '/', not {name!r}")
    if not isinstance(engine, Engine) and not callable(engine):
        raise ConfigurationError(f"register an Engine or a callable that makes one, not {type(engine).__name__}")
    with _lock:
        if not replace and (name in _sources or name in _made):
            raise ConfigurationError(f"an engine named {name!r} is already registered")
        _made.pop(name, None)
        _sources[name] = engine


def unregister(name: str) -> None:
    """Forget ``name`` (a built-in comes back as new the next time it is
    asked for). The engine itself is not cleaned up: that is its owner's call."""
    with _lock:
        _sources.pop(name, None)
        _made.pop(name, None)


@contextlib.contextmanager
def registered(name: str, engine: Engine) -> Iterator[Engine]:
    """Register ``engine`` as ``name`` for the duration of a ``with`` block,
    then unregister it and clean it up (for tests)."""
    register(name, engine)
    try:
        yield engine
    finally:
        unregister(name)
        engine.cleanup()


def available() -> List[str]:
    """The names :func:`get_engine` knows without importing anything."""
    with _lock:
        return sorted(set(BUILTINS) | set(_sources))


def get_engine(name: str) -> Engine:
    """The engine called ``name`` -- registered, built in, or
    ``"package.module:attribute"`` (an Engine, or a callable making one) --
    not necessarily started.

    :raises ConfigurationError: there is no such engine.
    """
    with _lock:
        engine = _made.get(name)
        if engine is not None:
            return engine
        source = _sources.get(name) or BUILTINS.get(name)
    if source is None:
        if ":" not in name:
            known = ", ".join(available())
            raise ConfigurationError(
                f"no engine named {name!r}: the engines are {known}, or name one as 'package.module:factory'"
            )
        source = _import(name)
    engine = source if isinstance(source, Engine) else source()
    if not isinstance(engine, Engine):
        raise ConfigurationError(f"{name!r} made a {type(engine).__name__}, not a minillm.engines.Engine")
    with _lock:
        engine = _made.setdefault(name, engine)
        global _exit_hook
        if not _exit_hook:
            from .. import runtime

            runtime.at_exit(_cleanup_all)
            _exit_hook = True
    return engine


def _import(spec: str) -> EngineSource:
    module_name, _, attribute = spec.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigurationError(f"cannot load the engine {spec!r}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(found, Engine) and not callable(found):
        raise ConfigurationError(f"{spec!r} is neither an Engine nor a callable that makes one")
    return found  # type: ignore[no-any-return]


def _cleanup_all() -> None:
    with _lock:
        engines = list(_made.values())
    for engine in engines:
        engine.cleanup()
