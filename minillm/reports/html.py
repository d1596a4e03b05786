"""The cost report: one self-contained HTML page.

Spend per day, per model and per ``meta`` key, how much of it is known
(``RESOLVED`` / ``PARTIAL`` / ``UNPRICED`` / ``UNKNOWN``, in money and in
bookings), the most expensive requests, and -- when a reconciliation file
is given -- how far the ledger is from the provider's bill. The page has
no script and loads nothing: styles and SVG charts are inline, so it can
be mailed, archived or opened offline. Every text that came from a
booking is escaped.
"""

from __future__ import annotations

import datetime
import json
from collections import Counter
from decimal import Decimal
from html import escape
from typing import List, Optional, Sequence, Tuple

from ..accounting.ledgers.base import Entry, model_label
from ..models import Resolution
from .drift import Reconciliation
from .groups import DAY, MODEL, Group, exact_sum, group_entries, key_text, money_text, summarize
from .svg import Bar, Part, bar_chart, share_bar

__all__ = ["render_report", "top_meta_keys"]

#: Bars per chart (days per chart); the rest are summed in a line beneath it.
MOST_BARS = 15
MOST_DAYS = 31

STYLE = """
:root { color-scheme: light dark; --fg: #1f2328; --bg: #ffffff; --muted: #59636e; --line: #d1d9e0;
  --bar: #2f6fde; --partial: #c07a00; --unpriced: #8250df; --unknown: #cf222e; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e6edf3; --bg: #0d1117; --muted: #9198a1; --line: #3d444d;
    --bar: #4493f8; --partial: #e3a22b; --unpriced: #ab7df8; --unknown: #f47067; } }
body { background: var(--bg); color: var(--fg); font: 14px/1.45 system-ui, sans-serif; margin: 0; }
main { max-width: 800px; margin: 0 auto; padding: 16px 20px 40px; }
h1 { font-size: 22px; margin: 8px 0; } h2 { font-size: 17px; margin: 28px 0 8px; }
.muted, caption { color: var(--muted); }
table { border-collapse: collapse; margin: 8px 0; font-size: 13px; }
th, td { border-bottom: 1px solid var(--line); padding: 3px 8px; text-align: left; vertical-align: top; }
td.usd { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.meta { font-family: ui-monospace, monospace; font-size: 12px; word-break: break-all; }
tr.drift td.usd.drift { color: var(--unknown); font-weight: 600; }
svg.chart { display: block; max-width: 100%; height: auto; margin: 6px 0; }
svg .label, svg .value { fill: var(--fg); font: 12px system-ui, sans-serif; }
svg .bar { fill: var(--bar); } svg .bar.incomplete { fill: var(--partial); }
svg .share-resolved { fill: var(--bar); } svg .share-partial { fill: var(--partial); }
svg .share-unpriced { fill: var(--unpriced); } svg .share-unknown { fill: var(--unknown); }
svg .share-empty { fill: var(--line); }
"""


def _usd(usd: Optional[Decimal], lower_bound: bool = False) -> str:
    if usd is None:
        return "unknown"
    return ("≥" if lower_bound else "") + "$" + money_text(usd)


def _bookings(count: int) -> str:
    return f"{count} booking" if count == 1 else f"{count} bookings"


def _group_text(group: Group) -> str:
    """A group's money, and the bookings whose money is not (all) in it."""
    notes = [
        f"{group.count(resolution)} {resolution.value}"
        for resolution in (Resolution.PARTIAL, Resolution.UNPRICED, Resolution.UNKNOWN)
        if group.count(resolution)
    ]
    return _usd(group.usd, group.lower_bound) + (f" ({', '.join(notes)})" if notes else "")


def _bars(groups: Sequence[Group]) -> List[Bar]:
    return [
        Bar(
            label=key_text(group.key[0]),
            value=group.usd or Decimal(0),
            text=_group_text(group),
            incomplete=group.lower_bound,
        )
        for group in groups
    ]


