"""The state store: runs, the audit of every change (with its before-value), and the run lock.

It is the tool's own database (a SQLite file in the state folder by default), never the ERP. The lock
is an OS file lock through ``filelock``: it works on Windows and Linux and is released by the OS
when a run dies, so a crashed run never blocks the next night.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from filelock import FileLock, Timeout

from .errors import LockHeld, SourceUnavailable
from .model import Change

log = logging.getLogger(__name__)

metadata = sa.MetaData()

runs = sa.Table(
    "runs", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("finished_at", sa.DateTime),
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("erp", sa.String(512), nullable=False),  # the ERP URL, password masked
    sa.Column("property", sa.String(64), nullable=False),
    sa.Column("mode", sa.String(8), nullable=False),  # live | test
    sa.Column("baseline", sa.Boolean, nullable=False, default=False),
    sa.Column("status", sa.String(16), nullable=False),  # running | done | failed | guard
    sa.Column("exit_code", sa.Integer),
    sa.Column("message", sa.Text),
    sa.Column("counts", sa.Text),  # JSON
    sa.Column("timings", sa.Text),  # JSON
    sa.Column("statements", sa.Integer),
    sa.Column("pid", sa.Integer),
    sa.Column("host", sa.String(255)),
)

changes = sa.Table(
    "changes", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), nullable=False, index=True),
    sa.Column("customer_id", sa.Integer, nullable=False),
    sa.Column("customer_number", sa.String(32), nullable=False),
    sa.Column("customer_name", sa.String(128), nullable=False),
    sa.Column("before", sa.String(1024)),
    sa.Column("after", sa.String(1024)),
    sa.Column("added", sa.String(1024), nullable=False, default=""),
    sa.Column("removed", sa.String(1024), nullable=False, default=""),
    # pending: about to be written; applied; conflict: the ERP value changed since it was read
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("at", sa.DateTime, nullable=False),
    sa.Index("ix_changes_customer", "customer_number"),
)


@dataclass(slots=True)
class RunRecord:
    id: int
    started_at: dt.datetime
    finished_at: dt.datetime | None
    as_of: dt.date
    mode: str
    baseline: bool
    status: str
    exit_code: int | None
    message: str | None
    counts: dict[str, Any]


class StateStore:
    """Runs and audit in the tool's own database."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self.engine = sa.create_engine(url)
            if self.engine.dialect.name == "sqlite":
                db = self.engine.url.database
                if db and db != ":memory:":
                    Path(db).parent.mkdir(parents=True, exist_ok=True)
                sa.event.listen(self.engine, "connect", _sqlite_durable_wal)
            metadata.create_all(self.engine)
        except sa.exc.SQLAlchemyError as exc:
            raise SourceUnavailable(f"cannot open the state store {url}: "
                                    f"{str(getattr(exc, 'orig', exc)).splitlines()[0]}") from None

    def close(self) -> None:
        self.engine.dispose()

    # -- runs -------------------------------------------------------------------------------------
    def has_live_run(self, erp: str, prop: str) -> bool:
        """Whether a live run already wrote this property in this ERP (so this one is no baseline)."""
        stmt = (sa.select(sa.func.count()).select_from(runs)
                .where(runs.c.erp == erp, runs.c.property == prop, runs.c.mode == "live",
                       runs.c.status == "done"))
        with self.engine.connect() as conn:
            return bool(conn.execute(stmt).scalar())

    def begin_run(self, *, as_of: dt.date, erp: str, prop: str, mode: str, baseline: bool) -> int:
        with self.engine.begin() as conn:
            return int(conn.execute(runs.insert().values(
                started_at=_now(), as_of=as_of, erp=erp, property=prop, mode=mode,
                baseline=baseline, status="running", pid=os.getpid(),
                host=socket.gethostname())).inserted_primary_key[0])

    def finish_run(self, run_id: int, *, status: str, exit_code: int, message: str | None = None,
                   counts: dict[str, Any] | None = None, timings: dict[str, float] | None = None,
                   statements: int | None = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(runs.update().where(runs.c.id == run_id).values(
                finished_at=_now(), status=status, exit_code=exit_code, message=message,
                counts=json.dumps(counts or {}), timings=json.dumps(timings or {}),
                statements=statements))

    def unfinished_runs(self) -> list[int]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(runs.c.id).where(runs.c.status == "running"))
                        .scalars())

    def mark_abandoned(self, run_ids: Sequence[int]) -> None:
        if run_ids:
            with self.engine.begin() as conn:
                conn.execute(runs.update().where(runs.c.id.in_(run_ids)).values(
                    status="failed", exit_code=1, finished_at=_now(),
                    message="the process ended before the run finished"))

    def runs(self, limit: int = 20) -> list[RunRecord]:
        stmt = sa.select(runs).order_by(runs.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [RunRecord(r.id, r.started_at, r.finished_at, r.as_of, r.mode, r.baseline,
                              r.status, r.exit_code, r.message, json.loads(r.counts or "{}"))
                    for r in conn.execute(stmt)]

    # -- audit ------------------------------------------------------------------------------------
    def record_pending(self, run_id: int, chunk: Sequence[Change],
                       settle: Sequence[tuple[Sequence[int], str]] = ()) -> None:
        """Before a chunk is written to the ERP: its before/after values, marked pending.

        ``settle`` marks the previous chunk's outcome in the same transaction (one commit saved
        per chunk; the order of the two is what keeps the audit true after a kill).
        """
        at = _now()
        with self.engine.begin() as conn:
            for ids, status in settle:
                self._mark(conn, run_id, ids, status)
            conn.execute(changes.insert(), [
                {"run_id": run_id, "customer_id": c.customer_id, "customer_number": c.number,
                 "customer_name": c.name, "before": c.before, "after": c.after,
                 "added": ";".join(c.added), "removed": ";".join(c.removed),
                 "status": "pending", "at": at} for c in chunk])

    def mark(self, run_id: int, customer_ids: Sequence[int], status: str) -> None:
        if customer_ids:
            with self.engine.begin() as conn:
                self._mark(conn, run_id, customer_ids, status)

    @staticmethod
    def _mark(conn: sa.Connection, run_id: int, customer_ids: Sequence[int], status: str) -> None:
        for i in range(0, len(customer_ids), 500):
            conn.execute(changes.update()
                         .where(changes.c.run_id == run_id,
                                changes.c.customer_id.in_(customer_ids[i:i + 500]))
                         .values(status=status, at=_now()))

    def run_record(self, run_id: int) -> RunRecord | None:
        stmt = sa.select(runs).where(runs.c.id == run_id)
        with self.engine.connect() as conn:
            r = conn.execute(stmt).first()
        if r is None:
            return None
        return RunRecord(r.id, r.started_at, r.finished_at, r.as_of, r.mode, r.baseline, r.status,
                         r.exit_code, r.message, json.loads(r.counts or "{}"))

    def pending(self) -> list[dict[str, Any]]:
        """Audit rows written before an ERP transaction whose outcome was never recorded."""
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(
                sa.select(changes).where(changes.c.status == "pending").order_by(changes.c.id))]

    def resolve(self, change_ids: Sequence[int], status: str) -> None:
        with self.engine.begin() as conn:
            for i in range(0, len(change_ids), 500):
                conn.execute(changes.update().where(changes.c.id.in_(change_ids[i:i + 500]))
                             .values(status=status, at=_now()))

    def history(self, *, run_id: int | None = None, customer: str | None = None,
                limit: int | None = 1000) -> list[dict[str, Any]]:
        stmt = sa.select(changes).order_by(changes.c.id)
        if run_id is not None:
            stmt = stmt.where(changes.c.run_id == run_id)
        if customer is not None:
            stmt = stmt.where(changes.c.customer_number == customer)
        with self.engine.connect() as conn:
            if limit is not None:
                stmt = stmt.limit(limit)
            return [dict(r._mapping) for r in conn.execute(stmt)]


