"""``minillm costs``: what was spent, from a ledger -- as a table, CSV or
JSON (``minillm costs``), or as an HTML page (``minillm costs report``).

The parser is built with the rest of the command line; what the commands
run is imported when they run.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, List, Optional

__all__ = ["add_costs_command"]


def _range_options(parser: argparse.ArgumentParser, ledger_help: str, inherited: bool) -> None:
    # On an action, the options are also taken after its name, and then
    # win; given before it, they are the costs command's own.
    default: Any = argparse.SUPPRESS if inherited else None
    parser.add_argument("--ledger", default=default, help=ledger_help)
    parser.add_argument(
        "--since",
        metavar="DATE",
        default=default,
        help="only bookings made at or after DATE (YYYY-MM-DD or ISO 8601, UTC)",
    )
    parser.add_argument("--until", metavar="DATE", default=default, help="only bookings made before DATE")


def add_costs_command(commands: Any, ledger_help: str) -> None:
    """Add ``costs`` (and its actions) to the command line's sub-commands."""
    costs = commands.add_parser(
        "costs",
        help="show what was spent, from a ledger",
        description="Sum the known money in a ledger, grouped by model, by day or by meta keys (--by more than "
        "once groups by them together). Money is exact; a group with bookings whose money is not known exactly "
        "shows a lower bound (≥) and how many such bookings it has. A ledger that is not there is an error.",
    )
    _range_options(costs, ledger_help, inherited=False)
    costs.add_argument(
        "--by",
        action="append",
        metavar="KEY",
        help="model, day, or a meta key such as user_id; repeat it to group by several (default: model)",
    )
    costs.add_argument("--format", choices=("table", "csv", "json"), default="table", help="the output (default table)")
    costs.set_defaults(costs_run=run_summary)
    actions = costs.add_subparsers(dest="costs_action", metavar="ACTION")

    report = actions.add_parser(
        "report",
        help="write an HTML report: spend per day, model and meta key, what is known, the largest requests",
        description="Write one self-contained HTML page (no script, nothing fetched) with charts of the spend "
        "per day, per model and per meta key, the share of money and bookings per resolution, the most expensive "
        "requests and, given a file from 'minillm costs reconcile --json', the drift from the provider's bill.",
    )
    report.add_argument("-o", "--output", required=True, help="the HTML file to write")
    _range_options(report, ledger_help, inherited=True)
    report.add_argument(
        "--by",
        action="append",
        metavar="KEY",
        default=argparse.SUPPRESS,
        help="a meta key to chart (repeatable; default: the three keys the most bookings carry)",
    )
    report.add_argument("--reconciliation", metavar="FILE", help="a reconciliation written by 'costs reconcile --json'")
    report.add_argument("--top", type=int, default=10, metavar="N", help="list the N most expensive requests (10)")
    report.set_defaults(costs_run=run_report)

    from ..accounting import reconcile_cli

    reconcile = actions.add_parser(
        "reconcile",
        help="set the ledger beside a provider's own account, per day and model",
        description="Compare the ledger's bookings of one provider with what it reports it billed: OpenAI's "
        "organization costs, Anthropic's cost report, OpenRouter's generations. Exit 1 when they drift apart "
        "by more than the tolerance.",
    )
    reconcile_cli.add_arguments(reconcile, inherited=True)
    reconcile.set_defaults(costs_run=reconcile_cli.run)


def _entries(args: argparse.Namespace) -> List[Any]:
    from ..accounting.corrections import folded
    from ..accounting.ledgers import open_ledger
    from ..accounting.ledgers.base import instant
    from ..cli import ledger_target

    since, until = instant(args.since, "--since"), instant(args.until, "--until")
    ledger = open_ledger(ledger_target(args.ledger), create=False)
    try:
        # A pending booking and its later correction are one attempt.
        return folded(ledger.entries(since, until))
    finally:
        ledger.close()


def run_summary(args: argparse.Namespace, out: Optional[Any] = None) -> int:
    """``minillm costs``: the grouped table, CSV or JSON, on stdout."""
    from ..accounting.ledgers.base import instant
    from . import formats
    from .groups import group_entries, key_of, summarize

    by = list(dict.fromkeys(args.by or ["model"]))  # a key given twice is one column
    for key in by:
        key_of(key)  # a bad key is refused before the ledger is read
    entries = _entries(args)
    groups, total = group_entries(entries, by), summarize(entries)
    out = out if out is not None else sys.stdout
    if args.format == "json":
        formats.write_json(out, by, groups, total, instant(args.since), instant(args.until))
    elif args.format == "csv":
        formats.write_csv(out, by, groups, total)
    else:
        formats.write_table(out, by, groups, total)
    return 0


def run_report(args: argparse.Namespace) -> int:
    """``minillm costs report``: the HTML page, written whole or not at all."""
    from ..accounting.ledgers.base import instant
    from ..cli import ledger_target
    from ..errors import InvalidArgumentError
    from .drift import read_reconciliation
    from .groups import key_of
    from .html import render_report

    if args.top < 1:
        raise InvalidArgumentError(f"--top must be 1 or more, not {args.top}")
    by = list(dict.fromkeys(args.by)) if args.by else None
    for key in by or ():
        key_of(key)
    reconciliation = read_reconciliation(args.reconciliation) if args.reconciliation else None
    entries = _entries(args)
    page = render_report(
        entries,
        ledger=ledger_target(args.ledger),
        since=instant(args.since),
        until=instant(args.until),
        by=by,
        reconciliation=reconciliation,
        most=args.top,
    )
    partial = args.output + ".partial"
    try:
        with open(partial, "w", encoding="utf-8") as file:
            file.write(page)
        os.replace(partial, args.output)
    except OSError as exc:
        raise InvalidArgumentError(f"cannot write the report to {args.output}: {exc.strerror or exc}") from None
    sys.stderr.write(f"minillm costs: wrote {args.output} ({len(entries)} bookings)\n")
    return 0