def _chart_section(ident: str, heading: str, groups: List[Group], chronological: bool = False) -> str:
    if chronological:  # the latest days, in order
        groups = sorted(groups, key=lambda group: key_text(group.key[0]))
        rest, shown = groups[:-MOST_DAYS], groups[-MOST_DAYS:]
    else:  # the largest, largest first
        shown, rest = groups[:MOST_BARS], groups[MOST_BARS:]
    description = "; ".join(f"{key_text(g.key[0])}: {_group_text(g)}" for g in shown) or "no bookings"
    html = [f'<section id="{escape(ident)}"><h2>{escape(heading)}</h2>']
    html.append(bar_chart(f"chart-{ident}", heading, description, _bars(shown)))
    if rest:
        usd = exact_sum(g.usd for g in rest if g.usd is not None)
        lower = any(g.lower_bound for g in rest)
        which = "earlier days" if chronological else "more"
        html.append(f'<p class="muted">and {len(rest)} {which}: {escape(_usd(usd, lower))}</p>')
    html.append("</section>")
    return "\n".join(html)


def top_meta_keys(entries: Sequence[Entry], most: int = 3) -> List[str]:
    """The ``meta`` keys that the most bookings carry (at most ``most``)."""
    seen: Counter[str] = Counter(key for entry in entries for key in entry.meta)
    return [key for key, _ in sorted(seen.items(), key=lambda item: (-item[1], item[0]))[:most]]


def _resolution_section(entries: Sequence[Entry]) -> str:
    money = {resolution: Decimal(0) for resolution in Resolution}
    counts = dict.fromkeys(Resolution, 0)
    for entry in entries:
        counts[entry.cost.resolution] += 1
        if entry.cost.usd is not None:
            money[entry.cost.resolution] = exact_sum([money[entry.cost.resolution], entry.cost.usd])
    known = (Resolution.RESOLVED, Resolution.PARTIAL)
    by_money = [
        Part(
            label=resolution.value,
            value=money[resolution],
            text=_usd(money[resolution], resolution is Resolution.PARTIAL),
            kind=resolution.value,
        )
        for resolution in known
    ]
    by_count = [Part(label=r.value, value=counts[r], text=_bookings(counts[r]), kind=r.value) for r in Resolution]
    rows = "\n".join(
        f'<tr><td>{r.value}</td><td class="usd">{counts[r]}</td><td class="usd">'
        f"{escape(_usd(money[r], r is Resolution.PARTIAL) if r in known else 'unknown')}</td></tr>"
        for r in Resolution
    )
    describe = "; ".join(f"{part.label}: {part.text}" for part in by_count)
    return "\n".join(
        [
            '<section id="resolution"><h2>How much of it is known</h2>',
            '<p class="muted">Known money: exact (resolved) figures and the lower bounds of partial bookings. '
            "Unpriced and unknown bookings have no money figure; they are counted, never added as $0.</p>",
            share_bar(
                "chart-known-money",
                "Known money by resolution",
                "; ".join(f"{p.label}: {p.text}" for p in by_money),
                by_money,
            ),
            share_bar("chart-bookings", "Bookings by resolution", describe, by_count),
            "<table><thead><tr><th>resolution</th><th>bookings</th><th>USD</th></tr></thead>",
            f"<tbody>{rows}</tbody></table>",
            "</section>",
        ]
    )


def _top_section(entries: Sequence[Entry], most: int) -> str:
    priced = sorted((e for e in entries if e.cost.usd is not None), key=lambda e: e.cost.usd or 0, reverse=True)
    rows = []
    for entry in priced[:most]:
        cost = entry.cost
        meta = json.dumps(entry.meta, sort_keys=True, ensure_ascii=False)
        rows.append(
            "<tr>"
            f"<td>{escape(entry.booked_at.strftime('%Y-%m-%d %H:%M:%S'))}</td>"
            f"<td>{escape(model_label(cost))}</td>"
            f'<td class="usd">{escape(_usd(cost.usd, cost.resolution is Resolution.PARTIAL))}</td>'
            f"<td>{escape(cost.resolution.value)}</td>"
            f'<td class="usd">{cost.prompt_tokens} / {cost.completion_tokens}</td>'
            f'<td class="meta">{escape(meta)}</td>'
            "</tr>"
        )
    body = "\n".join(rows) or '<tr><td colspan="6">no booking with known money</td></tr>'
    return "\n".join(
        [
            f'<section id="top"><h2>The {most} most expensive requests</h2>',
            "<table><thead><tr><th>booked (UTC)</th><th>model</th><th>USD</th><th>resolution</th>"
            "<th>tokens in / out</th><th>meta</th></tr></thead>",
            f"<tbody>{body}</tbody></table></section>",
        ]
    )


