"""The fleet ledger: :class:`PostgresLedger`, for workers on many machines.

PostgreSQL with psycopg 3 (``pip install "minillm[postgres]"``), imported
when the ledger is first used. Money is ``NUMERIC`` (exact), ``meta`` is
``JSONB``. A budget's check-and-hold runs under a transaction-scoped
advisory lock, so it is atomic across every process that shares the
database. A write that fails because the connection broke is retried on a
new connection with the same booking id -- it is recorded once even if the
first attempt did commit.
"""

from __future__ import annotations

import datetime
import json
import os
import threading
import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, TypeVar

from ...errors import ConfigurationError, LedgerError
from ...extras import require
from ...models import CostInfo
from ...redaction import Redactor
from .base import (
    BaseLedger,
    Entry,
    Scope,
    booking_id_of,
    check_meta_key,
    check_within,
    close_when_dropped,
    group_key,
    instant,
    meta_json,
    utc_now,
)
from .scopes import counted, rebuild, scope_names, totals_for
from .sql import ADDED_COLUMNS, BOOKING_COLUMNS, ORIGINAL, between, book_correction, booking_values, cost_from_row

if TYPE_CHECKING:  # pragma: no cover
    import psycopg

__all__ = ["PostgresLedger"]

T = TypeVar("T")

#: The advisory lock that serialises budget holds (an arbitrary constant: "mllm").
_HOLD_LOCK = 0x6D6C6C6D

_SCHEMA = """
CREATE TABLE IF NOT EXISTS minillm_bookings (
    seq BIGSERIAL PRIMARY KEY,
    booking_id TEXT NOT NULL UNIQUE,
    booked_at TIMESTAMPTZ NOT NULL,
    usd NUMERIC,
    resolution TEXT NOT NULL,
    prompt_tokens BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    total_tokens BIGINT NOT NULL,
    cached_tokens BIGINT NOT NULL,
    reasoning_tokens BIGINT NOT NULL,
    model TEXT NOT NULL,
    provider TEXT NOT NULL,
    response_id TEXT,
    byok BOOLEAN NOT NULL,
    cancelled BOOLEAN NOT NULL,
    meta JSONB NOT NULL,
    held_usd NUMERIC
);
CREATE INDEX IF NOT EXISTS minillm_bookings_booked_at ON minillm_bookings (booked_at);
{added}
CREATE TABLE IF NOT EXISTS minillm_holds (
    hold_id TEXT PRIMARY KEY,
    usd NUMERIC NOT NULL,
    meta JSONB NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL
);
"""

_TOTALS = "CREATE TABLE minillm_scope_totals (scope TEXT PRIMARY KEY, usd NUMERIC NOT NULL)"
_ADD_TO_TOTAL = (
    "INSERT INTO minillm_scope_totals (scope, usd) VALUES (%s, %s) "
    "ON CONFLICT (scope) DO UPDATE SET usd = minillm_scope_totals.usd + excluded.usd"
)

_SCHEMA = _SCHEMA.replace(
    "{added}",
    "".join(
        f"ALTER TABLE minillm_bookings ADD COLUMN IF NOT EXISTS {name} {declaration};\n"
        for name, _, declaration in ADDED_COLUMNS
    ),
)

_COLUMNS = ", ".join(BOOKING_COLUMNS)
_ORIGINAL = ORIGINAL.format(mark="%s")
_INSERT = (
    f"INSERT INTO minillm_bookings ({_COLUMNS}, booked_at, held_usd) "
    f"VALUES ({', '.join('%s' for _ in BOOKING_COLUMNS)}, %s, %s) ON CONFLICT (booking_id) DO NOTHING"
)


