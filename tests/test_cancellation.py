"""CancellationToken semantics."""

from __future__ import annotations

import threading
from typing import List

from minillm import CancellationToken


def test_a_new_token_is_running() -> None:
    token = CancellationToken()
    assert (token.disposition, token.is_cancelled) == ("running", False)


def test_a_pause_stops_and_is_recorded_as_a_pause() -> None:
    token = CancellationToken()
    token.pause()
    assert (token.disposition, token.is_cancelled) == ("paused", True)


def test_a_cancel_overrides_a_pause_but_a_pause_never_overrides_a_cancel() -> None:
    token = CancellationToken()
    token.pause()
    token.cancel()
    assert token.disposition == "cancelled"
    token.pause()
    assert token.disposition == "cancelled"


def test_listeners_hear_each_change_once_and_can_unsubscribe() -> None:
    token = CancellationToken()
    heard: List[str] = []
    unsubscribe = token._subscribe(lambda: heard.append(token.disposition))
    token.pause()
    token.pause()
    token.cancel()
    token.cancel()
    assert heard == ["paused", "cancelled"]
    unsubscribe()
    unsubscribe()
    other = CancellationToken()
    quiet = other._subscribe(lambda: heard.append("never"))
    quiet()
    other.cancel()
    assert heard == ["paused", "cancelled"]


def test_subscribing_to_a_stopped_token_calls_at_once() -> None:
    token = CancellationToken()
    token.cancel()
    heard: List[bool] = []
    token._subscribe(lambda: heard.append(True))
    assert heard == [True]


def test_cancel_is_safe_from_many_threads() -> None:
    token = CancellationToken()
    heard: List[int] = []
    token._subscribe(lambda: heard.append(1))
    threads = [threading.Thread(target=token.cancel) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert heard == [1] and token.disposition == "cancelled"


def test_the_repr_shows_the_disposition() -> None:
    assert repr(CancellationToken()) == "CancellationToken('running')"
