"""Re-resolving pending bookings: a stream cut short is booked UNKNOWN or
PARTIAL while OpenRouter's /generation has no record yet; later,
``resolve_pending`` books the difference once -- in every ledger, across
runs, threads and processes -- and budgets count the real figure."""

from __future__ import annotations

import logging
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest

import minillm
from minillm.accounting.corrections import Resolved, correction_id
from minillm.accounting.ledgers import BaseLedger
from minillm.testing import Hang, RecordedRequest, Reply, ScriptedServer, chat_chunk, openrouter_generation, sse

from .test_ledgers import ledger, run_workers  # noqa: F401 - ``ledger``: every ledger, as a fixture

KEY = "sk-or-secret-4f1d9c"
PRICE = minillm.TokenPrice(input_per_mtok="1", output_per_mtok="2")
#: gives up on /generation almost at once: the booking is left pending
IMPATIENT = minillm.LookupPolicy(initial_delay=0.01, max_delay=0.01, timeout=0.05)
NOT_YET = Reply.json({"error": {"message": "Generation not found", "code": 404}}, status=404)


class Generations:
    """OpenRouter's /generation on the scripted server: 404 ("not recorded
    yet") until :meth:`record` says what a generation cost."""

    def __init__(self, server: ScriptedServer) -> None:
        self.costs: Dict[str, Dict[str, Any]] = {}
        self.asked: List[str] = []
        server.route("GET", "/generation", self.answer)

    def record(self, generation_id: str, total_cost: float, prompt: int = 0, completion: int = 0) -> None:
        self.costs[generation_id] = openrouter_generation(
            generation_id, total_cost=total_cost, native_tokens_prompt=prompt, native_tokens_completion=completion
        )

    def answer(self, request: RecordedRequest) -> Reply:
        generation_id = request.query["id"][0]
        self.asked.append(generation_id)
        known = self.costs.get(generation_id)
        return NOT_YET if known is None else Reply.json(known)


@pytest.fixture
def generations(server: ScriptedServer) -> Generations:
    return Generations(server)


@pytest.fixture
def openrouter(server: ScriptedServer) -> Iterator[Callable[..., minillm.Client]]:
    made: List[minillm.Client] = []

    def make(**kwargs: Any) -> minillm.Client:
        kwargs.setdefault("model", "openrouter/x/y")
        made.append(minillm.Client(api_key=KEY, base_url=server.url, lookup=IMPATIENT, **kwargs))
        return made[-1]

    yield make
    for client in made:
        client.close()


def cut_short(server: ScriptedServer, client: minillm.Client, generation_id: str, **options: Any) -> None:
    """A stream that the caller stops after its first piece: its look-up
    finds no record, and it is booked pending with its generation id."""
    server.reply(Reply.sse([sse(chat_chunk(id=generation_id, content="a")), Hang()]), path="/chat/completions")
    with client.stream("Hi", **options) as stream:
        next(iter(stream))
    assert client.flush(timeout=10)


