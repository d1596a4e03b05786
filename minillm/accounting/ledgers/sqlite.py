"""The embedded durable ledger: :class:`SQLiteLedger`.

The standard library's ``sqlite3`` in WAL mode: readers never wait for
the writer, and every write is one ``BEGIN IMMEDIATE`` transaction, which
serialises writers across threads *and* processes -- so a budget's
check-and-hold is atomic wherever the other writer runs. Money is stored
as exact decimal text and summed in ``Decimal`` (SQLite's own ``SUM``
would go through floats). ``sqlite3`` is imported when the ledger is first
used, not at ``import minillm``.
"""

from __future__ import annotations

import datetime
import json
import os
import threading
import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, TypeVar, Union

from ...errors import LedgerError
from ...models import CostInfo
from .._sqlite import add_missing_columns, open_shared, transaction
from .base import (
    BaseLedger,
    Entry,
    Scope,
    booking_id_of,
    check_meta_key,
    check_within,
    close_when_dropped,
    instant,
    meta_json,
    utc_now,
)
from .scopes import counted, rebuild, scope_names, totals_for
from .sql import ADDED_COLUMNS, BOOKING_COLUMNS, ORIGINAL, between, book_correction, booking_values, cost_from_row

if TYPE_CHECKING:  # pragma: no cover
    import sqlite3

