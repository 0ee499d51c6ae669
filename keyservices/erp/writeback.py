"""Write-back: the only code that changes the ERP, and it changes one column.

Only ``TextVal`` of existing value rows of the configured attribute is updated, never INSERT or DELETE.
Each chunk is one transaction with an optimistic guard (``WHERE TextVal`` is still the value read), so
a value edited in e-automate since the read is reported as a conflict, never overwritten. The audit
row is stored as *pending* before the ERP transaction and marked after it, so a crash between the two
leaves evidence the next run can reconcile.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ..model import Change
from ..progress import Reporter, Timings, step
from ..state import StateStore
from .connection import ErpTables


@dataclass(slots=True)
class WriteReport:
    applied: list[int] = field(default_factory=list)
    conflicts: list[int] = field(default_factory=list)
    statements: int = 0


def update_statements(tables: ErpTables, attr_id: int) -> tuple[sa.Update, sa.Update]:
    """The two guarded UPDATEs: for a value read as NULL and for a value read as text."""
    cp = tables.custom_properties
    base = (cp.update()
            .where(cp.c.customer_id == sa.bindparam("b_customer_id"),
                   cp.c.attribute_id == sa.bindparam("b_attr", attr_id))
            .values(text=sa.bindparam("b_after")))
    return (base.where(cp.c.text.is_(None)),
            base.where(cp.c.text == sa.bindparam("b_before")))


def read_back_statement(tables: ErpTables, attr_id: int, ids: Sequence[int]) -> sa.Select:
    """The values of these customers, read in each chunk's transaction after its UPDATEs."""
    cp = tables.custom_properties
    return (sa.select(cp.c.customer_id, cp.c.text)
            .where(cp.c.attribute_id == sa.bindparam("b_attr", attr_id),
                   cp.c.customer_id.in_(sa.bindparam("ids", list(ids), expanding=True))))


def apply_changes(engine: Engine, tables: ErpTables, attr_id: int, planned: Sequence[Change],
                  *, state: StateStore, run_id: int, chunk_size: int,
                  reporter: Reporter | None = None, timings: Timings | None = None) -> WriteReport:
    """Write the planned values chunk by chunk; each chunk commits or rolls back as a whole."""
    report = WriteReport()
    # a change that would not change the value is no write: it must never be audited "applied"
    planned = [c for c in planned if (c.before or None) != (c.after or None)]
    when_null, when_text = update_statements(tables, attr_id)
    with step(reporter, timings, "write values", total=len(planned)) as advance:
        settle: list[tuple[list[int], str]] = []
        for start in range(0, len(planned), chunk_size):
            chunk = planned[start:start + chunk_size]
            state.record_pending(run_id, chunk, settle)  # + the previous chunk's outcome
            ids = [c.customer_id for c in chunk]
            with engine.begin() as conn:
                nulls = [{"b_customer_id": c.customer_id, "b_after": c.after}
                         for c in chunk if c.before is None]
                texts = [{"b_customer_id": c.customer_id, "b_after": c.after, "b_before": c.before}
                         for c in chunk if c.before is not None]
                if nulls:
                    conn.execute(when_null, nulls)
                    report.statements += 1
                if texts:
                    conn.execute(when_text, texts)
                    report.statements += 1
                # read back in the same transaction: rowcount after executemany is not reliable
                # on every driver, the values are
                now = dict(conn.execute(read_back_statement(tables, attr_id, ids)).all())
                report.statements += 1
            applied = [c.customer_id for c in chunk if now.get(c.customer_id) == c.after]
            conflicts = [c.customer_id for c in chunk if now.get(c.customer_id) != c.after]
            settle = [(ids_, status) for ids_, status in ((applied, "applied"),
                                                          (conflicts, "conflict")) if ids_]
            report.applied += applied
            report.conflicts += conflicts
            for c in chunk:
                c.status = "applied" if now.get(c.customer_id) == c.after else "conflict"
            advance(len(chunk))
        for ids_, status in settle:  # the last chunk's outcome
            state.mark(run_id, ids_, status)
    return report


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


def reconcile(engine: Engine, tables: ErpTables, attr_id: int, state: StateStore) -> dict[str, int]:
    """Settle audit rows left *pending* by a run that died between its audit and its ERP commit.

    The ERP is the truth: a value equal to the row's after-value was written (applied); equal to
    its before-value, the transaction never committed (not_applied); anything else was edited
    since (conflict). One read per 500 pending rows.
    """
    rows = state.pending()
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
    for status, ids in outcome.items():
        state.resolve(ids, status)
    return {k: len(v) for k, v in outcome.items()}
