"""Batch jobs: results in input order, per-item retries, budgets, a journal
that makes a rerun skip (and never pay again for) finished items, any
executor -- and the ``minillm batch`` and ``minillm costs`` commands,
killed mid-run and run again."""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import pickle
import signal
import subprocess
import sys
import threading
import weakref
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Dict, List

import attrs
import pytest

import minillm
from minillm.batch import BatchItem, BatchResult, Journal, run, summarize
from minillm.testing import Gate, Hang, RecordedRequest, Reply, ScriptedServer, chat_completion, chat_stream, chat_usage

from .conftest import MINILLM_COMMAND, finishes
from .test_cli import environment
from .test_ledgers import cost

PRICE = minillm.TokenPrice(input_per_mtok="1", output_per_mtok="2")


def prompt_of(request: RecordedRequest) -> str:
    return str(request.json()["messages"][-1]["content"])


def answering(server: ScriptedServer, special: Callable[[str], Any] = lambda prompt: None) -> None:
    """Answer every chat request with its prompt upper-cased, 3 tokens in and
    2 out -- unless ``special(prompt)`` returns a reply of its own."""

    def handle(request: RecordedRequest) -> Reply:
        prompt = prompt_of(request)
        reply = special(prompt)
        if reply is not None:
            assert isinstance(reply, Reply)
            return reply
        if request.json().get("stream"):
            return Reply.sse(chat_stream([prompt.upper()], usage=chat_usage(3, 2)))
        return Reply.json(chat_completion(prompt.upper(), usage=chat_usage(3, 2)))

    server.route("POST", "/chat/completions", handle)


def hanging(server: ScriptedServer, prompts: List[str]) -> Dict[str, threading.Event]:
    """Answer every prompt but ``prompts``, which hang until stopped; the
    events say that each has reached the server."""
    stuck = {prompt: threading.Event() for prompt in prompts}

    def hang_the_stuck(prompt: str) -> Any:
        if prompt not in stuck:
            return None
        stuck[prompt].set()
        return Reply(body=(Hang(),))

    answering(server, hang_the_stuck)
    return stuck


def client_for(server: ScriptedServer, sink: Any) -> minillm.Client:
    # One attempt per call: the batch's own retries are what is tested.
    return minillm.Client(
        "openai/test-model",
        base_url=server.url,
        price=PRICE,
        on_cost=sink,
        retry=minillm.RetryPolicy(max_attempts=1),
    )


@pytest.fixture
def answered(server: ScriptedServer) -> ScriptedServer:
    answering(server)
    return server


# -- items ---------------------------------------------------------------------------


def test_an_item_is_made_from_a_string_messages_or_a_dict() -> None:
    assert BatchItem.of("hi") == BatchItem(prompt="hi")
    messages = [{"role": "user", "content": "hi"}]
    assert BatchItem.of(messages).prompt == messages
    item = BatchItem.of({"prompt": "hi", "id": "a-1", "max_tokens": 9, "meta": {"user": 3}})
    assert (item.id, item.max_tokens, item.meta) == ("a-1", 9, {"user": 3})
    assert BatchItem.of(item) is item


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"id": 1}, "needs a 'prompt'"),
        ({"prompt": "x", "temprature": 1}, "unknown fields: \\['temprature'\\]"),
        ({"prompt": 42}, "'prompt' must be a string or a list of messages"),
        ({"prompt": "  "}, "'prompt' is empty"),
        ({"prompt": [{"content": "no role"}]}, "'prompt' must be a string or a list of messages"),
        ({"prompt": "x", "max_tokens": 0}, "'max_tokens' must be a positive integer, not 0"),
        ({"prompt": "x", "max_tokens": True}, "'max_tokens' must be a positive integer"),
        ({"prompt": "x", "temperature": "hot"}, "'temperature' must be a number"),
        ({"prompt": "x", "system": ["a"]}, "'system' must be a string"),
        ({"prompt": "x", "meta": None}, "'meta' must be an object"),
        (None, "'prompt' must be a string"),
    ],
)
def test_an_item_that_cannot_be_sent_is_refused_before_anything_is(
    value: Dict[str, Any], message: str, answered: ScriptedServer
) -> None:
    with pytest.raises(minillm.InvalidArgumentError, match=message):
        run(client_for(answered, None), ["fine", value])
    assert answered.requests == []


