"""Grouped bookings written out: a table for people, CSV and JSON for
other programs.

Money is written exactly -- decimal text with every digit, no exponent, no
rounding -- so ``Decimal(text)`` gives back what the ledger holds. Money
that is not known is empty (CSV) or null (JSON), and a lower bound says
so, in its own column (CSV, JSON) or with ``≥`` (the table).
"""

from __future__ import annotations

import csv
import datetime
import json
from typing import Any, Dict, Optional, Sequence, TextIO

from ..models import Resolution
from .groups import Group, key_text, money_text

__all__ = ["write_csv", "write_json", "write_table"]

#: The resolutions that leave a booking's money not known, or not exactly.
_INCOMPLETE = (Resolution.PARTIAL, Resolution.UNPRICED, Resolution.UNKNOWN)


def write_table(out: TextIO, by: Sequence[str], groups: Sequence[Group], total: Group) -> None:
    """Aligned columns, a total line, and a line saying how much of the
    total is not known exactly."""
    header = [*by, "USD", "bookings", *(resolution.value for resolution in _INCOMPLETE)]
    rows = [header]
    for group in [*groups, total]:
        key = [key_text(part) for part in group.key] if group is not total else ["total", *[""] * (len(by) - 1)]
        counts = [str(group.bookings), *(str(group.count(resolution)) for resolution in _INCOMPLETE)]
        rows.append([*key, money_text(group.usd, group.lower_bound), *counts])
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    for row in rows:
        cells = [
            cell.ljust(width) if column < len(by) else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(row, widths))
        ]
        out.write("  ".join(cells).rstrip() + "\n")
    unknown = total.count(Resolution.UNPRICED) + total.count(Resolution.UNKNOWN)
    notes = [f"{total.bookings} bookings"]
    if unknown:
        notes.append(f"{unknown} of them with unknown money")
    if total.count(Resolution.PARTIAL):
        notes.append(f"{total.count(Resolution.PARTIAL)} counted at a lower bound")
    if total.lower_bound:
        notes.append("so the total is at least what it says")
    out.write(", ".join(notes) + "\n")


def _fields(group: Group) -> Dict[str, Any]:
    return {
        "usd": None if group.usd is None else money_text(group.usd),
        "lower_bound": group.lower_bound,
        "bookings": group.bookings,
        **{resolution.value: group.count(resolution) for resolution in Resolution},
    }


def write_csv(out: TextIO, by: Sequence[str], groups: Sequence[Group], total: Group) -> None:
    """One row per group, with a header: the key columns, ``usd`` (empty
    when not known), ``lower_bound``, ``bookings`` and a count per
    resolution. No total row: a spreadsheet sums the rows itself."""
    writer = csv.writer(out, lineterminator="\n")
    columns = ["usd", "lower_bound", "bookings", *(resolution.value for resolution in Resolution)]
    writer.writerow([*by, *columns])
    for group in groups:
        fields = _fields(group)
        values = ["" if fields["usd"] is None else fields["usd"], "true" if group.lower_bound else "false"]
        writer.writerow([*(key_text(part) for part in group.key), *values, *(fields[c] for c in columns[2:])])


def write_json(
    out: TextIO,
    by: Sequence[str],
    groups: Sequence[Group],
    total: Group,
    since: Optional[datetime.datetime] = None,
    until: Optional[datetime.datetime] = None,
) -> None:
    """One JSON object: the keys grouped by, the range, each group (its key
    as an object, keeping ``meta`` values as they were booked) and the total."""
    document = {
        "by": list(by),
        "since": since.isoformat() if since is not None else None,
        "until": until.isoformat() if until is not None else None,
        "groups": [{"key": dict(zip(by, group.key)), **_fields(group)} for group in groups],
        "total": _fields(total),
    }
    json.dump(document, out, indent=2, sort_keys=False)
    out.write("\n")
