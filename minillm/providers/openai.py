"""OpenAI, and any OpenAI-compatible server given as ``base_url``."""

from __future__ import annotations

from typing import ClassVar, Tuple

from .base import ProviderConfig
from .openai_chat import ChatCompletionsAdapter

__all__ = ["OpenAIAdapter"]


class OpenAIAdapter(ChatCompletionsAdapter):
    """``openai/<model>``: OpenAI's Chat Completions, or a compatible server.

    OpenAI's own reasoning models reject ``max_tokens`` and take
    ``max_completion_tokens``; many compatible servers only know
    ``max_tokens``. The field therefore follows the server: OpenAI's own
    base URL gets the new name, any other base URL the classic one.
    """

    name = "openai"
    default_base_url = "https://api.openai.com/v1"
    key_env: ClassVar[Tuple[str, ...]] = ("OPENAI_API_KEY",)
    base_url_env = "OPENAI_BASE_URL"

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self.max_tokens_field = "max_completion_tokens" if config.official else "max_tokens"  # type: ignore[misc]