@pytest.mark.parametrize("bad", [{"workers": 0}, {"workers": True}, {"attempts": 0}, {"attempts": 1.5}])
def test_workers_and_attempts_must_be_positive_integers(bad: Dict[str, Any], answered: ScriptedServer) -> None:
    with pytest.raises(minillm.InvalidArgumentError, match="must be a positive integer"):
        run(client_for(answered, None), ["x"], **bad)
    assert answered.requests == []


def test_the_journal_key_changes_with_the_content_and_the_place() -> None:
    item = BatchItem(prompt="hello")
    assert item.key(0) == BatchItem(prompt="hello").key(0)
    assert item.key(0) != item.key(1)
    assert item.key(0) != BatchItem(prompt="hello", max_tokens=5).key(0)


# -- running -------------------------------------------------------------------------


def test_results_come_back_in_input_order_and_each_item_is_booked_once(answered: ScriptedServer) -> None:
    ledger = minillm.Ledger()
    prompts = [f"prompt number {n}" for n in range(40)]
    results = run(client_for(answered, ledger), prompts, workers=8)
    assert [r.index for r in results] == list(range(40))
    assert [r.text for r in results] == [p.upper() for p in prompts]
    assert all(r.ok and r.attempts == 1 and not r.from_journal for r in results)
    assert sorted(meta["batch_item"] for _, meta in ledger.records) == list(range(40))
    each = Decimal(3 * 1 + 2 * 2) / 1_000_000
    assert ledger.total() == each * 40 == sum(r.cost.usd for r in results if r.cost and r.cost.usd)
    summary = summarize(results)
    assert summary == {
        "items": 40,
        "done": 40,
        "from_journal": 0,
        "failed": 0,
        "cancelled": 0,
        "tokens": 200,
        "usd": each * 40,
        "unknown": 0,
    }


def test_items_carry_their_own_id_options_and_meta(answered: ScriptedServer) -> None:
    ledger = minillm.Ledger()
    client = client_for(answered, ledger)
    results = run(client, [{"prompt": "a", "id": "first", "system": "be brief", "max_tokens": 7, "meta": {"user": 1}}])
    assert results[0].id == "first"
    body = answered.requests[0].json()
    assert body["max_tokens"] == 7 and body["messages"][0] == {"role": "system", "content": "be brief"}
    assert ledger.records[0][1] == {"user": 1, "batch_item": 0}


def test_an_item_that_fails_is_tried_again_and_the_others_go_on(server: ScriptedServer) -> None:
    seen: Counter[str] = Counter()
    lock = threading.Lock()

    def flaky(prompt: str) -> Any:
        with lock:
            seen[prompt] += 1
            times = seen[prompt]
        if prompt == "flaky" and times == 1:
            return Reply.json({"error": {"message": "try later"}}, status=503)
        if prompt == "broken":
            return Reply.json({"error": {"message": "down"}}, status=500)
        return None

    answering(server, flaky)
    ledger = minillm.Ledger()
    results = run(client_for(server, ledger), ["ok", "flaky", "broken", "ok too"], attempts=3, workers=2)
    assert [(r.ok, r.attempts) for r in results] == [(True, 1), (True, 2), (False, 3), (True, 1)]
    assert results[2].error is not None and "ServerError" in results[2].error and results[2].text is None
    assert seen["broken"] == 3 and seen["flaky"] == 2
    assert ledger.count == 3  # failures booked nothing


def test_an_error_another_try_would_meet_again_is_not_retried(server: ScriptedServer) -> None:
    answering(server, lambda prompt: Reply.json({"error": {"message": "no such thing"}}, status=400))
    results = run(client_for(server, None), ["a"], attempts=5)
    assert results[0].attempts == 1 and results[0].error is not None and "BadRequestError" in results[0].error
    assert len(server.requests) == 1


