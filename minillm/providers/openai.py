"""OpenAI -- Chat Completions and the Responses API -- and any
OpenAI-compatible server given as ``base_url``."""

from __future__ import annotations

from typing import ClassVar, Optional, Tuple

from ..request import ChatRequest
from ..transports.base import HTTPRequest
from .base import ProviderConfig
from .openai_chat import ChatCompletionsAdapter
from .openai_responses import ResponsesAdapter

__all__ = ["RESPONSES_ONLY_MODELS", "OpenAIAdapter", "OpenAIResponsesAdapter"]

#: Models OpenAI serves only through the Responses API (name prefixes): for
#: them ``api="responses"`` is chosen without being asked. The one place
#: this list lives.
RESPONSES_ONLY_MODELS: Tuple[str, ...] = (
    "o1-pro",
    "o3-pro",
    "o3-deep-research",
    "o4-mini-deep-research",
    "codex-mini",
    "computer-use-preview",
    "gpt-5-pro",
    "gpt-5-codex",
    "gpt-5.1-codex",
    "gpt-5.5-pro",
)


class OpenAIHost:
    """What OpenAI's two protocols share: where it is and how to reach it."""

    name = "openai"
    default_base_url = "https://api.openai.com/v1"
    key_env: ClassVar[Tuple[str, ...]] = ("OPENAI_API_KEY",)
    base_url_env: ClassVar[Optional[str]] = "OPENAI_BASE_URL"
    catalog_provider: ClassVar[Optional[str]] = "openai"
    #: ``/v1/files`` + ``/v1/batches``, for Chat Completions and Responses alike
    batch_protocol: ClassVar[Optional[str]] = "openai"

    def explain(self, status: int, detail: str) -> str:
        lowered = detail.lower()
        if status == 404 and ("not a chat model" in lowered or "only supported in v1/responses" in lowered):
            return (
                f"{detail} -- this model works only through the Responses API: "
                "pass api='responses' (POST /v1/responses)"
            )
        return detail


class OpenAIAdapter(OpenAIHost, ChatCompletionsAdapter):
    """``openai/<model>``: OpenAI's Chat Completions, or a compatible server.

    OpenAI's own reasoning models reject ``max_tokens`` and take
    ``max_completion_tokens``; many compatible servers only know
    ``max_tokens``. The field therefore follows the server: OpenAI's own
    base URL gets the new name, any other base URL the classic one.
    """

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self.max_tokens_field = "max_completion_tokens" if config.official else "max_tokens"  # type: ignore[misc]

    def count_request(self, request: ChatRequest) -> Optional[HTTPRequest]:
        """OpenAI counts input tokens only through the Responses API: the
        same messages, translated as a Responses request would carry them."""
        return OpenAIResponsesAdapter(self.config).count_request(request)

    def parse_count(self, data: object) -> int:
        return OpenAIResponsesAdapter(self.config).parse_count(data)


class OpenAIResponsesAdapter(OpenAIHost, ResponsesAdapter):
    """``openai/<model>`` with ``api="responses"`` (``POST /v1/responses``)."""

    only_models = RESPONSES_ONLY_MODELS
    counts_input_tokens = True