def test_an_unknown_booking_is_corrected_once_with_what_the_provider_billed(
    ledger: BaseLedger,  # noqa: F811 - the fixture imported above
    server: ScriptedServer,
    generations: Generations,
    openrouter: Callable[..., minillm.Client],
) -> None:
    client = openrouter(on_cost=ledger)
    cut_short(server, client, "gen-1", meta={"user": 7})
    ((original, _),) = ledger.records
    assert original.resolution is minillm.Resolution.UNKNOWN and original.response_id == "gen-1"
    generations.record("gen-1", 0.0042, prompt=7, completion=3)

    first = ledger.resolve_pending(client)

    ((correction),) = first.corrected
    assert (correction.usd, correction.resolution, correction.source) == (
        Decimal("0.0042"), minillm.Resolution.RESOLVED, "lookup",
    )  # fmt: skip
    # the tokens seen (one output token) and the correction's add up to the provider's counts
    assert (original.completion_tokens, correction.completion_tokens, correction.prompt_tokens) == (1, 2, 7)
    assert correction.corrects == original.booking_id and correction.response_id == "gen-1"
    assert correction.booking_id == correction_id(str(original.booking_id)) and correction.cancelled
    assert first.usd == Decimal("0.0042") and first.still_pending == () and first.skipped == ()
    assert [entry.cost for entry in ledger.entries()] == [original, correction]
    assert ledger.records[1][1] == {"user": 7}  # in the same groups as what it corrects
    assert ledger.total() == Decimal("0.0042") and ledger.totals_by("user") == {7: Decimal("0.0042")}
    assert ledger.totals_by_model() == {"openrouter/x/y": Decimal("0.0042")}
    assert ledger.unresolved() == []
    asked = len(generations.asked)

    assert ledger.resolve_pending(client) == Resolved()  # nothing more: no second full booking
    assert ledger.count == 2 and ledger.total() == Decimal("0.0042")
    assert len(generations.asked) == asked  # a corrected booking is not asked about again


def test_a_partial_booking_is_corrected_by_the_difference_and_its_budget_counts_the_real_figure(
    ledger: BaseLedger,  # noqa: F811 - the fixture imported above
    server: ScriptedServer,
    generations: Generations,
    openrouter: Callable[..., minillm.Client],
) -> None:
    budget = minillm.Budget(ledger, "1")
    client = openrouter(on_cost=ledger, price=PRICE, budget=budget)
    cut_short(server, client, "gen-p", max_tokens=100)
    ((lower, _),) = ledger.records
    assert lower.resolution is minillm.Resolution.PARTIAL and lower.usd == Decimal("0.000002")  # one token seen
    held = budget.spent()
    assert held > lower.usd  # the worst case held for it still counts
    generations.record("gen-p", 0.00005, prompt=9, completion=4)

    resolved = ledger.resolve_pending(client)

    ((correction),) = resolved.corrected
    assert correction.usd == Decimal("0.000048") == resolved.usd  # 0.00005 less the lower bound
    assert (correction.prompt_tokens, correction.completion_tokens) == (9, 3)  # the counts add up too
    assert ledger.total() == Decimal("0.00005") and ledger.unresolved() == []
    assert budget.spent() == Decimal("0.00005")  # the real figure, not the worst case plus it
    assert ledger.resolve_pending(client).corrected == ()
    assert budget.spent() == Decimal("0.00005")


def test_a_lower_bound_above_the_bill_is_corrected_down_and_says_so(
    server: ScriptedServer,
    generations: Generations,
    openrouter: Callable[..., minillm.Client],
    caplog: pytest.LogCaptureFixture,
) -> None:
    books = minillm.Ledger()
    dear = minillm.TokenPrice(input_per_mtok="100", output_per_mtok="1000")  # above what OpenRouter charged
    client = openrouter(on_cost=books, price=dear)
    cut_short(server, client, "gen-low")
    generations.record("gen-low", 0.0001, completion=1)
    with caplog.at_level(logging.WARNING, logger="minillm"):
        ((correction),) = books.resolve_pending(client).corrected
    assert correction.usd == Decimal("-0.0009") and books.total() == Decimal("0.0001")
    assert "gen-low (openrouter/x/y) cost $0.0001, below the lower bound of $0.001" in caplog.text


def test_a_booking_the_provider_has_no_record_of_yet_stays_pending_for_the_next_run(
    server: ScriptedServer, generations: Generations, openrouter: Callable[..., minillm.Client]
) -> None:
    books = minillm.Ledger()
    client = openrouter(on_cost=books)
    cut_short(server, client, "gen-late")
    ((original, _),) = books.records

    waiting = books.resolve_pending(client)
    assert waiting.still_pending == (original,) and waiting.corrected == () and books.count == 1
    assert books.unresolved() == [(original, {})]

    generations.record("gen-late", 0.003)
    assert [c.usd for c in books.resolve_pending(client).corrected] == [Decimal("0.003")]


