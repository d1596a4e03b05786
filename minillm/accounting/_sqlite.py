"""Opening a SQLite file that other threads and processes open too.

Shared by the SQLite ledger and the batch journal. ``sqlite3`` is imported
by the caller when first needed, never at ``import minillm``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Callable, Optional, Sequence, Tuple, TypeVar

if TYPE_CHECKING:  # pragma: no cover
    import sqlite3

T = TypeVar("T")


def is_busy(exc: BaseException) -> bool:
    """Whether SQLite refused because another connection holds the file."""
    message = str(exc)
    return "locked" in message or "busy" in message


def while_busy(work: Callable[[], T], timeout: float) -> T:
    """``work()``, tried again while the database is busy, for up to
    ``timeout`` seconds in all. ``work`` must be safe to repeat."""
    import sqlite3

    deadline = time.monotonic() + timeout
    pause = 0.005
    while True:
        try:
            return work()
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.25)


def transaction(connection: sqlite3.Connection, work: Callable[[sqlite3.Connection], T], timeout: float) -> T:
    """``work(connection)`` in one write transaction (``BEGIN IMMEDIATE``),
    tried again while the database is busy for up to ``timeout`` seconds:
    ``work`` must be safe to repeat. Raises ``sqlite3.Error``."""

    def attempt() -> T:
        connection.execute("BEGIN IMMEDIATE")
        try:
            result = work(connection)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
        return result

    return while_busy(attempt, timeout)


def open_shared(
    path: str,
    *,
    timeout: float,
    schema: str,
    prepare: Optional[Callable[[sqlite3.Connection], None]] = None,
    migrate: Optional[Callable[[sqlite3.Connection], None]] = None,
) -> sqlite3.Connection:
    """A connection in autocommit mode and WAL, with ``schema`` (idempotent
    DDL) and then ``migrate`` (which brings an older file up to date)
    applied in one ``BEGIN IMMEDIATE`` transaction.

    Raises ``sqlite3.Error`` when the file cannot be opened in ``timeout``.
    """
    import sqlite3

    def attempt() -> sqlite3.Connection:
        connection = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
        try:
            # Switching to WAL takes an exclusive lock and, while another
            # connection is opening the same new file, fails "locked" at
            # once instead of waiting for it: switch only when needed, and
            # let while_busy try again.
            if connection.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            if prepare is not None:
                prepare(connection)
            # executescript commits whatever is open first, so the
            # transaction begins inside the script.
            connection.executescript("BEGIN IMMEDIATE;" + schema)
            if migrate is not None:
                migrate(connection)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            connection.close()
            raise
        return connection

    return while_busy(attempt, timeout)


def add_missing_columns(connection: sqlite3.Connection, table: str, columns: Sequence[Tuple[str, str]]) -> None:
    """Add each ``(name, declaration)`` of ``columns`` that ``table`` lacks
    (a file written by an older minillm)."""
    present = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
    for name, declaration in columns:
        if name not in present:
            connection.execute(f"ALTER TABLE {table} ADD COLUMN {name} {declaration}")
