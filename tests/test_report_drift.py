"""Reading a reconciliation file back (minillm.reports.drift)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Dict

import pytest

import minillm
from minillm.reports.drift import read_reconciliation


def reconciliation() -> Dict[str, Any]:
    return {
        "provider": "openai",
        "since": "2026-11-01",
        "until": None,
        "drift_usd": "0.030000000001",
        "rows": [
            {
                "day": "2026-11-01",
                "model": "gpt-4o-mini",
                "ledger_usd": "1.230000000001",
                "provider_usd": "1.20",
                "drift_usd": "0.030000000001",
                "ledger_bookings": 12,
                "ledger_unknown": 1,
            }
        ],
        "unmatched": [
            {"side": "provider", "day": "2026-11-02", "model": "gpt-4o", "usd": "0.5", "detail": "no booking"},
            {"side": "ledger", "day": "2026-11-02", "model": "o3", "usd": None, "detail": "unknown money"},
        ],
    }


def write(tmp_path: Path, document: Any) -> str:
    path = tmp_path / "reconciliation.json"
    path.write_text(json.dumps(document) if not isinstance(document, str) else document)
    return str(path)


def test_a_reconciliation_file_is_read_with_exact_money(tmp_path: Path) -> None:
    read = read_reconciliation(write(tmp_path, reconciliation()))
    assert read.provider == "openai" and read.since == "2026-11-01" and read.until is None
    assert read.drift_usd == Decimal("0.030000000001")
    [row] = read.rows
    assert (row.ledger_usd, row.provider_usd, row.ledger_bookings, row.ledger_unknown) == (
        Decimal("1.230000000001"),
        Decimal("1.20"),
        12,
        1,
    )
    assert [(u.side, u.usd) for u in read.unmatched] == [("provider", Decimal("0.5")), ("ledger", None)]


def broken(change: Callable[[Dict[str, Any]], None]) -> Dict[str, Any]:
    document = reconciliation()
    change(document)
    return document


@pytest.mark.parametrize(
    ("document", "complaint"),
    [
        ("{not json", "not JSON"),
        ([], "the file must be a JSON object, not list"),
        (broken(lambda d: d.pop("rows")), "the file has no 'rows'"),
        (
            broken(lambda d: d.update(drift_usd=0.03)),
            "'drift_usd' must be decimal text such as \"0.03\" (or null), not 0.03",
        ),
        (broken(lambda d: d.update(drift_usd="NaN")), "'drift_usd' must be decimal text"),
        (broken(lambda d: d["rows"][0].update(day="yesterday")), "row 1's 'day' must be a day (YYYY-MM-DD)"),
        (broken(lambda d: d["rows"][0].update(ledger_bookings=-1)), "row 1's 'ledger_bookings' must be a count"),
        (broken(lambda d: d["rows"][0].update(ledger_unknown=True)), "row 1's 'ledger_unknown' must be a count"),
        (broken(lambda d: d["rows"].append("x")), "row 2 must be a JSON object, not str"),
        (broken(lambda d: d["unmatched"][0].update(side="bank")), "'side' must be 'ledger' or 'provider', not 'bank'"),
        (broken(lambda d: d.update(provider=None)), "the file's 'provider' must be a string, not null"),
        (broken(lambda d: d.update(unmatched={})), "the file's 'unmatched' must be a list, not dict"),
    ],
)
def test_a_file_that_is_not_a_reconciliation_is_one_clear_error(tmp_path: Path, document: Any, complaint: str) -> None:
    path = write(tmp_path, document)
    with pytest.raises(minillm.InvalidArgumentError) as raised:
        read_reconciliation(path)
    assert str(raised.value).startswith(f"{path} is not a reconciliation file: ")
    assert complaint in str(raised.value)


def test_a_missing_reconciliation_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(minillm.InvalidArgumentError, match=r"cannot read the reconciliation file .*nope\.json"):
        read_reconciliation(str(tmp_path / "nope.json"))
