"""Together AI over its OpenAI-compatible Chat Completions endpoint."""

from __future__ import annotations

from typing import Any, ClassVar, Dict, Tuple

from .base import effort_for_budget
from .openai_chat import ChatCompletionsAdapter

__all__ = ["TogetherAdapter"]


class TogetherAdapter(ChatCompletionsAdapter):
    """``together/<org>/<model>`` (``together/meta-llama/Llama-3.3-70B-Instruct-Turbo``).

    Usage comes in the final chunk (which also carries the text of the last
    token and Together's ``"eos"`` finish reason, read as ``"stop"``).
    Streams still ask for it with ``stream_options``, which Together accepts.

    ``thinking_budget``: Together's hybrid models switch reasoning with
    ``reasoning: {"enabled": ...}`` and reason by default; its
    adjustable-effort models take ``reasoning_effort``. A budget of 0 turns
    reasoning off with the switch; any other budget asks for the nearest of
    ``"low"``, ``"medium"`` and ``"high"``.
    """

    name = "together"
    default_base_url = "https://api.together.xyz/v1"
    key_env: ClassVar[Tuple[str, ...]] = ("TOGETHER_API_KEY",)
    base_url_env = "TOGETHER_BASE_URL"
    catalog_provider = "together"
    accepts_cache_control = False

    def thinking_options(self, budget: int) -> Dict[str, Any]:
        if budget == 0:
            return {"reasoning": {"enabled": False}}
        return {"reasoning_effort": effort_for_budget(budget)}