def test_a_budget_refuses_the_items_that_do_not_fit_and_the_rest_complete(answered: ScriptedServer) -> None:
    ledger = minillm.Ledger()
    # each item holds its worst case (prompt estimate + 10 tokens out) and books 7 micro-dollars
    budget = minillm.Budget(ledger, "0.0002")
    prompts = [{"prompt": f"item {n}", "max_tokens": 10} for n in range(60)]
    results = run(client_for(answered, ledger), prompts, workers=4, budget=budget)
    refused = [r for r in results if not r.ok]
    assert refused and all(r.error is not None and r.error.startswith("BudgetExceeded") for r in refused)
    assert all(r.attempts == 1 for r in refused)
    done = [r for r in results if r.ok]
    assert done and ledger.count == len(done) == len(answered.requests)
    assert ledger.total() <= Decimal("0.0002")


def test_progress_is_reported_for_every_result(answered: ScriptedServer) -> None:
    seen: List[BatchResult] = []
    run(client_for(answered, None), ["a", "b", "c"], progress=seen.append)
    assert sorted(r.index for r in seen) == [0, 1, 2]


def test_the_progress_bar_shows_items_tokens_and_running_cost(
    answered: ScriptedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("tqdm")
    run(client_for(answered, minillm.Ledger()), ["a", "b"], progress=True)
    bar = capsys.readouterr().err
    assert "minillm batch" in bar and "2/2" in bar and "10 tokens" in bar and "$0.000014" in bar


def test_the_progress_bar_shows_a_tiny_running_cost_exactly(
    answered: ScriptedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("tqdm")
    client = minillm.Client(
        "openai/test-model",
        base_url=answered.url,
        price=minillm.TokenPrice(input_per_mtok="0.05", output_per_mtok="0.10"),
    )
    run(client, ["a", "b"], progress=True)
    bar = capsys.readouterr().err
    assert "$0.0000007" in bar and "$0.000000," not in bar  # two answers at $0.00000035, never a fake zero


# -- the journal ---------------------------------------------------------------------


def test_a_rerun_with_the_journal_sends_and_pays_only_for_what_did_not_finish(
    server: ScriptedServer, tmp_path: Path
) -> None:
    down = {"c"}
    answering(server, lambda prompt: Reply.json({"error": {"message": "x"}}, status=500) if prompt in down else None)
    ledger = minillm.Ledger()
    client = client_for(server, ledger)
    journal = Journal(tmp_path / "job.journal")
    first = run(client, ["a", "b", "c", "d"], journal=journal, attempts=1)
    assert [r.ok for r in first] == [True, True, False, True]
    assert ledger.count == 3

    down.clear()
    sent = len(server.requests)
    again = run(client, ["a", "b", "c", "d"], journal=journal)
    assert [prompt_of(r) for r in server.requests[sent:]] == ["c"]
    assert [r.text for r in again] == ["A", "B", "C", "D"]
    assert [r.from_journal for r in again] == [True, True, False, True]
    assert again[0].cost == first[0].cost and again[0].usage == first[0].usage
    assert ledger.count == 4
    journal.close()


def test_the_journal_survives_its_process_and_tells_jobs_and_changed_items_apart(
    answered: ScriptedServer, tmp_path: Path
) -> None:
    client = client_for(answered, None)
    path = tmp_path / "shared.journal"
    run(client, ["a", "b"], journal=Journal(path, job="one"))
    sent = len(answered.requests)
    results = run(client, ["a", "B"], journal=Journal(str(path), job="one"))
    assert [r.from_journal for r in results] == [True, False]
    results = run(client, ["a", "b"], journal=Journal(path, job="two"))
    assert [r.from_journal for r in results] == [False, False]
    assert len(answered.requests) == sent + 3


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"model": "openai/other-model"}, "models"),
        ({"price": minillm.TokenPrice(input_per_mtok="3", output_per_mtok="2")}, "prices"),
        ({"base_url": "elsewhere"}, "endpoints"),
        ({"api": "responses"}, "apis"),
    ],
)
def test_a_job_rerun_with_another_model_endpoint_or_price_is_refused_before_anything_is_sent(
    answered: ScriptedServer, tmp_path: Path, change: Dict[str, Any], named: str
) -> None:
    path = tmp_path / "job.journal"
    run(client_for(answered, None), ["a", "b"], journal=Journal(path))
    settings: Dict[str, Any] = {
        "model": "openai/test-model",
        "base_url": answered.url,
        "price": PRICE,
        "retry": minillm.RetryPolicy(max_attempts=1),
    }
    settings.update(change)
    if settings["base_url"] == "elsewhere":
        settings["base_url"] = answered.url + "/v2"
    sent = len(answered.requests)
    with pytest.raises(minillm.ConfigurationError, match=f"other settings.*{named}: ") as caught:
        run(minillm.Client(**settings), ["a", "b", "c"], journal=Journal(path))
    assert "Use another journal" in str(caught.value)
    assert len(answered.requests) == sent
    # The same configuration carries on from the journal.
    again = run(client_for(answered, None), ["a", "b", "c"], journal=Journal(path))
    assert [r.from_journal for r in again] == [True, True, False]


