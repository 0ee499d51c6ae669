"""The contract lines that covered a customer's machines after an offer was made (#24).

An ``uncovered_machines`` offer (a service contract for machines on none) that is no longer
found is won when its machines were put on a contract line: a line live on the run date whose
own start (or, undated, its contract's start) is after the offer was first seen, covering an
active machine of the rule's categories installed by then. A machine pulled or deactivated has
no such line, and the offer stays withdrawn. Read only for the few customers whose offers close
tonight, in one statement (``calls.lifecycle.covered_since`` judges the rows).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Any

import sqlalchemy as sa

from .clock import Clock
from .connection import ErpTables, is_on
from .queries import line_live
from .renewals import as_date


def lines_statement(tables: ErpTables, customers: Collection[int], categories: Collection[int],
                    as_of: dt.date, *, parent_level: bool) -> sa.Select:
    """(site, its parent, machine, line start, install date) for each active machine of these
    categories at these customers (and, ``parent_level``, their locations) on a contract line
    live on ``as_of``; the line start is its contract's where the line has none."""
    e, m, d, k, c = (tables.equipment, tables.models, tables.contract_details, tables.contracts,
                     tables.customers)
    site = sa.func.coalesce(e.c.location_id, e.c.customer_id)
    clock = Clock(as_of)
    start: sa.ColumnElement[Any] = k.c.start_date
    if tables.has("contract_details", "start_date"):
        start = sa.func.coalesce(d.c.start_date, k.c.start_date)
    installed: sa.ColumnElement[Any] = sa.null()
    if tables.has("equipment", "install_date"):
        installed = e.c.install_date
    ids: sa.BindParameter[Any] = sa.bindparam("owners", sorted(customers), expanding=True, literal_execute=True)
    cats: sa.BindParameter[Any] = sa.bindparam("categories", sorted(categories), expanding=True, literal_execute=True)
    mine = [c.c.id.in_(ids)] + ([c.c.parent_id.in_(ids)] if parent_level else [])
    frm = (e.join(m, m.c.id == e.c.model_id).join(d, d.c.equipment_id == e.c.id)
           .join(k, k.c.id == d.c.contract_id).join(c, c.c.id == site))
    return (sa.select(c.c.id, c.c.parent_id, e.c.id, start.label("line_start"),
                      installed.label("installed"))
            .select_from(frm)
            .where(is_on(e.c.active), m.c.category_id.in_(cats), is_on(k.c.active),
                   sa.or_(*mine), *line_live(tables, clock.day("cover_day"),
                                             clock.until("cover_until"))))


def read_lines(conn: sa.Connection, tables: ErpTables, customers: Collection[int],
               categories: Collection[int], as_of: dt.date, *, parent_level: bool
               ) -> list[tuple[int, int | None, int, dt.date | None, dt.date | None]]:
    """The rows of ``lines_statement``, dates as dates (none when nothing is asked)."""
    if not customers or not categories:
        return []
    rows = conn.execute(lines_statement(tables, customers, categories, as_of,
                                        parent_level=parent_level)).all()
    return [(int(r[0]), None if r[1] is None else int(r[1]), int(r[2]), _day(r[3]), _day(r[4]))
            for r in rows]


def _day(value: object) -> dt.date | None:
    return None if value is None else as_date(value)


__all__ = ["lines_statement", "read_lines"]
