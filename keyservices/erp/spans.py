"""Contracts on many past dates in one pass (``history``): each contract counted once.

A contract counts on every date between its start and its expiry; joined to each of those
dates, a year of monthly dates read it a dozen times. Here the contracts are grouped by
customer, by the first date they count on (start against the dates), by the first date they no
longer do (expiry against the dates) and, for a rule's "expires within N days", by the first
date whose horizon passes their expiry; numpy adds the groups up per date.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa

from ..engine.metrics import Compiled, MetricTable
from .clock import SpanClock, bounds_before
from .connection import ErpTables
from .fleet import without_filter
from .fold import known_rows
from .queries import metric_queries

WITHIN = "expires_within"


def contract_statement(tables: ErpTables, compiled: Compiled, points: Sequence[dt.date]
                       ) -> tuple[sa.Select, list[tuple[int, int, int | None]]] | None:
    """The contracts statement grouped by (first date, gone date, horizons..., customer), and
    for each of the rules' contracts columns: (its index, its value's position in a row, the
    horizon it asks for, or None)."""
    wanted = compiled.of_kind("contracts")
    if not wanted:
        return None
    points = sorted(points)
    stripped, plan = without_filter(compiled, wanted, WITHIN)
    stmt, order = metric_queries(tables, stripped, points[-1], clock=SpanClock(points))["contracts"]
    k = tables.contracts
    untils = [p + dt.timedelta(days=1) for p in points]
    huge: sa.ColumnElement[Any] = sa.literal_column(str(len(points)))
    head: list[sa.ColumnElement[Any]] = [
        bounds_before(k.c.start_date, untils, prefix="s").label("starts"),
        sa.case((k.c.exp_date.is_(None), huge),
                else_=bounds_before(k.c.exp_date, points, prefix="e")).label("ends")]
    horizons = sorted({w for _, _, w in plan if w is not None})
    for n, days in enumerate(horizons):
        edges = [p + dt.timedelta(days=days) for p in points]
        head.append(sa.case((k.c.exp_date.is_(None), huge),
                            else_=bounds_before(k.c.exp_date, edges, prefix=f"h{n}_"))
                    .label(f"within{n}"))
    stmt = stmt.with_only_columns(*head, *stmt.selected_columns, maintain_column_froms=True)
    stmt = stmt.group_by(*head)
    where = {j: n for n, j in enumerate(order)}
    return stmt, [(i, where[j], None if w is None else horizons.index(w)) for i, j, w in plan]


def add_contracts(held: list[MetricTable], plan: Sequence[tuple[int, int, int | None]],
                  rows: np.ndarray) -> None:
    """Rows of (first date, gone date, horizons..., customer, value...) added per date: a
    contract counts on date p when it started by then (first <= p) and had not expired
    (gone > p: the dates on or before its expiry number more than p); "expires within N
    days" also needs its expiry before the date's horizon (that count <= p)."""
    if not len(rows):
        return
    horizons = max((w for _, _, w in plan if w is not None), default=-1) + 1
    key_at = 2 + horizons
    ids = held[0].ids
    rows, pos = known_rows(ids, rows, key_at)
    starts, ends = rows[:, 0].astype(np.int64), rows[:, 1].astype(np.int64)
    for p, table in enumerate(held):
        live = (starts <= p) & (ends > p)
        for i, at, within in plan:
            sel = live if within is None else live & (rows[:, 2 + within] <= p)
            if sel.any():
                table.values[:, i] += np.bincount(pos[sel], weights=rows[sel, key_at + 1 + at],
                                                  minlength=len(ids))


__all__ = ["add_contracts", "contract_statement"]
