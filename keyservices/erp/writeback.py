"""Write-back: the only code that changes the ERP, and it changes one column.

Only ``TextVal`` of existing value rows of the configured attribute is updated, never INSERT or DELETE.
Each chunk is one transaction with an optimistic guard (``WHERE TextVal`` is still the value read), so
a value edited in e-automate since the read is reported as a conflict, never overwritten.

The audit rows of each chunk are stored, *pending*, and committed before that chunk's ERP
transaction (the next chunk's on a thread while one is written), and the run is settled in one
transaction after the last: a kill at any moment leaves each value as before or after with a
pending row that says which, and the next run settles it (``reconcile``).
On SQLite the changes are written in customer-id order, so each chunk is one range of keys
and journals and syncs only its own pages (ten chunks cost about what one big one does; in plan
order each chunk rewrote pages all over the file). On a server the plan's order is kept (on
PostgreSQL the sorted order measured no faster).
The two guarded UPDATEs are compiled once and each chunk goes to the driver's ``executemany``
(SQLAlchemy's per-row parameter handling cost more than the UPDATE itself); the chunk's values
are read back only when the driver cannot say that every row was updated (SQL Server's
``fast_executemany``, or a value edited since it was read).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import repeat
from operator import attrgetter
from typing import Any, Self

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ..model import Change
from ..progress import Reporter, Timings, step
from ..state import AuditRows, StateStore
from .connection import ErpTables

log = logging.getLogger(__name__)

# databases whose read can lock the rows it reads until the transaction ends
LOCKING_READS = frozenset({"mssql", "postgresql"})
READ_BACK_IDS = 1000  # ids per read-back statement: SQL Server takes at most 2,100 parameters
FIELDS = {"b_customer_id": "customer_id", "b_after": "after", "b_before": "before"}


@dataclass(slots=True)
class WriteReport:
    applied: list[int] = field(default_factory=list)
    conflicts: list[int] = field(default_factory=list)
    already: list[int] = field(default_factory=list)  # held the value before this run wrote
    statements: int = 0
    read_backs: int = 0  # chunks whose outcome had to be read back


def update_statements(tables: ErpTables, attr_id: int) -> tuple[sa.Update, sa.Update]:
    """The two guarded UPDATEs: for a value read as NULL and for a value read as text."""
    cp = tables.custom_properties
    base = (cp.update()
            .where(cp.c.customer_id == sa.bindparam("b_customer_id"),
                   cp.c.attribute_id == sa.bindparam("b_attr", attr_id))
            .values(text=sa.bindparam("b_after")))
    return (base.where(cp.c.text.is_(None)),
            base.where(cp.c.text == sa.bindparam("b_before")))


def read_back_statement(tables: ErpTables, attr_id: int, ids: Sequence[int], *,
                        lock: bool = False) -> sa.Select:
    """The values of these customers, read in a chunk's transaction: before its UPDATEs when
    some guard held or the driver cannot count, and after them when a value may have changed
    in between. ``lock`` holds the rows read until the transaction ends (SQL Server's UPDLOCK,
    PostgreSQL's FOR UPDATE), so the UPDATEs that follow find them as read."""
    cp = tables.custom_properties
    stmt = (sa.select(cp.c.customer_id, cp.c.text)
            .where(cp.c.attribute_id == sa.bindparam("b_attr", attr_id),
                   cp.c.customer_id.in_(sa.bindparam("ids", list(ids), expanding=True))))
    if lock:
        stmt = stmt.with_hint(cp, "WITH (UPDLOCK, ROWLOCK)", "mssql").with_for_update()
    return stmt


class DriverStatement:
    """A statement compiled once for a dialect and sent through the driver's ``executemany``,
    with the parameter rows built as the driver reads them (tuples or mappings)."""

    def __init__(self, stmt: sa.Update, dialect: sa.Dialect) -> None:
        compiled = stmt.compile(dialect=dialect)
        self.sql = str(compiled)
        self.positional = bool(compiled.positional)
        self.order = tuple(compiled.positiontup or ()) if self.positional else tuple(compiled.binds)
        self.fixed = {name: bind.effective_value for name, bind in compiled.binds.items()
                      if not bind.required}
        self.processors: dict[str, Callable[[Any], Any]] = {
            name: proc for name, bind in compiled.binds.items()
            if (proc := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None}

    def rows_of(self, changes: Sequence[Change], fields: Mapping[str, str]) -> list[Any]:
        """The driver's parameter rows read straight from the changes (``fields``: bind name to
        ``Change`` attribute), zipped column by column: tuples for a positional driver, a
        mapping per row for a named one (building a mapping per row and then the driver's
        row from it cost a third of SQLite's UPDATE)."""
        if self.processors:
            names = [name for name in self.order if name not in self.fixed]
            return self.rows([{name: getattr(c, fields[name]) for name in names}
                              for c in changes])
        rows = zip(*(repeat(self.fixed[name], len(changes)) if name in self.fixed
                     else map(attrgetter(fields[name]), changes) for name in self.order))
        if self.positional:
            return list(rows)
        return [dict(zip(self.order, row)) for row in rows]

    def rows(self, values: Sequence[Mapping[str, Any]]) -> list[Any]:
        """The driver's parameter rows for these bind values (the fixed binds filled in)."""
        out = []
        for given in values:
            row = {**self.fixed, **given}
            for name, proc in self.processors.items():
                row[name] = proc(row[name])
            out.append(tuple(row[name] for name in self.order) if self.positional else row)
        return out

    def run(self, conn: Connection, rows: Sequence[Any]) -> int:
        """Execute once per driver row (``rows_of``) in one driver call; the rows updated, or
        -1 when unknown."""
        if not rows:
            return 0
        result = conn.exec_driver_sql(self.sql, rows)
        sane = conn.dialect.supports_sane_multi_rowcount or len(rows) == 1
        return result.rowcount if sane and result.rowcount is not None else -1


def apply_changes(engine: Engine, tables: ErpTables, attr_id: int, planned: Sequence[Change],
                  *, state: StateStore, run_id: int, chunk_size: int,
                  reporter: Reporter | None = None, timings: Timings | None = None) -> WriteReport:
    """Write the planned values chunk by chunk; each chunk commits or rolls back as a whole.

    The order is what keeps the audit true after a kill: each chunk's audit rows are stored,
    pending, and committed before that chunk's ERP transaction begins (``AuditAhead`` stores
    the next chunk's while one is written); after the last chunk the run is settled (the
    conflicts' rows and the run's pending mark, one state transaction). On SQLite the ERP is
    written in customer-id order (``write_order``), and the audit in the order written.
    """
    report = WriteReport()
    # a change that would not change the value is no write: it must never be audited "applied"
    planned = [c for c in planned if (c.before or None) != (c.after or None)]
    if not planned:
        return report
    when_null, when_text = (DriverStatement(s, engine.dialect)
                            for s in update_statements(tables, attr_id))
    with step(reporter, timings, "write values", total=len(planned)) as advance:
        ordered = write_order(engine.dialect, planned)
        bounds = [(start, min(start + chunk_size, len(ordered)))
                  for start in range(0, len(ordered), chunk_size)]
        with AuditAhead(state, state.audit_rows(run_id, ordered), bounds) as audit:
            for k, (start, stop) in enumerate(bounds):
                audit.stored(k)  # chunk k's audit rows are committed; k + 1's are on their way
                _write_chunk(engine, tables, attr_id, ordered[start:stop],
                             (when_null, when_text), report)
                advance(stop - start)
        state.settle(run_id, report.conflicts, report.already)
    return report


class AuditAhead:
    """Each chunk's audit rows stored before the chunk is written, the next chunk's on a thread
    while one chunk is written to the ERP.

    Why: storing an audit row costs about what its guarded UPDATE does (on SQLite at 100k values:
    0.3-0.5 s each way). One chunk ahead, the two overlap, both drivers waiting on their database
    without the GIL; the driver's rows are built by this thread while the other has nothing
    to store (``AuditRows.statements``), so the thread does no Python work to speak of. The
    order of commits is the same as storing everything first: chunk k is written only once its
    rows are committed. A failed store stops the write
    before the chunk it was for; an ERP failure lets the store under way finish first.
    """

    def __init__(self, state: StateStore, rows: AuditRows,
                 bounds: Sequence[tuple[int, int]]) -> None:
        self.state, self.rows, self.bounds = state, rows, bounds
        self._pool: ThreadPoolExecutor | None = None
        self._ahead: Future[None] | None = None

    def __enter__(self) -> Self:
        return self

    def stored(self, k: int) -> None:
        """Return once chunk ``k``'s rows are committed, having started chunk ``k + 1``'s."""
        if self._ahead is None:
            self.state.store_pending(self.rows.run_id, self.rows.statements(*self.bounds[k]))
        else:
            ahead, self._ahead = self._ahead, None
            ahead.result()
        if k + 1 < len(self.bounds):
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="keyservices-audit")
            self._ahead = self._pool.submit(self.state.store_pending, self.rows.run_id,
                                            self.rows.statements(*self.bounds[k + 1]))

    def __exit__(self, *exc: object) -> None:
        """The store under way finishes (its rows are pending: the next run settles them)."""
        if self._ahead is not None:
            try:
                self._ahead.result()
            except Exception:  # the error that stopped the write is the one to report
                log.warning("storing the audit of a chunk never written failed", exc_info=True)
        if self._pool is not None:
            self._pool.shutdown(wait=True)


def write_order(dialect: sa.Dialect, planned: list[Change]) -> list[Change]:
    """The order the ERP is written in: by customer id on SQLite, where each chunk's commit
    journals and syncs every page it touched (sorted, a chunk touches one range of pages once);
    the plan's order elsewhere."""
    if dialect.name == "sqlite":
        return sorted(planned, key=attrgetter("customer_id"))
    return planned


def _write_chunk(engine: Engine, tables: ErpTables, attr_id: int, chunk: Sequence[Change],
                 statements: tuple[DriverStatement, DriverStatement], report: WriteReport) -> None:
    """One ERP transaction that counts only what this run's UPDATEs changed.

    A driver that reports row counts (SQLite, PostgreSQL): the guarded UPDATEs, and when every
    row was updated, that is the answer. When some guard held, the transaction is rolled back
    and the chunk done again knowing the values first (``_write_known``): a value that already
    equals the after-value was written by someone else (a second install, a person), and is
    recorded as already held, not as this run's write.
    """
    if engine.dialect.supports_sane_multi_rowcount:
        with engine.connect() as conn:
            transaction = conn.begin()
            try:
                updated = _update(conn, chunk, statements, report)
                if updated == len(chunk):
                    transaction.commit()
                    _statuses(chunk, {c.customer_id: c.after for c in chunk}, (), report)
                    return
            finally:
                if transaction.is_active:
                    transaction.rollback()
    with engine.begin() as conn:
        _write_known(conn, tables, attr_id, chunk, statements, report)


def _write_known(conn: Connection, tables: ErpTables, attr_id: int, chunk: Sequence[Change],
                 statements: tuple[DriverStatement, DriverStatement],
                 report: WriteReport) -> None:
    """The chunk's values read first, in the write's transaction: those already at the
    after-value are not written (already held), those no longer at the before-value are
    conflicts, the rest are updated and, unless the driver says every one was, read back
    (one SELECT per 1,000 customers each way; SQL Server's ``fast_executemany`` cannot count)."""
    locks = conn.dialect.name in LOCKING_READS
    held = _read_back(conn, tables, attr_id, [c.customer_id for c in chunk], lock=locks)
    report.statements += -(-len(chunk) // READ_BACK_IDS)
    report.read_backs += 1
    missing = object()
    already = [c.customer_id for c in chunk if held.get(c.customer_id, missing) == c.after]
    todo = [c for c in chunk if held.get(c.customer_id, missing) == c.before]
    updated = _update(conn, todo, statements, report) if todo else 0
    if updated == len(todo) or (updated == -1 and locks):  # rows locked as read: all updated
        now = {c.customer_id: c.after for c in todo}
    else:  # the driver cannot say, or a value changed between the read and the UPDATE
        now = _read_back(conn, tables, attr_id, [c.customer_id for c in todo])
        report.statements += -(-len(todo) // READ_BACK_IDS)
    _statuses(chunk, now, already, report)


def _update(conn: Connection, chunk: Sequence[Change],
            statements: tuple[DriverStatement, DriverStatement], report: WriteReport) -> int:
    """The guarded UPDATEs of these changes; the rows updated, or -1 when the driver cannot
    say."""
    when_null, when_text = statements
    nulls = when_null.rows_of([c for c in chunk if c.before is None], FIELDS)
    texts = when_text.rows_of([c for c in chunk if c.before is not None], FIELDS)
    updated = [s.run(conn, rows) for s, rows in ((when_null, nulls), (when_text, texts)) if rows]
    report.statements += len(updated)
    return -1 if -1 in updated else sum(updated)


def _statuses(chunk: Sequence[Change], now: Mapping[int, str | None], already: Sequence[int],
              report: WriteReport) -> None:
    """Each change's status: written by this run (applied), held already, or a conflict."""
    held = set(already)
    for c in chunk:
        if c.customer_id in held:
            c.status = "already"
            report.already.append(c.customer_id)
        elif c.customer_id in now and now[c.customer_id] == c.after:
            c.status = "applied"
            report.applied.append(c.customer_id)
        else:
            c.status = "conflict"
            report.conflicts.append(c.customer_id)


def _read_back(conn: Connection, tables: ErpTables, attr_id: int, ids: Sequence[int], *,
               lock: bool = False) -> dict[int, str | None]:
    """The values of these customers now, in the caller's transaction."""
    now: dict[int, str | None] = {}
    for start in range(0, len(ids), READ_BACK_IDS):
        now.update(conn.execute(read_back_statement(
            tables, attr_id, ids[start:start + READ_BACK_IDS], lock=lock)).all())
    return now


def read_values(engine: Engine, tables: ErpTables, attr_id: int,
                customer_ids: Sequence[int]) -> dict[int, str | None]:
    """The attribute's current value per customer (only customers with a value row), in one
    statement per 500 customers: what a rollback plans against."""
    cp = tables.custom_properties
    out: dict[int, str | None] = {}
    ids = sorted({int(i) for i in customer_ids})
    for start in range(0, len(ids), 500):
        with engine.connect() as conn:
            out.update(conn.execute(
                sa.select(cp.c.customer_id, cp.c.text)
                .where(cp.c.attribute_id == attr_id,
                       cp.c.customer_id.in_(sa.bindparam(
                           "ids", ids[start:start + 500], expanding=True)))).all())
    return out


def count_values(engine: Engine, tables: ErpTables, attr_id: int) -> int:
    """How many value rows the attribute has: what a rollback's share is measured against."""
    cp = tables.custom_properties
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(cp)
                                .where(cp.c.attribute_id == attr_id)).scalar() or 0)


def reconcile(engine: Engine, tables: ErpTables, attr_id: int, state: StateStore, *,
              run_ids: Sequence[int] | None = None) -> dict[str, int]:
    """Settle audit rows left *pending* by a run that died between its audit and its ERP commit.

    The ERP is the truth: a value equal to the row's after-value was written (applied); equal to
    its before-value, the transaction never committed (not_applied); anything else was edited
    since (conflict). One read per 500 pending rows.
    """
    rows = state.pending(run_ids)
    outcome: dict[str, list[int]] = {"applied": [], "not_applied": [], "conflict": []}
    cp = tables.custom_properties
    for start in range(0, len(rows), 500):
        chunk = rows[start:start + 500]
        with engine.connect() as conn:
            now = dict(conn.execute(
                sa.select(cp.c.customer_id, cp.c.text)
                .where(cp.c.attribute_id == attr_id,
                       cp.c.customer_id.in_(sa.bindparam(
                           "ids", [r["customer_id"] for r in chunk], expanding=True)))).all())
        for r in chunk:
            value = now.get(r["customer_id"])
            key = ("applied" if value == r["after"] else
                   "not_applied" if value == r["before"] else "conflict")
            outcome[key].append(r["id"])
    state.resolve(outcome, [r["run_id"] for r in rows] if run_ids is None else run_ids)
    return {k: len(v) for k, v in outcome.items()}
