"""Booking ids: unique across processes and machines, and cheap.

A random 128-bit prefix drawn once per process (and again in a forked
child) followed by a counter: as unique as ``uuid4`` without a system call
per booking.
"""

from __future__ import annotations

import itertools
import os
import uuid

__all__ = ["new_booking_id"]

_prefix = uuid.uuid4().hex
_counter = itertools.count()


def _reseed() -> None:
    global _prefix, _counter
    _prefix = uuid.uuid4().hex
    _counter = itertools.count()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reseed)


def new_booking_id() -> str:
    """A new booking id (hexadecimal text, at most 48 characters)."""
    return f"{_prefix}{next(_counter):x}"
