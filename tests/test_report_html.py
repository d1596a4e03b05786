"""The HTML cost report (minillm.reports.html) and its SVG charts
(minillm.reports.svg) -- read as text, and rendered by a real browser."""

from __future__ import annotations

import json
import re
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import List

import pytest

from minillm.cli import main
from minillm.models import Resolution
from minillm.reports.drift import read_reconciliation
from minillm.reports.html import render_report, top_meta_keys
from minillm.reports.svg import LABEL_WIDTH, VALUE_WIDTH, WIDTH, Bar, Part, bar_chart, share_bar

from .browser import Rendered, browser_or_skip, png_pixels, render
from .report_data import HOSTILE, HOSTILE_MODEL, at, booking, entry, sample_entries
from .test_report_drift import reconciliation

#: The colours of the light scheme's bars (a headless browser prefers light).
BLUE, AMBER, PURPLE, RED = (47, 111, 222), (192, 122, 0), (130, 80, 223), (207, 34, 46)


def widths(svg: str) -> List[float]:
    return [float(w) for w in re.findall(r'<rect class="bar[^"]*" x="\d+" y="\d+" width="([\d.]+)"', svg)]


# -- svg ----------------------------------------------------------------------------------------


def test_bars_are_drawn_to_scale_against_the_largest() -> None:
    svg = bar_chart(
        "c", "t", "d", [Bar("a", Decimal("2"), "$2"), Bar("b", Decimal("1"), "$1"), Bar("z", Decimal(0), "?")]
    )
    room = WIDTH - LABEL_WIDTH - VALUE_WIDTH
    assert widths(svg) == [room, room / 2, 1.0]  # a bar of nothing is a sliver, still there to hover


def test_a_chart_of_nothing_says_so_rather_than_dividing_by_zero() -> None:
    assert "nothing to show" in bar_chart("c", "t", "d", [])
    assert widths(bar_chart("c", "t", "d", [Bar("a", Decimal(0), "unknown")])) == [1.0]


def test_chart_text_is_escaped_and_long_labels_keep_their_whole_text_in_the_tooltip() -> None:
    label = HOSTILE + "x" * 40
    svg = bar_chart("c", "<t>", "<d>", [Bar(label, Decimal(1), "≥$1", incomplete=True)])
    assert "<script" not in svg and "&lt;t&gt;" in svg and "&lt;d&gt;" in svg
    assert f"<title>{HOSTILE.replace('<', '&lt;').replace('>', '&gt;').replace(chr(39), '&#x27;')}" in svg
    assert "…</text>" in svg and 'class="bar incomplete"' in svg
    assert 'role="img"' in svg and 'aria-labelledby="c-title c-desc"' in svg