__all__ = ["SQLiteLedger"]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS minillm_bookings (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    booking_id TEXT NOT NULL UNIQUE,
    booked_at TEXT NOT NULL,
    usd TEXT,
    resolution TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    total_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL,
    reasoning_tokens INTEGER NOT NULL,
    model TEXT NOT NULL,
    provider TEXT NOT NULL,
    response_id TEXT,
    byok INTEGER NOT NULL,
    cancelled INTEGER NOT NULL,
    meta TEXT NOT NULL,
    held_usd TEXT,
    failed INTEGER NOT NULL DEFAULT 0,
    attempt INTEGER NOT NULL DEFAULT 1,
    source TEXT,
    cache_write_tokens INTEGER NOT NULL DEFAULT 0,
    service_tier TEXT,
    corrects TEXT
);
CREATE INDEX IF NOT EXISTS minillm_bookings_day ON minillm_bookings (substr(booked_at, 1, 10));
CREATE TABLE IF NOT EXISTS minillm_holds (
    hold_id TEXT PRIMARY KEY,
    usd TEXT NOT NULL,
    meta TEXT NOT NULL,
    expires_at REAL NOT NULL
);
"""

_COLUMNS = ", ".join(BOOKING_COLUMNS)
_INSERT = (
    f"INSERT INTO minillm_bookings ({_COLUMNS}, booked_at, held_usd) "
    f"VALUES ({', '.join('?' for _ in BOOKING_COLUMNS)}, ?, ?) ON CONFLICT (booking_id) DO NOTHING"
)

_ORIGINAL = ORIGINAL.format(mark="?")


class _DecimalSum:
    """``minillm_sum(text)``: an exact sum of decimal text (None when empty)."""

    def __init__(self) -> None:
        self.total: Optional[Decimal] = None

    def step(self, value: Optional[str]) -> None:
        if value is not None:
            self.total = (self.total or Decimal(0)) + Decimal(value)

    def finalize(self) -> Optional[str]:
        return None if self.total is None else str(self.total)


def _decimal_add(a: Optional[str], b: Optional[str]) -> Optional[str]:
    """``minillm_add(a, b)``: the exact sum of two decimal texts."""
    if a is None or b is None:
        return b if a is None else a
    return str(Decimal(a) + Decimal(b))


def _prepare(connection: sqlite3.Connection) -> None:
    connection.create_aggregate("minillm_sum", 1, _DecimalSum)  # type: ignore[arg-type]
    connection.create_function("minillm_add", 2, _decimal_add, deterministic=True)


_TOTALS = "CREATE TABLE minillm_scope_totals (scope TEXT PRIMARY KEY, usd TEXT NOT NULL)"
_ADD_TO_TOTAL = (
    "INSERT INTO minillm_scope_totals (scope, usd) VALUES (?, ?) "
    "ON CONFLICT (scope) DO UPDATE SET usd = minillm_add(usd, excluded.usd)"
)


def _migrate(connection: sqlite3.Connection) -> None:
    add_missing_columns(connection, "minillm_bookings", [(name, sqlite) for name, sqlite, _ in ADDED_COLUMNS])
    exists = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'minillm_scope_totals'"
    ).fetchone()
    if not exists:
        # A file from before budgets kept running totals: add them up once,
        # in the same transaction that creates the table.
        connection.execute(_TOTALS)
        rows = connection.execute("SELECT meta, usd, resolution, held_usd FROM minillm_bookings")
        totals = rebuild(
            (json.loads(meta), _decimal(usd), resolution == "partial", _decimal(held))
            for meta, usd, resolution, held in rows
        )
        connection.executemany(_ADD_TO_TOTAL, [(name, str(usd)) for name, usd in totals.items()])


def _decimal(value: Optional[str]) -> Optional[Decimal]:
    return None if value is None else Decimal(value)


def _json_path(key: str) -> str:
    return f'$."{check_meta_key(key)}"'


class SQLiteLedger(BaseLedger):
    """A ledger in a SQLite file, shared by the threads and processes that
    open the same path.

    :param path: the database file (created when missing).
    :param timeout: how long a write waits for another writer, in seconds.
    """

    def __init__(self, path: Union[str, os.PathLike[str]], *, timeout: float = 30.0) -> None:
        self.path = os.fspath(path)
        self._timeout = timeout
        self._lock = threading.RLock()
        self._connection: Optional[sqlite3.Connection] = None
        self._pid: Optional[int] = None

    # -- the connection -------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        # One connection per process, used under a lock: SQLite serialises
        # writers anyway, and a connection must never cross a fork.
        if self._connection is not None and self._pid == os.getpid():
            return self._connection
        import sqlite3

        try:
            connection = open_shared(
                self.path,
                timeout=self._timeout,
                schema=_SCHEMA,
                prepare=_prepare,
                migrate=_migrate,
            )
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot open the ledger {self.path!r}: {exc}") from exc
        self._connection, self._pid = connection, os.getpid()
        close_when_dropped(self, connection)
        return connection

    def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` in one write transaction, retried while the
        database is busy (its writes must be idempotent)."""
        import sqlite3

        with self._lock:
            try:
                return transaction(self._connect(), work, self._timeout)
            except sqlite3.Error as exc:
                raise LedgerError(f"cannot write to the ledger {self.path!r}: {exc}") from exc

    def _read(self, sql: str, parameters: Tuple[Any, ...] = ()) -> List[Any]:
        import sqlite3

        with self._lock:
            try:
                return self._connect().execute(sql, parameters).fetchall()
            except sqlite3.Error as exc:
                raise LedgerError(f"cannot read the ledger {self.path!r}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            connection, self._connection = self._connection, None
        if connection is not None and self._pid == os.getpid():
            connection.close()

    def __getstate__(self) -> Dict[str, Any]:
        return {"path": self.path, "timeout": self._timeout}

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__init__(state["path"], timeout=state["timeout"])  # type: ignore[misc]

    # -- booking ----------------------------------------------------------------

    def record_once(self, cost: CostInfo, meta: Dict[str, Any]) -> bool:
        """Book ``cost`` with ``meta`` -- once per booking id, however often
        it is written -- replacing the budget's hold for it."""
        booking_id = booking_id_of(cost, "SQLiteLedger")
        values = booking_values(booking_id, cost, meta_json(meta or {}))
        booked_at = utc_now().isoformat()

        names = scope_names(meta or {})

        def write(connection: sqlite3.Connection) -> bool:
            if cost.corrects is not None:
                return book_correction(
                    cost,
                    connection.execute(_ORIGINAL, (cost.corrects,)).fetchone(),
                    lambda: connection.execute(_INSERT, (*values, booked_at, None)).rowcount,
                    lambda names, amount: connection.executemany(_ADD_TO_TOTAL, [(n, str(amount)) for n in names]),
                )
            held = connection.execute("SELECT usd FROM minillm_holds WHERE hold_id = ?", (booking_id,)).fetchone()
            connection.execute("DELETE FROM minillm_holds WHERE hold_id = ?", (booking_id,))
            inserted = connection.execute(_INSERT, (*values, booked_at, held[0] if held else None)).rowcount
            amount = counted(cost, _decimal(held[0]) if held else None)
            if inserted and amount is not None:  # a booking written twice counts once
                connection.executemany(_ADD_TO_TOTAL, [(name, str(amount)) for name in names])
            return bool(inserted)

        return self._write(write)

    # -- queries ----------------------------------------------------------------

    @property
    def records(self) -> List[Tuple[CostInfo, Dict[str, Any]]]:
        rows = self._read(f"SELECT {_COLUMNS} FROM minillm_bookings ORDER BY seq")
        return [cost_from_row(row) for row in rows]

    def entries(self, since: Any = None, until: Any = None) -> List[Entry]:
        # booked_at is ISO 8601 text in UTC, which sorts as time does.
        where, parameters = between(instant(since, "since"), instant(until, "until"), "?", text=True)
        rows = self._read(f"SELECT {_COLUMNS}, booked_at FROM minillm_bookings{where} ORDER BY seq", parameters)
        return [Entry(*cost_from_row(row[:-1]), datetime.datetime.fromisoformat(row[-1])) for row in rows]

    @property
    def count(self) -> int:
        return int(self._read("SELECT count(*) FROM minillm_bookings")[0][0])

    def __len__(self) -> int:
        return self.count

    def total(self) -> Decimal:
        (total,) = self._read("SELECT minillm_sum(usd) FROM minillm_bookings")[0]
        return Decimal(total) if total is not None else Decimal(0)

    def totals_by(self, key: str) -> Dict[Any, Decimal]:
        return self._grouped(f"json_extract(meta, '{_json_path(key)}')")

    def totals_by_model(self) -> Dict[str, Decimal]:
        return self._grouped("CASE WHEN provider = '' THEN model ELSE provider || '/' || model END")

    def totals_by_day(self) -> Dict[datetime.date, Decimal]:
        totals = self._grouped("substr(booked_at, 1, 10)")
        return {datetime.date.fromisoformat(day): usd for day, usd in totals.items()}

    def _grouped(self, expression: str) -> Dict[Any, Decimal]:
        rows = self._read(
            f"SELECT {expression}, minillm_sum(usd) FROM minillm_bookings WHERE usd IS NOT NULL GROUP BY 1"
        )
        return {group: Decimal(total) for group, total in rows}

    # -- holds ------------------------------------------------------------------

    def hold(
        self, hold_id: str, amount: Decimal, meta: Mapping[str, Any], scope: Scope, limit: Decimal, ttl: float
    ) -> Decimal:
        meta_text = meta_json(meta)

        def write(connection: sqlite3.Connection) -> Decimal:
            spent = self._spent(connection, scope)
            check_within(spent, amount, limit, scope)
            connection.execute(
                "INSERT OR REPLACE INTO minillm_holds (hold_id, usd, meta, expires_at) VALUES (?, ?, ?, ?)",
                (hold_id, str(amount), meta_text, time.time() + ttl),
            )
            return spent

        return self._write(write)

    def hold_many(
        self, holds: Sequence[Tuple[str, Decimal, Mapping[str, Any]]], scope: Scope, limit: Decimal, ttl: float
    ) -> Decimal:
        rows = [(hold_id, str(amount), meta_json(meta)) for hold_id, amount, meta in holds]
        total = sum((amount for _, amount, _ in holds), Decimal(0))

        def write(connection: sqlite3.Connection) -> Decimal:
            spent = self._spent(connection, scope)
            check_within(spent, total, limit, scope, len(rows))
            expires = time.time() + ttl
            connection.executemany(
                "INSERT OR REPLACE INTO minillm_holds (hold_id, usd, meta, expires_at) VALUES (?, ?, ?, ?)",
                [(*row, expires) for row in rows],
            )
            return spent

        return self._write(write)

    def release_hold(self, hold_id: str) -> None:
        self._write(lambda c: c.execute("DELETE FROM minillm_holds WHERE hold_id = ?", (hold_id,)))

    def spent(self, scope: Scope) -> Decimal:
        with self._lock:
            return self._spent(self._connect(), scope)

    def _spent(self, connection: sqlite3.Connection, scope: Scope) -> Decimal:
        total, minus = totals_for(scope)
        found = dict(
            connection.execute("SELECT scope, usd FROM minillm_scope_totals WHERE scope IN (?, ?)", (total, minus))
        )
        booked = Decimal(found.get(total) or 0) - Decimal(found.get(minus) or 0)
        where, parameters = self._where(scope)
        held = connection.execute(
            f"SELECT minillm_sum(usd) FROM minillm_holds WHERE expires_at >= ? AND {where}",
            (time.time(), *parameters),
        ).fetchone()[0]
        return booked + Decimal(held or 0)

    @staticmethod
    def _where(scope: Scope) -> Tuple[str, Tuple[Any, ...]]:
        # Scope.matches, in SQL: null and a missing key are one; 1 and 1.0
        # are one number; true is not 1 (json_extract gives 1 for both).
        if scope.key is None:
            return "1", ()
        path = _json_path(scope.key)
        value, kind = f"json_extract(meta, '{path}')", f"json_type(meta, '{path}')"
        if scope.value is None:
            return f"{value} IS NULL", ()
        if isinstance(scope.value, bool):
            return f"{kind} = ?", ("true" if scope.value else "false",)
        return f"{value} = ? AND {kind} NOT IN ('true', 'false')", (scope.value,)

    def prepare(self, scope: Scope) -> None:
        if scope.key is None:
            return
        path = _json_path(scope.key)
        name = "".join(ch if ch.isalnum() else "_" for ch in scope.key)

        def write(connection: sqlite3.Connection) -> None:
            # Bookings are counted through the running totals; only the
            # holds (those in flight) are searched by the key.
            connection.execute(
                f"CREATE INDEX IF NOT EXISTS minillm_holds_meta_{name} ON minillm_holds (json_extract(meta, '{path}'))"
            )

        self._write(write)

    def __repr__(self) -> str:
        return f"SQLiteLedger({self.path!r})"
