"""The settlement path: what booking one finished stream costs, and a whole
tracked stream's lifecycle without the network."""

from __future__ import annotations

import time
from typing import Dict, List

from minillm import Ledger, LookupPolicy, TokenPrice
from minillm.accounting.settlement import Booking, Ending, settle
from minillm.accumulate import StreamState, accumulate
from minillm.events import STREAM_DONE, ResponseInfo
from minillm.models import Chunk, Usage
from minillm.streaming import TrackedStream, _no_errors, _StreamCore

PRICE = TokenPrice("0.15", "0.60", cached_input_per_mtok="0.075")
#: A client makes its policy once and passes it to every booking.
LOOKUP = LookupPolicy()


def _finished_state() -> StreamState:
    state = StreamState()
    for event in (
        ResponseInfo(id="chatcmpl-bench", model="bench"),
        Chunk(text="Hello"),
        Chunk(finish_reason="stop"),
        Chunk(usage=Usage(prompt_tokens=120, completion_tokens=40, total_tokens=160, cached_tokens=64)),
        STREAM_DONE,
    ):
        accumulate(state, event)
    return state


def settle_only(rounds: int) -> float:
    """Microseconds per settle(): the request's booking (with its id), then
    price the usage, build the CostInfo, book it."""
    ledger = Ledger()
    meta = {"user_id": 7}
    states = [_finished_state() for _ in range(rounds)]
    started = time.perf_counter()
    for state in states:
        booking = Booking(
            provider="openai", model="bench", price=PRICE, sink=ledger.record, meta=meta, lookup_policy=LOOKUP
        )
        settle(booking, state, Ending.COMPLETED, generation_id=None, on_booked=lambda cost: None)
    elapsed = time.perf_counter() - started
    assert ledger.count == rounds
    return elapsed / rounds * 1e6


def stream_lifecycle(rounds: int) -> float:
    """Microseconds per tracked stream: create, iterate 3 chunks, exit, book."""
    ledger = Ledger()
    usage = Usage(prompt_tokens=120, completion_tokens=40, total_tokens=160)
    events: List[object] = [Chunk(text="Hel"), Chunk(text="lo"), Chunk(finish_reason="stop", usage=usage), STREAM_DONE]
    started = time.perf_counter()
    for _ in range(rounds):
        booking = Booking(
            provider="openai", model="bench", price=PRICE, sink=ledger.record, meta={}, lookup_policy=LOOKUP
        )
        core = _StreamCore(
            events=iter(events),  # type: ignore[arg-type]
            booking=booking,
            response=None,
            generation_id=None,
            to_error=_no_errors,
        )
        with TrackedStream(core, model="openai/bench") as stream:
            for _chunk in stream:
                pass
    elapsed = time.perf_counter() - started
    assert ledger.count == rounds
    return elapsed / rounds * 1e6


def main(rounds: int = 20_000) -> Dict[str, float]:
    results = {
        "settle() per stream (us)": min(settle_only(rounds) for _ in range(3)),
        "whole tracked stream, no network (us)": min(stream_lifecycle(rounds) for _ in range(3)),
    }
    print(f"settlement ({rounds} streams, best of 3):")
    for name, value in results.items():
        print(f"  {name:40s} {value:8.1f}")
    return results


if __name__ == "__main__":
    main()