class PostgresLedger(BaseLedger):
    """A ledger in PostgreSQL, shared by every process that connects to it.

    :param dsn: a libpq connection string or URL
        (``"postgresql://user:password@host/db"``); a password in it never
        appears in an error or ``repr``.
    :param connect_timeout: seconds to wait for a connection.
    """

    def __init__(self, dsn: str, *, connect_timeout: float = 10.0) -> None:
        if not isinstance(dsn, str) or not dsn.strip():
            raise ConfigurationError("PostgresLedger needs a connection string")
        self._dsn = dsn
        self._connect_timeout = connect_timeout
        self._redactor = Redactor(_secrets_of(dsn))
        self._lock = threading.RLock()
        self._connection: Optional[psycopg.Connection[Any]] = None
        self._pid: Optional[int] = None

    # -- the connection ---------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        connection = self._connection
        if connection is not None and self._pid == os.getpid() and not connection.closed:
            return connection
        psycopg = require("psycopg", what="PostgresLedger")
        try:
            connection = psycopg.connect(self._dsn, autocommit=True, connect_timeout=int(self._connect_timeout))
            with connection.transaction():
                # Two processes creating the tables at once would collide.
                connection.execute("SELECT pg_advisory_xact_lock(%s)", (_HOLD_LOCK,))
                connection.execute(_SCHEMA)
                _add_running_totals(connection)
        except psycopg.Error as exc:
            raise LedgerError(self._redactor.scrub(f"cannot open the PostgreSQL ledger: {exc}")) from None
        self._connection, self._pid = connection, os.getpid()
        close_when_dropped(self, connection)
        return connection

    def _run(self, work: Callable[[psycopg.Connection[Any]], T], *, write: bool) -> T:
        """Run ``work`` in one transaction; on a broken connection, once more
        on a new one (writes must be idempotent)."""
        psycopg = require("psycopg", what="PostgresLedger")

        with self._lock:
            for attempt in range(2):
                connection = self._connect()
                try:
                    with connection.transaction():
                        return work(connection)
                except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                    self._drop()
                    if attempt == 1:
                        what = "write to" if write else "read"
                        raise LedgerError(self._redactor.scrub(f"cannot {what} the PostgreSQL ledger: {exc}")) from None
                except psycopg.Error as exc:
                    raise LedgerError(self._redactor.scrub(f"the PostgreSQL ledger failed: {exc}")) from None
            raise AssertionError("unreachable")  # pragma: no cover

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and self._pid == os.getpid():
            try:
                connection.close()
            except Exception:  # pragma: no cover - it is being dropped
                pass

    def close(self) -> None:
        with self._lock:
            self._drop()

    def __getstate__(self) -> Dict[str, Any]:
        return {"dsn": self._dsn, "connect_timeout": self._connect_timeout}

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__init__(state["dsn"], connect_timeout=state["connect_timeout"])  # type: ignore[misc]

    # -- booking ------------------------------------------------------------------

    def record_once(self, cost: CostInfo, meta: Dict[str, Any]) -> bool:
        """Book ``cost`` with ``meta`` -- once per booking id, however often
        it is written -- replacing the budget's hold for it."""
        booking_id = booking_id_of(cost, "PostgresLedger")
        values = booking_values(booking_id, cost, meta_json(meta or {}), money=lambda usd: usd)
        booked_at = utc_now()

        names = scope_names(meta or {})

        def write(connection: psycopg.Connection[Any]) -> bool:
            if cost.corrects is not None:
                # Two processes correcting one booking at once: the unique
                # booking id makes the second insert wait for the first, then
                # insert nothing.
                return book_correction(
                    cost,
                    connection.execute(_ORIGINAL, (cost.corrects,)).fetchone(),
                    lambda: connection.execute(_INSERT, (*values, booked_at, None)).rowcount,
                    lambda names, amount: _add_to_totals(connection, names, amount),
                )
            held = connection.execute(
                "DELETE FROM minillm_holds WHERE hold_id = %s RETURNING usd", (booking_id,)
            ).fetchone()
            inserted = connection.execute(_INSERT, (*values, booked_at, held[0] if held else None)).rowcount
            amount = counted(cost, held[0] if held else None)
            if inserted and amount is not None:  # a booking written twice counts once
                _add_to_totals(connection, names, amount)
            return bool(inserted)

        return self._run(write, write=True)

    # -- queries ------------------------------------------------------------------

    def _query(self, sql: str, parameters: Tuple[Any, ...] = ()) -> List[Any]:
        return self._run(lambda c: c.execute(sql, parameters).fetchall(), write=False)

    @property
    def records(self) -> List[Tuple[CostInfo, Dict[str, Any]]]:
        return [cost_from_row(row) for row in self._query(f"SELECT {_COLUMNS} FROM minillm_bookings ORDER BY seq")]

    def entries(self, since: Any = None, until: Any = None) -> List[Entry]:
        where, parameters = between(instant(since, "since"), instant(until, "until"), "%s", text=False)
        rows = self._query(f"SELECT {_COLUMNS}, booked_at FROM minillm_bookings{where} ORDER BY seq", parameters)
        return [Entry(*cost_from_row(row[:-1]), row[-1].astimezone(datetime.timezone.utc)) for row in rows]

    @property
    def count(self) -> int:
        return int(self._query("SELECT count(*) FROM minillm_bookings")[0][0])

    def __len__(self) -> int:
        return self.count

    def total(self) -> Decimal:
        (total,) = self._query("SELECT sum(usd) FROM minillm_bookings")[0]
        return Decimal(total) if total is not None else Decimal(0)

    def totals_by(self, key: str) -> Dict[Any, Decimal]:
        check_meta_key(key)
        rows = self._query("SELECT meta -> %s, sum(usd) FROM minillm_bookings WHERE usd IS NOT NULL GROUP BY 1", (key,))
        return {group_key(group): Decimal(total) for group, total in rows}

    def totals_by_model(self) -> Dict[str, Decimal]:
        rows = self._query(
            "SELECT CASE WHEN provider = '' THEN model ELSE provider || '/' || model END, sum(usd) "
            "FROM minillm_bookings WHERE usd IS NOT NULL GROUP BY 1"
        )
        return {group: Decimal(total) for group, total in rows}

    def totals_by_day(self) -> Dict[datetime.date, Decimal]:
        rows = self._query(
            "SELECT (booked_at AT TIME ZONE 'UTC')::date, sum(usd) FROM minillm_bookings "
            "WHERE usd IS NOT NULL GROUP BY 1"
        )
        return {day: Decimal(total) for day, total in rows}

    # -- holds --------------------------------------------------------------------

    def hold(
        self, hold_id: str, amount: Decimal, meta: Mapping[str, Any], scope: Scope, limit: Decimal, ttl: float
    ) -> Decimal:
        meta_text = meta_json(meta)

        def write(connection: psycopg.Connection[Any]) -> Decimal:
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (_HOLD_LOCK,))
            spent = self._spent(connection, scope)
            check_within(spent, amount, limit, scope)
            connection.execute(
                "INSERT INTO minillm_holds (hold_id, usd, meta, expires_at) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (hold_id) DO UPDATE SET usd = excluded.usd, expires_at = excluded.expires_at",
                (hold_id, amount, meta_text, time.time() + ttl),
            )
            return spent

        return self._run(write, write=True)

    def hold_many(
        self, holds: Sequence[Tuple[str, Decimal, Mapping[str, Any]]], scope: Scope, limit: Decimal, ttl: float
    ) -> Decimal:
        rows = [(hold_id, amount, meta_json(meta)) for hold_id, amount, meta in holds]
        total = sum((amount for _, amount, _ in holds), Decimal(0))

        def write(connection: psycopg.Connection[Any]) -> Decimal:
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (_HOLD_LOCK,))
            spent = self._spent(connection, scope)
            check_within(spent, total, limit, scope, len(rows))
            expires = time.time() + ttl
            with connection.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO minillm_holds (hold_id, usd, meta, expires_at) VALUES (%s, %s, %s, %s) "
                    "ON CONFLICT (hold_id) DO UPDATE SET usd = excluded.usd, expires_at = excluded.expires_at",
                    [(*row, expires) for row in rows],
                )
            return spent

        return self._run(write, write=True)

    def release_hold(self, hold_id: str) -> None:
        self._run(lambda c: c.execute("DELETE FROM minillm_holds WHERE hold_id = %s", (hold_id,)), write=True)

    def spent(self, scope: Scope) -> Decimal:
        return self._run(lambda c: self._spent(c, scope), write=False)

    @staticmethod
    def _spent(connection: psycopg.Connection[Any], scope: Scope) -> Decimal:
        total, minus = totals_for(scope)
        found = dict(
            connection.execute(
                "SELECT scope, usd FROM minillm_scope_totals WHERE scope = %s OR scope = %s", (total, minus)
            ).fetchall()
        )
        booked = Decimal(found.get(total) or 0) - Decimal(found.get(minus) or 0)
        # The holds in flight, by Scope.matches in SQL: null and a missing
        # key are one. The key is written out (check_meta_key allows no
        # quote) so that the index prepare() made on it applies.
        parameters: Tuple[Any, ...] = ()
        if scope.key is None:
            where = "TRUE"
        elif scope.value is None:
            key = check_meta_key(scope.key)
            where = f"(meta -> '{key}' IS NULL OR meta -> '{key}' = 'null'::jsonb)"
        else:
            where, parameters = f"meta -> '{check_meta_key(scope.key)}' = %s::jsonb", (json.dumps(scope.value),)
        held = connection.execute(
            f"SELECT sum(usd) FROM minillm_holds WHERE expires_at >= %s AND {where}", (time.time(), *parameters)
        ).fetchone()
        return booked + Decimal((held and held[0]) or 0)

    def prepare(self, scope: Scope) -> None:
        if scope.key is None:
            return
        key = check_meta_key(scope.key)
        name = "".join(ch if ch.isalnum() else "_" for ch in key)

        def write(connection: psycopg.Connection[Any]) -> None:
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (_HOLD_LOCK,))
            # Bookings are counted through the running totals; only the
            # holds (those in flight) are searched by the key.
            connection.execute(
                f"CREATE INDEX IF NOT EXISTS minillm_holds_meta_{name} ON minillm_holds ((meta -> '{key}'))"
            )

        self._run(write, write=True)

    def __repr__(self) -> str:
        return f"PostgresLedger({self._redactor.scrub(self._dsn)!r})"