def test_only_the_bookings_between_since_and_until_are_resolved(
    server: ScriptedServer, generations: Generations, openrouter: Callable[..., minillm.Client]
) -> None:
    books = minillm.Ledger()
    client = openrouter(on_cost=books)
    cut_short(server, client, "gen-early")
    (early,) = books.entries()
    generations.record("gen-early", 0.001)
    assert books.resolve_pending(client, since=early.booked_at.replace(year=early.booked_at.year + 1)) == Resolved()
    assert books.resolve_pending(client, until=early.booked_at) == Resolved()
    assert generations.asked.count("gen-early") == len(generations.asked)  # only the stream's own look-ups
    assert len(books.resolve_pending(client, since=early.booked_at).corrected) == 1
    with pytest.raises(minillm.InvalidArgumentError, match="since"):
        books.resolve_pending(client, since="last tuesday")


def test_bookings_the_client_cannot_look_up_are_skipped_never_guessed(
    generations: Generations, openrouter: Callable[..., minillm.Client], server: ScriptedServer
) -> None:
    books = minillm.Ledger()

    def pending(provider: str, model: str, generation_id: Optional[str], booking_id: str) -> minillm.CostInfo:
        unknown = minillm.CostInfo(
            resolution=minillm.Resolution.UNKNOWN,
            provider=provider,
            model=model,
            response_id=generation_id,
            booking_id=booking_id,
        )
        books.record(unknown, {})
        return unknown

    other_model = pending("openrouter", "x/other", "gen-o", "b1")
    no_look_up = pending("openai", "x/y", "chatcmpl-1", "b2")
    no_id = pending("openrouter", "x/y", None, "b3")
    resolved = books.resolve_pending(openrouter())
    assert resolved.skipped == (other_model, no_look_up, no_id) and resolved.corrected == ()
    everything = books.resolve_pending(minillm.Client("openai/x/y", api_key="sk-test", base_url=server.url))
    assert everything.skipped == (other_model, no_look_up, no_id)  # OpenAI has no look-up at all
    assert generations.asked == [] and books.count == 3
    with pytest.raises(minillm.InvalidArgumentError, match=r"needs a minillm\.Client"):
        books.resolve_pending("openrouter/x/y")  # type: ignore[arg-type]


def test_a_provider_that_cannot_be_reached_leaves_the_booking_pending_and_never_shows_the_key(
    server: ScriptedServer, generations: Generations, openrouter: Callable[..., minillm.Client], caplog: Any
) -> None:
    books = minillm.Ledger()
    cut_short(server, openrouter(on_cost=books), "gen-gone")
    with ScriptedServer() as gone:
        url = gone.url
    unreachable = minillm.Client("openrouter/x/y", api_key=KEY, base_url=url)
    with caplog.at_level(logging.DEBUG, logger="minillm"):
        resolved = books.resolve_pending(unreachable)
    unreachable.close()
    assert len(resolved.still_pending) == 1 and books.count == 1
    assert "could not ask openrouter for the cost of generation gen-gone" in caplog.text
    assert KEY not in caplog.text and KEY not in repr(resolved)


