"""Grouping bookings (minillm.reports.groups) and writing the groups as a
table, CSV and JSON (minillm.reports.formats)."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal

import pytest

import minillm
from minillm.models import Resolution
from minillm.reports.formats import write_csv, write_json, write_table
from minillm.reports.groups import group_entries, money_text, summarize

from .report_data import HOSTILE, HOSTILE_MODEL, at, entry, sample_entries


def test_money_is_printed_with_every_digit_and_lower_bounds_and_unknowns_say_so() -> None:
    assert money_text(Decimal("0.000000045")) == "0.000000045"
    assert money_text(Decimal("4.5E-11")) == "0.000000000045"  # never an exponent
    assert money_text(Decimal("0.5"), lower_bound=True) == "≥0.5"
    assert money_text(None) == "unknown"


def test_groups_hold_the_known_money_and_count_each_resolution() -> None:
    groups = {group.key: group for group in group_entries(sample_entries(), ["model"])}
    mini = groups[("openai/gpt-4o-mini",)]
    assert mini.usd == Decimal("0.500034245")
    assert mini.lower_bound and mini.count(Resolution.PARTIAL) == 1 and mini.count(Resolution.UNPRICED) == 1
    assert groups[("openai/gpt-4o",)].usd == Decimal("1.25") and not groups[("openai/gpt-4o",)].lower_bound
    hostile = groups[(f"openai/{HOSTILE_MODEL}",)]
    assert hostile.usd is None and hostile.lower_bound and hostile.bookings == 1  # unknown, never 0


def test_grouping_by_several_keys_groups_by_their_tuple_and_keeps_meta_values_apart_by_type() -> None:
    entries = [*sample_entries(), entry("0.25", {"user": "7"}, at(4))]
    groups = group_entries(entries, ["user", "day"])
    keys = [group.key for group in groups]
    assert ("bob", "2026-11-01") in keys and ("bob", "2026-11-02") in keys
    assert (7, "2026-11-02") in keys and ("7", "2026-11-04") in keys  # the number 7 is not the text "7"
    assert keys[0] == ("bob", "2026-11-01")  # the most known money first


def test_sums_keep_every_digit_beyond_the_default_28() -> None:
    entries = [entry("1000000000000", {}, at(1)), entry("0.000000000000000000000000000001", {}, at(2))]
    assert summarize(entries).usd == Decimal("1000000000000.000000000000000000000000000001")
    assert money_text(summarize(entries).usd) == "1000000000000.000000000000000000000000000001"


def test_a_list_valued_meta_is_grouped_too() -> None:
    entries = [entry("0.1", {"tags": ["a", "b"]}, at(1)), entry("0.2", {"tags": ["a", "b"]}, at(2))]
    [group] = group_entries(entries, ["tags"])
    assert group.key == (["a", "b"],) and group.usd == Decimal("0.3")


def test_grouping_by_a_key_that_is_not_a_plain_name_is_refused() -> None:
    with pytest.raises(minillm.InvalidArgumentError, match="plain name"):
        group_entries([], ["user id"])


def test_the_table_shows_lower_bounds_unknown_money_and_counts() -> None:
    entries = sample_entries()
    out = io.StringIO()
    write_table(out, ["model"], group_entries(entries, ["model"]), summarize(entries))
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["model", "USD", "bookings", "partial", "unpriced", "unknown"]
    assert lines[1].split() == ["openai/gpt-4o", "1.25", "1", "0", "0", "0"]
    assert lines[2].split() == ["openai/gpt-4o-mini", "≥0.500034245", "4", "1", "1", "0"]
    assert lines[3].startswith(f"openai/{HOSTILE_MODEL}") and lines[3].split()[-5:] == ["unknown", "1", "0", "0", "1"]
    assert lines[4].split() == ["total", "≥1.750034245", "6", "1", "1", "1"]
    assert lines[5] == (
        "6 bookings, 2 of them with unknown money, 1 counted at a lower bound, so the total is at least what it says"
    )


def test_an_empty_range_is_a_total_of_nothing_not_an_error() -> None:
    out = io.StringIO()
    write_table(out, ["model"], [], summarize([]))
    assert out.getvalue().splitlines()[1:] == ["total  unknown         0        0         0        0", "0 bookings"]


def test_csv_and_json_give_back_the_exact_decimals() -> None:
    entries = sample_entries()
    groups, total = group_entries(entries, ["user", "model"]), summarize(entries)
    expected = {}
    for group in groups:
        expected[tuple(json.dumps(part) for part in group.key)] = group
    out = io.StringIO()
    write_csv(out, ["user", "model"], groups, total)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert len(rows) == len(groups)
    for row, group in zip(rows, groups):
        assert (Decimal(row["usd"]) if row["usd"] else None) == group.usd
        assert row["lower_bound"] == ("true" if group.lower_bound else "false")
        assert [int(row[r.value]) for r in Resolution] == [group.count(r) for r in Resolution]
    assert HOSTILE in [row["user"] for row in rows]  # CSV carries it as data; escaping is the page's job

    out = io.StringIO()
    write_json(out, ["user", "model"], groups, total, since=at(1), until=None)
    document = json.loads(out.getvalue())
    assert document["since"] == "2026-11-01T12:00:00+00:00" and document["until"] is None
    for item, group in zip(document["groups"], groups):
        assert (item["key"]["user"], item["key"]["model"]) == group.key  # 7 stays a number
        assert (Decimal(item["usd"]) if item["usd"] is not None else None) == group.usd
    assert Decimal(document["total"]["usd"]) == sum(e.cost.usd for e in entries if e.cost.usd is not None)
    assert document["total"]["lower_bound"] is True and document["total"]["bookings"] == 6
