"""Machines on many past dates in one pass (``history``): each machine counted once.

Joining every machine to every date (and to the contract lines covering it on each date) made
the backtest's equipment statement twenty times a night's. Here the machines are grouped by
customer, by the first date they count on (their install date against the dates) and by the
dates a live contract line covers them (a bit per date), and the counts are added up per date
in numpy: a machine counts on a date once installed, and a rule's ``on_contract`` is the date's
bit.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa

from ..engine.metrics import Compiled, MetricTable
from .clock import bounds_before
from .connection import ErpTables, is_on
from .fold import known_rows
from .queries import line_live, metric_queries

ON_CONTRACT = "on_contract"


def fleet_statement(tables: ErpTables, compiled: Compiled, points: Sequence[dt.date]
                    ) -> tuple[sa.Select, list[tuple[int, int, int | None]]] | None:
    """The equipment statement grouped by (first date, cover bits, customer), and for each of
    the rules' equipment columns: (its index, its value's position in a row, the on_contract
    it asks for, or None). None when the rules count no machines."""
    wanted = compiled.of_kind("equipment")
    if not wanted:
        return None
    stripped, plan = without_filter(compiled, wanted, ON_CONTRACT)
    stmt, order = metric_queries(tables, stripped, max(points))["equipment"]
    e = tables.equipment
    untils = [p + dt.timedelta(days=1) for p in sorted(points)]
    first: sa.ColumnElement[Any] = sa.literal_column("0")  # no install date: from the start
    if tables.has("equipment", "install_date"):
        first = sa.case((e.c.install_date.is_(None), first),
                        else_=bounds_before(e.c.install_date, untils, prefix="i"))
    bits: sa.ColumnElement[int] = sa.literal_column("0")
    covered = None
    if any(c is not None for _, _, c in plan):
        covered = _cover_bits(tables, sorted(points))
        bits = sa.func.coalesce(covered.c.bits, sa.literal_column("0"))
    head = [first.label("first"), bits.label("bits")]
    stmt = stmt.with_only_columns(*head, *stmt.selected_columns, maintain_column_froms=True)
    if covered is not None:
        stmt = stmt.outerjoin(covered, covered.c.equipment_id == e.c.id)
    # a constant is not grouped by: GROUP BY 0 would name the select list's column 0
    stmt = stmt.group_by(*[h for h, varies in zip(head, (
        tables.has("equipment", "install_date"), covered is not None)) if varies])
    where = {j: n for n, j in enumerate(order)}
    return stmt, [(i, where[j], cover) for i, j, cover in plan]


def without_filter(compiled: Compiled, wanted: Sequence[int], column: str
                   ) -> tuple[Compiled, list[tuple[int, int, int | None]]]:
    """The ``wanted`` columns without their filter on ``column`` (the dates decide it later,
    in numpy), and for each: (its index, its index among the stripped ones, the filter's first
    id, or None without one). Columns that differ only in that filter share one."""
    stripped = Compiled()
    plan: list[tuple[int, int, int | None]] = []
    for i in wanted:
        col = compiled.columns[i]
        value = next((f.ids[0] for f in col.filters if f.column == column), None)
        plain = dataclasses.replace(col, filters=tuple(f for f in col.filters
                                                       if f.column != column))
        plan.append((i, stripped.column(plain), value))
    return stripped, plan


def _cover_bits(tables: ErpTables, points: list[dt.date]) -> sa.Subquery:
    """Per machine, a bit per date: set when a live contract line covers it on that date (the
    contract active, started, not expired; the line between its own dates where dated)."""
    d, k = tables.contract_details, tables.contracts
    bits = []
    for n, p in enumerate(points):
        live = line_live(tables, sa.bindparam(f"cover_day{n}", p, type_=sa.Date),
                         sa.bindparam(f"cover_until{n}", p + dt.timedelta(days=1),
                                      type_=sa.Date))
        bits.append(sa.func.max(sa.case((sa.and_(*live), sa.literal_column(str(1 << n))),
                                        else_=sa.literal_column("0"))))
    total: sa.ColumnElement[Any] = bits[0]
    for b in bits[1:]:
        total = total + b
    return (sa.select(d.c.equipment_id, total.label("bits"))
            .select_from(d.join(k, k.c.id == d.c.contract_id))
            .where(d.c.equipment_id.is_not(None), is_on(k.c.active))
            .group_by(d.c.equipment_id).subquery("cover_bits"))


def add_fleet(held: list[MetricTable], plan: Sequence[tuple[int, int, int | None]],
              rows: np.ndarray) -> None:
    """Rows of (first date, bits, customer, value...) added to each date's numbers."""
    if not len(rows):
        return
    ids = held[0].ids
    rows, pos = known_rows(ids, rows, 2)
    first = rows[:, 0].astype(np.int64)
    bits = rows[:, 1].astype(np.int64)
    for p, table in enumerate(held):
        installed = first <= p
        covered = (bits >> p) & 1
        for i, at, cover in plan:
            sel = installed if cover is None else installed & (covered == cover)
            if sel.any():
                table.values[:, i] += np.bincount(pos[sel], weights=rows[sel, 3 + at],
                                                  minlength=len(ids))


__all__ = ["add_fleet", "fleet_statement", "without_filter"]
