"""Ledgers: sinks that remember what was spent, and answer for it.

:class:`Ledger` keeps bookings in memory; :class:`SQLiteLedger` in a file
shared by threads and processes; :class:`PostgresLedger` in PostgreSQL, for
fleets of workers on many machines. All answer the same queries and hold
money for budgets the same way (see :mod:`minillm.accounting.ledgers.base`),
and book corrections of pending bookings once (:class:`Resolved` is what
``resolve_pending`` did; see :mod:`minillm.accounting.corrections`).
"""

from __future__ import annotations

import importlib as _importlib
import os as _os
import typing as _typing

from .base import BaseLedger

if _typing.TYPE_CHECKING:  # at run time, each is imported when first used
    from ..corrections import Resolved
    from .memory import Ledger
    from .postgres import PostgresLedger
    from .sqlite import SQLiteLedger

__all__ = ["BaseLedger", "Ledger", "PostgresLedger", "Resolved", "SQLiteLedger", "open_ledger"]

_HOMES = {"Ledger": ".memory", "PostgresLedger": ".postgres", "Resolved": "..corrections", "SQLiteLedger": ".sqlite"}


def __getattr__(name: str) -> _typing.Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_importlib.import_module(home, __name__), name)
    globals()[name] = value
    return value


def open_ledger(target: str, *, create: bool = True) -> BaseLedger:
    """A durable ledger from one string: a PostgreSQL URL or connection
    string (``postgresql://...``, ``host=... dbname=...``), else a SQLite file path.

    :param create: whether a SQLite file that is not there is made (to book
        into), or is an error (to read from: a mistyped path must not read
        as a ledger where nothing was spent).
    :raises LedgerError: ``create`` is false and there is no such file.
    """
    if target.startswith(("postgresql://", "postgres://")) or ("=" in target and "dbname" in target):
        from .postgres import PostgresLedger

        return PostgresLedger(target)
    if not create and not _os.path.exists(target):
        from ...errors import LedgerError

        raise LedgerError(f"there is no ledger at {target} (no such file)")
    from .sqlite import SQLiteLedger

    return SQLiteLedger(target)
