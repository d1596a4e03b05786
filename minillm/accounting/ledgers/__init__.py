"""Ledgers: sinks that remember what was spent, and answer for it.

:class:`Ledger` keeps bookings in memory; :class:`SQLiteLedger` in a file
shared by threads and processes; :class:`PostgresLedger` in PostgreSQL, for
fleets of workers on many machines. All answer the same queries and hold
money for budgets the same way (see :mod:`minillm.accounting.ledgers.base`).
"""

from __future__ import annotations

from .base import BaseLedger
from .memory import Ledger
from .postgres import PostgresLedger
from .sqlite import SQLiteLedger

__all__ = ["BaseLedger", "Ledger", "PostgresLedger", "SQLiteLedger", "open_ledger"]


def open_ledger(target: str) -> BaseLedger:
    """A durable ledger from one string: a PostgreSQL URL or connection
    string (``postgresql://...``, ``host=... dbname=...``), else a SQLite file path."""
    if target.startswith(("postgresql://", "postgres://")) or ("=" in target and "dbname" in target):
        return PostgresLedger(target)
    return SQLiteLedger(target)