def test_the_job_config_never_holds_credentials(answered: ScriptedServer) -> None:
    from minillm.batch import _job_config

    client = minillm.Client("openai/m", api_key="sk-secret-in-config", base_url=answered.url)
    assert "sk-secret" not in json.dumps(_job_config(client))


def test_a_journal_that_cannot_be_opened_says_so(tmp_path: Path) -> None:
    with pytest.raises(minillm.LedgerError, match="cannot open the journal"):
        Journal(tmp_path / "no" / "such" / "folder" / "job.journal")


# -- other executors and processes ---------------------------------------------------


def test_a_client_pickles_as_its_configuration_and_keeps_its_key_out_of_sight(
    server: ScriptedServer, tmp_path: Path
) -> None:
    server.reply(Reply.json(chat_completion("hi", usage=chat_usage(1, 1))))
    ledger = minillm.SQLiteLedger(tmp_path / "costs.db")
    client = minillm.Client(
        "openai/test-model", base_url=server.url, api_key="sk-canary-pickle-1", price=PRICE, on_cost=ledger
    )
    copy = pickle.loads(pickle.dumps(client))
    assert repr(copy) == repr(client) and "canary" not in repr(vars(copy))
    copy.complete("hello")
    assert server.requests[0].headers["authorization"] == "Bearer sk-canary-pickle-1"
    assert ledger.count == 1


def test_a_client_whose_key_came_from_the_environment_pickles_without_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-canary-env-2")
    state = minillm.Client("openai/gpt-4o").__getstate__()
    assert "canary" not in repr(state)


def test_a_process_pool_runs_the_job_with_a_budget_and_books_into_a_shared_sqlite_ledger(tmp_path: Path) -> None:
    ledger = minillm.SQLiteLedger(tmp_path / "costs.db")
    client = minillm.Client("local/echo", price=PRICE, on_cost=ledger)
    prompts = [f"say {n}" for n in range(12)]
    spawn = multiprocessing.get_context("spawn")  # fork from a threaded test process is unsafe
    with concurrent.futures.ProcessPoolExecutor(max_workers=2, mp_context=spawn) as pool:
        results = run(client, prompts, executor=pool, budget=minillm.Budget(ledger, "1"))
    assert [r.text for r in results] == prompts
    assert ledger.count == 12
    assert minillm.Budget(ledger, "1").spent() == ledger.total()  # every hold was replaced by its booking
    assert sorted(meta["batch_item"] for _, meta in ledger.records) == list(range(12))
    assert ledger.total() == sum(r.cost.usd for r in results if r.cost and r.cost.usd)


