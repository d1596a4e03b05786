"""Mistral (La Plateforme) over its OpenAI-compatible Chat Completions endpoint."""

from __future__ import annotations

from typing import Any, ClassVar, Dict, Tuple

from .openai_chat import ChatCompletionsAdapter

__all__ = ["MistralAdapter"]


class MistralAdapter(ChatCompletionsAdapter):
    """``mistral/<model>`` (``mistral-small-latest``, ``magistral-medium-latest``, ...).

    Mistral validates request bodies strictly: any field it does not know
    is a 422 (``extra_forbidden``). So a stream does not ask for usage with
    ``stream_options`` -- Mistral sends it in the last chunk anyway -- the
    output cap is ``max_tokens`` (never ``max_completion_tokens``), and no
    ``reasoning_details`` or ``cache_control`` marker is passed on from the
    messages. Anything given in ``extra_body`` is still sent as it is.

    ``thinking_budget`` becomes Mistral's ``reasoning_effort``, which takes
    ``"none"`` and ``"high"`` only: 0 is ``"none"``, any other budget
    ``"high"``. Magistral models always reason and do not need it. Their
    reasoning arrives as ``thinking`` content parts and ends up in
    ``.thinking``.
    """

    name = "mistral"
    default_base_url = "https://api.mistral.ai/v1"
    key_env: ClassVar[Tuple[str, ...]] = ("MISTRAL_API_KEY",)
    base_url_env = "MISTRAL_BASE_URL"
    catalog_provider = "mistral"
    asks_for_stream_usage = False
    accepts_cache_control = False

    def thinking_options(self, budget: int) -> Dict[str, Any]:
        return {"reasoning_effort": "none" if budget == 0 else "high"}
