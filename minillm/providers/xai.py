"""xAI (Grok) over its OpenAI-compatible Chat Completions endpoint."""

from __future__ import annotations

from typing import Any, ClassVar, Dict, Tuple

from .openai_chat import ChatCompletionsAdapter

__all__ = ["XAIAdapter"]


class XAIAdapter(ChatCompletionsAdapter):
    """``xai/<model>``.

    xAI reports reasoning tokens beside ``completion_tokens``, not inside it
    (its ``total_tokens`` is prompt + completion + reasoning), and its cost
    as ``usage.cost_in_usd_ticks`` (1e-10 USD), which is read as the native
    cost.
    """

    name = "xai"
    default_base_url = "https://api.x.ai/v1"
    key_env: ClassVar[Tuple[str, ...]] = ("XAI_API_KEY",)
    base_url_env = "XAI_BASE_URL"
    catalog_provider = "x-ai"
    reasoning_in_completion = False

    def thinking_options(self, budget: int) -> Dict[str, Any]:
        # Grok's reasoning models accept only "low" and "high".
        return {"reasoning_effort": "low" if budget <= 4096 else "high"}