class Watched(concurrent.futures.ThreadPoolExecutor):
    """A thread pool that tells when the future of each prompt is let go."""

    def __init__(self, prompts: List[str]) -> None:
        super().__init__(max_workers=2)
        self.let_go = {prompt: threading.Event() for prompt in prompts}

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        future = super().submit(fn, *args, **kwargs)
        item = next(arg for arg in args if isinstance(arg, BatchItem))
        weakref.finalize(future, self.let_go[str(item.prompt)].set)
        return future


def test_a_finished_items_future_is_let_go_at_once_so_a_cluster_cannot_run_it_again(server: ScriptedServer) -> None:
    # A Dask cluster keeps a task's result while its future lives, and runs
    # the task again -- paying again -- if the worker holding it dies.
    gate = Gate()
    answering(
        server,
        lambda prompt: (
            Reply.json(chat_completion("LAST", usage=chat_usage(3, 2))).held(gate) if prompt == "last" else None
        ),
    )
    results: List[BatchResult] = []
    prompts = ["a", "b", "c", "last"]
    with Watched(prompts) as pool:
        job = threading.Thread(target=lambda: results.extend(run(client_for(server, None), prompts, executor=pool)))
        job.start()
        try:
            assert all(pool.let_go[prompt].wait(10) for prompt in ("a", "b", "c"))  # while "last" still waits
        finally:
            gate.open()
            job.join(10)
    assert [r.text for r in results] == ["A", "B", "C", "LAST"]


# -- the commands --------------------------------------------------------------------


def batch_command(*args: str) -> List[str]:
    return [sys.executable, "-m", "minillm", "batch", *args]


def write_input(path: Path, lines: List[Any]) -> None:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")


def read_output(path: Path) -> List[Dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_the_batch_command_writes_results_in_order_and_a_summary(answered: ScriptedServer, tmp_path: Path) -> None:
    source, out, costs = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "costs.db"
    write_input(source, ["one", {"prompt": "two", "id": "second"}, "three"])
    done = subprocess.run(
        batch_command(
            *(str(source), "-o", str(out), "--model", "openai/test-model", "--base-url", answered.url),
            *("--price", "1,2", "--ledger", str(costs), "--no-progress", "--max-tokens", "50"),
        ),
        capture_output=True,
        text=True,
        timeout=60,
        env=environment(),
    )
    assert done.returncode == 0, done.stderr
    rows = read_output(out)
    assert [(r["index"], r["id"], r["text"]) for r in rows] == [
        (0, None, "ONE"),
        (1, "second", "TWO"),
        (2, None, "THREE"),
    ]
    assert rows[0]["cost"]["usd"] == "0.000007" and rows[0]["usage"]["total_tokens"] == 5
    assert all(r.json()["max_tokens"] == 50 for r in answered.requests)
    assert "3 items, 3 done (0 from the journal), 0 failed; 15 tokens; $0.000021" in done.stderr
    assert minillm.SQLiteLedger(costs).count == 3


def test_the_batch_command_budget_is_the_jobs_own_and_holds_across_reruns(
    answered: ScriptedServer, tmp_path: Path
) -> None:
    source, out, costs = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "costs.db"
    earlier = minillm.SQLiteLedger(costs)
    earlier.record(cost("1.00"), {"user": "someone else"})  # far over the job's budget, but not the job's
    earlier.close()
    write_input(source, [f"item {n}" for n in range(10)])
    command = batch_command(str(source), "-o", str(out), "--model", "openai/test-model", "--base-url", answered.url)
    command += ["--price", "1,2", "--ledger", str(costs), "--no-progress", "--workers", "1", "--max-tokens", "5"]
    command += ["--budget", "0.0001"]

    first = subprocess.run(command, capture_output=True, text=True, timeout=60, env=environment())
    assert first.returncode == 1  # some items were refused
    rows = read_output(out)
    done = [row for row in rows if row["error"] is None]
    refused = [row for row in rows if row["error"] is not None]
    assert done and refused and all(row["error"].startswith("BudgetExceeded") for row in refused), rows[0]
    ledger = minillm.SQLiteLedger(costs)
    job = {meta.get("batch_job") for _, meta in ledger.records} - {None}
    assert job == {str(source.resolve())}
    assert minillm.Budget(ledger, "1", key="batch_job").spent(str(source.resolve())) <= Decimal("0.0001")

    sent = len(answered.requests)
    again = subprocess.run(command, capture_output=True, text=True, timeout=60, env=environment())
    assert again.returncode == 1 and len(answered.requests) == sent  # what it spent before still counts
    assert f"10 items, {len(done)} done ({len(done)} from the journal)" in again.stderr


def test_the_batch_command_refuses_to_resume_a_job_with_another_model(answered: ScriptedServer, tmp_path: Path) -> None:
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(source, ["one", "two"])

    def batch_with(model: str) -> subprocess.CompletedProcess[str]:
        command = batch_command(str(source), "-o", str(out), "--model", model, "--base-url", answered.url)
        command += ["--price", "1,2", "--no-progress", "--ledger", str(tmp_path / "costs.db")]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, env=environment())

    assert batch_with("openai/test-model").returncode == 0
    sent = len(answered.requests)
    refused = batch_with("openai/another-model")
    assert refused.returncode == 1 and len(answered.requests) == sent
    assert "other settings (models: " in refused.stderr and '["openai/another-model"] now' in refused.stderr
    assert "Traceback" not in refused.stderr
    assert len(read_output(out)) == 2  # the finished job's output is left as it was