def _add_to_totals(connection: psycopg.Connection[Any], names: List[str], amount: Decimal) -> None:
    # The names are sorted: concurrent bookings lock the totals they share
    # in one order, and never deadlock.
    with connection.cursor() as cursor:
        cursor.executemany(_ADD_TO_TOTAL, [(name, amount) for name in names])


def _add_running_totals(connection: psycopg.Connection[Any]) -> None:
    """Create the running totals of a database from before budgets kept
    them, adding up its bookings once (under the schema's lock)."""
    (exists,) = connection.execute("SELECT to_regclass('minillm_scope_totals') IS NOT NULL").fetchone()
    if exists:
        return
    connection.execute(_TOTALS)
    rows = connection.execute("SELECT meta, usd, resolution, held_usd FROM minillm_bookings").fetchall()
    totals = rebuild((meta, usd, resolution == "partial", held) for meta, usd, resolution, held in rows)
    if totals:
        with connection.cursor() as cursor:
            cursor.executemany(_ADD_TO_TOTAL, list(totals.items()))


def _secrets_of(dsn: str) -> List[Optional[str]]:
    """The password of a connection string (URL or key=value form)."""
    from urllib.parse import urlsplit

    found: List[Optional[str]] = []
    try:
        found.append(urlsplit(dsn).password)
    except ValueError:
        pass
    for part in dsn.split():
        if part.startswith("password="):
            found.append(part.split("=", 1)[1].strip("'\""))
    return found
