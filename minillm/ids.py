"""Booking ids: unique across processes and machines, and cheap.

A random 128-bit prefix drawn once per process (and again in a forked
child: :mod:`minillm.runtime` calls :func:`new_process`) followed by a
counter: as unique as ``uuid4`` without a system call per booking.
"""

from __future__ import annotations

import itertools
import uuid

__all__ = ["new_booking_id", "new_process"]

_prefix = uuid.uuid4().hex
_counter = itertools.count()


def new_process() -> None:
    """Draw a new prefix: this is another process (a forked child)."""
    global _prefix, _counter
    _prefix = uuid.uuid4().hex
    _counter = itertools.count()


def new_booking_id() -> str:
    """A new booking id (hexadecimal text, at most 48 characters)."""
    return f"{_prefix}{next(_counter):x}"