def test_the_batch_command_checks_the_whole_input_first_names_each_bad_line_and_sends_nothing(
    answered: ScriptedServer, tmp_path: Path
) -> None:
    source, costs = tmp_path / "in.jsonl", tmp_path / "costs.db"
    lines = ['"fine"', '{"id": 1}', '{"prompt": 42}', "", "{not json", '{"prompt": "x", "max_tokens": 0}', '"fine"']
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    done = subprocess.run(
        batch_command(str(source), "-o", str(tmp_path / "out.jsonl"), "--model", "openai/test-model"),
        capture_output=True,
        text=True,
        timeout=60,
        env=environment(OPENAI_BASE_URL=answered.url, MINILLM_LEDGER=str(costs)),
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "minillm batch: nothing was sent: 4 lines are not a batch item",
        f"{source}:2: a batch item needs a 'prompt', not just ['id']",
        f"{source}:3: 'prompt' must be a string or a list of messages with a 'role' each, not 42",
        f"{source}:5: not JSON",
        f"{source}:6: 'max_tokens' must be a positive integer, not 0",
    ]
    assert answered.requests == [] and not (tmp_path / "out.jsonl").exists() and not costs.exists()


def test_the_batch_command_says_when_its_input_cannot_be_read(tmp_path: Path) -> None:
    missing = tmp_path / "missing.jsonl"
    done = subprocess.run(
        batch_command(str(missing), "-o", str(tmp_path / "out.jsonl"), "--model", "local/echo"),
        capture_output=True,
        text=True,
        timeout=60,
        env=environment(),
    )
    assert done.returncode == 2
    assert done.stderr == f"minillm batch: cannot read {missing}: No such file or directory\n"


def test_a_batch_killed_mid_run_and_run_again_pays_for_each_item_once(server: ScriptedServer, tmp_path: Path) -> None:
    stuck = hanging(server, ["item 5", "item 6"])
    source, out, costs = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "costs.db"
    write_input(source, [f"item {n}" for n in range(10)])
    command = batch_command(str(source), "-o", str(out), "--model", "openai/test-model", "--base-url", server.url)
    command += ["--price", "1,2", "--ledger", str(costs), "--no-progress", "--workers", "2"]

    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=environment())
    try:
        # Two workers take the items in order: once both hang on 5 and 6,
        # items 0-4 are finished (each is journaled before its worker moves on).
        assert all(arrived.wait(30) for arrived in stuck.values())
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=30)
    assert first.returncode == -signal.SIGKILL
    assert not out.exists()  # no half-written output
    assert minillm.SQLiteLedger(costs).count == 5

    stuck.clear()
    sent = len(server.requests)
    second = subprocess.run(command, capture_output=True, text=True, timeout=60, env=environment())
    assert second.returncode == 0, second.stderr
    assert sorted(prompt_of(r) for r in server.requests[sent:]) == [f"item {n}" for n in range(5, 10)]
    assert [row["text"] for row in read_output(out)] == [f"ITEM {n}" for n in range(10)]
    assert "10 items, 10 done (5 from the journal), 0 failed" in second.stderr
    ledger = minillm.SQLiteLedger(costs)
    assert sorted(meta["batch_item"] for _, meta in ledger.records) == list(range(10))
    assert ledger.total() == Decimal("0.000007") * 10


