"""``minillm costs reconcile``: a ledger beside a provider's account, as a
table (and as JSON with ``--json``); the exit status says whether the
drift stays within the tolerance.

Exit status: 0 when every row's drift, and the drift in all, is within
``--tolerance`` (default :data:`DEFAULT_TOLERANCE` USD); 1 when one passes
it, or on an error (a missing key, a refused request), which is one line on
stderr.
"""

from __future__ import annotations

import argparse
import sys
from decimal import Decimal
from typing import Any, List, Sequence, TextIO

__all__ = ["DEFAULT_TOLERANCE", "add_arguments", "run"]

#: How far the ledger may drift from the provider's figures, either way,
#: before the command fails: a cent. Providers round their daily figures,
#: and a price that changed before the catalog knew shows up as drift --
#: set 0 to see every difference fail.
DEFAULT_TOLERANCE = "0.01"


def add_arguments(parser: argparse.ArgumentParser, *, inherited: bool = False) -> None:
    """The command's arguments, on ``parser``. ``inherited``: the parser is
    an action of ``minillm costs``, whose ``--ledger``, ``--since`` and
    ``--until`` may also come before the action's name (given after it,
    they win)."""
    default: Any = argparse.SUPPRESS if inherited else None
    parser.add_argument(
        "--provider", required=True, help="openai, anthropic or openrouter: whose account the ledger is set beside"
    )
    parser.add_argument(
        "--ledger",
        default=default,
        help="a SQLite file or a PostgreSQL URL (default: $MINILLM_LEDGER, else minillm-costs.db)",
    )
    parser.add_argument(
        "--since",
        default=default,
        help="the first UTC day (YYYY-MM-DD; default: the day of the earliest booking)",
    )
    parser.add_argument(
        "--until",
        default=default,
        help="the day after the last, exclusive (YYYY-MM-DD; default: the end of today)",
    )
    parser.add_argument(
        "--tolerance",
        default=DEFAULT_TOLERANCE,
        metavar="USD",
        help="the drift allowed either way, per row and in all, before the exit status is 1 "
        f"(default {DEFAULT_TOLERANCE})",
    )
    parser.add_argument("--base-url", help="the provider's API root (default: its *_BASE_URL variable, else its own)")
    parser.add_argument("--json", metavar="FILE", help="also write the reconciliation as JSON to FILE")


def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Reconcile as ``args`` say, print the table on ``out``, return the exit status.

    :raises MiniLLMError: a missing key or ledger, a bad argument, a provider's refusal.
    """
    import json
    from decimal import InvalidOperation

    from ..cli import ledger_target
    from ..errors import InvalidArgumentError
    from .ledgers import open_ledger
    from .reconcile import reconcile

    try:
        tolerance = Decimal(args.tolerance)
    except InvalidOperation:
        tolerance = Decimal("NaN")
    if not tolerance.is_finite() or tolerance < 0:
        raise InvalidArgumentError(f"--tolerance is an amount of USD of at least 0, not {args.tolerance!r}")
    ledger = open_ledger(ledger_target(args.ledger), create=False)
    try:
        result = reconcile(ledger, args.provider, since=args.since, until=args.until, base_url=args.base_url)
    finally:
        ledger.close()
    if args.json:
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump(result.to_dict(), file, indent=2)
            file.write("\n")
    for line in table(result, tolerance):
        print(line, file=out)
    return 1 if result.exceeds(tolerance) else 0


def table(result: object, tolerance: Decimal) -> List[str]:
    """The lines the command prints for ``result`` (a
    :class:`~minillm.Reconciliation`)."""
    from .reconcile.values import Reconciliation, money_text

    assert isinstance(result, Reconciliation)
    since = result.since.date().isoformat() if result.since else "the start"
    until = result.until.date().isoformat() if result.until else "now"
    lines = [f"{result.provider}: the ledger beside the provider's account, {since} to {until} (exclusive)"]
    header = ("day", "model", "ledger USD", "provider USD", "drift USD", "bookings")
    cells = [
        (
            row.day.isoformat(),
            row.model,
            ("at least " if not row.exact else "") + money_text(row.ledger_usd),
            money_text(row.provider_usd),
            money_text(row.drift_usd),
            f"{row.ledger_bookings}" + (f" ({row.ledger_unknown} not exact)" if row.ledger_unknown else ""),
        )
        for row in result.rows
    ]
    lines.extend(_aligned(header, cells))
    if not result.rows:
        lines.append("(no day and model that both the ledger and the provider know)")
    if result.unmatched:
        unknown = "?"
        lines += ["", "only one side knows:"]
        lines += _aligned(
            ("side", "day", "model", "USD", "what"),
            [
                (u.side, u.day.isoformat(), u.model, unknown if u.usd is None else money_text(u.usd), u.detail)
                for u in result.unmatched
            ],
        )
    drift = money_text(result.drift_usd)
    verdict = "passes" if result.exceeds(tolerance) else "is within"
    lines.append("")
    lines.append(f"drift {drift} USD {verdict} the tolerance of {money_text(tolerance)} USD (per row and in all)")
    if not result.exact:
        lines.append("some bookings' money is not known exactly: the ledger's figures are lower bounds")
    return lines


def _aligned(header: Sequence[str], rows: Sequence[Sequence[str]]) -> List[str]:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows)]
    return ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in [header, *rows]]
