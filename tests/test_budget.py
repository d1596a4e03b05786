"""Budgets: the worst case is held before a request is sent, replaced by the
real cost when it is booked, and let go when nothing is booked -- so the
money booked never passes the limit by more than one request's worst case,
with many threads and several processes."""

from __future__ import annotations

import threading
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Iterator, List

import pytest

import minillm
from minillm.accounting.budget import estimate_prompt_tokens, worst_case
from minillm.accounting.ledgers import BaseLedger
from minillm.accounting.pricing import Pricer
from minillm.engines import Fail, ScriptedEngine, registered
from minillm.request import build_chat_request
from minillm.testing import Hang, Reply, ScriptedServer, chat_chunk, chat_stream, chat_usage, sse

from .test_ledgers import run_workers

PRICE = minillm.TokenPrice(input_per_mtok="1", output_per_mtok="1")


@pytest.fixture
def scripted() -> Iterator[ScriptedEngine]:
    engine = ScriptedEngine()
    with registered("budget-test", engine):
        yield engine


def local(ledger: BaseLedger, budget: minillm.Budget, model: str = "local/echo") -> minillm.Client:
    return minillm.Client(model, on_cost=ledger, price=PRICE, budget=budget, retry=minillm.RetryPolicy(max_attempts=1))


def test_the_worst_case_is_the_estimated_prompt_and_every_token_that_may_come_out() -> None:
    request = build_chat_request("m", "x" * 300, max_tokens=100, thinking_budget=50)
    assert estimate_prompt_tokens(request) > 300 / 4  # errs high: fewer characters a token than usual
    prompt = estimate_prompt_tokens(request)
    assert worst_case(request, pricer=Pricer(PRICE), model="m") == Decimal(prompt + 150) / 1_000_000
    with pytest.raises(minillm.ConfigurationError, match="a budget needs a price for m"):
        worst_case(request, pricer=Pricer(), model="m")


def test_the_worst_case_of_a_request_served_at_a_known_tier_is_at_that_tiers_price() -> None:
    request = build_chat_request("m", "x" * 300, max_tokens=100)
    tiered = Pricer(minillm.TokenPrice(input_per_mtok="1", output_per_mtok="1", tiers={"batch": "0.5"}))
    standard = worst_case(request, pricer=tiered, model="m")
    assert worst_case(request, pricer=tiered, model="m", service_tier="batch") == standard / 2


def test_a_hold_may_last_longer_than_the_budgets_own_hold_seconds() -> None:
    ledger = minillm.Ledger()
    budget = minillm.Budget(ledger, "1", hold_seconds=-1)  # its own holds have lapsed already
    budget.hold("long", Decimal("0.25"), {}, seconds=3600)
    budget.hold("short", Decimal("0.5"), {})
    assert budget.spent() == Decimal("0.25")


def test_a_request_within_the_budget_is_booked_and_its_real_cost_replaces_the_hold() -> None:
    ledger = minillm.Ledger()
    budget = minillm.Budget(ledger, "1")
    response = local(ledger, budget).complete("hello there", max_tokens=50)
    assert response.text == "hello there"
    assert budget.spent() == response.cost.usd == ledger.total()  # type: ignore[union-attr]
    assert budget.remaining() == Decimal(1) - ledger.total()


def test_a_request_whose_worst_case_does_not_fit_is_refused_before_it_is_sent(scripted: ScriptedEngine) -> None:
    ledger = minillm.Ledger()
    budget = minillm.Budget(ledger, "0.00001")
    with pytest.raises(minillm.BudgetExceeded) as caught:
        local(ledger, budget, "local/budget-test").complete("hello", max_tokens=1000)
    assert caught.value.limit == Decimal("0.00001") and caught.value.requested > caught.value.limit
    assert scripted.requests == [] and ledger.count == 0 and budget.spent() == 0


def test_a_budgeted_call_without_max_tokens_is_capped_by_the_budget(server: ScriptedServer) -> None:
    server.reply(Reply.sse(chat_stream(["ok"], usage=chat_usage(3, 1))))
    ledger = minillm.Ledger()
    budget = minillm.Budget(ledger, "1", default_max_tokens=77)
    client = minillm.Client("openai/test-model", base_url=server.url, price=PRICE, on_cost=ledger)
    client.stream("Hi", budget=budget).collect()
    assert server.requests[0].json()["max_tokens"] == 77


@pytest.mark.parametrize("how", ["http-error", "reject", "cancelled-before-send"])
def test_what_a_request_that_books_nothing_held_is_let_go(
    how: str, scripted: ScriptedEngine, server: ScriptedServer
) -> None:
    ledger = minillm.Ledger()
    budget = minillm.Budget(ledger, "1")
    if how == "http-error":
        server.reply(Reply.json({"error": {"message": "bad"}}, status=400))
        client = minillm.Client("openai/test-model", base_url=server.url, price=PRICE, on_cost=ledger, budget=budget)
        with pytest.raises(minillm.BadRequestError):
            client.stream("Hi")
    elif how == "reject":
        scripted.add("a draft")
        stream = local(ledger, budget, "local/budget-test").stream("Hi")
        stream.collect()
        assert budget.spent() > 0  # still held while undecided
        stream.reject()
    else:
        token = minillm.CancellationToken()
        token.cancel()
        local(ledger, budget, "local/budget-test").stream("Hi", cancel=token).collect()
    assert ledger.count == 0 and budget.spent() == 0


