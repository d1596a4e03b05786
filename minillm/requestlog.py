"""The request log: one line per attempt on the ``minillm.requests`` logger,
and ``MINILLM_LOG``, which shows it on stderr without configuring logging.

A line is written when an attempt is decided -- booked, or certainly not
billable -- or, for a cost looked up out of band, when the look-up books
it; never one per chunk. It says what was sent and what it cost::

    POST https://api.openai.com/v1/chat/completions 200 attempt 1 0.412s openai/gpt-4o 12 in 85 out usd=0.00088 resolved

Never a key: the endpoint is shown without its query string and
credentials, headers never. Never a prompt, unless ``MINILLM_LOG_PROMPTS=1``
asks for it (then scrubbed of the client's keys and cut short).

The environment is read once, when the first :class:`~minillm.Client` is
made -- never at ``import minillm``, and nothing is configured when
``MINILLM_LOG`` is not set:

* ``MINILLM_LOG=info`` adds a stderr handler to the ``minillm`` logger at
  INFO: the request log, and minillm's warnings and errors (retries,
  fallbacks, a failing sink);
* ``MINILLM_LOG=debug`` lowers it to DEBUG: also the look-ups, each booking
  with its ``meta``, and the transport's connection handling.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import time
from typing import TYPE_CHECKING, List, Mapping, Optional

from .errors import ConfigurationError
from .models import CostInfo, Resolution
from .redaction import excerpt
from .transports.base import endpoint_of

if TYPE_CHECKING:  # pragma: no cover
    from .call import Attempt

__all__ = ["LEVELS", "attempt_ended", "from_environment"]

log = logging.getLogger("minillm.requests")

#: ``MINILLM_LOG`` values and the level each shows.
LEVELS: Mapping[str, int] = {"info": logging.INFO, "debug": logging.DEBUG}

#: The most of a prompt a line shows.
PROMPT_LIMIT = 2000

_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"


@functools.cache
def from_environment() -> bool:
    """Read ``MINILLM_LOG`` and ``MINILLM_LOG_PROMPTS`` (once: later calls
    answer from the first). Without ``MINILLM_LOG`` nothing is configured.

    :returns: whether prompts go into the request log.
    :raises ConfigurationError: ``MINILLM_LOG`` is not one of :data:`LEVELS`.
    """
    wanted = os.environ.get("MINILLM_LOG", "").strip().lower()
    if wanted:
        level = LEVELS.get(wanted)
        if level is None:
            choices = " or ".join(repr(name) for name in sorted(LEVELS))
            raise ConfigurationError(f"MINILLM_LOG must be {choices} (or unset), not {wanted!r}")
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(_FORMAT))
        handler.setLevel(level)
        package = logging.getLogger("minillm")
        package.addHandler(handler)
        package.setLevel(level)
    return os.environ.get("MINILLM_LOG_PROMPTS", "").strip().lower() in ("1", "true", "yes")


def attempt_ended(attempt: Attempt, cost: Optional[CostInfo]) -> None:
    """Log one line for ``attempt``, which booked ``cost`` (None: nothing).
    Never raises: a log line must never cost a booking."""
    if not log.isEnabledFor(logging.INFO):
        return
    try:
        log.info("%s", _line(attempt, cost))
    except Exception:  # pragma: no cover - the booking is made; only its line is lost
        log.exception("the request log could not describe attempt %d", attempt.number)


def _line(attempt: Attempt, cost: Optional[CostInfo]) -> str:
    route = attempt.route
    sent = attempt.http
    parts: List[str] = [
        sent.method if sent is not None else "-",
        route.redactor.scrub(endpoint_of(sent.url)) if sent is not None else route.base_url,
        str(attempt.status) if attempt.status is not None else "no-response",
        f"attempt {attempt.number}",
    ]
    duration = cost.duration_s if cost is not None else None
    if duration is None and attempt.started is not None:
        duration = time.monotonic() - attempt.started
    if duration is not None:
        parts.append(f"{duration:.3f}s")
    parts.append(route.model)
    if cost is None:
        parts.append("booked nothing")
    else:
        parts.append(f"{cost.prompt_tokens} in {cost.completion_tokens} out")
        parts.append(_money(cost))
        if cost.source == "lookup":
            parts.append("(looked up)")
        if cost.cancelled:
            parts.append("cancelled")
        if cost.failed:
            parts.append("failed")
    if from_environment():
        parts.append("prompt=" + _prompt(attempt))
    return " ".join(parts)


def _money(cost: CostInfo) -> str:
    """The cost, exactly (never rounded, never in exponent form), and how much of it is known."""
    name = cost.resolution.value.lower()
    if cost.usd is None:
        return f"usd=? {name}"
    shown = format(cost.usd, "f")
    if cost.resolution is Resolution.PARTIAL:
        return f"usd>={shown} {name}"
    return f"usd={shown} {name}"


def _prompt(attempt: Attempt) -> str:
    asked = attempt.asked
    messages = list(asked.messages)
    if asked.system:
        messages.insert(0, {"role": "system", "content": asked.system})
    text = json.dumps(messages, ensure_ascii=False, default=str)
    # Scrubbed whole before it is cut: a cut through a key would leave part of it.
    return excerpt(attempt.route.redactor.scrub(text), PROMPT_LIMIT)
