"""Cerebras over its OpenAI-compatible Chat Completions endpoint."""

from __future__ import annotations

from typing import ClassVar, Tuple

from .openai_chat import ChatCompletionsAdapter

__all__ = ["CerebrasAdapter"]


class CerebrasAdapter(ChatCompletionsAdapter):
    """``cerebras/<model>`` (``llama3.1-8b``, ``gpt-oss-120b``, ``zai-glm-4.7``, ...).

    Usage (with cached and reasoning tokens) comes on the chunk that carries
    the finish reason; Cerebras' ``time_info`` beside it is ignored.
    Reasoning streams as ``reasoning``.

    ``thinking_budget`` becomes ``reasoning_effort``: 0 is ``"none"`` (GLM
    models turn reasoning off with it; gpt-oss takes only the three levels
    and refuses it with a 400, raised as it is), a budget the nearest of
    ``"low"``, ``"medium"`` and ``"high"``.
    """

    name = "cerebras"
    default_base_url = "https://api.cerebras.ai/v1"
    key_env: ClassVar[Tuple[str, ...]] = ("CEREBRAS_API_KEY",)
    base_url_env = "CEREBRAS_BASE_URL"
    catalog_provider = "cerebras"
    max_tokens_field = "max_completion_tokens"
    accepts_cache_control = False
    no_thinking_effort = "none"
