"""DeepSeek over its OpenAI-compatible Chat Completions endpoint."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, ClassVar, Dict, Tuple

from ..request import ChatRequest
from .openai_chat import ChatCompletionsAdapter

if TYPE_CHECKING:  # pragma: no cover
    from ..structured import OutputFormat

__all__ = ["DeepSeekAdapter"]


class DeepSeekAdapter(ChatCompletionsAdapter):
    """``deepseek/<model>`` (``deepseek-chat``, ``deepseek-reasoner``, ...).

    Usage comes on the chunk that carries the finish reason, not on a
    ``choices: []`` chunk of its own; the cache hits are read from
    ``prompt_cache_hit_tokens`` when ``prompt_tokens_details`` is missing.
    Reasoning streams as ``reasoning_content``.

    ``thinking_budget``: DeepSeek has no token budget, only its own switch
    and effort level -- ``thinking: {"type": "enabled" | "disabled"}`` and
    ``reasoning_effort`` ``"low"`` or ``"high"``. A budget of 0 turns
    thinking off; up to 2048 tokens asks for ``"low"``, more for ``"high"``.

    ``response_format``: DeepSeek's JSON mode takes no schema, so the schema
    is given in a system turn (which also says "JSON", as JSON mode wants)
    and the answer is validated like any other.
    """

    name = "deepseek"
    default_base_url = "https://api.deepseek.com"
    key_env: ClassVar[Tuple[str, ...]] = ("DEEPSEEK_API_KEY",)
    base_url_env = "DEEPSEEK_BASE_URL"
    catalog_provider = "deepseek"
    # Prompt caching is automatic: a marker would only be an unknown field.
    accepts_cache_control = False

    def thinking_options(self, budget: int) -> Dict[str, Any]:
        if budget == 0:
            return {"thinking": {"type": "disabled"}}
        return {"thinking": {"type": "enabled"}, "reasoning_effort": "low" if budget <= 2048 else "high"}

    def constrain_output(self, body: Dict[str, Any], output: OutputFormat, request: ChatRequest) -> None:
        body["response_format"] = {"type": "json_object"}
        rule = "Answer with one JSON object that matches this JSON schema:\n" + json.dumps(output.schema)
        body["messages"] = [{"role": "system", "content": rule}, *body["messages"]]
