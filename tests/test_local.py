"""``local/<engine>``: in-process engines behind the whole client API --
complete, stream, settlement, prices, cancellation, deadlines, errors."""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any, Callable, Iterator, List

import pytest

import minillm
from minillm.engines import EchoEngine, Fail, Finish, ScriptedEngine, registered, saturating_usage
from minillm.testing import Gate, Pause

from .conftest import SleepRecorder, finishes

PRICE = minillm.TokenPrice(input_per_mtok="1", output_per_mtok="2")


@pytest.fixture
def scripted() -> Iterator[ScriptedEngine]:
    engine = ScriptedEngine(strict=True)
    with registered("scripted-test", engine):
        yield engine


@pytest.fixture
def local(ledger: minillm.Ledger, sleeps: SleepRecorder) -> Iterator[Callable[..., minillm.Client]]:
    made: List[minillm.Client] = []

    def make(model: str = "local/echo", **kwargs: Any) -> minillm.Client:
        kwargs.setdefault("on_cost", ledger)
        kwargs.setdefault("price", PRICE)
        kwargs.setdefault("retry", minillm.RetryPolicy(sleep=sleeps))
        client = minillm.Client(model, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def cost(prompt: int, completion: int) -> Decimal:
    return (prompt * PRICE.input_per_mtok + completion * PRICE.output_per_mtok) / Decimal(1_000_000)


def test_complete_answers_and_books_the_real_token_counts(
    local: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    response = local().complete("say this back", meta={"user": 7})
    assert response.text == "say this back" and response.finish_reason == "stop"
    assert response.usage is not None and (response.usage.prompt_tokens, response.usage.completion_tokens) == (4, 3)
    booked, meta = ledger.records[0]
    assert (booked.usd, booked.provider, booked.model, meta) == (cost(4, 3), "local", "echo", {"user": 7})
    assert response.cost == booked


def test_a_completed_stream_books_once_when_the_block_exits(
    local: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    with local().stream("one two three", system="be kind") as stream:
        assert [chunk.text for chunk in stream if chunk.text] == ["one ", "two ", "three"]
    assert ledger.count == 1
    booked = ledger.records[0][0]
    assert (booked.usd, booked.cancelled, booked.resolution) == (cost(7, 3), False, minillm.Resolution.RESOLVED)


def test_a_stream_broken_out_of_books_the_tokens_it_really_produced(
    local: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    with local().stream("one two three four five") as stream:
        for chunk in stream:
            if chunk.text == "two ":
                break
    booked = ledger.records[0][0]
    assert booked.cancelled and booked.completion_tokens == 2
    assert booked.usd == cost(6, 2)  # usage came with every chunk: the money is known


def test_cancel_from_another_thread_stops_the_engine_and_settles(
    local: Callable[..., minillm.Client], ledger: minillm.Ledger, scripted: ScriptedEngine
) -> None:
    scripted.add("a", "b", Gate(), "never")
    stream = local("local/scripted-test").stream("go")
    seen: List[str] = []

    def read() -> None:
        for chunk in stream:
            seen.append(chunk.text)
            if chunk.text == "b":
                threading.Thread(target=stream.cancel).start()

    finishes(read)
    assert "never" not in seen and stream.response is not None
    assert stream.response.finish_reason == "cancelled"
    assert scripted.drain(timeout=5)  # the generation really ended
    booked = ledger.records[0][0]
    assert booked.cancelled and booked.completion_tokens == 2 and booked.usd == cost(2, 2)


def test_a_token_pauses_a_local_stream(
    local: Callable[..., minillm.Client], ledger: minillm.Ledger, scripted: ScriptedEngine
) -> None:
    scripted.add("a", Pause(30), "never")
    token = minillm.CancellationToken()
    with local("local/scripted-test").stream("go", cancel=token) as stream:
        for chunk in stream:
            if chunk.text == "a":
                threading.Timer(0.05, token.pause).start()
    assert stream.response is not None and stream.response.finish_reason == "paused"
    assert ledger.records[0][0].cancelled


def test_a_token_cancelled_before_the_call_sends_nothing(
    local: Callable[..., minillm.Client], ledger: minillm.Ledger, scripted: ScriptedEngine
) -> None:
    token = minillm.CancellationToken()
    token.cancel()
    with local("local/scripted-test").stream("go", cancel=token) as stream:
        assert list(stream) == []
    assert scripted.requests == [] and ledger.count == 0


def test_a_cancel_while_the_engine_works_on_a_whole_answer_stops_it(
    local: Callable[..., minillm.Client], ledger: minillm.Ledger, scripted: ScriptedEngine
) -> None:
    scripted.add("a", Gate(), "never")
    token = minillm.CancellationToken()
    threading.Timer(0.05, token.cancel).start()
    response: List[minillm.Response] = []
    finishes(lambda: response.append(local("local/scripted-test").complete("go", cancel=token)))
    assert response[0].finish_reason == "cancelled"
    assert scripted.drain(timeout=5)
    # It had been sent: booked, its money unknown (a whole answer has no running usage).
    assert ledger.records[0][0].cancelled and ledger.records[0][0].usd is None


def test_an_engine_failure_mid_stream_is_a_stream_error_booked_as_what_it_produced(
    local: Callable[..., minillm.Client], ledger: minillm.Ledger, scripted: ScriptedEngine
) -> None:
    scripted.add("partial ", Fail("out of memory"))
    with pytest.raises(minillm.StreamError, match="out of memory") as caught:
        with local("local/scripted-test").stream("go") as stream:
            list(stream)
    assert caught.value.partial_text == "partial "
    ((cost, _),) = ledger.records  # the running usage it had reported: a lower bound
    assert cost.failed and cost.resolution is minillm.Resolution.PARTIAL
    assert (cost.prompt_tokens, cost.completion_tokens) == (2, 1)


def test_an_engine_that_ends_with_an_error_is_a_stream_error(
    local: Callable[..., minillm.Client], ledger: minillm.Ledger, scripted: ScriptedEngine
) -> None:
    scripted.add("x", Finish("error", error="the GPU fell off"))
    stream = local("local/scripted-test").stream("go")
    with pytest.raises(minillm.StreamError, match="the GPU fell off"):
        stream.collect()
    assert ledger.count == 0  # collect() books nothing...
    stream.settle()
    ((cost, _),) = ledger.records  # ...settling books the failed attempt
    assert cost.failed and cost.completion_tokens == 1


def test_a_length_finish_is_reported(local: Callable[..., minillm.Client], scripted: ScriptedEngine) -> None:
    scripted.add("x", Finish("length"))
    response = local("local/scripted-test").complete("go")
    assert response.finish_reason == "length" and response.usage == saturating_usage(2, 1)  # "user: go"


def test_an_engine_failing_before_any_output_is_a_server_error_that_is_retried(
    local: Callable[..., minillm.Client], ledger: minillm.Ledger, scripted: ScriptedEngine, sleeps: SleepRecorder
) -> None:
    scripted.add(Fail("warming up"))
    scripted.add("ready")
    with local("local/scripted-test").stream("go") as stream:
        assert "".join(stream.text_stream()) == "ready"
    assert len(scripted.requests) == 2 and len(sleeps.calls) == 1
    assert ledger.count == 1


def test_a_prompt_too_long_is_a_context_overflow_with_its_counts(local: Callable[..., minillm.Client]) -> None:
    with registered("tiny", EchoEngine(context_length=4)):
        with pytest.raises(minillm.ContextOverflowError) as caught:
            local("local/tiny").complete("far too many words for this")
    assert (caught.value.requested_tokens, caught.value.limit_tokens) == (7, 4)


def test_an_unknown_engine_or_a_base_url_is_a_configuration_error() -> None:
    with pytest.raises(minillm.ConfigurationError, match="no engine named 'nope'"):
        minillm.Client("local/nope")
    with pytest.raises(minillm.ConfigurationError, match=r"local:// URL"):
        minillm.Client("local/echo", base_url="http://127.0.0.1:1")


def test_a_total_deadline_stops_a_slow_engine_and_books_what_it_produced(
    local: Callable[..., minillm.Client], ledger: minillm.Ledger, scripted: ScriptedEngine
) -> None:
    scripted.add("a", *[step for _ in range(500) for step in (Pause(0.01), "b")])
    with pytest.raises(minillm.APITimeoutError, match="total deadline") as caught:
        with local("local/scripted-test", timeout=minillm.Timeout(read=5, total=0.3)).stream("go") as stream:
            list(stream)
    ((cost, _),) = ledger.records
    assert cost.failed and cost.resolution is minillm.Resolution.PARTIAL
    assert cost.completion_tokens == len(caught.value.partial_text)  # type: ignore[attr-defined]
    assert scripted.drain(timeout=5)


def test_silence_longer_than_the_read_timeout_is_a_timeout(
    local: Callable[..., minillm.Client], ledger: minillm.Ledger, scripted: ScriptedEngine, sleeps: SleepRecorder
) -> None:
    for _ in range(3):
        scripted.add(Gate())  # nothing at all: a timeout before the first byte, retried
    with pytest.raises(minillm.APITimeoutError, match=r"sent no response within 0\.2s"):
        local("local/scripted-test", timeout=minillm.Timeout(read=0.2)).stream("go")
    assert len(scripted.requests) == 3 and len(sleeps.calls) == 2
    # Each was handed to the engine and never answered: failed, money unknown.
    assert [(c.attempt, c.failed, c.resolution) for c, _ in ledger.records] == [
        (n, True, minillm.Resolution.UNKNOWN) for n in (1, 2, 3)
    ]
    scripted.add("a", Gate())  # silence after output began: a stream timeout, not retried
    with pytest.raises(minillm.StreamError, match=r"no data arrived for 0\.2s"):
        with local("local/scripted-test", timeout=minillm.Timeout(read=0.2)).stream("go") as stream:
            list(stream)
    assert ledger.count == 4 and ledger.records[3][0].failed and scripted.drain(timeout=5)


def test_a_request_given_up_before_its_first_output_ends_its_generation_at_once(
    local: Callable[..., minillm.Client], scripted: ScriptedEngine
) -> None:
    scripted.add(Gate())
    client = local("local/scripted-test", timeout=minillm.Timeout(read=0.2), retry=minillm.RetryPolicy(max_attempts=1))
    with pytest.raises(minillm.APITimeoutError) as caught:
        client.stream("go")
    # The error (and its traceback) is still alive here: the generation must
    # have ended anyway, not wait for the garbage collector.
    assert caught.value is not None
    assert scripted.wait_idle(timeout=5)


def test_a_local_primary_falls_back_to_another_engine(
    local: Callable[..., minillm.Client], ledger: minillm.Ledger, scripted: ScriptedEngine
) -> None:
    for _ in range(3):
        scripted.add(Fail("broken"))
    client = local("local/scripted-test", fallbacks=["local/echo"])
    assert client.complete("fell back").text == "fell back"
    assert ledger.records[0][0].model == "echo"


def test_many_threads_streaming_locally_book_exactly_once_each(
    local: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    client = local()
    errors: List[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(10):
                with client.stream(f"thread {n} stream {i}", meta={"thread": n}) as stream:
                    assert "".join(stream.text_stream()) == f"thread {n} stream {i}"
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert ledger.count == 160
    assert ledger.total() == 160 * cost(5, 4)
    assert ledger.totals_by("thread") == {n: 10 * cost(5, 4) for n in range(16)}
