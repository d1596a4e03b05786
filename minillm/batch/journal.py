"""The journal: a SQLite file that remembers what a batch job has done, so
that the job run again after a crash carries on instead of starting over.

One file may hold several jobs, each under its name. A job is *bound* to
the configuration its results depend on (:func:`job_config`): running it
again with another model, endpoint or price is refused rather than mixing
two kinds of answers. Every write is its own transaction, made before the
work it records is let go of.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, TypeVar, Union

import attrs

from ..accounting._sqlite import open_shared, transaction, while_busy
from ..accounting.ledgers.base import close_when_dropped
from ..accounting.pricing import TokenPrice
from ..errors import ConfigurationError, LedgerError
from ..routes import Route
from ..transports.base import endpoint_of
from .items import BatchResult, result_from

__all__ = ["Journal", "job_config"]

T = TypeVar("T")

_JOURNAL_TIMEOUT = 30.0

_JOURNAL_SCHEMA = """
CREATE TABLE IF NOT EXISTS minillm_journal (
    job TEXT NOT NULL,
    item TEXT NOT NULL,
    result TEXT NOT NULL,
    finished_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (job, item)
);
CREATE TABLE IF NOT EXISTS minillm_journal_jobs (
    job TEXT PRIMARY KEY,
    config TEXT NOT NULL
);
"""


class Journal:
    """Which items of which job are done, in a SQLite file.

    :param path: the journal file (created when missing).
    :param job: the job's name: one file may journal several jobs.
    """

    def __init__(self, path: Union[str, os.PathLike[str]], job: str = "default") -> None:
        self.path = os.fspath(path)
        self.job = job
        self._lock = threading.Lock()
        try:
            self._db = open_shared(self.path, timeout=_JOURNAL_TIMEOUT, schema=_JOURNAL_SCHEMA)
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot open the journal {self.path!r}: {exc}") from exc
        close_when_dropped(self, self._db)

    def bind(self, config: Mapping[str, Any]) -> None:
        """Tie this job to ``config`` (what its results depend on besides
        the items: models, endpoints, prices). The first run records it; a
        later run with another config is refused, because its results would
        be mixed with answers from another model, or priced another way.

        :raises ConfigurationError: the job was journaled with another config.
        """
        text = json.dumps(config, sort_keys=True, default=str)

        def write(db: sqlite3.Connection) -> str:
            db.execute("INSERT OR IGNORE INTO minillm_journal_jobs (job, config) VALUES (?, ?)", (self.job, text))
            (kept,) = db.execute("SELECT config FROM minillm_journal_jobs WHERE job = ?", (self.job,)).fetchone()
            return str(kept)

        kept = self._write(write)
        if kept != text:
            was, now = json.loads(kept), json.loads(text)
            changed = sorted(key for key in set(was) | set(now) if was.get(key) != now.get(key))
            raise ConfigurationError(
                f"the journal {self.path!r} holds job {self.job!r} as run with other settings ("
                + "; ".join(f"{key}: {_shown(was.get(key))} then, {_shown(now.get(key))} now" for key in changed)
                + "): its results would be mixed with these. Use another journal (or job name) for the new "
                "settings, or delete the journal to start the job over."
            )

    def done(self) -> Dict[str, BatchResult]:
        """The finished items of this job, by key."""
        rows = self._read(
            lambda db: db.execute("SELECT item, result FROM minillm_journal WHERE job = ?", (self.job,)).fetchall()
        )
        return {item: result_from(json.loads(result)) for item, result in rows}

    def finish(self, key: str, result: BatchResult) -> None:
        """Record that item ``key`` is done (once: a second record is ignored)."""
        text = json.dumps(result.to_dict(), default=str)
        self._write(
            lambda db: db.execute(
                "INSERT OR IGNORE INTO minillm_journal (job, item, result) VALUES (?, ?, ?)", (self.job, key, text)
            )
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- for the journal's users in this package ---------------------------------------

    def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work(connection)`` as one transaction, tried again while another
        process holds the file.

        :raises LedgerError: it could not be written.
        """
        with self._lock:
            try:
                return transaction(self._db, work, _JOURNAL_TIMEOUT)
            except sqlite3.Error as exc:
                raise LedgerError(f"cannot write to the journal {self.path!r}: {exc}") from exc

    def _ensure(self, schema: str) -> None:
        """Create the tables of ``schema`` (idempotent DDL) if they are missing."""

        def attempt() -> None:
            try:
                self._db.executescript("BEGIN IMMEDIATE;" + schema + "COMMIT;")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

        with self._lock:
            try:
                while_busy(attempt, _JOURNAL_TIMEOUT)
            except sqlite3.Error as exc:
                raise LedgerError(f"cannot write to the journal {self.path!r}: {exc}") from exc

    def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            try:
                return while_busy(lambda: work(self._db), _JOURNAL_TIMEOUT)
            except sqlite3.Error as exc:
                raise LedgerError(f"cannot read the journal {self.path!r}: {exc}") from exc


def _shown(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def job_config(routes: Sequence[Route]) -> Dict[str, Any]:
    """What a batch job's results depend on besides its items: the model,
    wire API and endpoint of every route it may use (credentials and query
    never included), and the price each route is booked at."""
    return {
        "models": [route.model for route in routes],
        "apis": [route.adapter.api for route in routes],
        "endpoints": [endpoint_of(route.base_url) for route in routes],
        "prices": [_price_of(route.pricer.price) for route in routes],
    }


def _price_of(price: Optional[TokenPrice]) -> Optional[Dict[str, Optional[str]]]:
    if price is None:
        return None
    return {name: None if value is None else str(value) for name, value in attrs.asdict(price).items()}
