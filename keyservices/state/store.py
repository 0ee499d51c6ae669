"""The state store: runs, the audit of every change (with its before-value), the opportunity life
cycle. It is the tool's own database (a SQLite file in the state folder by default), never the ERP.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ..calls.lifecycle import Key, OpportunityRecord
from ..errors import ConfigError, SourceUnavailable
from ..model import Change
from .schema import (
    LIFECYCLE_FIELDS,
    OVERRIDE_FIELDS,
    changes,
    metadata,
    migrate,
    opportunities,
    runs,
)

log = logging.getLogger(__name__)

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
            migrate(self.engine)
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
                 "branch": c.branch, "sales_rep": c.sales_rep,
                 "annual_values": _values_json(c.annual_values),
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
        stmt = (sa.select(runs.c.as_of, runs.c.baseline, changes.c.customer_id,
                          changes.c.customer_number, changes.c.branch, changes.c.sales_rep,
                          changes.c.added, changes.c.removed, changes.c.annual_values)
                .join(runs, runs.c.id == changes.c.run_id)
                .where(changes.c.status == "applied", runs.c.mode == "live",
                       runs.c.as_of <= until)
                .order_by(runs.c.as_of, changes.c.id))
        if since is not None:
            stmt = stmt.where(runs.c.as_of >= since)
        if not include_baseline:
            stmt = stmt.where(runs.c.baseline.is_(False))
        out = []
        with self.engine.connect() as conn:
            for r in conn.execute(stmt):
                row = {"as_of": r.as_of, "customer_id": r.customer_id,
                       "customer_number": r.customer_number, "branch": r.branch,
                       "sales_rep": r.sales_rep, "added": _codes(r.added),
                       "removed": _codes(r.removed)}
                if with_values:
                    row["baseline"] = bool(r.baseline)
                    row["annual_values"] = _values(r.annual_values)
                out.append(row)
        return out

    # -- opportunities ----------------------------------------------------------------------------
    def load_opportunities(self) -> dict[Key, OpportunityRecord]:
        """Every remembered opportunity, active or not, by (customer_id, service_code)."""
        with self.engine.connect() as conn:
            return {(r.customer_id, r.service_code): _record(r)
                    for r in conn.execute(sa.select(opportunities))}

    def save_opportunities(self, records: Sequence[OpportunityRecord]) -> None:
        """Insert or update the records, keyed on (customer_id, service_code), in one transaction.

        Bulk (one executemany), so a night with 100k opportunities costs one commit. An existing
        row keeps its override fields: only the override commands change those.
        """
        if not records:
            return
        rows = [_row(r) for r in records]
        with self.engine.begin() as conn:
            insert = _ON_CONFLICT.get(conn.dialect.name)
            if insert is not None:
                stmt = insert(opportunities)
                conn.execute(stmt.on_conflict_do_update(
                    index_elements=[opportunities.c.customer_id, opportunities.c.service_code],
                    set_={name: stmt.excluded[name] for name in LIFECYCLE_FIELDS}), rows)
            else:  # any other database: update the rows that exist, insert the others
                _update_then_insert(conn, rows)

    def list_opportunities(self, status: str | None = None, owner: str | None = None,
                           service: str | None = None,
                           customer_number: str | None = None) -> list[OpportunityRecord]:
        """Remembered opportunities, filtered; owner, service and customer ignore case.

        Sorted active first (new, open, won, closed), then by priority, score and customer.
        """
        stmt = sa.select(opportunities)
        if status is not None:
            stmt = stmt.where(opportunities.c.status == status)
        if owner is not None:
            stmt = stmt.where(sa.func.upper(opportunities.c.owner) == owner.upper())
        if service is not None:
            stmt = stmt.where(sa.func.upper(opportunities.c.service_code) == service.upper())
        if customer_number is not None:
            stmt = stmt.where(sa.func.upper(opportunities.c.customer_number)
                              == customer_number.upper())
        with self.engine.connect() as conn:
            found = [_record(r) for r in conn.execute(stmt)]
        found.sort(key=lambda r: (_STATUS_ORDER.get(r.status, 9),
                                  _PRIORITY_ORDER.get(r.priority, 9), -r.score,
                                  r.customer_number, r.service_code))
        return found

    def set_override(self, customer_number: str, service_code: str, until: dt.date | None,
                     reason: str | None, by: str | None, dismissed: bool) -> OpportunityRecord:
        """Snooze or dismiss one opportunity until a date (validation is the caller's)."""
        with self.engine.begin() as conn:
            key = self._find(conn, customer_number, service_code)
            conn.execute(opportunities.update().where(*_where(key)).values(
                snoozed_until=until, snooze_reason=reason, snoozed_by=by, dismissed=dismissed))
            return _record(conn.execute(sa.select(opportunities).where(*_where(key))).one())

    def clear_override(self, customer_number: str, service_code: str) -> OpportunityRecord:
        """Lift a snooze or dismiss at once: the opportunity shows again from the next run."""
        return self.set_override(customer_number, service_code, None, None, None, False)

    @staticmethod
    def _find(conn: sa.Connection, customer_number: str, service_code: str) -> Key:
        """The key of a customer's opportunity for a service; customer and service ignore case."""
        rows = conn.execute(
            sa.select(opportunities.c.customer_id, opportunities.c.service_code,
                      opportunities.c.customer_number)
            .where(sa.func.upper(opportunities.c.customer_number) == customer_number.upper(),
                   sa.func.upper(opportunities.c.service_code) == service_code.upper())).all()
        exact = [r for r in rows if r.customer_number == customer_number]
        if len(exact) == 1 or len(rows) == 1:
            r = (exact or rows)[0]
            return (r.customer_id, r.service_code)
        if rows:
            raise ConfigError(f"customer numbers {', '.join(r.customer_number for r in rows)} "
                              f"differ only in case; give the number exactly as in e-automate")
        raise ConfigError(f"no {service_code} opportunity for customer {customer_number} in the "
                          "state store; 'keyservices opportunity list' shows them (a run must "
                          "have found it first)")


_ON_CONFLICT: dict[str, Any] = {"sqlite": sqlite_insert, "postgresql": postgresql_insert}
_STATUS_ORDER = {"new": 0, "open": 1, "won": 2, "closed": 3}
_PRIORITY_ORDER = {"Critical": 0, "High": 1, "Medium": 2, "Low": 3}


def _codes(joined: str | None) -> tuple[str, ...]:
    """Service codes as stored in ``changes.added``/``removed``: joined with ';'."""
    return tuple(code for code in (joined or "").split(";") if code)


def _values_json(values: Sequence[tuple[str, float]]) -> str | None:
    """``Change.annual_values`` as stored: a JSON object, or NULL when there is none."""
    return json.dumps(dict(values), separators=(",", ":")) if values else None


def _values(text: str | None) -> dict[str, float]:
    """The stored annual values; an unreadable one (edited by hand) counts as none."""
    if not text:
        return {}
    try:
        data = json.loads(text)
        return {str(k): float(v) for k, v in data.items()}
    except (ValueError, TypeError, AttributeError):
        log.warning("state store: unreadable annual_values %r ignored", text[:80])
        return {}


def _row(record: OpportunityRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in opportunities.columns.keys()}


def _record(row: sa.Row[Any]) -> OpportunityRecord:
    return OpportunityRecord(**{name: getattr(row, name) for name in opportunities.columns.keys()})


def _where(key: Key) -> tuple[sa.ColumnElement[bool], ...]:
    return (opportunities.c.customer_id == key[0], opportunities.c.service_code == key[1])


def _update_then_insert(conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
    """The portable upsert: executemany UPDATE of the rows that exist, executemany INSERT of the
    rest. Safe without ON CONFLICT because only the run (under the run lock) inserts."""
    existing = {(r.customer_id, r.service_code) for r in conn.execute(
        sa.select(opportunities.c.customer_id, opportunities.c.service_code))}
    old = [r for r in rows if (r["customer_id"], r["service_code"]) in existing]
    new = [r for r in rows if (r["customer_id"], r["service_code"]) not in existing]
    if old:
        conn.execute(
            opportunities.update()
            .where(opportunities.c.customer_id == sa.bindparam("k_customer_id"),
                   opportunities.c.service_code == sa.bindparam("k_service_code"))
            .values({name: sa.bindparam(name) for name in LIFECYCLE_FIELDS}),
            [{"k_customer_id": r["customer_id"], "k_service_code": r["service_code"],
              **{name: r[name] for name in LIFECYCLE_FIELDS}} for r in old])
    if new:
        conn.execute(opportunities.insert(), new)


def _sqlite_durable_wal(dbapi_connection: Any, _record: Any) -> None:
    """WAL with synchronous=FULL: one fsync per commit instead of several, still durable on power
    loss (the audit must never lose a pending row the ERP may already hold)."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


def _now() -> dt.datetime:
    return dt.datetime.now().replace(microsecond=0)
