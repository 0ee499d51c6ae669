"""The state store: runs, the audit of every change (with its before-value), the opportunity life
cycle. It is the tool's own database (a SQLite file in the state folder by default), never the ERP.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import socket
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from ..credentials import mask_url
from ..errors import ConfigError, SourceUnavailable
from ..model import Change
from .alerts import AlertTable
from .audit import AuditRows, causes_of, codes_of, stream_won_lost, values_of
from .failures import named_failures, state_error
from .known import KnownErp, as_date, live_history
from .lock import writable_folder
from .opportunities import OpportunityTable
from .schema import (
    AUDIT_TABLES,
    changes,
    consistency,
    metadata,
    migrate,
    missing_tables,
    runs,
    verify,
)

log = logging.getLogger(__name__)
WAL_AUTOCHECKPOINT = 1000  # pages (SQLite's default)


# what a run record shows: columns every version's store has (a reader does not migrate)
_RECORD = (runs.c.id, runs.c.started_at, runs.c.finished_at, runs.c.as_of, runs.c.mode,
           runs.c.baseline, runs.c.status, runs.c.exit_code, runs.c.message, runs.c.counts)


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


class StateStore(OpportunityTable, AlertTable):
    """Runs and audit in the tool's own database."""

    flags_runs: bool  # the runs carry the pending mark (False: a reader on an older store)
    company: str | None = None  # whose runs these are (``begin_run``): on every audit row

    def __init__(self, url: str | URL) -> None:
        self.url = url
        try:
            self.engine = sa.create_engine(url)
            if self.engine.dialect.name == "sqlite":
                db = self.engine.url.database
                if db and db != ":memory:":
                    writable_folder(Path(db).parent, "the state store")
                sa.event.listen(self.engine, "connect", _sqlite_durable_wal)
            sa.event.listen(self.engine, "handle_error", named_failures(url))
            problems = missing_tables(self.engine)
            if not problems:  # a new store is created; an existing one only gains later tables
                metadata.create_all(self.engine)
                migrate(self.engine)
                problems = verify(self.engine) or consistency(self.engine)
            self.flags_runs = True  # migrated: the runs carry the pending mark
        except sa.exc.SQLAlchemyError as exc:
            raise state_error(url, exc, "open") from None
        if problems:
            self.engine.dispose()
            raise ConfigError(
                f"the state store {mask_url(url)} is not as this version of keyservices expects "
                f"({'; '.join(problems)}); nothing was read from the ERP or written, and the "
                "store was not repaired. Restore it from a backup, or point state.dir (or "
                "state.url) at a new, empty location (the first run there is a baseline: it "
                "fills empty values only)")

    @classmethod
    def reader(cls, url: str | URL) -> StateStore | None:
        """The store opened for reading only (a dry run writes nothing anywhere: no file, no
        table, no migration); None when a SQLite store does not exist yet."""
        if not store_exists(url):
            return None
        store = cls.__new__(cls)
        store.url = url
        store.engine = sa.create_engine(url)
        try:
            present = set(sa.inspect(store.engine).get_table_names())
        except sa.exc.SQLAlchemyError as exc:
            store.engine.dispose()
            raise SourceUnavailable(f"cannot read the state store {mask_url(url)}: "
                                    f"{str(getattr(exc, 'orig', exc)).splitlines()[0]}") from None
        if not present & {t.name for t in metadata.sorted_tables}:  # empty: no store yet
            store.engine.dispose()
            return None
        if not AUDIT_TABLES <= present and not missing_tables(store.engine):
            store.engine.dispose()  # a first run stopped while making it: still no store
            return None
        problems = missing_tables(store.engine)
        if problems:  # half a store is not an empty one: its history is gone, not absent
            store.engine.dispose()
            raise ConfigError(f"the state store {mask_url(url)} is damaged ({'; '.join(problems)})"
                              "; nothing was read from the ERP or written. Restore it from a "
                              "backup, or point state.dir (or state.url) at a new, empty "
                              "location")
        # not migrated: a store an earlier version made keeps the pending mark on each row
        store.flags_runs = "unsettled" in {c["name"] for c in
                                           sa.inspect(store.engine).get_columns("runs")}
        return store

    @classmethod
    def for_reading(cls, url: str | URL) -> StateStore | None:
        """The store for a command that only reads it (history, status): opened and upgraded as
        usual, or, where that cannot be (a read-only folder, a damaged store), read as it is.
        None when there is no store yet."""
        if not store_exists(url):
            return None
        try:
            return cls(url)
        except (ConfigError, SourceUnavailable):
            return cls.reader(url)

    def close(self) -> None:
        self.engine.dispose()

    # -- runs -------------------------------------------------------------------------------------
    def live_history(self) -> list[KnownErp]:
        """Each (ERP, property) that a finished live run wrote: what this store knows."""
        return live_history(self.engine)

    def begin_run(self, *, as_of: dt.date, erp: str, prop: str, mode: str, baseline: bool,
                  erp_id: str | None = None, attr_id: int | None = None,
                  company: str | None = None) -> int:
        """A run record; ``erp_id`` and ``attr_id`` tie every audit row of the run to one ERP
        and one attribute (rollback and settling act only there); ``company`` names it (and
        its audit rows), and the rows of a store made before companies were recorded."""
        self.company = company
        with self.engine.begin() as conn:
            if company is not None and conn.execute(
                    sa.select(runs.c.id).where(runs.c.company.is_(None)).limit(1)).first():
                conn.execute(runs.update().where(runs.c.company.is_(None)).values(company=company))
                conn.execute(changes.update().where(changes.c.company.is_(None))
                             .values(company=company))
            key = conn.execute(runs.insert().values(
                started_at=_now(), as_of=as_of, erp=erp, property=prop, mode=mode,
                baseline=baseline, status="running", pid=os.getpid(), host=socket.gethostname(),
                erp_id=erp_id, attr_id=attr_id, company=company)).inserted_primary_key
            if key is None:  # only for an executemany or a table without a primary key
                raise RuntimeError("the state store gave no id for the new run")
            return int(key[0])

    def target(self, run_id: int) -> KnownErp | None:
        """The ERP and attribute a run wrote (None: no such run)."""
        present = {c["name"] for c in sa.inspect(self.engine).get_columns("runs")}
        later = [runs.c[name] if name in present else sa.null() for name in ("erp_id", "attr_id")]
        with self.engine.connect() as conn:  # a reader's store may predate erp_id and attr_id
            r = conn.execute(sa.select(later[0], runs.c.erp, runs.c.property, later[1],
                                       runs.c.as_of).where(runs.c.id == run_id)).first()
        return None if r is None else KnownErp(r[0], r[1], r[2], r[3], as_date(r[4]))

    def unsettled_runs(self) -> dict[int, KnownErp]:
        """The runs whose write was never settled (killed or failed mid-write), and where each
        wrote: settling reads the values in that ERP only."""
        stmt = (sa.select(runs.c.id, runs.c.erp_id, runs.c.erp, runs.c.property,
                          runs.c.attr_id, runs.c.as_of)
                .where(runs.c.unsettled.is_(True)).order_by(runs.c.id))
        with self.engine.connect() as conn:
            return {r[0]: KnownErp(r[1], r[2], r[3], r[4], as_date(r[5]))
                    for r in conn.execute(stmt)}

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
        stmt = sa.select(*_RECORD).order_by(runs.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [RunRecord(r.id, r.started_at, r.finished_at, r.as_of, r.mode, r.baseline,
                              r.status, r.exit_code, r.message, _counts(r.counts, r.id))
                    for r in conn.execute(stmt)]

    # -- audit ------------------------------------------------------------------------------------
    def audit_rows(self, run_id: int, planned: Sequence[Change]) -> AuditRows:
        """The audit rows of a write, to be stored chunk by chunk (``store_pending``).

        Each row holds the status it will have once its run is settled (applied): the pending
        mark is the run's (``runs.unsettled``), so settling does not write the rows again (at
        100k values that second pass cost a third of the UPDATEs).
        """
        return AuditRows(self.engine.dialect, run_id, planned, "applied", _now(), self.company)

    def store_pending(self, run_id: int, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
        """Before changes are written to the ERP: their audit rows (``AuditRows.statements``),
        stored with their run marked unsettled, in one transaction committed with
        ``synchronous=FULL`` (a power cut after the ERP's commit must not lose them)."""
        if not statements:
            return
        with _write_step(self.engine) as conn:
            for sql, rows in statements:
                conn.exec_driver_sql(sql, rows)
            conn.execute(runs.update().where(runs.c.id == run_id).values(unsettled=True))

    def record_pending(self, run_id: int, chunk: Sequence[Change]) -> None:
        """Every audit row of these changes stored, pending, in one transaction."""
        if chunk:
            self.store_pending(run_id, self.audit_rows(run_id, chunk).statements())

    def settle(self, run_id: int, conflicts: Sequence[int], already: Sequence[int] = ()) -> None:
        """After the last ERP chunk: these customers' rows are conflicts, those already held
        the value (another install or a person wrote it: not this run's write), every other
        row of the run was applied (as stored). One transaction: those rows and the run's mark."""
        with _write_step(self.engine) as conn:
            self._mark(conn, run_id, conflicts, "conflict")
            self._mark(conn, run_id, already, "already")
            conn.execute(runs.update().where(runs.c.id == run_id).values(unsettled=False))

    @staticmethod
    def _mark(conn: sa.Connection, run_id: int, customer_ids: Sequence[int], status: str) -> None:
        for i in range(0, len(customer_ids), 500):
            conn.execute(changes.update()
                         .where(changes.c.run_id == run_id,
                                changes.c.customer_id.in_(customer_ids[i:i + 500]))
                         .values(status=status, at=_now()))

    def run_record(self, run_id: int) -> RunRecord | None:
        stmt = sa.select(*_RECORD).where(runs.c.id == run_id)
        with self.engine.connect() as conn:
            r = conn.execute(stmt).first()
        if r is None:
            return None
        return RunRecord(r.id, r.started_at, r.finished_at, r.as_of, r.mode, r.baseline, r.status,
                         r.exit_code, r.message, _counts(r.counts, r.id))

    def has_pending(self) -> bool:
        """Whether audit rows of any earlier run were never settled (killed, or failed)."""
        with self.engine.connect() as conn:
            return conn.execute(sa.select(runs.c.id).where(runs.c.unsettled.is_(True))
                                .limit(1)).first() is not None

    def _settled(self) -> sa.ColumnElement[bool]:
        """Rows whose run settled its write (on a store an earlier version made, which a reader
        does not migrate, every row's own status says)."""
        return runs.c.unsettled.is_not(True) if self.flags_runs else sa.true()

    def _status(self) -> sa.ColumnElement[str]:
        """A row's status as read: pending while its run is not settled."""
        if not self.flags_runs:
            return changes.c.status
        return sa.case((runs.c.unsettled.is_(True), sa.literal("pending")),
                       else_=changes.c.status)

    def written_values(self, prop: str) -> set[str]:
        """Every value a live run of this property wrote (applied): values this tool owns even
        when today's rules would no longer render them (a service renamed since)."""
        if "changes" not in sa.inspect(self.engine).get_table_names():
            return set()
        stmt = (sa.select(changes.c.after).distinct()
                .join(runs, runs.c.id == changes.c.run_id)
                .where(sa.func.lower(runs.c.property) == prop.lower(),
                       changes.c.status == "applied", self._settled(),
                       changes.c.after.is_not(None)))
        with self.engine.connect() as conn:
            return set(conn.execute(stmt).scalars())

    def unreported(self, prop: str, *, before_run: int) -> list[Change]:
        """Values written by earlier runs of this property that stopped before their digest
        (killed or failed mid-write): the next digest lists them, marked as carried over."""
        stmt = (sa.select(changes, runs.c.id.label("of_run"))
                .join(runs, runs.c.id == changes.c.run_id)
                .where(sa.func.lower(runs.c.property) == prop.lower(), runs.c.id < before_run,
                       runs.c.status.in_(("failed", "running")),
                       sa.or_(runs.c.reported.is_(None), runs.c.reported == sa.false()),
                       changes.c.status == "applied", self._settled())
                .order_by(changes.c.id))
        with self.engine.connect() as conn:
            return [Change(customer_id=r.customer_id, number=r.customer_number,
                           name=r.customer_name, branch=r.branch, sales_rep=r.sales_rep,
                           before=r.before, after=r.after, added=codes_of(r.added),
                           removed=codes_of(r.removed), status="applied",
                           carried_from=r.of_run, follows=r.follows,
                           causes=tuple(causes_of(r.causes)))
                    for r in conn.execute(stmt)]

    def later_writers(self, run_id: int, customer_ids: Sequence[int]) -> list[int]:
        """Runs after ``run_id`` that wrote (applied) a value for any of these customers."""
        ids = sorted({int(i) for i in customer_ids})
        found: set[int] = set()
        with self.engine.connect() as conn:
            for i in range(0, len(ids), 500):
                found.update(conn.execute(
                    sa.select(changes.c.run_id).distinct()
                    .join(runs, runs.c.id == changes.c.run_id)
                    .where(changes.c.run_id > run_id, changes.c.status == "applied",
                           self._settled(), changes.c.customer_id.in_(ids[i:i + 500])))
                    .scalars())
        return sorted(found)

    def mark_reported(self, run_ids: Sequence[int]) -> None:
        """These runs' changes have reached a digest (so they are not carried over again)."""
        ids = sorted({int(i) for i in run_ids})
        if ids:
            with self.engine.begin() as conn:
                conn.execute(runs.update().where(runs.c.id.in_(ids)).values(reported=True))

    def count_history(self, *, run_id: int | None = None, customer: str | None = None) -> int:
        """How many audit rows ``history`` would list without a limit."""
        stmt = sa.select(sa.func.count()).select_from(changes)
        if run_id is not None:
            stmt = stmt.where(changes.c.run_id == run_id)
        if customer is not None:
            stmt = stmt.where(changes.c.customer_number == customer)
        with self.engine.connect() as conn:
            return int(conn.execute(stmt).scalar() or 0)

    def pending(self, run_ids: Sequence[int] | None = None) -> list[dict[str, Any]]:
        """Audit rows written before an ERP transaction whose outcome was never recorded: the
        rows of the runs not settled (of these runs only, when given)."""
        stmt = (sa.select(changes).join(runs, runs.c.id == changes.c.run_id)
                .where(runs.c.unsettled.is_(True)).order_by(changes.c.id))
        if run_ids is not None:
            stmt = stmt.where(runs.c.id.in_(sorted({int(i) for i in run_ids})))
        with self.engine.connect() as conn:
            return [{**r._mapping, "status": "pending"} for r in conn.execute(stmt)]

    def resolve(self, outcome: Mapping[str, Sequence[int]], run_ids: Sequence[int]) -> None:
        """Each pending row's status as the ERP says it (status -> audit row ids), and these
        runs settled: one transaction, so that a kill midway leaves them all pending."""
        with self.engine.begin() as conn:
            for status, change_ids in outcome.items():
                for i in range(0, len(change_ids), 500):
                    conn.execute(changes.update().where(changes.c.id.in_(change_ids[i:i + 500]))
                                 .values(status=status, at=_now()))
            ids = sorted({int(i) for i in run_ids})
            for i in range(0, len(ids), 500):
                conn.execute(runs.update().where(runs.c.id.in_(ids[i:i + 500]))
                             .values(unsettled=False))

    def history(self, *, run_id: int | None = None, customer: str | None = None,
                limit: int | None = 1000) -> list[dict[str, Any]]:
        columns = [self._status().label("status") if c.name == "status" else c
                   for c in changes.c]
        stmt = (sa.select(*columns)  # a row whose run is gone (edited by hand) is still listed
                .select_from(changes.outerjoin(runs, runs.c.id == changes.c.run_id))
                .order_by(changes.c.id))
        if run_id is not None:
            stmt = stmt.where(changes.c.run_id == run_id)
        if customer is not None:
            stmt = stmt.where(changes.c.customer_number == customer)
        with self.engine.connect() as conn:
            if limit is not None:
                stmt = stmt.limit(limit)
            return [{**r._mapping, "causes": causes_of(r.causes)} for r in conn.execute(stmt)]

    def won_lost(self, since: dt.date | None, until: dt.date, *, include_baseline: bool = False,
                 with_values: bool = False) -> list[dict[str, Any]]:
        """Services gained and lost per customer, from the values live runs wrote.

        One row per applied change of a live run whose ``as_of`` is within [since, until]
        (``since=None``: from the first run), oldest first, with its branch and sales rep (None
        for rows written before those were kept). A baseline run is left out unless asked for:
        it writes every customer's first value, so its "added" services are the starting point,
        not news (but the value it recorded is what a later loss of that service is worth, see
        ``keyservices.calls.wonlost``). ``with_values`` adds ``baseline`` (bool) and ``annual_values``
        ({service code: annual value} of the services the change added; empty for rows written
        before values were kept) to each row.
        """
        stmt = _applied_live(until, self._settled()).order_by(runs.c.as_of, changes.c.id)
        if since is not None:
            stmt = stmt.where(runs.c.as_of >= since)
        if not include_baseline:
            stmt = stmt.where(runs.c.baseline.is_(False))
        return list(self._won_lost_rows(stmt, with_values))

    def won_lost_rows(self, until: dt.date) -> Iterator[dict[str, Any]]:
        """``won_lost(None, until, include_baseline=True, with_values=True)``, newest first and
        streamed (``calls.wonlost.won_lost(..., newest_first=True)`` stops reading once it has
        what it needs: the audit's whole history is never held)."""
        return stream_won_lost(self.engine, _applied_live(until, self._settled()).order_by(
            runs.c.as_of.desc(), changes.c.id.desc()))

    def _won_lost_rows(self, stmt: sa.Select, with_values: bool) -> Iterator[dict[str, Any]]:
        with self.engine.connect() as conn:
            for r in conn.execute(stmt):
                row = {"as_of": r.as_of, "customer_id": r.customer_id,
                       "customer_number": r.customer_number, "branch": r.branch,
                       "sales_rep": r.sales_rep, "added": codes_of(r.added),
                       "removed": codes_of(r.removed)}
                if with_values:
                    row["baseline"] = bool(r.baseline)
                    row["annual_values"] = values_of(r.annual_values)
                yield row


@contextlib.contextmanager
def _write_step(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A transaction of the write step (the audit stored, or settled), committed durably
    (``synchronous=FULL``) but without SQLite's automatic WAL checkpoint: copying the audit's
    pages into the database file is no part of making the write safe, and it would stand
    between the audit and the ERP's first chunk. The next commit of the run checkpoints."""
    with engine.connect() as conn:
        driver = conn.connection.driver_connection if conn.dialect.name == "sqlite" else None
        if driver is not None:
            driver.execute("PRAGMA wal_autocheckpoint=0")
        try:
            with conn.begin():
                yield conn
        finally:
            if driver is not None:  # a broken connection must not hide the first error
                with contextlib.suppress(conn.dialect.loaded_dbapi.Error):
                    driver.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT}")


def _applied_live(until: dt.date, settled: sa.ColumnElement[bool]) -> sa.Select:
    """The values live runs wrote up to ``until`` (as of, baseline, customer, number, branch,
    rep, added, removed, annual values): what won and lost are counted from. A location that
    follows its parent is left out (its parent's row counts)."""
    return (sa.select(runs.c.as_of, runs.c.baseline, changes.c.customer_id,
                      changes.c.customer_number, changes.c.branch, changes.c.sales_rep,
                      changes.c.added, changes.c.removed, changes.c.annual_values)
            .join(runs, runs.c.id == changes.c.run_id)
            .where(changes.c.status == "applied", settled, runs.c.mode == "live",
                   runs.c.as_of <= until, changes.c.follows.is_(None)))


def _sqlite_durable_wal(dbapi_connection: Any, _record: Any) -> None:
    """WAL with synchronous=FULL: one fsync per commit instead of several, still durable on power
    loss (the audit must never lose a pending row the ERP may already hold)."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


def _counts(text: str | None, run_id: int) -> dict[str, Any]:
    """A run's counts as stored (JSON); a value edited or cut short by hand is shown as
    unreadable, not a crash of ``status`` or ``history``."""
    try:
        counts = json.loads(text or "{}")
    except ValueError:
        log.warning("the counts of run %s in the state store are not readable JSON", run_id)
        return {"unreadable": True}
    return counts if isinstance(counts, dict) else {"unreadable": True}


def _now() -> dt.datetime:
    return dt.datetime.now().replace(microsecond=0)


def store_exists(url: str | URL) -> bool:
    """Whether there may be a state store to read: a SQLite file that is missing is none (and
    opening it would create it); any other database is asked when opened."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return True
    return Path(parsed.database).exists()
