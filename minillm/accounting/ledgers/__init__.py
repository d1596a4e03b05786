"""Ledgers: sinks that remember what was spent, and answer for it.

:class:`Ledger` keeps bookings in memory; :class:`SQLiteLedger` in a file
shared by threads and processes; :class:`PostgresLedger` in PostgreSQL, for
fleets of workers on many machines. All answer the same queries and hold
money for budgets the same way (see :mod:`minillm.accounting.ledgers.base`).
"""

from __future__ import annotations

import importlib as _importlib
import typing as _typing

from .base import BaseLedger

if _typing.TYPE_CHECKING:  # at run time, each is imported when first used
    from .memory import Ledger
    from .postgres import PostgresLedger
    from .sqlite import SQLiteLedger

__all__ = ["BaseLedger", "Ledger", "PostgresLedger", "SQLiteLedger", "open_ledger"]

_HOMES = {"Ledger": ".memory", "PostgresLedger": ".postgres", "SQLiteLedger": ".sqlite"}


def __getattr__(name: str) -> _typing.Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_importlib.import_module(home, __name__), name)
    globals()[name] = value
    return value


def open_ledger(target: str) -> BaseLedger:
    """A durable ledger from one string: a PostgreSQL URL or connection
    string (``postgresql://...``, ``host=... dbname=...``), else a SQLite file path."""
    if target.startswith(("postgresql://", "postgres://")) or ("=" in target and "dbname" in target):
        from .postgres import PostgresLedger

        return PostgresLedger(target)
    from .sqlite import SQLiteLedger

    return SQLiteLedger(target)
