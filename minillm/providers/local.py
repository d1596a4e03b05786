"""``local/<engine>``: an engine running in this process.

It speaks Chat Completions to the same application ``minillm serve``
runs, through an in-process transport instead of a socket -- so a local
engine behaves exactly like a served one, and everything above the
transport (retries, the fold, settlement) is the code every provider uses.
Streams ask for usage on every chunk (vLLM's ``continuous_usage_stats``),
so a stream cut short books the tokens it had really produced.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Dict, Tuple

from ..request import ChatRequest
from .base import Adapter
from .openai_chat import ChatCompletionsAdapter

if TYPE_CHECKING:  # pragma: no cover
    from ..structured import OutputFormat

__all__ = ["LocalAdapter"]


class LocalAdapter(ChatCompletionsAdapter):
    """``local/<engine>``: ``echo``, ``ngram``, an engine registered with
    :func:`minillm.engines.register`, or ``"package.module:factory"``."""

    name = "local"
    default_base_url = "local://engine/v1"
    key_required = False
    url_schemes: ClassVar[Tuple[str, ...]] = ("local",)

    def constrain_output(self, body: Dict[str, Any], output: OutputFormat, request: ChatRequest) -> None:
        # The engines generate freely: none can be held to a schema.
        Adapter.constrain_output(self, body, output, request)

    def body(self, request: ChatRequest, *, stream: bool) -> Dict[str, Any]:
        body = super().body(request, stream=stream)
        options = body.get("stream_options")
        if isinstance(options, dict):
            body["stream_options"] = {**options, "continuous_usage_stats": True}
        return body
