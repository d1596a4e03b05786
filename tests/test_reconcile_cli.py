"""``minillm costs reconcile``, run as the user runs it: in a subprocess,
against a SQLite ledger and the loopback account emulator."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Iterator

import pytest

import minillm
from minillm import CostInfo, Resolution
from minillm.testing import CostServer

from .test_cli import environment

KEY = "sk-admin-cli0123456789SECRETkey"


def command(*args: str, **env: str) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    variables = environment(**env)
    if "OPENAI_ADMIN_KEY" not in env:
        variables.pop("OPENAI_ADMIN_KEY", None)
    return subprocess.run(
        [sys.executable, "-m", "minillm", "costs", "reconcile", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=variables,
    )


@pytest.fixture
def account() -> Iterator[CostServer]:
    with CostServer(key=KEY) as running:
        yield running


@pytest.fixture
def ledger_file(tmp_path: Path, account: CostServer) -> str:
    """A ledger of two OpenAI bookings and one unknown, with the account's
    charges for their day: gpt-4o-mini matches, gpt-4.1 drifts by 0.05."""
    path = str(tmp_path / "costs.db")
    ledger = minillm.SQLiteLedger(path)
    for usd, model in (("0.0123", "gpt-4o-mini"), ("0.5", "gpt-4.1"), (None, "gpt-4o-mini")):
        resolution = Resolution.RESOLVED if usd else Resolution.UNKNOWN
        money = Decimal(usd) if usd else None
        ledger.record(CostInfo(usd=money, resolution=resolution, model=model, provider="openai"), {})
    for entry in ledger.entries():
        day = entry.booked_at.date()
        line = {"gpt-4o-mini": "gpt-4o-mini-2024-07-18, input", "gpt-4.1": "gpt-4.1-2025-04-14, input"}
        usd = {"gpt-4o-mini": "0.0123", "gpt-4.1": "0.45"}[entry.cost.model] if entry.cost.usd else "0"
        account.openai_cost(day, line[entry.cost.model], usd)
    ledger.close()
    return path


def test_the_table_is_printed_the_json_written_and_a_drift_past_the_tolerance_fails(
    account: CostServer, ledger_file: str, tmp_path: Path
) -> None:
    out = tmp_path / "drift.json"
    base = account.url + "/v1"
    done = command(
        "--provider", "openai", "--ledger", ledger_file, "--base-url", base, "--json", str(out), OPENAI_ADMIN_KEY=KEY
    )
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert any(line.split()[1:] == ["gpt-4.1", "0.5", "0.45", "0.05", "1"] for line in lines[2:4]), done.stdout
    mini = next(line for line in lines if " gpt-4o-mini " in line)
    assert mini.split()[2:] == ["at", "least", "0.0123", "0.0123", "0", "2", "(1", "not", "exact)"]
    assert "drift 0.05 USD passes the tolerance of 0.01 USD" in done.stdout
    assert "lower bounds" in done.stdout
    written = json.loads(out.read_text("utf-8"))
    ledger = minillm.SQLiteLedger(ledger_file)
    expected = minillm.reconcile(ledger, "openai", admin_key=KEY, base_url=base).to_dict()
    ledger.close()
    assert written == expected and written["drift_usd"] == "0.05"
    assert minillm.Reconciliation.from_dict(written).rows[0].model == "gpt-4.1"


def test_a_drift_within_the_tolerance_exits_0(account: CostServer, ledger_file: str) -> None:
    done = command(
        "--provider", "openai", "--ledger", ledger_file, "--base-url", account.url + "/v1", "--tolerance", "0.05",
        OPENAI_ADMIN_KEY=KEY,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "drift 0.05 USD is within the tolerance of 0.05 USD" in done.stdout


def test_a_missing_or_wrong_key_is_one_line_that_never_shows_the_key(account: CostServer, ledger_file: str) -> None:
    base = account.url + "/v1"
    missing = command("--provider", "openai", "--ledger", ledger_file, "--base-url", base)
    assert missing.returncode == 1
    assert missing.stderr.startswith("minillm: ") and "set OPENAI_ADMIN_KEY" in missing.stderr
    assert "Traceback" not in missing.stderr
    wrong = "sk-admin-WRONGcli0123456789wrong"
    refused = command("--provider", "openai", "--ledger", ledger_file, "--base-url", base, OPENAI_ADMIN_KEY=wrong)
    assert refused.returncode == 1 and "HTTP 401" in refused.stderr
    assert wrong not in refused.stderr + refused.stdout and "WRONGcli" not in refused.stderr


def test_a_missing_ledger_or_a_bad_tolerance_is_an_error_not_an_empty_ledger(
    account: CostServer, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere.db"
    done = command("--provider", "openai", "--ledger", str(missing), OPENAI_ADMIN_KEY=KEY)
    assert done.returncode == 1 and f"no ledger at {missing}" in done.stderr and not missing.exists()
    done = command("--provider", "openai", "--ledger", str(missing), "--tolerance", "-1", OPENAI_ADMIN_KEY=KEY)
    assert done.returncode == 1 and "--tolerance is an amount of USD of at least 0" in done.stderr
    assert account.requests == []


def test_options_given_to_costs_before_the_action_reach_it_and_the_report_shows_the_drift(
    account: CostServer, ledger_file: str, tmp_path: Path
) -> None:
    out, page = tmp_path / "drift.json", tmp_path / "report.html"
    variables = environment(OPENAI_ADMIN_KEY=KEY)
    base = account.url + "/v1"
    reconciled = subprocess.run(
        [
            sys.executable,
            "-m",
            "minillm",
            "costs",
            "--ledger",
            ledger_file,
            "reconcile",
            "--provider",
            "openai",
            "--base-url",
            base,
            "--json",
            str(out),
            "--tolerance",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=variables,
    )
    assert reconciled.returncode == 0, reconciled.stderr
    reported = subprocess.run(
        [
            sys.executable,
            "-m",
            "minillm",
            "costs",
            "--ledger",
            ledger_file,
            "report",
            "-o",
            str(page),
            "--reconciliation",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=variables,
    )
    assert reported.returncode == 0, reported.stderr
    html = page.read_text(encoding="utf-8")
    assert "gpt-4.1" in html and "0.05" in html and KEY not in html
