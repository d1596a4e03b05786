"""Provider batches, through the public API and the ``minillm batch
--provider-batch`` command, against the batch emulator: results in input
order, each answered item booked once at the batch rate -- also when the
process is killed at any step and the job resumed -- budgets held before
anything is sent, jobs split to fit, and no key anywhere it should not be."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Tuple

import pytest

import minillm
from minillm import batch
from minillm.accounting.budget import worst_case
from minillm.accounting.pricing import Pricer
from minillm.batch.apis import AnthropicBatches, OpenAIBatches, Remote
from minillm.batch.state import JobState
from minillm.providers.anthropic import AnthropicAdapter
from minillm.providers.base import ProviderConfig
from minillm.providers.openai import OpenAIHost
from minillm.request import build_chat_request
from minillm.testing import BatchServer, Reply

from .conftest import MINILLM_COMMAND
from .test_cli import environment

KEY = "sk-canary-batch-7f3a9c"
PRICE = minillm.TokenPrice(input_per_mtok="1", output_per_mtok="2", tiers={"batch": "0.5"})

#: (model, client options, the path its batches are created at)
FLAVOURS: Dict[str, Tuple[str, Dict[str, Any], str]] = {
    "openai": ("openai/gpt-test", {}, "/batches"),
    "responses": ("openai/gpt-test", {"api": "responses"}, "/batches"),
    "anthropic": ("anthropic/claude-test", {}, "/v1/messages/batches"),
}
PROTOCOLS = {"openai": OpenAIBatches, "responses": OpenAIBatches, "anthropic": AnthropicBatches}


def at_batch_rate(prompt_tokens: int, completion_tokens: int) -> Decimal:
    """What PRICE books for an item: $1 / $2 per million, halved."""
    return Decimal(prompt_tokens * 1 + completion_tokens * 2) / 2 / 1_000_000


def index_of(custom_id: str) -> int:
    return int(custom_id.rsplit("-", 1)[1])


@pytest.fixture
def batches() -> Iterator[BatchServer]:
    with BatchServer() as server:
        yield server


@pytest.fixture(params=sorted(FLAVOURS))
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def client_for(server: BatchServer, flavour: str, sink: Any = None, **kwargs: Any) -> minillm.Client:
    model, options, _ = FLAVOURS[flavour]
    kwargs.setdefault("price", PRICE)
    kwargs.setdefault("retry", minillm.RetryPolicy(max_attempts=1))
    return minillm.Client(model, base_url=server.url, api_key=KEY, on_cost=sink, **options, **kwargs)


def run_through(sent: batch.ProviderBatch) -> List[batch.BatchResult]:
    with sent:
        assert sent.wait(poll=0) == "ended"
        return sent.results()


# -- the round trip -------------------------------------------------------------------------


def test_results_come_back_in_input_order_and_each_answer_is_booked_once_at_the_batch_rate(
    batches: BatchServer, tmp_path: Path, flavour: str
) -> None:
    batches.usage = lambda custom_id, body: (10 + index_of(custom_id), 5 + index_of(custom_id))
    ledger = minillm.Ledger()
    prompts = [f"prompt number {n}" for n in range(8)]
    sent = batch.submit(client_for(batches, flavour, ledger), prompts, journal=tmp_path / "j", meta={"team": "a"})
    assert sent.status() in ("validating", "in_progress") and ledger.count == 0
    results = run_through(sent)

    assert [r.text for r in results] == [p.upper() for p in prompts]
    assert [(r.index, r.ok, r.from_journal, r.finish_reason) for r in results] == [
        (n, True, False, "stop") for n in range(8)
    ]
    expected = [at_batch_rate(10 + n, 5 + n) for n in range(8)]
    assert [r.cost.usd for r in results if r.cost] == expected
    assert ledger.count == 8 and ledger.total() == sum(expected)
    costs = [cost for cost, _ in ledger.records]
    assert all(c.service_tier == "batch" and c.resolution is minillm.Resolution.RESOLVED for c in costs)
    assert all(c.source == "price" and c.model in ("claude-test", "gpt-test") for c in costs)
    assert len({c.booking_id for c in costs}) == 8
    metas = [meta for _, meta in ledger.records]
    assert sorted(meta["batch_item"] for meta in metas) == list(range(8))
    assert all(meta["team"] == "a" and meta["provider_batch"] == sent.id for meta in metas)
    assert [b.id for b in batches.batches] == [sent.id] == list(sent.ids)
    summary = batch.summarize(results)
    assert (summary["done"], summary["failed"], summary["usd"], summary["tokens"]) == (8, 0, sum(expected), 8 * 15 + 56)


def test_the_openai_batch_is_a_jsonl_file_of_real_time_bodies_and_a_batch_named_after_its_job(
    batches: BatchServer, tmp_path: Path
) -> None:
    sent = batch.submit(client_for(batches, "openai"), ["one", "two"], journal=tmp_path / "j", max_tokens=20)
    upload, create = batches.requests[:2]
    assert (upload.method, upload.path, create.path) == ("POST", "/files", "/batches")
    assert upload.headers["authorization"] == f"Bearer {KEY}"
    assert upload.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert b'name="purpose"\r\n\r\nbatch\r\n' in upload.body
    lines = [json.loads(line) for line in upload.body.split(b"\r\n\r\n", 2)[2].splitlines() if line.startswith(b"{")]
    assert [line["url"] for line in lines] == ["/v1/chat/completions"] * 2
    assert [line["method"] for line in lines] == ["POST", "POST"]
    assert lines[0]["body"] == {"model": "gpt-test", "messages": [{"role": "user", "content": "one"}], "max_tokens": 20}
    made = create.json()
    assert made["endpoint"] == "/v1/chat/completions" and made["completion_window"] == "24h"
    assert made["metadata"]["minillm_part"] == "0" and len(made["metadata"]["minillm_job"]) == 32
    assert batches.uploads == [f"minillm-{made['metadata']['minillm_job']}-part0.jsonl"]
    sent.close()


def test_the_anthropic_batch_carries_each_real_time_body_as_its_params(batches: BatchServer, tmp_path: Path) -> None:
    sent = batch.submit(
        client_for(batches, "anthropic"), [{"prompt": "one", "system": "be brief"}], journal=tmp_path / "j"
    )
    (create,) = batches.requests
    assert (create.path, create.headers["x-api-key"], create.headers["anthropic-version"]) == (
        "/v1/messages/batches",
        KEY,
        "2023-06-01",
    )
    (item,) = create.json()["requests"]
    assert item["params"] == {
        "model": "claude-test",
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "one"}]}],
        "system": "be brief",
    }
    assert item["custom_id"].startswith("mlb-") and item["custom_id"].endswith("-0")
    sent.close()


# -- items that fail ----------------------------------------------------------------------------


def test_errored_and_expired_items_are_failed_results_and_book_nothing(
    batches: BatchServer, tmp_path: Path, flavour: str
) -> None:
    batches.outcome = lambda custom_id, body: {1: "errored", 2: "expired"}.get(index_of(custom_id), "succeeded")
    ledger = minillm.Ledger()
    client = client_for(batches, flavour, ledger)
    results = run_through(batch.submit(client, ["a", "b", "c", "d"], journal=tmp_path / "j"))
    assert [r.ok for r in results] == [True, False, False, True]
    assert results[1].error is not None and results[1].error.startswith("errored: ")
    assert "was refused" in results[1].error and results[1].cost is None and results[1].attempts == 1
    assert results[2].error is not None and results[2].error.startswith("expired: ") and results[2].attempts == 0
    assert ledger.count == 2 and ledger.total() == 2 * at_batch_rate(10, 5)
    assert sorted(meta["batch_item"] for _, meta in ledger.records) == [0, 3]
    assert batch.summarize(results)["failed"] == 2


def test_an_openai_batch_that_fails_validation_fails_every_item_and_books_nothing(
    batches: BatchServer, tmp_path: Path
) -> None:
    batches.outcome = lambda custom_id, body: "invalid" if index_of(custom_id) == 1 else "succeeded"
    ledger = minillm.Ledger()
    results = run_through(batch.submit(client_for(batches, "openai", ledger), ["a", "b", "c"], journal=tmp_path / "j"))
    assert all(r.error is not None and r.error.startswith("failed: the provider batch ") for r in results)
    assert "is invalid" in str(results[0].error)
    assert ledger.count == 0 and batches.batches[0].status == "failed"


def test_an_anthropic_batch_refused_at_creation_makes_no_batch_and_the_job_can_be_sent_again(
    batches: BatchServer, tmp_path: Path
) -> None:
    batches.outcome = lambda custom_id, body: "invalid"
    client = client_for(batches, "anthropic", minillm.Ledger())
    with pytest.raises(minillm.BadRequestError, match="invalid"):
        batch.submit(client, ["a", "b"], journal=tmp_path / "j")
    assert batches.batches == []
    batches.outcome = lambda custom_id, body: "succeeded"
    results = run_through(batch.submit(client, ["a", "b"], journal=tmp_path / "j"))
    assert [r.text for r in results] == ["A", "B"]
    assert len(batches.batches) == 1 and batches.seen("list") == 0  # a refusal made no batch: none is looked for


@pytest.mark.parametrize(("status", "looked_for"), [(500, True), (400, False)])
def test_a_create_request_answered_with_an_error_is_looked_for_only_when_it_may_have_made_a_batch(
    batches: BatchServer, tmp_path: Path, flavour: str, status: int, looked_for: bool
) -> None:
    path = FLAVOURS[flavour][2]
    batches.reply(Reply.json({"error": {"message": "not now", "type": "api_error"}}, status=status), path=path)
    client = client_for(batches, flavour, minillm.Ledger())
    with pytest.raises(minillm.APIError, match="not now"):
        batch.submit(client, ["a", "b"], journal=tmp_path / "j")
    assert batches.batches == []
    results = run_through(batch.submit(client, ["a", "b"], journal=tmp_path / "j"))
    assert [r.text for r in results] == ["A", "B"]
    assert len(batches.batches) == 1 and (batches.seen("list") > 0) is looked_for


def test_a_cancelled_batch_books_what_was_answered_and_fails_the_rest(
    batches: BatchServer, tmp_path: Path, flavour: str
) -> None:
    ledger = minillm.Ledger()
    sent = batch.submit(client_for(batches, flavour, ledger), [f"p{n}" for n in range(8)], journal=tmp_path / "j")
    assert sent.status() == "in_progress"  # one poll: half the items are processed
    sent.cancel()
    assert sent.status() in ("cancelling", "ended")
    results = run_through(sent)
    assert [r.text for r in results[:4]] == ["P0", "P1", "P2", "P3"]
    assert all(r.error is not None and r.error.startswith("canceled: ") for r in results[4:])
    assert ledger.count == 4 and sorted(meta["batch_item"] for _, meta in ledger.records) == [0, 1, 2, 3]


def test_waiting_longer_than_the_timeout_leaves_the_batch_running(batches: BatchServer, tmp_path: Path) -> None:
    sent = batch.submit(client_for(batches, "anthropic"), ["a"], journal=tmp_path / "j")
    with pytest.raises(minillm.APITimeoutError, match=r"has not ended after 0s.*runs on"):
        sent.wait(poll=0, timeout=0)
    assert [r.text for r in run_through(sent)] == ["A"]


# -- prices ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "adapter", "batch_usd"),
    [
        # Claude Haiku 4.5: $1 / $5 per million, half in a batch; GPT-4o mini: $0.15 / $0.60, half
        ("anthropic/claude-haiku-4-5", AnthropicAdapter, "0.003"),
        ("openai/gpt-4o-mini", OpenAIHost, "0.000375"),
    ],
)
def test_a_provider_batch_without_a_price_of_its_own_is_booked_at_the_catalogs_batch_price(
    batches: BatchServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    model: str,
    adapter: type,
    batch_usd: str,
) -> None:
    pytest.importorskip("genai_prices", reason="genai-prices (minillm[prices]) needs Python 3.11+")
    monkeypatch.delenv("MINILLM_PRICE_CATALOG", raising=False)
    # The emulator stands where the provider's own service is: the catalog prices only that.
    monkeypatch.setattr(adapter, "default_base_url", batches.url)
    batches.usage = lambda custom_id, body: (1000, 1000)
    ledger = minillm.Ledger()
    client = minillm.Client(model, api_key=KEY, on_cost=ledger)
    (result,) = run_through(batch.submit(client, ["hello"], journal=tmp_path / "j"))
    assert result.cost is not None and result.cost.source == "catalog" and result.cost.service_tier == "batch"
    assert result.cost.usd == Decimal(batch_usd) == ledger.total()


def test_a_price_without_a_batch_tier_books_the_full_price_and_says_so(
    batches: BatchServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    flat = minillm.TokenPrice(input_per_mtok="1", output_per_mtok="2")
    ledger = minillm.Ledger()
    with caplog.at_level(logging.WARNING, logger="minillm.batch"):
        client = client_for(batches, "openai", ledger, price=flat)
        (result,) = run_through(batch.submit(client, ["a"], journal=tmp_path / "j"))
    assert result.cost is not None and result.cost.usd == 2 * at_batch_rate(10, 5)
    assert "names no 'batch' tier" in caplog.text


# -- splitting ---------------------------------------------------------------------------------------


def test_a_job_with_more_items_than_one_provider_batch_takes_is_split_into_parts(
    batches: BatchServer, tmp_path: Path, flavour: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(PROTOCOLS[flavour], "max_requests", 3)
    ledger = minillm.Ledger()
    prompts = [f"p{n}" for n in range(7)]
    sent = batch.submit(client_for(batches, flavour, ledger), prompts, journal=tmp_path / "j")
    assert [len(b.items) for b in batches.batches] == [3, 3, 1]
    assert sent.ids == tuple(b.id for b in batches.batches) and sent.id == ",".join(sent.ids)
    if flavour != "anthropic":
        assert [b.metadata["minillm_part"] for b in batches.batches] == ["0", "1", "2"]
    results = run_through(sent)
    assert [r.text for r in results] == [p.upper() for p in prompts]
    assert ledger.count == 7
    by_batch = {meta["batch_item"]: meta["provider_batch"] for _, meta in ledger.records}
    assert [by_batch[n] for n in range(7)] == [sent.ids[n // 3] for n in range(7)]


def test_a_job_larger_than_one_provider_batch_may_be_is_split_by_size(
    batches: BatchServer, tmp_path: Path, flavour: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = PROTOCOLS[flavour]
    one = _item_size(flavour)
    monkeypatch.setattr(api, "max_bytes", api.overhead + 2 * one + one // 2)  # two items a batch
    results = run_through(
        batch.submit(client_for(batches, flavour), [f"p{n}" for n in range(5)], journal=tmp_path / "j")
    )
    assert [len(b.items) for b in batches.batches] == [2, 2, 1]
    assert [r.text for r in results] == ["P0", "P1", "P2", "P3", "P4"]


def _item_size(flavour: str) -> int:
    """The bytes one item "pN" takes in a batch of ``flavour``."""
    model, options, _ = FLAVOURS[flavour]
    client = minillm.Client(model, base_url="http://127.0.0.1:9", api_key=KEY, **options)
    route = client._routes[0]
    api = PROTOCOLS[flavour](route.adapter, route.base_url)
    request = build_chat_request(route.name, "p0")
    body = route.adapter.body(request, stream=False)
    return api.size(api.item("mlb-0123456789ab-0", api.endpoint(route.adapter.path(request, stream=False)), body))


def test_an_item_larger_than_a_whole_provider_batch_is_refused_before_anything_is_sent(
    batches: BatchServer, tmp_path: Path, flavour: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(PROTOCOLS[flavour], "max_bytes", 200)
    with pytest.raises(minillm.InvalidArgumentError, match=r"item 1 takes .* bytes: more than one"):
        batch.submit(client_for(batches, flavour), ["short", "long " * 100], journal=tmp_path / "j")
    assert batches.requests == []


# -- budgets ------------------------------------------------------------------------------------------


def test_a_budget_that_cannot_hold_every_item_refuses_the_batch_before_anything_is_sent(
    batches: BatchServer, tmp_path: Path, flavour: str
) -> None:
    ledger = minillm.Ledger()
    budget = minillm.Budget(ledger, "0.0005")  # each item's worst case is ~ $0.00011: four fit, not five
    client = client_for(batches, flavour, ledger)
    prompts = [f"item {n}" for n in range(5)]
    with pytest.raises(minillm.BudgetExceeded):
        batch.submit(client, prompts, journal=tmp_path / "j", budget=budget, max_tokens=100)
    assert batches.requests == [] and budget.spent() == 0 and ledger.count == 0
    # Nothing was journaled either: the job is sent whole once the budget can take it.
    results = run_through(
        batch.submit(client, prompts, journal=tmp_path / "j", budget=minillm.Budget(ledger, "1"), max_tokens=100)
    )
    assert [r.text for r in results] == [p.upper() for p in prompts]


def test_a_budget_holds_each_items_worst_case_at_the_batch_rate_until_the_item_is_booked_or_fails(
    batches: BatchServer, tmp_path: Path, flavour: str
) -> None:
    batches.outcome = lambda custom_id, body: "errored" if index_of(custom_id) == 1 else "succeeded"
    ledger = minillm.Ledger()
    budget = minillm.Budget(ledger, "1")
    client = client_for(batches, flavour, ledger)
    prompts = ["first prompt", "second prompt", "third prompt"]
    sent = batch.submit(client, prompts, journal=tmp_path / "j", budget=budget, max_tokens=50)
    name = client._routes[0].name
    worst = [
        worst_case(build_chat_request(name, p, max_tokens=50), pricer=Pricer(PRICE), model="m", service_tier="batch")
        for p in prompts
    ]
    assert budget.spent() == sum(worst)
    standard = worst_case(build_chat_request(name, prompts[0], max_tokens=50), pricer=Pricer(PRICE), model="m")
    assert worst[0] == standard / 2
    results = run_through(sent)
    assert [r.ok for r in results] == [True, False, True]
    assert budget.spent() == ledger.total() == 2 * at_batch_rate(10, 5)  # booked replaced held; the failure let go


# -- one job, one journal ---------------------------------------------------------------------------------


def test_submitting_a_job_its_journal_holds_sends_nothing_new_and_another_job_is_refused(
    batches: BatchServer, tmp_path: Path
) -> None:
    client = client_for(batches, "anthropic", minillm.Ledger())
    first = batch.submit(client, ["a", "b"], journal=tmp_path / "j", max_tokens=9)
    again = batch.submit(client, ["a", "b"], journal=tmp_path / "j", max_tokens=9)
    assert again.id == first.id and len(batches.batches) == 1 and batches.seen("create") == 1
    with pytest.raises(minillm.ConfigurationError, match="with other items \\(item 1 differs\\)"):
        batch.submit(client, ["a", "B"], journal=tmp_path / "j", max_tokens=9)
    with pytest.raises(minillm.ConfigurationError, match="with other items \\(2 items then, 3 now\\)"):
        batch.submit(client, ["a", "b", "c"], journal=tmp_path / "j", max_tokens=9)
    with pytest.raises(minillm.ConfigurationError, match="with other options or meta"):
        batch.submit(client, ["a", "b"], journal=tmp_path / "j", max_tokens=10)
    with pytest.raises(minillm.ConfigurationError, match=r"other settings \(apis: .*models: "):
        batch.submit(client_for(batches, "openai"), ["a", "b"], journal=tmp_path / "j", max_tokens=9)
    assert len(batches.batches) == 1
    assert [r.text for r in run_through(again)] == ["A", "B"]
    first.close()


def test_resume_finds_the_one_job_of_a_journal_file_and_refuses_to_guess_among_several(
    batches: BatchServer, tmp_path: Path
) -> None:
    client = client_for(batches, "anthropic", minillm.Ledger())
    path = tmp_path / "j"
    with pytest.raises(minillm.ConfigurationError, match="holds no provider batch job"):
        batch.resume(path, client)
    batch.submit(client, ["a"], journal=batch.Journal(path, job="one")).close()
    results = run_through(batch.resume(path, client))
    assert [r.text for r in results] == ["A"]
    assert [r.from_journal for r in run_through(batch.resume(path, client))] == [True]
    batch.submit(client, ["b"], journal=batch.Journal(path, job="two")).close()
    with pytest.raises(minillm.ConfigurationError, match="holds 2 provider batch jobs \\(one, two\\)"):
        batch.resume(path, client)
    assert [r.text for r in run_through(batch.resume(batch.Journal(path, job="two"), client))] == ["B"]


def test_what_a_provider_batch_cannot_take_is_refused_before_anything_is_sent(
    batches: BatchServer, tmp_path: Path
) -> None:
    client = client_for(batches, "openai")
    with pytest.raises(minillm.InvalidArgumentError, match="headers cannot travel with each item"):
        batch.submit(client, ["a"], journal=tmp_path / "j", extra_headers={"X-A": "b"})
    with pytest.raises(minillm.InvalidArgumentError, match="not temprature"):
        batch.submit(client, ["a"], journal=tmp_path / "j", temprature=1)
    with pytest.raises(minillm.InvalidArgumentError, match="at least one prompt"):
        batch.submit(client, [], journal=tmp_path / "j")
    with pytest.raises(minillm.ConfigurationError, match="has no provider batch API that minillm speaks"):
        batch.submit(minillm.Client("openrouter/x", base_url=batches.url, api_key=KEY), ["a"], journal=tmp_path / "j")
    with pytest.raises(minillm.ConfigurationError, match="no API key for anthropic"):
        batch.submit(minillm.Client("anthropic/claude-test", fallbacks=["local/echo"]), ["a"], journal=tmp_path / "j")
    assert batches.requests == []


# -- crashes ------------------------------------------------------------------------------------------


def write_input(path: Path, lines: List[Any]) -> None:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")


def read_output(path: Path) -> List[Dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


class Job:
    """A ``minillm batch --provider-batch`` job of ten items (item 3 errors)
    against the emulator, run as a command and resumed through the API or
    the command."""

    ITEMS = 10

    def __init__(self, server: BatchServer, folder: Path, flavour: str) -> None:
        self.server = server
        self.flavour = flavour
        self.source, self.out, self.costs = folder / "in.jsonl", folder / "out.jsonl", folder / "costs.db"
        write_input(self.source, [f"item {n}" for n in range(self.ITEMS)])
        server.outcome = lambda custom_id, body: "errored" if index_of(custom_id) == 3 else "succeeded"
        model, _, _ = FLAVOURS[flavour]
        self.arguments = [str(self.source), "-o", str(self.out), "--model", model, "--base-url", server.url]
        self.arguments += ["--price", "1,2,0.5", "--ledger", str(self.costs), "--budget", "1", "--poll", "0"]
        self.env = environment(OPENAI_API_KEY=KEY, ANTHROPIC_API_KEY=KEY)

    def command(self, *extra: str) -> List[str]:
        return [sys.executable, "-m", "minillm", "batch", *self.arguments, "--provider-batch", "--no-progress", *extra]

    def run(self) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(self.command(), capture_output=True, text=True, timeout=60, env=self.env)
        assert KEY not in done.stderr + done.stdout
        assert "Traceback" not in done.stderr, done.stderr
        return done

    def killed_at(self, step: str, *, after: int = 0) -> None:
        """Run the command and kill it (SIGKILL) once it is held at ``step``."""
        gate = self.server.hold(step, after=after or None)
        first = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=self.env)
        try:
            assert self.server.wait_for(step, timeout=30)
            if after:  # half-way through the results: wait until some of them are booked
                assert eventually(lambda: minillm.SQLiteLedger(self.costs).count > 0)
        finally:
            first.kill()
            first.wait(timeout=30)
            gate.open()
        assert first.returncode == -signal.SIGKILL

    def resume_through_the_api(self, **kwargs: Any) -> List[batch.BatchResult]:
        model, _, _ = FLAVOURS[self.flavour]
        ledger = minillm.SQLiteLedger(self.costs)
        job = str(self.source.resolve())
        client = minillm.Client(
            model, base_url=self.server.url, api_key=KEY, price=PRICE, on_cost=ledger, meta={"batch_job": job}
        )
        budget = minillm.Budget(ledger, "1", key="batch_job")
        return run_through(batch.resume(str(self.out) + ".journal", client, budget=budget, **kwargs))

    def check_booked_once(self) -> None:
        ledger = minillm.SQLiteLedger(self.costs)
        booked = [meta["batch_item"] for _, meta in ledger.records]
        assert sorted(booked) == [n for n in range(self.ITEMS) if n != 3]
        assert len({cost.booking_id for cost, _ in ledger.records}) == self.ITEMS - 1
        assert ledger.total() == (self.ITEMS - 1) * at_batch_rate(10, 5)
        # Every hold was replaced by its booking, or let go of: the job spent what it booked.
        assert minillm.Budget(ledger, "1", key="batch_job").spent(str(self.source.resolve())) == ledger.total()
        ledger.close()

    def ours(self) -> List[Any]:
        """The emulator's batches of this job (a job's custom ids share its prefix)."""
        journal = batch.Journal(str(self.out) + ".journal", job=str(self.source.resolve()))
        record = JobState(journal).record()
        journal.close()
        assert record is not None
        return [b for b in self.server.batches if b.custom_ids[0].startswith(f"mlb-{record.uid[:12]}-")]


def eventually(condition: Callable[[], bool], within: float = 30.0) -> bool:
    """Whether ``condition`` holds within ``within`` seconds: for a fact
    another process makes true, which sends no event."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


