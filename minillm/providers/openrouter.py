"""OpenRouter: Chat Completions plus attribution headers, native cost in
``usage.cost``, and the out-of-band ``/generation`` cost look-up."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Dict, Mapping, Optional, Tuple

from ..accounting.pricing import to_decimal
from ..models import Usage
from ..transports.base import HTTPRequest
from .base import ProviderConfig
from .openai_chat import ChatCompletionsAdapter, _int
from .openai_responses import ResponsesAdapter

__all__ = ["OpenRouterAdapter", "OpenRouterResponsesAdapter"]


class OpenRouterHost:
    """What OpenRouter adds to either protocol: attribution headers, its
    generation id, and the out-of-band ``/generation`` cost look-up.

    The generation id comes from the ``X-Generation-Id`` response header when
    present (so a stream cancelled before its first chunk can still be looked
    up), else from the first chunk that carries an id.
    """

    config: ProviderConfig
    name = "openrouter"
    default_base_url = "https://openrouter.ai/api/v1"
    key_env: ClassVar[Tuple[str, ...]] = ("OPENROUTER_API_KEY",)
    base_url_env: ClassVar[Optional[str]] = "OPENROUTER_BASE_URL"
    has_cost_lookup = True
    catalog_provider: ClassVar[Optional[str]] = "openrouter"

    def host_headers(self) -> Dict[str, str]:
        headers = {}
        if self.config.app_url:
            headers["HTTP-Referer"] = self.config.app_url
        if self.config.app_title:
            headers["X-Title"] = self.config.app_title
        return headers

    if TYPE_CHECKING:  # pragma: no cover - provided by the protocol class

        def url(self, path: str) -> str: ...

    def generation_id(self, headers: Mapping[str, str]) -> Optional[str]:
        return headers.get("x-generation-id") or None

    def lookup_request(self, generation_id: str) -> HTTPRequest:
        from urllib.parse import quote

        headers = {"Accept": "application/json"}
        if self.config.api_key:
            headers["Authorization"] = f"Bearer {self.config.api_key}"
        return HTTPRequest(
            method="GET",
            url=self.url("/generation?id=" + quote(generation_id, safe="")),
            headers=headers,
        )

    def parse_lookup(self, status: int, data: Any) -> Optional[Usage]:
        # 404 means "not recorded yet": the record is eventually consistent.
        if status != 200 or not isinstance(data, dict) or not isinstance(data.get("data"), dict):
            return None
        record = data["data"]
        cost = to_decimal(record.get("total_cost"))
        if cost is None:
            cost = to_decimal(record.get("usage"))
        if cost is None:
            return None
        prompt = _int(record.get("native_tokens_prompt")) or _int(record.get("tokens_prompt"))
        completion = _int(record.get("native_tokens_completion")) or _int(record.get("tokens_completion"))
        return Usage(
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=prompt + completion,
            cached_tokens=_int(record.get("native_tokens_cached")),
            reasoning_tokens=_int(record.get("native_tokens_reasoning")),
            cost=cost,
            upstream_inference_cost=to_decimal(record.get("upstream_inference_cost")),
            is_byok=record.get("is_byok") is True,
        )


class OpenRouterAdapter(OpenRouterHost, ChatCompletionsAdapter):
    """``openrouter/<vendor>/<model>``: Chat Completions."""

    #: OpenRouter takes its reasoning records back on assistant turns.
    accepts_reasoning_details = True

    def thinking_options(self, budget: int) -> Dict[str, Any]:
        # OpenRouter takes a token budget and translates it per upstream.
        if budget == 0:
            return {"reasoning": {"enabled": False}}
        return {"reasoning": {"max_tokens": budget}}


class OpenRouterResponsesAdapter(OpenRouterHost, ResponsesAdapter):
    """``openrouter/<vendor>/<model>`` with ``api="responses"``."""