def test_a_stream_cut_short_without_usage_counts_at_its_worst_case(server: ScriptedServer) -> None:
    server.reply(Reply.sse([*chat_stream(["partial"], finish_reason=None, done=False), Hang()]))
    ledger = minillm.Ledger()
    budget = minillm.Budget(ledger, "1")
    client = minillm.Client("openai/test-model", base_url=server.url, price=PRICE, on_cost=ledger, budget=budget)
    with client.stream("Hi", max_tokens=100) as stream:
        for _ in stream:
            break
    booked = ledger.records[0][0]
    # A lower bound (one output token seen), not the money: the budget keeps the worst case.
    assert booked.resolution is minillm.Resolution.PARTIAL and booked.cancelled
    assert booked.usd is not None and booked.usd < budget.spent()
    assert budget.spent() == worst_case(
        build_chat_request("test-model", "Hi", max_tokens=100), pricer=Pricer(PRICE), model="m"
    )


def test_an_attempt_that_failed_after_output_keeps_its_worst_case(scripted: ScriptedEngine) -> None:
    ledger = minillm.Ledger()
    budget = minillm.Budget(ledger, "1")
    scripted.add("partial", Fail("out of memory"))
    with pytest.raises(minillm.StreamError):
        with local(ledger, budget, "local/budget-test").stream("Hi", max_tokens=50) as stream:
            list(stream)
    ((booked, _),) = ledger.records
    assert booked.failed and booked.resolution is minillm.Resolution.PARTIAL
    held = worst_case(build_chat_request("budget-test", "Hi", max_tokens=50), pricer=Pricer(PRICE), model="m")
    assert budget.spent() == held > booked.usd  # type: ignore[operator]


def test_each_attempt_holds_its_own_worst_case_and_a_retry_that_cannot_be_held_is_not_sent(
    server: ScriptedServer,
) -> None:
    server.reply(Reply.sse([sse(chat_chunk(content="")), sse({"error": {"message": "overloaded", "code": 503}})]))
    ledger = minillm.Ledger()
    request = build_chat_request("test-model", "Hi", max_tokens=10)
    one = worst_case(request, pricer=Pricer(PRICE), model="m")
    # Room for one attempt's worst case, not two: the failed first attempt
    # (booked UNKNOWN) keeps its worst case, and the retry cannot be held.
    budget = minillm.Budget(ledger, one * 3 / 2)
    client = minillm.Client(
        "openai/test-model",
        base_url=server.url,
        price=PRICE,
        on_cost=ledger,
        retry=minillm.RetryPolicy(sleep=lambda seconds: None),
    )
    with pytest.raises(minillm.BudgetExceeded):
        with client.stream("Hi", max_tokens=10, budget=budget) as stream:
            list(stream)  # the overload is read here; its retry is refused here
    assert len(server.requests) == 1
    ((failed, _),) = ledger.records
    assert failed.failed and failed.resolution is minillm.Resolution.UNKNOWN
    assert budget.spent() == one
    roomy = minillm.Budget(minillm.Ledger(), one * 3)
    roomy_client = minillm.Client(
        "openai/test-model",
        base_url=server.url,
        price=PRICE,
        on_cost=roomy.ledger,
        retry=minillm.RetryPolicy(sleep=lambda s: None),
    )
    server.reply(
        Reply.sse([sse(chat_chunk(content="")), sse({"error": {"message": "overloaded", "code": 503}})]),
        Reply.sse(chat_stream(["ok"], usage=chat_usage(3, 1))),
    )
    with roomy_client.stream("Hi", max_tokens=10, budget=roomy) as stream:
        assert "".join(stream.text_stream()) == "ok"
    first, second = roomy.ledger.records
    assert (first[0].attempt, second[0].attempt) == (1, 2)
    assert roomy.spent() == one + second[0].usd  # type: ignore[operator]


def test_a_budget_per_user_keeps_users_apart() -> None:
    ledger = minillm.Ledger()
    budget = minillm.Budget(ledger, "0.0002", key="user")
    client = local(ledger, budget)
    words = "word " * 30  # echoed: 31 tokens in and 30 out; worst case about 170
    client.complete(words, max_tokens=100, meta={"user": "ann"})
    with pytest.raises(minillm.BudgetExceeded) as caught:
        client.complete(words, max_tokens=100, meta={"user": "ann"})
    assert (caught.value.key, caught.value.value) == ("user", "ann")
    client.complete(words, max_tokens=100, meta={"user": "bob"})
    assert budget.spent("ann") > 0 and budget.spent("bob") > 0 and budget.spent("cy") == 0


