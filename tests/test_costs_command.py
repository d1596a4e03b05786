"""``minillm costs`` and ``minillm costs report`` (minillm.reports.command),
and ``minillm chat`` booking what it spends where they find it."""

from __future__ import annotations

import csv
import datetime
import io
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

import minillm
from minillm.cli import main
from minillm.models import Resolution
from minillm.testing import Reply, ScriptedServer, chat_stream, chat_usage

from .report_data import HOSTILE, booking
from .test_cli import environment


@pytest.fixture
def ledger_path(tmp_path: Path) -> Path:
    path = tmp_path / "costs.db"
    ledger = minillm.SQLiteLedger(path)
    ledger.record(booking("0.000000045"), {"user": "ann"})
    ledger.record(booking("0.00003420000000000000000000000000000000", model="gpt-4o"), {"user": "ann"})
    ledger.record(booking("0.5", Resolution.PARTIAL), {"user": 7})
    ledger.record(booking(None, Resolution.UNKNOWN), {"user": HOSTILE})
    ledger.close()
    return path


def costs(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["costs", *args]) == 0
    return capsys.readouterr().out


def test_a_missing_ledger_is_an_error_naming_it_and_is_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "typo.db"
    for argv in (
        ["costs", "--ledger", str(missing)],
        ["costs", "report", "-o", str(tmp_path / "r.html"), "--ledger", str(missing)],
    ):
        assert main(argv) == 1
        assert capsys.readouterr().err == f"minillm: there is no ledger at {missing} (no such file)\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_the_ledger_comes_from_the_environment_when_not_given(
    ledger_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MINILLM_LEDGER", str(ledger_path))
    assert "4 bookings" in costs(capsys)


def test_csv_and_json_round_trip_to_the_ledgers_decimals(ledger_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger = minillm.SQLiteLedger(ledger_path)
    expected: Dict[Tuple[str, str], Decimal] = {}
    for item in ledger.entries():
        key = (json.dumps(item.meta["user"]), item.cost.model)
        if item.cost.usd is not None:
            expected[key] = expected.get(key, Decimal(0)) + item.cost.usd
    ledger.close()
    rows = list(
        csv.DictReader(
            io.StringIO(costs(capsys, "--ledger", str(ledger_path), "--by", "user", "--by", "model", "--format", "csv"))
        )
    )
    got = {(json.dumps(r["user"]) if r["user"] != "7" else "7", r["model"].split("/")[1]): r["usd"] for r in rows}
    assert {key: Decimal(usd) for key, usd in got.items() if usd} == expected
    assert got[(json.dumps(HOSTILE), "gpt-4o-mini")] == ""  # unknown, not 0

    document = json.loads(
        costs(capsys, "--ledger", str(ledger_path), "--by", "user", "--by", "model", "--format", "json")
    )
    assert document["by"] == ["user", "model"]
    by_key = {(json.dumps(g["key"]["user"]), g["key"]["model"].split("/")[1]): g for g in document["groups"]}
    assert {key: Decimal(g["usd"]) for key, g in by_key.items() if g["usd"] is not None} == expected
    assert by_key[("7", "gpt-4o-mini")]["lower_bound"] is True  # a PARTIAL booking: a lower bound
    assert Decimal(document["total"]["usd"]) == sum(expected.values())


def test_since_and_until_pick_the_bookings_of_a_range(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "costs.db"
    ledger = minillm.SQLiteLedger(path)
    ledger.record(booking("1"), {})
    between = ledger.entries()[0].booked_at + datetime.timedelta(microseconds=1)
    ledger.record(booking("2"), {})
    ledger.close()
    later = json.loads(costs(capsys, "--ledger", str(path), "--since", between.isoformat(), "--format", "json"))
    earlier = json.loads(costs(capsys, "--ledger", str(path), "--until", between.isoformat(), "--format", "json"))
    assert (later["total"]["usd"], earlier["total"]["usd"]) == ("2", "1")
    assert later["since"] == between.isoformat() and later["until"] is None
    assert main(["costs", "--ledger", str(path), "--since", "last week"]) == 1
    assert "--since must be a date (YYYY-MM-DD) or an ISO 8601 time, not 'last week'" in capsys.readouterr().err


def test_a_bad_key_is_refused_before_the_ledger_is_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["costs", "--ledger", str(tmp_path / "none.db"), "--by", "user id"]) == 1
    assert "a meta key to group or budget by is a plain name" in capsys.readouterr().err


def test_the_report_is_written_with_options_given_before_or_after_its_name(
    ledger_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = tmp_path / "first.html", tmp_path / "second.html"
    assert main(["costs", "--ledger", str(ledger_path), "report", "-o", str(first)]) == 0
    assert main(["costs", "report", "-o", str(second), "--ledger", str(ledger_path), "--by", "user", "--top", "2"]) == 0
    assert capsys.readouterr().err.endswith(f"minillm costs: wrote {second} (4 bookings)\n")
    assert "&lt;script&gt;" in first.read_text() and "The 2 most expensive requests" in second.read_text()


def test_a_bad_reconciliation_file_writes_no_report(
    ledger_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad, page = tmp_path / "bad.json", tmp_path / "report.html"
    bad.write_text('{"provider": "openai"}')
    argv = ["costs", "report", "-o", str(page), "--ledger", str(ledger_path), "--reconciliation", str(bad)]
    assert main(argv) == 1
    assert f"minillm: {bad} is not a reconciliation file: the file has no 'rows'" in capsys.readouterr().err
    assert not page.exists()


def run(*args: str, ledger: Path) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    return subprocess.run(
        [sys.executable, "-m", "minillm", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment(MINILLM_LEDGER=str(ledger)),
    )


def test_what_chat_spends_shows_up_in_costs(server: ScriptedServer, tmp_path: Path) -> None:
    ledger = tmp_path / "terminal.db"
    answers: List[str] = []
    for text in ("Hel", "lo"):
        server.reply(Reply.sse(chat_stream([text], usage=chat_usage(5, 2))))
        chat = run("chat", "openai/test-model", "Hi", "--base-url", server.url, "--price", "1,2", ledger=ledger)
        assert chat.returncode == 0, chat.stderr
        answers.append(chat.stdout)
    assert answers == ["Hel\n", "lo\n"]
    shown = run("costs", "--format", "json", ledger=ledger)
    assert shown.returncode == 0, shown.stderr
    [group] = json.loads(shown.stdout)["groups"]
    assert group["key"] == {"model": "openai/test-model"} and group["bookings"] == 2
    assert Decimal(group["usd"]) == Decimal("0.000018")  # 2 x (5 x $1 + 2 x $2) per million

    elsewhere = tmp_path / "elsewhere.db"
    server.reply(Reply.sse(chat_stream(["x"], usage=chat_usage(5, 2))))
    chat = run("chat", "openai/test-model", "Hi", "--base-url", server.url, "--ledger", str(elsewhere), ledger=ledger)
    assert chat.returncode == 0, chat.stderr
    booked = minillm.SQLiteLedger(elsewhere)
    assert booked.count == 1  # --ledger wins over MINILLM_LEDGER; unpriced, still booked
    booked.close()


def test_chat_that_cannot_start_leaves_no_ledger_behind(tmp_path: Path) -> None:
    ledger = tmp_path / "never.db"
    chat = run("chat", "anthropic/claude-haiku-4-5", "Hi", ledger=ledger)
    assert chat.returncode == 1 and "ANTHROPIC_API_KEY" in chat.stderr
    assert not ledger.exists()
