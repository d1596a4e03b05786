"""Serving engines: the OpenAI-compatible application, the HTTP server
behind ``minillm serve``, and the in-process transport of ``local/``."""

from __future__ import annotations

from .app import AppReply, OpenAIApp
from .server import EngineServer

__all__ = ["AppReply", "EngineServer", "OpenAIApp"]