def test_a_token_stops_a_batch_at_once_and_the_same_job_carries_on_from_its_journal(
    server: ScriptedServer, tmp_path: Path
) -> None:
    stuck = hanging(server, [f"item {n}" for n in (5, 6, 7, 8)])
    ledger = minillm.Ledger()
    journal = Journal(tmp_path / "job.journal")
    token = minillm.CancellationToken()
    prompts = [f"item {n}" for n in range(40)]

    def stop_when_all_workers_hang() -> None:
        if all(event.wait(30) for event in stuck.values()):
            token.cancel()

    threading.Thread(target=stop_when_all_workers_hang, daemon=True).start()
    results: List[BatchResult] = []
    finishes(lambda: results.extend(run(client_for(server, ledger), prompts, workers=4, journal=journal, cancel=token)))
    assert [r.text for r in results[:5]] == [f"ITEM {n}" for n in range(5)]
    assert all(r.error == "cancelled" for r in results[5:])
    assert len(server.requests) == 9  # nothing was taken after the stop
    summary = summarize(results)
    assert (summary["done"], summary["cancelled"], summary["failed"]) == (5, 35, 0)
    # The four in flight were sent: each is booked, cut short.
    stopped = [cost for cost, meta in ledger.records if meta["batch_item"] in (5, 6, 7, 8)]
    assert len(stopped) == 4 and all(cost.cancelled for cost in stopped)

    stuck.clear()
    again = run(client_for(server, ledger), prompts, workers=4, journal=journal)
    assert [r.text for r in again] == [f"ITEM {n}" for n in range(40)]
    assert sorted(prompt_of(r) for r in server.requests[9:]) == sorted(f"item {n}" for n in range(5, 40))
    journal.close()


def test_ctrl_c_stops_the_batch_command_writes_what_finished_and_a_rerun_completes_it(
    server: ScriptedServer, tmp_path: Path
) -> None:
    stuck = hanging(server, ["item 5", "item 6"])
    source, out, costs = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "costs.db"
    write_input(source, [f"item {n}" for n in range(40)])
    arguments = [str(source), "-o", str(out), "--model", "openai/test-model", "--base-url", server.url]
    arguments += ["--price", "1,2", "--ledger", str(costs), "--no-progress", "--workers", "2"]
    first = subprocess.Popen(
        [*MINILLM_COMMAND, "batch", *arguments], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=environment()
    )
    try:
        assert all(arrived.wait(30) for arrived in stuck.values())
        sent = len(server.requests)
        first.send_signal(signal.SIGINT)
        _, err = first.communicate(timeout=30)
    finally:
        if first.poll() is None:  # pragma: no cover - only when the test fails
            first.kill()
            first.communicate()
    assert first.returncode == 130, err
    assert "Traceback" not in err.decode()
    assert len(server.requests) - sent <= 2  # at most one more item per worker
    rows = read_output(out)
    assert [row["text"] for row in rows[:5]] == [f"ITEM {n}" for n in range(5)]
    assert all(row["error"] == "cancelled" for row in rows[5:]) and len(rows) == 40
    assert "5 done (0 from the journal), 0 failed, 35 not finished (run again to resume)" in err.decode()
    ledger = minillm.SQLiteLedger(costs)
    hung = [cost for cost, meta in ledger.records if meta["batch_item"] in (5, 6)]
    assert len(hung) == 2 and all(cost.cancelled for cost in hung)  # sent, so booked: cut short
    ledger.close()

    stuck.clear()
    before = len(server.requests)
    second = subprocess.run(batch_command(*arguments), capture_output=True, text=True, timeout=60, env=environment())
    assert second.returncode == 0, second.stderr
    assert sorted(prompt_of(r) for r in server.requests[before:]) == sorted(f"item {n}" for n in range(5, 40))
    assert [row["text"] for row in read_output(out)] == [f"ITEM {n}" for n in range(40)]
    assert "40 items, 40 done (5 from the journal), 0 failed" in second.stderr