def test_a_share_bar_splits_in_proportion_and_lists_every_part() -> None:
    parts = [
        Part("resolved", 3, "3", "resolved"),
        Part("partial", 1, "1", "partial"),
        Part("unknown", 0, "0", "unknown"),
    ]
    svg = share_bar("s", "t", "d", parts)
    assert re.findall(r'class="share-(\w+)" x="[\d.]+" y="0" width="([\d.]+)"', svg) == [
        ("resolved", str(WIDTH * 3 // 4)),
        ("partial", str(WIDTH // 4)),
    ]
    assert svg.count('<text class="label"') == 3  # the empty part stays in the legend
    assert 'class="share-empty"' in share_bar("s", "t", "d", [Part("x", 0, "0", "unknown")])


# -- the page, as text ----------------------------------------------------------------------------


def test_the_page_is_self_contained_and_has_no_script() -> None:
    page = render_report(sample_entries(), ledger="costs.db", reconciliation=None)
    assert not re.search(r"<(script|link|img|iframe|object|embed)\b", page, re.I)
    assert not re.search(r"<[^>]*\s(src|href)=", page)  # nothing to fetch (booked text is escaped, so no '<')
    assert set(re.findall(r"https?://[^\"' ]+", page)) == {"http://www.w3.org/2000/svg"}  # a namespace, not fetched


def test_every_booked_text_on_the_page_is_escaped() -> None:
    page = render_report(sample_entries(), ledger="<ledger>.db", by=["user"])
    assert HOSTILE not in page and HOSTILE_MODEL not in page and "<ledger>" not in page
    assert "&lt;script&gt;alert(&#x27;meta&#x27;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


def test_the_page_charts_days_models_and_the_meta_keys_most_bookings_carry() -> None:
    entries = sample_entries()
    assert top_meta_keys(entries) == ["user", "team"]
    page = render_report(entries, ledger="costs.db")
    for ident in ("per-day", "per-model", "per-meta-user", "per-meta-team", "resolution", "top"):
        assert f'<section id="{ident}">' in page
    days = re.search(r'<section id="per-day">(.*?)</section>', page, re.S)
    assert days is not None
    assert re.findall(r'text-anchor="end">([\d-]+)</text>', days.group(1)) == ["2026-11-01", "2026-11-02", "2026-11-03"]
    assert '<section id="per-meta-team">' not in render_report(entries, ledger="costs.db", by=["user"])


def test_known_money_is_exact_partial_is_a_lower_bound_and_unknown_is_never_zero() -> None:
    page = render_report(sample_entries(), ledger="costs.db")
    assert "≥$1.750034245 (1 partial, 1 unpriced, 1 unknown)</strong> in 6 bookings" in page
    assert "$0.000000045" in page  # a tiny cost keeps its digits
    assert "$0.0000342</td>" in page
    assert "unknown (1 unknown)" in page and "$0 " not in page and "$0<" not in page
    resolution = re.search(r'<section id="resolution">(.*?)</section>', page, re.S)
    assert resolution is not None
    rows = re.findall(
        r"<tr><td>(\w+)</td><td class=\"usd\">(\d+)</td><td class=\"usd\">([^<]+)</td>", resolution.group(1)
    )
    assert rows == [
        ("resolved", "3", "$1.250034245"),
        ("partial", "1", "≥$0.5"),
        ("unpriced", "1", "unknown"),
        ("unknown", "1", "unknown"),
    ]


def test_the_most_expensive_requests_are_listed_largest_first() -> None:
    entries = [entry(str(n), {"n": n}, at(1)) for n in range(1, 15)]
    page = render_report(entries, ledger="costs.db", most=3)
    top = re.search(r'<section id="top">(.*?)</section>', page, re.S)
    assert top is not None and "The 3 most expensive requests" in top.group(1)
    assert re.findall(r'<td class="usd">\$(\d+)</td>', top.group(1)) == ["14", "13", "12"]


def test_a_long_tail_of_values_is_summed_beneath_the_chart() -> None:
    entries = [entry("1", {"user": f"u{n:02}"}, at(1)) for n in range(20)]
    entries.append(entry(None, {"user": "u99"}, at(1), resolution=Resolution.UNKNOWN))
    page = render_report(entries, ledger="costs.db", by=["user"])
    assert "and 6 more: ≥$5</p>" in page


def test_the_reconciliation_shows_its_drift_per_day_and_model(tmp_path: Path) -> None:
    document = reconciliation()
    document["rows"][0]["model"] = HOSTILE
    path = tmp_path / "r.json"
    path.write_text(json.dumps(document))
    page = render_report(sample_entries(), ledger="costs.db", reconciliation=read_reconciliation(str(path)))
    section = re.search(r'<section id="reconciliation">(.*?)</section>', page, re.S)
    assert section is not None
    text = section.group(1)
    assert "openai, 2026-11-01 to now: the ledger is off by <strong>$0.030000000001</strong>" in text
    assert '<tr class="drift"><td>2026-11-01</td>' in text and "≥$1.230000000001" in text and "$1.2<" in text
    assert HOSTILE not in text and "On one side only" in text and "no booking" in text


# -- the page, in a browser -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    """The report of a real ledger, written by the command and rendered once."""
    browser = browser_or_skip()
    import minillm

    work = tmp_path_factory.mktemp("report")
    ledger = minillm.SQLiteLedger(work / "costs.db")
    for item in sample_entries():
        ledger.record(
            booking(str(item.cost.usd) if item.cost.usd is not None else None, item.cost.resolution, item.cost.model),
            item.meta,
        )
    ledger.close()
    (work / "r.json").write_text(json.dumps(reconciliation()))
    page = work / "report.html"
    argv = [
        "costs",
        "report",
        "-o",
        str(page),
        "--ledger",
        str(work / "costs.db"),
        "--reconciliation",
        str(work / "r.json"),
    ]
    assert main(argv) == 0
    return render(browser, page, work)


def test_the_browser_draws_the_charts(rendered: Rendered) -> None:
    width, height, rows = png_pixels(rendered.png)
    assert (width, height) == (900, 1800)
    colours = Counter(pixel for row in rows for pixel in row)
    assert colours.most_common(1)[0][0] == (255, 255, 255)  # the light page
    # solid bars of every kind were painted: the SVG was drawn and styled
    assert colours[BLUE] > 2000 and colours[AMBER] > 2000 and colours[PURPLE] > 500 and colours[RED] > 500


def test_the_browser_builds_the_page_without_complaint_or_script(rendered: Rendered) -> None:
    assert rendered.console == []
    assert rendered.dom.count("<svg") == 7  # resolution x2, day, model, user, team, drift
    assert "<script" not in rendered.dom and "&lt;script&gt;alert(" in rendered.dom


def test_without_a_browser_the_tests_skip_unless_one_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINILLM_BROWSER", "no-such-browser-here")
    monkeypatch.delenv("MINILLM_REQUIRE_BROWSER", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no headless Chromium"):
        browser_or_skip()
    monkeypatch.setenv("MINILLM_REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="a browser is required here"):
        browser_or_skip()
