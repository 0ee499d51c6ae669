"""The facts as they stood on several past dates, read together (``keyservices backtest``).

One statement per kind of fact for all dates at once: each statement joins a small derived
table of the dates (``queries.Clock``) and groups by date, then customer, so a year of monthly
dates costs one pass over each table, not one night per date. Only what the ERP dates is
rebuilt: contracts by start and expiry, their lines by their own dates, GL and invoices by
theirs, machines by install date. What it does not date (a machine's Active flag, a customer's
industry) is today's value on every date; ``Rebuilt.limits`` says so and counts what it touches.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import sqlalchemy as sa

from ..engine.metrics import Extra, MetricTable, compile_rules, needed_codes
from ..model import CustomerTable, Facts
from ..progress import Reporter, Timings, step
from ..rules import RuleSet
from .connection import ErpTables, is_off
from .facts import raw_batches, read_codes, read_customers
from .fold import float_rows
from .queries import metric_queries


@dataclass
class Rebuilt:
    """The facts on each date (``facts[i]`` as of ``points[i]``), sharing one customer table."""

    points: list[dt.date]
    facts: list[Facts]
    limits: list[str] = field(default_factory=list)
    statements: int = 0


def read_history(conn: sa.Connection, tables: ErpTables, rules: RuleSet, attr_id: int,
                 points: Sequence[dt.date], extra: Sequence[Extra] = (), *,
                 reporter: Reporter | None = None, timings: Timings | None = None) -> Rebuilt:
    """The rules' numbers for every customer on every date of ``points``, in a constant number
    of statements (one per kind of fact, whatever the number of dates)."""
    points = sorted(set(points))
    needed = needed_codes(rules).union(*(e.codes_needed for e in extra))
    codes, categories = read_codes(conn, tables, needed)
    compiled = compile_rules(rules, codes, [c for e in extra for c in e.columns(codes)])
    flags: dict[str, np.ndarray] = {}
    customers = read_customers(conn, tables, rules, attr_id, points[-1], reporter=reporter,
                               timings=timings, flags=flags)
    tables_by_point = [MetricTable.empty(compiled, customers.ids) for _ in points]
    statements = 2 + len(needed)
    for kind, (stmt, columns) in metric_queries(tables, compiled, points[-1], points).items():
        statements += 1
        with step(reporter, timings, f"read {kind} on {len(points)} dates") as advance:
            for batch in raw_batches(conn, stmt):
                rows = float_rows(batch)
                point = rows[:, 0].astype(np.int64)
                for p in np.unique(point).tolist():
                    tables_by_point[p].put(columns, rows[point == p, 1:])
                advance(len(batch))
    arrays = {"active": flags["active"], "prospect": flags["prospect"],
              "parent": flags["parent"]}
    facts = [Facts(as_of=p, customers=customers, facts={}, categories=categories, metrics=t,
                   codes=codes, customer_arrays=arrays) for p, t in zip(points, tables_by_point)]
    limits, more = _limits(conn, tables, customers, points[0])
    return Rebuilt(points, facts, limits, statements + more)


def _limits(conn: sa.Connection, tables: ErpTables, customers: CustomerTable,
            first: dt.date) -> tuple[list[str], int]:
    """What the ERP cannot rebuild, counted (one small statement): machines inactive today
    (e-automate keeps no removal date, so they count as removed on every past date) and the
    dated columns this database lacks."""
    e = tables.equipment
    inactive = int(conn.execute(sa.select(sa.func.count()).select_from(e)
                                .where(is_off(e.c.active))).scalar() or 0)
    out = []
    if inactive:
        out.append(f"{inactive:,} machines are inactive today; the ERP keeps no removal date, "
                   f"so they count as gone on every date since {first.isoformat()}")
    for logical, column in sorted(tables.absent):
        out.append(f"{tables.physical(logical)} has no "
                   f"{tables.profile[logical]['columns'][column]}: every past date counts "
                   "its rows as they stand today")
    out.append(f"industries, branches and sales reps are today's for all "
               f"{len(customers):,} customers")
    return out, 1