def test_the_costs_command_sums_a_ledger_by_model_day_and_meta_key(tmp_path: Path) -> None:
    path = tmp_path / "costs.db"
    ledger = minillm.SQLiteLedger(path)
    for model, usd, user in [("m-1", "0.5", 1), ("m-2", "0.25", 2), ("m-1", "0.125", 2), ("m-2", None, 1)]:
        ledger.record(cost(usd, model=model), {"user": user})
    cut_short = attrs.evolve(cost("0.0625", model="m-1"), resolution=minillm.Resolution.PARTIAL, cancelled=True)
    ledger.record(cut_short, {"user": 1})
    ledger.close()

    def costs(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "minillm", "costs", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=environment(MINILLM_LEDGER=str(path)),
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    by_model = costs().splitlines()
    assert by_model[0].split() == ["model", "USD", "bookings", "partial", "unpriced", "unknown"]
    # a group with any booking whose money is not known exactly shows a lower bound, and how many
    assert [line.split()[:3] for line in by_model[1:3]] == [["p/m-1", "≥0.6875", "3"], ["p/m-2", "≥0.25", "2"]]
    assert by_model[3].split()[:2] == ["total", "≥0.9375"]
    assert by_model[4] == (
        "5 bookings, 1 of them with unknown money, 1 counted at a lower bound, so the total is at least what it says"
    )
    by_user = costs("--by", "user", "--ledger", str(path)).splitlines()
    assert [line.split()[:2] for line in by_user[1:3]] == [["1", "≥0.5625"], ["2", "0.375"]]
    assert len(costs("--by", "day").splitlines()) == 4


def test_minillm_batch_is_there_when_used_and_not_loaded_before() -> None:
    code = "import sys, minillm; print('minillm.batch' in sys.modules, minillm.batch.run.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "run"]
    with pytest.raises(AttributeError, match="no attribute 'batchy'"):
        minillm.batchy  # type: ignore[attr-defined]  # noqa: B018


def test_open_ledger_tells_a_postgres_target_from_a_file(tmp_path: Path, postgres_dsn: str) -> None:
    from minillm.accounting.ledgers import open_ledger

    assert isinstance(open_ledger(str(tmp_path / "costs.db")), minillm.SQLiteLedger)
    assert isinstance(open_ledger(postgres_dsn), minillm.PostgresLedger)
    assert isinstance(open_ledger("postgresql://user@db.invalid/costs"), minillm.PostgresLedger)  # not connected yet


def test_a_progress_callback_that_raises_costs_no_result(
    answered: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(result: BatchResult) -> None:
        raise ValueError("the progress display broke")

    results = run(client_for(answered, None), ["a", "b", "c"], progress=broken)
    assert [r.text for r in results] == ["A", "B", "C"]
    assert caplog.text.count("the progress callback failed") == 3


def test_an_item_that_cannot_be_journaled_is_still_a_result_and_says_so(
    answered: ScriptedServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class FullDisk(Journal):
        def finish(self, key: str, result: BatchResult) -> None:
            raise minillm.LedgerError("disk full")

    journal = FullDisk(tmp_path / "job.journal")
    results = run(client_for(answered, None), ["a", "b"], journal=journal)
    assert [r.text for r in results] == ["A", "B"]
    assert "item 0 is done but could not be journaled (a rerun sends it again): disk full" in caplog.text
    journal.close()
