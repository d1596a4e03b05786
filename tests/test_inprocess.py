"""The in-process transport stops an engine for the reason the call was
stopped -- a cancel, a pause, the total deadline, a read timeout -- and the
caller of a ``local/`` model sees for each what it sees over HTTP
(``tests/test_stop.py``): a cancel or a pause ends the answer with that
finish reason, a deadline raises the timeout error."""

from __future__ import annotations

import threading
from typing import Any, Iterator, List, Optional

import pytest

import minillm
from minillm.cancellation import Stop
from minillm.engines import GenerationContext, GenerationRequest, Output, ScriptedEngine, registered
from minillm.testing import Gate

from .conftest import finishes

PRICE = minillm.TokenPrice(input_per_mtok="1", output_per_mtok="2")


class Recording(ScriptedEngine):
    """A scripted engine that says when a request reached it and why each
    of its generations was stopped."""

    def __init__(self) -> None:
        super().__init__(strict=True)
        self.received = threading.Event()
        self.reasons: List[Optional[Stop]] = []

    def _generate(self, request: GenerationRequest, ctx: GenerationContext) -> Iterator[Output]:
        outputs = super()._generate(request, ctx)
        self.received.set()
        return outputs

    def _abort(self, ctx: GenerationContext) -> None:
        self.reasons.append(ctx.stop_reason)


@pytest.fixture
def engine() -> Iterator[Recording]:
    recording = Recording()
    with registered("recording", recording):
        yield recording


def client(ledger: minillm.Ledger, **kwargs: Any) -> minillm.Client:
    kwargs.setdefault("retry", minillm.RetryPolicy(max_attempts=1))
    return minillm.Client("local/recording", price=PRICE, on_cost=ledger, **kwargs)


def stopped_for(engine: Recording, reason: Stop) -> None:
    """The generation ended, and every stop the engine was given was ``reason``."""
    assert engine.drain(timeout=10)
    assert engine.reasons and set(engine.reasons) == {reason}


@pytest.mark.parametrize(
    ("how", "reason"),
    [("stream.cancel", Stop.CANCELLED), ("token.cancel", Stop.CANCELLED), ("token.pause", Stop.PAUSED)],
)
def test_a_stream_stopped_by_the_caller_ends_with_its_reason_and_so_does_the_engine(
    engine: Recording, ledger: minillm.Ledger, how: str, reason: Stop
) -> None:
    engine.add("a", "b", Gate(), "never")
    token = minillm.CancellationToken()
    local = client(ledger)
    stream = local.stream("go", cancel=token)
    stop = {"stream.cancel": stream.cancel, "token.cancel": token.cancel, "token.pause": token.pause}[how]

    def read() -> None:
        with stream:
            for chunk in stream:
                if chunk.text == "b":
                    stop()

    finishes(read)
    assert stream.response is not None and stream.response.text == "ab"
    assert stream.response.finish_reason == reason.value
    stopped_for(engine, reason)
    ((cost, _),) = ledger.records
    assert (cost.cancelled, cost.failed, cost.resolution, cost.completion_tokens) == (
        True,
        False,
        minillm.Resolution.PARTIAL,
        2,
    )
    local.close()


def test_a_deadline_mid_stream_is_a_timeout_and_the_engine_is_stopped_for_the_deadline(
    engine: Recording, ledger: minillm.Ledger
) -> None:
    engine.add("a", "b", Gate(), "never")
    local = client(ledger, timeout=minillm.Timeout(read=30, total=0.5))
    caught: List[BaseException] = []

    def read() -> None:
        try:
            with local.stream("go") as stream:
                list(stream)
        except minillm.APITimeoutError as exc:
            caught.append(exc)

    finishes(read)
    (error,) = caught
    assert isinstance(error, minillm.StreamError) and error.partial_text == "ab"
    assert "total deadline of 0.5s passed while reading the response" in str(error)
    stopped_for(engine, Stop.DEADLINE)
    ((cost, _),) = ledger.records
    assert (cost.cancelled, cost.failed, cost.resolution) == (False, True, minillm.Resolution.PARTIAL)
    local.close()


@pytest.mark.parametrize(("how", "reason"), [("cancel", Stop.CANCELLED), ("pause", Stop.PAUSED)])
def test_a_whole_answer_stopped_by_the_caller_before_any_output_ends_with_its_reason(
    engine: Recording, ledger: minillm.Ledger, how: str, reason: Stop
) -> None:
    engine.add(Gate(), "late")
    token = minillm.CancellationToken()
    local = client(ledger)

    def stop_once_received() -> None:
        if engine.received.wait(10):
            getattr(token, how)()

    threading.Thread(target=stop_once_received, daemon=True).start()
    result: List[minillm.Response] = []
    finishes(lambda: result.append(local.complete("go", cancel=token)))
    assert result[0].finish_reason == reason.value
    stopped_for(engine, reason)
    ((cost, _),) = ledger.records  # handed to the engine: it may have spent
    assert (cost.cancelled, cost.failed, cost.resolution, cost.usd) == (True, False, minillm.Resolution.UNKNOWN, None)
    local.close()


def test_a_deadline_before_any_output_is_a_timeout_and_the_engine_is_stopped_for_the_deadline(
    engine: Recording, ledger: minillm.Ledger
) -> None:
    engine.add(Gate(), "late")
    local = client(ledger, timeout=minillm.Timeout(read=30, total=0.5))
    caught: List[BaseException] = []

    def complete() -> None:
        try:
            local.complete("go")
        except minillm.APITimeoutError as exc:
            caught.append(exc)

    finishes(complete)
    (error,) = caught
    assert "total deadline of 0.5s passed while waiting for the response" in str(error)
    stopped_for(engine, Stop.DEADLINE)
    ((cost, _),) = ledger.records
    assert (cost.cancelled, cost.failed, cost.resolution) == (False, True, minillm.Resolution.UNKNOWN)
    local.close()


@pytest.mark.parametrize("output_began", [False, True], ids=["before any output", "mid-stream"])
def test_a_read_timeout_stops_the_engine_as_a_deadline_does(
    engine: Recording, ledger: minillm.Ledger, output_began: bool
) -> None:
    """Running out of the read timeout is a time limit passing, like the
    deadline: not the caller's choice."""
    engine.add(*(["a"] if output_began else []), Gate())
    local = client(ledger, timeout=minillm.Timeout(read=0.2))
    with pytest.raises(minillm.APITimeoutError):
        with local.stream("go") as stream:
            list(stream)
    stopped_for(engine, Stop.DEADLINE)
    local.close()
