"""The customers' contact persons: who a rep calls, and whom a monitor's text names.

The decision contact comes first (ARCustomers' DecisionContactID), else the first active contact
with an email address, else the first. Read in one streamed query, for all customers (the
opportunity export) or for the few a night's digest lists (alerts, and the opportunities of the
rep and branch copies).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import sqlalchemy as sa

from ..calls.monitors import Contact
from ..errors import SchemaError
from .connection import ErpTables, is_on


class ContactRow(NamedTuple):
    customer_id: int
    id: int
    first_name: str
    last_name: str
    email: str
    phone: str
    decision_contact_id: int | None  # the customer's (ARCustomers.DecisionContactID)


def contact_rows(conn: sa.Connection, tables: ErpTables, only: set[int] | None = None
                  ) -> list[ContactRow]:
    """Every active contact of every customer (of ``only``), in one streamed query."""
    rows = conn.execute(contacts_statement(tables, only), execution_options={"yield_per": 5000})
    return [ContactRow(int(cid), int(contact_id), first or "", last or "", email or "",
                    phone or "", decision)
            for cid, contact_id, first, last, email, phone, decision in rows]


def contacts_statement(tables: ErpTables, only: set[int] | None = None) -> sa.Select:
    """The statement ``contact_rows`` sends (``check --show-sql`` prints it too)."""
    c, ct = tables.customers, tables.contacts
    stmt = (sa.select(ct.c.customer_id, ct.c.id, ct.c.first_name, ct.c.last_name, ct.c.email,
                      ct.c.phone, c.c.decision_contact_id)
            .select_from(ct.join(c, c.c.id == ct.c.customer_id))
            .where(sa.or_(ct.c.active.is_(None), is_on(ct.c.active)))
            .order_by(ct.c.customer_id, ct.c.id))
    if only is not None:
        # the customers the digest lists: a few thousand at most (alert texts are rendered for
        # a capped number per monitor and branch, opportunities for the top of each rep and
        # branch copy), integers rendered inline so no parameter limit applies
        stmt = stmt.where(ct.c.customer_id.in_(sa.bindparam(
            "listed", sorted(int(i) for i in only), expanding=True, literal_execute=True)))
    return stmt


def best_contacts(rows: list[ContactRow], allowed: Callable[[ContactRow], bool] | None = None
                   ) -> dict[int, tuple[str, str, str, str]]:
    """Each customer's best contact among the ``allowed`` ones: the decision contact, else the
    first with an email, else the first."""
    best: dict[int, tuple[int, tuple[str, str, str, str]]] = {}
    for row in rows:
        if allowed is not None and not allowed(row):
            continue
        rank = 0 if row.id == row.decision_contact_id else 1 if row.email else 2
        if row.customer_id not in best or rank < best[row.customer_id][0]:
            best[row.customer_id] = (rank, (row.first_name, row.last_name, row.email,
                                            row.phone))
    return {cid: value for cid, (_, value) in best.items()}


def contact_property_values(conn: sa.Connection, tables: ErpTables,
                            name: str) -> dict[int, str | None]:
    """Every contact's value of the contact custom property ``name``, in one query (after the
    attribute's id is looked up)."""
    a = tables.attributes
    ids = conn.execute(sa.select(a.c.id).where(a.c.name == name)).scalars().all()
    if not ids:
        raise SchemaError(
            f"no attribute named {name!r} in {tables.physical('attributes')}: --nps-property "
            "takes the name of the contact custom property that holds the NPS score (as in "
            "Tools / Lists & Codes / Attributes)")
    cp = tables.contact_custom_properties
    rows = conn.execute(sa.select(cp.c.contact_id, cp.c.text)
                        .where(cp.c.attribute_id.in_([int(i) for i in ids])))
    return {int(contact_id): text for contact_id, text in rows if contact_id is not None}


def monitor_contacts(best: dict[int, tuple[str, str, str, str]]) -> dict[int, Contact]:
    """Each customer's best contact as status-monitor texts name them."""
    return {cid: Contact(f"{first} {last}".strip(), phone, email)
            for cid, (first, last, email, phone) in best.items()}


def read_contacts(conn: sa.Connection, tables: ErpTables, only: set[int] | None = None
                  ) -> dict[int, Contact]:
    """The best contact of each customer in ``only`` (all when None), in one streamed query:
    status-monitor texts need a few thousand contacts, not a million."""
    return monitor_contacts(best_contacts(contact_rows(conn, tables, only)))