def test_a_calls_own_budget_wins_over_the_clients() -> None:
    ledger = minillm.Ledger()
    tight = minillm.Budget(ledger, "0")
    client = minillm.Client("local/echo", price=PRICE, on_cost=ledger, budget=minillm.Budget(ledger, "1"))
    assert client.complete("fine").text == "fine"
    with pytest.raises(minillm.BudgetExceeded):
        client.complete("refused", budget=tight)


def test_a_budget_refusal_does_not_fall_back(scripted: ScriptedEngine) -> None:
    ledger = minillm.Ledger()
    client = minillm.Client(
        "local/budget-test", price=PRICE, on_cost=ledger, budget=minillm.Budget(ledger, "0"), fallbacks=["local/echo"]
    )
    with pytest.raises(minillm.BudgetExceeded):
        client.complete("refused")
    assert scripted.requests == [] and ledger.count == 0


def test_bad_budgets_are_refused(tmp_path: Path) -> None:
    ledger = minillm.Ledger()
    with pytest.raises(minillm.InvalidArgumentError):
        minillm.Budget(ledger, "-1")
    with pytest.raises(minillm.InvalidArgumentError):
        minillm.Budget(ledger, "1", default_max_tokens=0)
    with pytest.raises(minillm.ConfigurationError):
        minillm.Budget(object(), "1")  # type: ignore[arg-type]
    with pytest.raises(minillm.ConfigurationError):
        minillm.Client("local/echo", budget="10 dollars")  # type: ignore[arg-type]


def hammer(make_ledger: Callable[[], BaseLedger], limit: str, threads: int, calls: int) -> List[Any]:
    ledger = make_ledger()
    budget = minillm.Budget(ledger, limit, default_max_tokens=8)
    client = minillm.Client("local/echo", on_cost=ledger, price=PRICE, budget=budget)
    refused: List[int] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        for i in range(calls):
            try:
                client.complete(f"thread {n} request {i} says hello")
            except minillm.BudgetExceeded:
                with lock:
                    refused.append(1)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    return [ledger, refused]


@pytest.mark.parametrize("kind", ["memory", "sqlite", "postgres"])
def test_thirty_two_threads_never_pass_the_limit_by_more_than_one_worst_case(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    def make() -> BaseLedger:
        if kind == "memory":
            return minillm.Ledger()
        if kind == "sqlite":
            return minillm.SQLiteLedger(tmp_path / "budget.db")
        return minillm.PostgresLedger(request.getfixturevalue("postgres_dsn"))

    limit = Decimal("0.002")
    ledger, refused = hammer(make, str(limit), threads=32, calls=12)
    one_worst_case = worst_case(
        build_chat_request("echo", "thread 10 request 10 says hello", max_tokens=8),
        pricer=Pricer(PRICE),
        model="m",
    )
    assert refused, "the budget was never reached: the test proves nothing"
    assert ledger.count + len(refused) == 32 * 12  # every call either booked once or was refused
    assert ledger.total() <= limit + one_worst_case
    # Refusals only come when the limit is near: at most every thread's hold
    # (worst cases, later settled lower) stood between the total and the limit.
    assert ledger.total() > limit - 32 * one_worst_case
    ledger.close()


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_two_processes_share_one_budget(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    target = str(tmp_path / "budget.db") if kind == "sqlite" else request.getfixturevalue("postgres_dsn")
    limit = Decimal("0.002")
    reports = run_workers(kind, target, "spend", 16, 10, str(limit))
    ledger = minillm.SQLiteLedger(target) if kind == "sqlite" else minillm.PostgresLedger(target)
    refused = sum(report["refused"] for report in reports)
    assert refused > 0 and ledger.count + refused == 2 * 16 * 10
    one_worst_case = worst_case(
        build_chat_request("echo", "A thread 10 request 10 says hello", max_tokens=8),
        pricer=Pricer(PRICE),
        model="m",
    )
    assert ledger.total() <= limit + one_worst_case
    ledger.close()


def test_many_holds_are_checked_once_per_scope_and_placed_all_or_none() -> None:
    ledger = minillm.Ledger()
    budget = minillm.Budget(ledger, "1", key="user")
    holds = [("a", Decimal("0.6"), {"user": 1}), ("b", Decimal("0.6"), {"user": 2}), ("c", Decimal("0.3"), {"user": 1})]
    placed = budget.hold_many(holds, seconds=60)
    assert [hold.booking_id for hold in placed] == ["a", "b", "c"]
    assert (budget.spent(1), budget.spent(2)) == (Decimal("0.9"), Decimal("0.6"))
    with pytest.raises(minillm.BudgetExceeded):  # user 3 fits, user 2 does not: neither is held
        budget.hold_many([("d", Decimal("0.5"), {"user": 3}), ("e", Decimal("0.5"), {"user": 2})])
    assert (budget.spent(3), budget.spent(2)) == (Decimal(0), Decimal("0.6"))
