"""Charts as inline SVG text: horizontal bars, and one bar split into shares.

A few lines of our own rather than a charting library: the output is
static (no script, nothing fetched), the same every time for the same
figures, and every label is escaped here -- model names and ``meta`` values
are whatever callers booked, ``<script>`` included. Colours are CSS
classes (``bar``, ``incomplete``, ``share-*``) that the page styles, so one
chart suits a light and a dark page. Each chart carries a ``<title>`` and
``<desc>`` for screen readers, and each bar a ``<title>`` with its exact
figure (a tooltip, without script).
"""

from __future__ import annotations

from decimal import Decimal
from html import escape
from typing import List, Sequence, Union

import attrs

__all__ = ["Bar", "Part", "bar_chart", "share_bar"]

WIDTH = 800
LABEL_WIDTH = 230
#: Room kept right of the longest bar for its figure and notes.
VALUE_WIDTH = 290
ROW = 24
BAR = 16
#: Longer labels are cut (with an ellipsis) on the chart; the tooltip keeps them whole.
LABEL_CHARS = 32


@attrs.frozen
class Bar:
    """One bar: its label, the figure it is drawn to, the text printed
    beside it, and whether that figure is incomplete (a lower bound)."""

    label: str
    value: Decimal
    text: str
    incomplete: bool = False


@attrs.frozen
class Part:
    """One share of a split bar; ``kind`` names its CSS class (``share-KIND``)."""

    label: str
    value: Union[Decimal, int]
    text: str
    kind: str


def _n(number: float) -> str:
    return f"{number:.1f}".rstrip("0").rstrip(".")


def _short(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "…"


def _open(ident: str, title: str, description: str, height: float) -> List[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{escape(ident)}" role="img" '
        f'viewBox="0 0 {WIDTH} {_n(height)}" width="{WIDTH}" height="{_n(height)}" '
        f'aria-labelledby="{escape(ident)}-title {escape(ident)}-desc">',
        f'<title id="{escape(ident)}-title">{escape(title)}</title>',
        f'<desc id="{escape(ident)}-desc">{escape(description)}</desc>',
    ]


def bar_chart(ident: str, title: str, description: str, bars: Sequence[Bar]) -> str:
    """Horizontal bars, one row each, in the order given, drawn to scale
    against the largest; ``ident`` must be unique in the page."""
    height = ROW * max(len(bars), 1) + 8
    parts = _open(ident, title, description, height)
    top = max((bar.value for bar in bars), default=Decimal(0))
    room = WIDTH - LABEL_WIDTH - VALUE_WIDTH
    if not bars:
        parts.append(f'<text class="label" x="0" y="{ROW - 8}">nothing to show</text>')
    for row, bar in enumerate(bars):
        y = 4 + row * ROW
        length = float(bar.value / top) * room if top > 0 and bar.value > 0 else 0.0
        kind = "bar incomplete" if bar.incomplete else "bar"
        parts += [
            "<g>",
            f"<title>{escape(bar.label)}: {escape(bar.text)}</title>",
            f'<text class="label" x="{LABEL_WIDTH - 8}" y="{_n(y + BAR - 3)}" text-anchor="end">'
            f"{escape(_short(bar.label))}</text>",
            f'<rect class="{kind}" x="{LABEL_WIDTH}" y="{y}" width="{_n(max(length, 1.0))}" height="{BAR}"/>',
            f'<text class="value" x="{_n(LABEL_WIDTH + length + 6)}" y="{_n(y + BAR - 3)}">{escape(bar.text)}</text>',
            "</g>",
        ]
    parts.append("</svg>")
    return "\n".join(parts)


def share_bar(ident: str, title: str, description: str, parts: Sequence[Part]) -> str:
    """One bar split into ``parts`` in proportion to their values, with a
    legend beneath giving each part's text; parts of no value take no room
    but keep their place in the legend."""
    height = 34 + ROW * len(parts) + 4
    out = _open(ident, title, description, height)
    whole = sum((Decimal(part.value) for part in parts), Decimal(0))
    x = 0.0
    if whole <= 0:
        out.append(f'<rect class="share-empty" x="0" y="0" width="{WIDTH}" height="24"/>')
    for part in parts:
        if whole > 0 and part.value > 0:
            width = float(Decimal(part.value) / whole) * WIDTH
            out += [
                "<g>",
                f"<title>{escape(part.label)}: {escape(part.text)}</title>",
                f'<rect class="share-{escape(part.kind)}" x="{_n(x)}" y="0" width="{_n(width)}" height="24"/>',
                "</g>",
            ]
            x += width
    for row, part in enumerate(parts):
        y = 34 + row * ROW
        out += [
            f'<rect class="share-{escape(part.kind)}" x="0" y="{y}" width="14" height="14"/>',
            f'<text class="label" x="22" y="{y + 12}">{escape(part.label)}: {escape(part.text)}</text>',
        ]
    out.append("</svg>")
    return "\n".join(out)
