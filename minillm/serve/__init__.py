"""Serving engines: the OpenAI-compatible application, the HTTP server
behind ``minillm serve``, and the in-process transport of ``local/``."""

from __future__ import annotations

import typing as _typing

from .app import AppReply, OpenAIApp

if _typing.TYPE_CHECKING:  # at run time, imported when first used
    from .server import EngineServer

__all__ = ["AppReply", "EngineServer", "OpenAIApp"]


def __getattr__(name: str) -> _typing.Any:
    # ``local/`` runs the application in process: the HTTP server is loaded
    # only by whoever serves over HTTP.
    if name != "EngineServer":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from .server import EngineServer

    globals()[name] = EngineServer
    return EngineServer