def _reconciliation_section(reconciliation: Reconciliation) -> str:
    span = f"{reconciliation.since or 'the start'} to {reconciliation.until or 'now'}"
    rows = []
    bars = []
    for row in reconciliation.rows:
        drifted = row.drift_usd is None or row.drift_usd != 0
        label = f"{row.day} {row.model}"
        rows.append(
            f'<tr class="{"drift" if drifted else "even"}">'
            f"<td>{escape(row.day)}</td><td>{escape(row.model)}</td>"
            f'<td class="usd">{escape(_usd(row.ledger_usd, row.ledger_unknown > 0))}</td>'
            f'<td class="usd">{escape(_usd(row.provider_usd))}</td>'
            f'<td class="usd drift">{escape(_usd(row.drift_usd))}</td>'
            f'<td class="usd">{row.ledger_bookings}</td><td class="usd">{row.ledger_unknown}</td></tr>'
        )
        if row.drift_usd is not None:
            bars.append(Bar(label=label, value=abs(row.drift_usd), text=_usd(row.drift_usd)))
    unmatched = [
        f"<tr><td>{escape(item.side)}</td><td>{escape(item.day)}</td><td>{escape(item.model)}</td>"
        f'<td class="usd">{escape(_usd(item.usd))}</td><td>{escape(item.detail)}</td></tr>'
        for item in reconciliation.unmatched
    ]
    html = [
        '<section id="reconciliation"><h2>Against the provider&#8217;s bill</h2>',
        f"<p>{escape(reconciliation.provider)}, {escape(span)}: the ledger is off by "
        f"<strong>{escape(_usd(reconciliation.drift_usd))}</strong> (ledger minus provider).</p>",
        bar_chart(
            "chart-drift",
            "Drift per day and model",
            "; ".join(f"{bar.label}: {bar.text}" for bar in bars) or "no drift figures",
            bars,
        ),
        "<table><thead><tr><th>day</th><th>model</th><th>ledger</th><th>provider</th><th>drift</th>"
        "<th>bookings</th><th>unknown</th></tr></thead>",
        "<tbody>" + ("\n".join(rows) or '<tr><td colspan="7">no rows</td></tr>') + "</tbody></table>",
    ]
    if unmatched:
        html += [
            "<h3>On one side only</h3>",
            "<table><thead><tr><th>side</th><th>day</th><th>model</th><th>USD</th><th>detail</th></tr></thead>",
            "<tbody>" + "\n".join(unmatched) + "</tbody></table>",
        ]
    html.append("</section>")
    return "\n".join(html)


def render_report(
    entries: Sequence[Entry],
    *,
    ledger: str,
    since: Optional[datetime.datetime] = None,
    until: Optional[datetime.datetime] = None,
    by: Optional[Sequence[str]] = None,
    reconciliation: Optional[Reconciliation] = None,
    most: int = 10,
) -> str:
    """The page, as text.

    :param ledger: how to name the ledger on the page (its path, say).
    :param by: the ``meta`` keys to chart; None charts the (up to three)
        keys that the most bookings carry.
    :param most: how many of the most expensive requests to list.
    """
    total = summarize(entries)
    span = f"{since.isoformat() if since else 'the first booking'} to {until.isoformat() if until else 'the last'}"
    keys: Tuple[str, ...] = tuple(by) if by is not None else tuple(top_meta_keys(entries))
    sections = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="color-scheme" content="light dark">',
        f"<title>minillm costs: {escape(ledger)}</title>",
        f"<style>{STYLE}</style></head><body><main>",
        "<h1>What was spent</h1>",
        f'<p class="summary"><strong>{escape(_group_text(total))}</strong> in {_bookings(total.bookings)}, '
        f"from {escape(span)}, in {escape(ledger)}.</p>",
        _resolution_section(entries),
        _chart_section("per-day", "Per day (UTC)", group_entries(entries, [DAY]), chronological=True),
        _chart_section("per-model", "Per model", group_entries(entries, [MODEL])),
    ]
    for key in keys:
        sections.append(_chart_section(f"per-meta-{key}", f"Per {key}", group_entries(entries, [key])))
    sections.append(_top_section(entries, most))
    if reconciliation is not None:
        sections.append(_reconciliation_section(reconciliation))
    sections.append("</main></body></html>\n")
    return "\n".join(sections)