@contextmanager
def run_lock(state_dir: Path) -> Iterator[None]:
    """Hold the run lock for the state folder; a second run gets LockHeld (exit 4) at once."""
    state_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(state_dir / "run.lock"), timeout=0)
    info = state_dir / "run.lock.json"
    try:
        lock.acquire()
    except Timeout:
        holder = ""
        try:
            data = json.loads(info.read_text(encoding="utf-8"))
            holder = (f" (pid {data.get('pid')} on {data.get('host')}, "
                      f"since {data.get('since')})")
        except (OSError, ValueError):
            pass
        raise LockHeld(f"another keyservices run holds the lock{holder}; it is still running. "
                       f"Wait for it to finish; 'keyservices status' shows the last runs.") from None
    if info.exists():  # the OS released the lock of a process that died without cleaning up
        try:
            stale = json.loads(info.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            stale = {}
        log.warning("taking over the run lock left by pid %s on %s (since %s): that process "
                    "ended without releasing it", stale.get("pid"), stale.get("host"),
                    stale.get("since"))
    try:
        info.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                    "since": _now().isoformat(timespec="seconds")}),
                        encoding="utf-8")
        yield
    finally:
        try:
            info.unlink()
        except OSError:
            pass
        lock.release()


def _sqlite_durable_wal(dbapi_connection: Any, _record: Any) -> None:
    """WAL with synchronous=FULL: one fsync per commit instead of several, still durable on power
    loss (the audit must never lose a pending row the ERP may already hold)."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


def _now() -> dt.datetime:
    return dt.datetime.now().replace(microsecond=0)
