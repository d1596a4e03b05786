"""Deadlines: :class:`Timeout`.

``connect`` bounds establishing a connection, ``read`` the silence between
bytes (so a stream that keeps producing is never cut off by it), and
``total`` the whole call including retries, enforced even while bytes keep
dripping in.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Union

import attrs

from .errors import InvalidArgumentError

__all__ = ["Timeout"]


#: The longest deadline accepted (a year): beyond it, sockets and timers overflow.
MAX_SECONDS = 365 * 24 * 3600.0


def _seconds(instance: Any, attribute: attrs.Attribute[Any], value: Optional[float]) -> None:
    if value is None and attribute.name == "total":
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not 0 < value <= MAX_SECONDS
    ):
        raise InvalidArgumentError(
            f"Timeout.{attribute.name} must be a positive number of seconds up to a year, not {value!r}"
        )


@attrs.frozen
class Timeout:
    """Connect, read (idle) and total deadlines, in seconds."""

    connect: float = attrs.field(default=10.0, validator=_seconds)
    read: float = attrs.field(default=60.0, validator=_seconds)
    total: Optional[float] = attrs.field(default=None, validator=_seconds)

    @classmethod
    def coerce(cls, value: Union[Timeout, float, int, None]) -> Timeout:
        """Accept a :class:`Timeout`, None (the defaults) or a number (the read timeout)."""
        if value is None:
            return cls()
        if isinstance(value, Timeout):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return cls(read=float(value))
        raise InvalidArgumentError(f"timeout must be a Timeout or a number of seconds, not {value!r}")

    def for_call(self, value: Union[Timeout, float, int, None]) -> Optional[Timeout]:
        """The deadlines of one call, given its ``timeout=`` and these (the
        client's): None keeps the client's, a :class:`Timeout` replaces them,
        and a number replaces the read timeout only -- as a number does for
        the client itself.

        :raises InvalidArgumentError: not a :class:`Timeout`, a number or None.
        """
        if value is None or isinstance(value, Timeout):
            return value
        return attrs.evolve(self, read=Timeout.coerce(value).read)
