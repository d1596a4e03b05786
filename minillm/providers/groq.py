"""Groq over its OpenAI-compatible Chat Completions endpoint."""

from __future__ import annotations

from typing import ClassVar, Tuple

from .openai_chat import ChatCompletionsAdapter

__all__ = ["GroqAdapter"]


class GroqAdapter(ChatCompletionsAdapter):
    """``groq/<model>`` (``llama-3.3-70b-versatile``, ``openai/gpt-oss-120b``, ...).

    Streams ask for usage like OpenAI's; older Groq streams put it in
    ``x_groq.usage`` on the finish chunk instead, and that is read too.
    The served tier (``service_tier``, ``"on_demand"`` or ``"flex"``) comes
    through as it is sent; Groq's timings beside the counts are ignored.

    ``thinking_budget`` becomes Groq's ``reasoning_effort``: 0 is ``"none"``
    (reasoning off), a budget the nearest of ``"low"``, ``"medium"`` and
    ``"high"``. Models take different levels (the gpt-oss models the three
    levels, Qwen3 only ``"none"`` and ``"default"``); Groq refuses a level
    a model does not take with a 400, which is raised as it is. Reasoning
    arrives as ``reasoning`` (Groq's ``parsed`` format) or inside
    ``<think>`` tags (``raw``), and both end up in ``.thinking``.
    """

    name = "groq"
    default_base_url = "https://api.groq.com/openai/v1"
    key_env: ClassVar[Tuple[str, ...]] = ("GROQ_API_KEY",)
    base_url_env = "GROQ_BASE_URL"
    catalog_provider = "groq"
    # Groq deprecates max_tokens in favour of OpenAI's newer name.
    max_tokens_field = "max_completion_tokens"
    usage_elsewhere = "x_groq"
    accepts_cache_control = False
    no_thinking_effort = "none"
