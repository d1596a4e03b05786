"""Fireworks AI over its OpenAI-compatible Chat Completions endpoint."""

from __future__ import annotations

from typing import ClassVar, Tuple

from .openai_chat import ChatCompletionsAdapter

__all__ = ["FireworksAdapter"]

#: Where Fireworks keeps its own serverless models; model names are paths
#: below an account (``accounts/fireworks/models/gpt-oss-120b``).
MODELS_PATH = "accounts/fireworks/models/"


class FireworksAdapter(ChatCompletionsAdapter):
    """``fireworks/accounts/fireworks/models/<name>``.

    Streams ask for usage: some models send it in the last chunk anyway,
    others only on a ``choices: []`` chunk when asked. Fireworks validates
    message content parts strictly and refuses Anthropic's ``cache_control``
    markers (its prompt cache works without them), so they are left out.

    The price catalog knows Fireworks' models by their full path; a bare
    name (``fireworks/gpt-oss-120b``) is looked up as one of Fireworks' own
    serverless models. The name is sent to Fireworks as it was given.

    ``thinking_budget`` becomes ``reasoning_effort``: 0 is ``"none"``
    (reasoning off, for the models that can turn it off), a budget the
    nearest of ``"low"``, ``"medium"`` and ``"high"``. Reasoning streams as
    ``reasoning_content``.
    """

    name = "fireworks"
    default_base_url = "https://api.fireworks.ai/inference/v1"
    key_env: ClassVar[Tuple[str, ...]] = ("FIREWORKS_API_KEY",)
    base_url_env = "FIREWORKS_BASE_URL"
    catalog_provider = "fireworks"
    accepts_cache_control = False
    no_thinking_effort = "none"

    @classmethod
    def catalog_model(cls, model: str) -> str:
        return model if "/" in model else MODELS_PATH + model
