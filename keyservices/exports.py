"""``keyservices export opportunities``: the cross-sell list as a CSV a CRM can import.

The same set-based facts and classification as a run, the night's opportunities, and one more
query for the customers' active contacts; the decision contact comes first (ARCustomers'
DecisionContactID), else the first active contact with an email address.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from .api import _rules_for, _tables_for
from .classify import classify
from .config import Config
from .erp import attribute_id, connect, wrap_db_error
from .errors import ConfigError
from .facts import read_facts
from .opportunities import find

HUBSPOT = ["First Name", "Last Name", "Email", "Phone Number", "Company Name", "Key Service",
           "Priority", "Reason", "Sales Rep", "Customer Number"]
PLAIN = ["customer_number", "customer_name", "branch", "sales_rep", "service", "priority",
         "reason", "contact_first_name", "contact_last_name", "contact_email", "contact_phone"]


def export_opportunities(config: Config, *, fmt: Literal["csv", "hubspot"] = "csv",
                         service: str | None = None, owner: str | None = None,
                         as_of: dt.date | None = None) -> tuple[str, int]:
    """The opportunities (optionally one service's, one sales rep's) as CSV text, and how many."""
    as_of = as_of or dt.date.today()
    rules = _rules_for(config)
    if rules.opportunities is None:
        raise ConfigError("the rules have no 'opportunities:' block, so there is nothing to "
                          "export; see docs/rules.md")
    codes = {s.code.upper(): s.name for s in rules.services}
    if service and service.upper() not in codes:
        raise ConfigError(f"no service {service!r}; the rules define {', '.join(codes)}")
    tables = _tables_for(config, rules)
    engine = connect(config.erp.url, password=config.erp_password(),
                     connect_timeout=config.erp.connect_timeout)
    try:
        with engine.connect() as conn:
            attr = attribute_id(conn, tables, rules.property)
            facts = read_facts(conn, tables, rules, attr, as_of)
            contacts = _contacts(conn, tables)
    except SQLAlchemyError as exc:
        raise wrap_db_error(exc, config.erp.url) from exc
    finally:
        engine.dispose()
    found = find(facts, classify(facts, rules), rules)
    if service:
        found = [o for o in found if o.service == codes[service.upper()]]
    if owner:
        found = [o for o in found if (o.sales_rep or "").casefold() == owner.casefold()]
    by_number = {c.number: c.id for c in facts.customers.values()}
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(HUBSPOT if fmt == "hubspot" else PLAIN)
    for o in found:
        first, last, email, phone = contacts.get(by_number[o.number], ("", "", "", ""))
        if fmt == "hubspot":
            writer.writerow([first, last, email, phone, o.name, o.service, o.priority, o.reason,
                             o.sales_rep or "", o.number])
        else:
            writer.writerow([o.number, o.name, o.branch or "", o.sales_rep or "", o.service,
                             o.priority, o.reason, first, last, email, phone])
    return buf.getvalue(), len(found)


def _contacts(conn: sa.Connection, tables: object) -> dict[int, tuple[str, str, str, str]]:
    """Each customer's best contact: the decision contact, else the first with an email."""
    c, ct = tables.customers, tables.contacts  # type: ignore[attr-defined]
    rows = conn.execute(
        sa.select(ct.c.customer_id, ct.c.id, ct.c.first_name, ct.c.last_name, ct.c.email,
                  ct.c.phone, c.c.decision_contact_id)
        .select_from(ct.join(c, c.c.id == ct.c.customer_id))
        .where(sa.or_(ct.c.active.is_(None), ct.c.active == sa.true()))
        .order_by(ct.c.customer_id, ct.c.id))
    best: dict[int, tuple[int, tuple[str, str, str, str]]] = {}
    for cid, contact_id, first, last, email, phone, decision in rows:
        rank = 0 if contact_id == decision else 1 if email else 2
        if cid not in best or rank < best[cid][0]:
            best[cid] = (rank, (first or "", last or "", email or "", phone or ""))
    return {cid: value for cid, (_, value) in best.items()}


def write(text: str, out: Path | None) -> Path | None:
    """Write with a BOM so that Excel reads accented names right; None means stdout."""
    if out is None:
        return None
    out.write_text("\ufeff" + text, encoding="utf-8", newline="")
    return out