CRASHES: List[Tuple[str, str, str]] = [
    # (protocol, the step the command is killed at, how the job is resumed)
    ("openai", "upload", "command"),
    ("openai", "create", "api"),
    ("openai", "retrieve", "command"),
    ("openai", "results", "api"),
    ("anthropic", "create", "command"),
    ("anthropic", "retrieve", "api"),
    ("anthropic", "results", "command"),
]


@pytest.mark.parametrize(("flavour", "step", "resume_with"), CRASHES)
def test_a_batch_killed_at_any_step_and_resumed_is_sent_once_and_each_item_booked_once(
    batches: BatchServer, tmp_path: Path, flavour: str, step: str, resume_with: str
) -> None:
    job = Job(batches, tmp_path, flavour)
    job.killed_at(step, after=4 if step == "results" else 0)
    if step == "create" and flavour == "openai":
        # Another job's batch, made after this one's: the metadata tells them apart.
        batch.submit(client_for(batches, flavour), ["x", "y", "z"], journal=tmp_path / "other").close()

    if resume_with == "api":
        results = job.resume_through_the_api()
        assert [r.text for r in results] == [None if n == 3 else f"ITEM {n}" for n in range(Job.ITEMS)]
    else:
        done = job.run()
        assert done.returncode == 1  # item 3 errored
        assert "10 items, 9 done" in done.stderr and "1 failed" in done.stderr
        assert [row["text"] for row in read_output(job.out)] == [None if n == 3 else f"ITEM {n}" for n in range(10)]
    assert len(job.ours()) == 1 and batches.seen("create") == (2 if step == "create" and flavour == "openai" else 1)
    job.check_booked_once()
    if step == "upload":
        assert len(batches.uploads) == 2  # the first upload's file is never used


