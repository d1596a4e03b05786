"""Booking ids: unique, and cheap to draw."""

from __future__ import annotations

from minillm.ids import new_booking_id


def test_ids_do_not_repeat() -> None:
    ids = {new_booking_id() for _ in range(100_000)}
    assert len(ids) == 100_000 and all(len(i) <= 48 for i in ids)