def test_a_correction_books_once_when_many_threads_resolve_one_ledger(
    server: ScriptedServer, generations: Generations, openrouter: Callable[..., minillm.Client]
) -> None:
    books = minillm.Ledger()
    client = openrouter(on_cost=books)
    cut_short(server, client, "gen-t")
    generations.record("gen-t", 0.002)
    results: List[Resolved] = []
    start = threading.Barrier(8)

    def resolve() -> None:
        start.wait(10)
        results.append(books.resolve_pending(client))

    threads = [threading.Thread(target=resolve) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sum(len(result.corrected) for result in results) == 1
    assert books.count == 2 and books.total() == Decimal("0.002")


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_two_processes_resolving_one_ledger_at_once_book_one_correction_per_booking(
    kind: str, server: ScriptedServer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    target = str(tmp_path / "shared.db") if kind == "sqlite" else request.getfixturevalue("postgres_dsn")
    shared = minillm.SQLiteLedger(target) if kind == "sqlite" else minillm.PostgresLedger(target)
    generations = Generations(server)
    client = minillm.Client(
        "openrouter/x/y", api_key="sk-or-test", base_url=server.url, on_cost=shared, lookup=IMPATIENT
    )
    ids = [f"gen-{n}" for n in range(4)]
    for generation_id in ids:
        cut_short(server, client, generation_id)
        generations.record(generation_id, 0.001 * (ids.index(generation_id) + 1))
    # Each answer waits until both processes have asked for it: both then
    # try to book every correction, and the ledger must keep one of each.
    both = {generation_id: threading.Barrier(2, timeout=30) for generation_id in ids}

    def together(request: RecordedRequest) -> Reply:
        both[request.query["id"][0]].wait()
        return generations.answer(request)

    server.route("GET", "/generation", together)
    reports = run_workers(kind, target, "resolve", 1, 1, server.url)

    booked = sorted(corrects for report in reports for corrects in report["corrected"])
    originals = sorted(str(cost.booking_id) for cost, _ in shared.records if cost.corrects is None)
    assert booked == originals  # each booking corrected by exactly one of the two
    assert sum(Decimal(report["usd"]) for report in reports) == Decimal("0.010")
    assert shared.count == 8 and shared.total() == Decimal("0.010") and shared.unresolved() == []
    client.close()
    shared.close()


def test_a_corrections_booking_id_is_made_from_its_originals_and_fits_every_ledger() -> None:
    assert correction_id("abc") == "abc:correction"
    long = "x" * 60
    assert correction_id(long) == correction_id(long) != correction_id("y" * 60)
    assert len(correction_id(long)) == 64 and correction_id(long).endswith(":correction")


def test_reports_and_reconciliations_see_a_corrected_booking_as_one_resolved_attempt(
    tmp_path: Path, server: ScriptedServer, generations: Generations, openrouter: Callable[..., minillm.Client]
) -> None:
    import json

    from minillm.accounting.corrections import folded
    from minillm.reports.command import run_summary

    books = minillm.SQLiteLedger(tmp_path / "costs.db")
    client = openrouter(on_cost=books)
    cut_short(server, client, "gen-r", meta={"user": 7})
    cut_short(server, client, "gen-s", meta={"user": 8})  # never corrected: stays unknown
    generations.record("gen-r", 0.0042, prompt=7, completion=3)
    books.resolve_pending(client)
    entries = books.entries()
    assert len(entries) == 3

    view = folded(entries)
    assert [(e.cost.usd, e.cost.resolution, e.meta) for e in view] == [
        (Decimal("0.0042"), minillm.Resolution.RESOLVED, {"user": 7}),
        (None, minillm.Resolution.UNKNOWN, {"user": 8}),
    ]
    assert (view[0].cost.prompt_tokens, view[0].cost.completion_tokens, view[0].cost.source) == (7, 3, "lookup")
    assert view[0].booked_at == entries[0].booked_at  # on the day of the attempt, not of the correction
    assert folded(entries[2:]) == entries[2:]  # a correction without its booking stays as it is

    import argparse

    args = argparse.Namespace(ledger=str(tmp_path / "costs.db"), since=None, until=None, by=["user"], format="json")

    class Out:
        text = ""

        def write(self, piece: str) -> None:
            self.text += piece

    out = Out()
    assert run_summary(args, out) == 0
    rows = {json.dumps(row["key"]): row for row in json.loads(out.text)["groups"]}
    assert rows['{"user": 7}']["usd"] == "0.0042" and rows['{"user": 7}']["unknown"] == 0
    books.close()
