"""Keeping secrets out of messages: the :class:`Redactor` scrubs API keys
from any text before it becomes part of an error, a ``repr`` or a log line.

Providers sometimes echo the key they were sent (whole or in part) inside an
error body, and a misconfigured base URL can carry one in its query string.
Every piece of provider text that minillm surfaces passes through
:meth:`Redactor.scrub` first.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Optional, Tuple

__all__ = ["Redactor", "excerpt"]

_MASK = "***"
# Bearer tokens and key-looking query parameters are masked even when the
# secret itself is unknown to us (a key pasted into base_url, say).
_GENERIC = re.compile(r"(?i)(bearer\s+|[?&](?:key|api[-_]?key|access_token|token)=)[^\s&\"',;]+")


class Redactor:
    """Scrubs a fixed set of secrets (and bearer-token shapes) from text.

    Immutable and therefore safe to share between threads.
    """

    __slots__ = ("_secrets",)

    def __init__(self, secrets: Iterable[Optional[str]] = ()) -> None:
        # Longest first, so a key that contains another is masked whole.
        found = {s for s in secrets if s and len(s) >= 4}
        self._secrets: Tuple[str, ...] = tuple(sorted(found, key=len, reverse=True))

    def scrub(self, text: str) -> str:
        """Return ``text`` with every known secret and bearer token masked."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, _MASK)
        return _GENERIC.sub(lambda m: m.group(1) + _MASK, text)

    def is_clean(self, text: str) -> bool:
        """Whether ``text`` carries no known secret and no bearer token."""
        return self.scrub(text) == text

    def safe_cause(self, exc: BaseException) -> Optional[BaseException]:
        """``exc`` if nothing in its chain of causes shows a secret, else None.

        For ``raise ... from redactor.safe_cause(exc)``: the chain is kept for
        debugging unless printing it (in a traceback, or by ``log.exception``)
        would show a key -- as a foreign error quoting a header value would.
        """
        seen = 0
        current: Optional[BaseException] = exc
        while current is not None and seen < 16:
            if not self.is_clean(f"{current!s} {current.args!r}"):
                return None
            current = current.__cause__ or current.__context__
            seen += 1
        return exc

    def scrub_obj(self, value: Any) -> Any:
        """Scrub every string inside a JSON-like value (dicts, lists, strings)."""
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, dict):
            return {k: self.scrub_obj(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.scrub_obj(v) for v in value]
        return value

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} secrets)"


def excerpt(text: str, limit: int = 300) -> str:
    """Collapse whitespace and cut ``text`` to ``limit`` characters."""
    flat = " ".join(text.split())
    if len(flat) > limit:
        return flat[: limit - 1] + "\u2026"
    return flat
