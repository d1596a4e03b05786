"""The settlement path: what booking one finished attempt costs, and a whole
call -- request built, sent, read, folded, booked -- without the network."""

from __future__ import annotations

import time
from typing import Dict, Iterator, List, Optional, Tuple

import attrs

from minillm import Ledger, LookupPolicy, TokenPrice
from minillm.accounting.pricing import Pricer
from minillm.accounting.settlement import Booking, Outcome, decide
from minillm.accumulate import StreamState, accumulate
from minillm.cancellation import Stop
from minillm.client import Client
from minillm.events import STREAM_DONE, ResponseInfo
from minillm.models import Chunk, Usage
from minillm.testing import chat_stream, chat_usage
from minillm.transports import Exchange, HTTPRequest, HTTPResponse, Transport

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
    """Microseconds per settlement: the attempt's booking (with its id), then
    decide, price the usage, build the CostInfo, book it."""
    ledger = Ledger()
    meta = {"user_id": 7}
    pricer = Pricer(PRICE)
    # One finished stream for every round: settlement reads it and never
    # changes it. A state per round would make the garbage collector's full
    # passes walk the benchmark's own setup -- hundreds of thousands of
    # objects no settlement made -- and count that as settling.
    state = _finished_state()
    started = time.perf_counter()
    for _ in range(rounds):
        booking = Booking(
            provider="openai",
            model="bench",
            pricer=pricer,
            sink=ledger.record,
            meta=meta,
            attempt=1,
            lookup_policy=LOOKUP,
        )
        decide(booking, Outcome.COMPLETED, state).carry_out()
    elapsed = time.perf_counter() - started
    assert ledger.count == rounds
    return elapsed / rounds * 1e6


class _Canned(HTTPResponse):
    """A response already in memory."""

    def __init__(self, body: List[bytes]) -> None:
        self.status = 200
        self.headers = {"content-type": "text/event-stream"}
        self.endpoint = "memory"
        self._body = body

    @property
    def interrupted(self) -> Optional[Stop]:
        return None

    def interrupt(self, reason: Stop) -> bool:
        return False

    def iter_bytes(self) -> Iterator[bytes]:
        return iter(self._body)

    def close(self) -> None:
        pass


class _Memory(Transport):
    """Answers every request with the same stream, without a socket."""

    def __init__(self, body: List[bytes]) -> None:
        self._body = body

    def send(
        self, request: HTTPRequest, *, timeouts: Tuple[float, float], exchange: Optional[Exchange] = None
    ) -> HTTPResponse:
        response = _Canned(self._body)
        if exchange is not None:
            exchange.mark_sent()
            exchange.attach(response)
        return response

    def close(self) -> None:
        pass


def call_lifecycle(rounds: int) -> float:
    """Microseconds per call: build and validate the request, open the call,
    read and fold three chunks, leave the block, book -- everything but the socket."""
    ledger = Ledger()
    client = Client("openai/bench", base_url="http://bench.invalid", api_key="k", price=PRICE, on_cost=ledger)
    body = chat_stream(["Hel", "lo"], usage=chat_usage(120, 40))
    client._routes = tuple(attrs.evolve(route, transport=_Memory(body)) for route in client._routes)
    started = time.perf_counter()
    for _ in range(rounds):
        with client.stream("Hi") as stream:
            for _chunk in stream:
                pass
    elapsed = time.perf_counter() - started
    assert ledger.count == rounds
    return elapsed / rounds * 1e6


def main(rounds: int = 20_000) -> Dict[str, float]:
    results = {
        "settle one attempt (us)": min(settle_only(rounds) for _ in range(3)),
        "whole call, no network (us)": min(call_lifecycle(rounds) for _ in range(3)),
    }
    print(f"settlement ({rounds} calls, best of 3):")
    for name, value in results.items():
        print(f"  {name:40s} {value:8.1f}")
    return results


if __name__ == "__main__":
    main()
