"""Contracts renewing soon, for the sales reps' renewal calendars (``digest.renewals_ics``).

One statement: every active contract expiring within the window (a date range over
``SCContracts``, so it stays small whatever the size of the dealer), with its contract code.
The customers' sales reps come from the facts already read, so the rep filter costs no query.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Container, Mapping
from typing import Any

import sqlalchemy as sa

from ..model import Customer, Renewal
from .connection import ErpTables, is_on

RENEWAL_DAYS = 60  # the window the calendar covers


def renewals_statement(tables: ErpTables, as_of: dt.date, days: int = RENEWAL_DAYS) -> sa.Select:
    """Active contracts expiring from the run date to ``days - 1`` days after it (inclusive
    bounds as in docs/rules.md), compared with date parameters like the fact queries."""
    k, cc = tables.contracts, tables.contract_codes
    return (sa.select(k.c.id, k.c.number, cc.c.code, k.c.customer_id, k.c.exp_date)
            .select_from(k.outerjoin(cc, cc.c.id == k.c.contract_code_id))
            .where(k.c.customer_id.is_not(None), is_on(k.c.active),
                   k.c.start_date < sa.bindparam("until", as_of + dt.timedelta(days=1),
                                                 type_=sa.Date),
                   k.c.exp_date >= sa.bindparam("day", as_of, type_=sa.Date),
                   k.c.exp_date < sa.bindparam("horizon", as_of + dt.timedelta(days=days),
                                               type_=sa.Date))
            .order_by(k.c.exp_date, k.c.id))


def read_renewals(conn: sa.Connection, tables: ErpTables, as_of: dt.date,
                  customers: Mapping[int, Customer], sales_reps: Container[str], *,
                  days: int = RENEWAL_DAYS) -> list[Renewal]:
    """The renewals of the active customers of these sales reps, soonest first."""
    out = []
    for contract_id, number, code, cid, expires in conn.execute(
            renewals_statement(tables, as_of, days)):
        c = customers.get(int(cid))
        if c is None or not c.active or (c.sales_rep or "") not in sales_reps:
            continue
        out.append(Renewal(contract_id=int(contract_id), contract_number=str(number or ""),
                           contract_code=str(code or ""), customer_id=c.id, number=c.number,
                           name=c.name, branch=c.branch, sales_rep=c.sales_rep,
                           expires=as_date(expires)))
    return out


def as_date(value: Any) -> dt.date:
    """A date column's value as a date: a datetime, a date, or ISO text (SQLite)."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])
