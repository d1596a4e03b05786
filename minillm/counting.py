"""Counting a prompt's input tokens before it is sent.

Where the provider has a counting endpoint (Anthropic, OpenAI, Gemini,
Vertex, Bedrock), the provider counts: its answer is the number it will
bill the prompt at. Elsewhere the count is the budget's estimate
(:func:`~minillm.accounting.budget.estimate_prompt_tokens`: three
characters a token, erring high) -- the one estimate in minillm. A count
request generates nothing, no provider bills it, and nothing is booked
for it.
"""

from __future__ import annotations

import logging
from typing import Optional, Tuple

from .accounting.budget import estimate_prompt_tokens
from .errors import MiniLLMError
from .request import ChatRequest
from .routes import Route

__all__ = ["count_prompt", "counted_for_hold"]

log = logging.getLogger("minillm.client")


def count_prompt(route: Route, request: ChatRequest) -> Tuple[int, bool]:
    """``(tokens, exact)``: the provider's count of ``request``'s input
    through ``route``, or the estimate (``exact`` False) when it has no
    counting endpoint.

    :raises MiniLLMError: the provider's count failed.
    """
    counted = route.count_tokens(request)
    if counted is None:
        return estimate_prompt_tokens(request), False
    return counted, True


def counted_for_hold(route: Route, request: ChatRequest) -> Optional[int]:
    """The provider's count of ``request``'s input, for a budget's hold;
    None -- the hold then uses the estimate -- when the provider has no
    counting endpoint or the count failed (logged: the request itself is
    still sent, and fails on its own if the failure was not the count's)."""
    try:
        counted = route.count_tokens(request)
    except MiniLLMError as exc:
        log.warning(
            "counting the prompt's tokens at %s failed (%s: %s); the budget holds the estimate instead",
            route.model,
            type(exc).__name__,
            exc,
        )
        return None
    if counted is None:
        log.info("%s has no token counting endpoint; the budget holds the estimate", route.provider)
    return counted
