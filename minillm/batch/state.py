"""A provider batch job as its journal keeps it: the job, its items, and
each part's progress -- what makes a job that crashed at any point carry
on without sending a batch twice or booking an item twice.

A part (one provider batch) goes ``new`` -> ``uploaded`` (its file's id;
OpenAI only) -> ``creating`` (the moment the create request is sent) ->
``submitted`` (the provider's batch id, written the moment it is known) ->
``done`` (every item of it settled). An item is settled once: its result -- booked, or failed -- is
written right after its booking. Every write is its own transaction.
"""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal
from typing import Any, Dict, List, Optional, Sequence

import attrs

from .items import BatchResult, result_from
from .journal import Journal

__all__ = ["ItemRecord", "JobRecord", "JobState", "PartRecord"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS minillm_provider_jobs (
    job TEXT PRIMARY KEY,
    uid TEXT NOT NULL,
    protocol TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    options TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS minillm_provider_items (
    job TEXT NOT NULL,
    idx INTEGER NOT NULL,
    key TEXT NOT NULL,
    custom_id TEXT NOT NULL,
    part INTEGER NOT NULL,
    caller_id TEXT NOT NULL,
    meta TEXT NOT NULL,
    worst TEXT,
    wire TEXT NOT NULL,
    result TEXT,
    PRIMARY KEY (job, idx)
);
CREATE TABLE IF NOT EXISTS minillm_provider_parts (
    job TEXT NOT NULL,
    part INTEGER NOT NULL,
    state TEXT NOT NULL,
    file_id TEXT,
    sent_at REAL,
    batch_id TEXT,
    PRIMARY KEY (job, part)
);
"""

#: States in which a part's batch may exist at the provider.
SENT = frozenset({"creating", "submitted", "done"})


@attrs.frozen
class JobRecord:
    """A provider batch job."""

    #: random: names the job's bookings and batches, and no other job's
    uid: str
    protocol: str
    #: what the items are for (``/v1/chat/completions``, ``/v1/messages``)
    endpoint: str
    #: the options every item was built with, as JSON text
    options: str


@attrs.frozen
class ItemRecord:
    """One item of a provider batch job."""

    index: int
    key: str
    custom_id: str
    part: int
    #: the caller's id for it
    id: Any
    #: its bookings' meta (the client's own meta aside)
    meta: Dict[str, Any]
    #: its worst case at the batch rate, held by a budget (None: no budget)
    worst: Optional[Decimal]
    #: its result, once settled
    result: Optional[BatchResult] = None
    #: the item as the batch carries it (read from the journal only to be
    #: sent: :meth:`JobState.wires`)
    wire: str = attrs.field(default="", repr=False)


@attrs.frozen
class PartRecord:
    part: int
    state: str
    file_id: Optional[str] = None
    sent_at: Optional[float] = None
    batch_id: Optional[str] = None

    @property
    def sent(self) -> bool:
        """The provider may have its batch."""
        return self.state in SENT


class JobState:
    """The provider batch job ``journal.job`` in ``journal``. Thread-safe
    as the journal is."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.job = journal.job
        journal._ensure(_SCHEMA)

    @staticmethod
    def jobs(journal: Journal) -> List[str]:
        """The names of the provider batch jobs in ``journal``'s file."""
        journal._ensure(_SCHEMA)
        rows = journal._read(lambda db: db.execute("SELECT job FROM minillm_provider_jobs ORDER BY job").fetchall())
        return [str(job) for (job,) in rows]

    # -- reading ---------------------------------------------------------------------

    def record(self) -> Optional[JobRecord]:
        row = self.journal._read(
            lambda db: db.execute(
                "SELECT uid, protocol, endpoint, options FROM minillm_provider_jobs WHERE job = ?", (self.job,)
            ).fetchone()
        )
        return None if row is None else JobRecord(*row)

    def items(self) -> List[ItemRecord]:
        rows = self.journal._read(
            lambda db: db.execute(
                "SELECT idx, key, custom_id, part, caller_id, meta, worst, result FROM minillm_provider_items"
                " WHERE job = ? ORDER BY idx",
                (self.job,),
            ).fetchall()
        )
        return [
            ItemRecord(
                index=index,
                key=key,
                custom_id=custom_id,
                part=part,
                id=json.loads(caller_id),
                meta=json.loads(meta),
                worst=None if worst is None else Decimal(worst),
                result=None if result is None else attrs.evolve(result_from(json.loads(result)), index=index),
            )
            for index, key, custom_id, part, caller_id, meta, worst, result in rows
        ]

    def wires(self, part: int) -> List[str]:
        """The items of ``part`` as the batch carries them, in input order."""
        rows = self.journal._read(
            lambda db: db.execute(
                "SELECT wire FROM minillm_provider_items WHERE job = ? AND part = ? ORDER BY idx", (self.job, part)
            ).fetchall()
        )
        return [str(wire) for (wire,) in rows]

    def parts(self) -> List[PartRecord]:
        rows = self.journal._read(
            lambda db: db.execute(
                "SELECT part, state, file_id, sent_at, batch_id FROM minillm_provider_parts"
                " WHERE job = ? ORDER BY part",
                (self.job,),
            ).fetchall()
        )
        return [PartRecord(*row) for row in rows]

    # -- writing ---------------------------------------------------------------------

    def start(self, job: JobRecord, items: Sequence[ItemRecord]) -> None:
        """Journal a new job with its items, every part ``new``: all or nothing."""
        parts = sorted({item.part for item in items})

        def write(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO minillm_provider_jobs (job, uid, protocol, endpoint, options) VALUES (?, ?, ?, ?, ?)",
                (self.job, job.uid, job.protocol, job.endpoint, job.options),
            )
            db.executemany(
                "INSERT INTO minillm_provider_items (job, idx, key, custom_id, part, caller_id, meta, worst, wire)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        self.job,
                        item.index,
                        item.key,
                        item.custom_id,
                        item.part,
                        json.dumps(item.id, default=str),
                        json.dumps(item.meta, sort_keys=True),
                        None if item.worst is None else str(item.worst),
                        item.wire,
                    )
                    for item in items
                ],
            )
            db.executemany(
                "INSERT INTO minillm_provider_parts (job, part, state) VALUES (?, ?, 'new')",
                [(self.job, part) for part in parts],
            )

        self.journal._write(write)

    def uploaded(self, part: int, file_id: str) -> None:
        self._part(part, "state = 'uploaded', file_id = ?", file_id)

    def creating(self, part: int, sent_at: float) -> None:
        """The create request of ``part`` is about to be sent: from now on
        the provider may have its batch."""
        self._part(part, "state = 'creating', sent_at = ?", sent_at)

    def not_created(self, part: int) -> None:
        """The create request of ``part`` certainly made no batch."""
        self._part(part, "state = CASE WHEN file_id IS NULL THEN 'new' ELSE 'uploaded' END, sent_at = NULL")

    def submitted(self, part: int, batch_id: str) -> None:
        self._part(part, "state = 'submitted', batch_id = ?", batch_id)

    def done(self, part: int) -> None:
        self._part(part, "state = 'done'")

    def settled(self, index: int, result: BatchResult) -> None:
        """Item ``index`` is settled as ``result`` (once: a second is ignored)."""
        text = json.dumps(result.to_dict(), default=str)
        self.journal._write(
            lambda db: (
                db.execute(
                    "UPDATE minillm_provider_items SET result = ? WHERE job = ? AND idx = ? AND result IS NULL",
                    (text, self.job, index),
                )
                and None
            )
        )

    def _part(self, part: int, assignments: str, *values: Any) -> None:
        self.journal._write(
            lambda db: (
                db.execute(
                    f"UPDATE minillm_provider_parts SET {assignments} WHERE job = ? AND part = ?",
                    (*values, self.job, part),
                )
                and None
            )
        )