def test_an_anthropic_batch_whose_creation_went_unanswered_is_not_guessed_among_several(
    batches: BatchServer, tmp_path: Path
) -> None:
    job = Job(batches, tmp_path, "anthropic")
    job.killed_at("create")
    # Another job of as many items, made after this one's was sent: either could be this job's.
    other = batch.submit(client_for(batches, "anthropic"), [f"other {n}" for n in range(10)], journal=tmp_path / "o")
    other.close()

    refused = job.run()
    assert refused.returncode == 1 and "cannot tell" in refused.stderr
    assert all(b.id in refused.stderr for b in batches.batches) and "adopt=" in refused.stderr
    with pytest.raises(batch.AmbiguousBatchError) as caught:
        job.resume_through_the_api()
    assert sorted(caught.value.candidates) == sorted(b.id for b in batches.batches)
    assert len(batches.batches) == 2 and batches.seen("create") == 2  # nothing more was sent

    (ours,) = job.ours()
    results = job.resume_through_the_api(adopt=ours.id)
    assert [r.text for r in results][:3] == ["ITEM 0", "ITEM 1", "ITEM 2"]
    job.check_booked_once()
    assert len(batches.batches) == 2


def test_ctrl_c_while_polling_leaves_the_batch_running_and_the_same_command_collects_it(
    batches: BatchServer, tmp_path: Path
) -> None:
    job = Job(batches, tmp_path, "openai")
    gate = batches.hold("retrieve")
    first = subprocess.Popen(
        [*MINILLM_COMMAND, "batch", *job.arguments, "--provider-batch", "--no-progress"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=job.env,
    )
    try:
        assert batches.wait_for("retrieve", timeout=30)
        first.send_signal(signal.SIGINT)
        _, err = first.communicate(timeout=30)
    finally:
        gate.open()
        if first.poll() is None:  # pragma: no cover - only when the test fails
            first.kill()
            first.communicate()
    assert first.returncode == 130, err
    text = err.decode()
    assert "runs on. Run the same command again" in text and "Traceback" not in text
    assert not job.out.exists()
    done = job.run()
    assert done.returncode == 1 and "10 items, 9 done (0 from the journal), 1 failed" in done.stderr
    assert len(batches.batches) == 1
    job.check_booked_once()


def test_the_command_shows_its_progress_and_a_second_run_reads_everything_back_from_the_journal(
    batches: BatchServer, tmp_path: Path
) -> None:
    pytest.importorskip("tqdm")
    job = Job(batches, tmp_path, "anthropic")
    done = subprocess.run(
        [sys.executable, "-m", "minillm", "batch", *job.arguments, "--provider-batch"],
        capture_output=True,
        text=True,
        timeout=60,
        env=job.env,
    )
    assert done.returncode == 1, done.stderr
    assert f"provider batch {batches.batches[0].id} (10 items)" in done.stderr
    assert "10/10" in done.stderr and "1 failed, $0.00009," in done.stderr  # the bar: done, failed, money
    assert "10 items, 9 done (0 from the journal), 1 failed; 135 tokens; $0.00009;" in done.stderr
    again = job.run()
    assert "10 items, 9 done (9 from the journal), 1 failed" in again.stderr
    assert len(batches.batches) == 1 and batches.seen("results") == 1
    job.check_booked_once()


def test_the_command_warns_that_a_price_without_a_batch_multiplier_books_the_full_price(
    batches: BatchServer, tmp_path: Path
) -> None:
    job = Job(batches, tmp_path, "openai")
    job.arguments[job.arguments.index("1,2,0.5")] = "1,2"
    done = job.run()
    assert "--price gives no batch multiplier" in done.stderr
    assert "; $0.00018;" in done.stderr  # nine items at the full price


# -- keys -----------------------------------------------------------------------------------------


def test_no_key_reaches_an_error_a_repr_a_log_or_the_journal(
    batches: BatchServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    echoed = {"error": {"message": f"the key {KEY} is not allowed here", "type": "invalid_request_error"}}
    batches.reply(Reply.json(echoed, status=401), path="/files")
    client = client_for(batches, "openai", minillm.Ledger())
    with pytest.raises(minillm.AuthenticationError) as caught:
        batch.submit(client, ["a"], journal=tmp_path / "j")
    assert KEY not in str(caught.value) and KEY not in repr(caught.value.body)
    sent = batch.submit(client, ["a"], journal=tmp_path / "j")
    results = run_through(sent)
    assert KEY not in repr(sent) + repr(results) + caplog.text
    for path in tmp_path.iterdir():
        assert KEY.encode() not in path.read_bytes(), path


def test_a_results_url_on_another_host_is_never_sent_the_key() -> None:
    adapter = AnthropicAdapter(ProviderConfig("anthropic", "claude-test", "https://api.anthropic.com", api_key=KEY))
    api = AnthropicBatches(adapter, "https://api.anthropic.com")
    elsewhere = Remote(id="msgbatch_1", status="ended", native="ended", results=("https://evil.example/r",))
    own = Remote(id="msgbatch_1", status="ended", native="ended", results=("https://api.anthropic.com/x/results",))
    assert [r.url for r in api.result_requests(elsewhere)] == [
        "https://api.anthropic.com/v1/messages/batches/msgbatch_1/results"
    ]
    assert [r.url for r in api.result_requests(own)] == ["https://api.anthropic.com/x/results"]
