"""``keyservices export opportunities``: the cross-sell list as a CSV a CRM can import.

The same set-based facts and classification as a run, the night's opportunities, and one more
query for the customers' active contacts; the decision contact comes first (ARCustomers'
DecisionContactID), else the first active contact with an email address.

The promoter filter (CEO Juice ID789: "a HubSpot campaign aimed at promoters at companies missing
a service") lets only contacts with an NPS score of at least ``min_score`` be chosen. Scores come
from a contact custom property (one query over the ``contact_custom_properties`` profile table,
whose e-automate name was never seen and is configurable), from an imported survey CSV, or both
(a CSV score wins over the property's for the same contact). A customer with no promoter contact
is left out, and counted.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from . import calls
from .api import _engine_for, _rules_for, _tables_for
from .classify import classify
from .config import Config
from .erp import ErpTables, attribute_id, verify_schema, wrap_db_error
from .errors import ConfigError, SchemaError
from .facts import read_facts
from .monitors import Contact as Contact_

HUBSPOT = ["First Name", "Last Name", "Email", "Phone Number", "Company Name", "Key Service",
           "Priority", "Reason", "Sales Rep", "Customer Number"]
PLAIN = ["customer_number", "customer_name", "branch", "sales_rep", "service", "priority",
         "reason", "contact_first_name", "contact_last_name", "contact_email", "contact_phone"]


@dataclass(frozen=True, slots=True)
class NpsFilter:
    """Only promoters may be the contact: an NPS score (0-10) of at least ``min_score``, from the
    contact custom property ``property`` and/or the survey CSV ``csv``."""

    property: str | None = None
    csv: Path | None = None
    min_score: float = 9

    def __post_init__(self) -> None:
        if self.property is None and self.csv is None:
            raise ConfigError("the promoter filter needs --nps-property NAME or --nps-csv FILE")
        if not 0 <= self.min_score <= 10:
            raise ConfigError(f"the minimum NPS score must be 0-10, not {self.min_score:g}")


@dataclass(slots=True)
class NpsScores:
    """Scores read from a survey CSV, by contact id and by (lower-case) email."""

    by_id: dict[int, float] = field(default_factory=dict)
    by_email: dict[str, float] = field(default_factory=dict)
    rows: int = 0  # data rows read (blank lines not counted)
    problems: list[tuple[int, str]] = field(default_factory=list)  # (line, what is wrong)


@dataclass(slots=True)
class OpportunityExport:
    """The CSV text and what went into it. Unpacks as ``(text, count)``, as before."""

    text: str
    count: int  # opportunity rows written
    left_out_customers: int = 0  # customers with no promoter contact (promoter filter only)
    left_out_rows: int = 0  # their opportunity rows, not written
    promoters: int = 0  # active contacts scoring at least the minimum
    csv_problems: list[tuple[int, str]] = field(default_factory=list)  # bad CSV rows, skipped
    csv_unmatched: int = 0  # valid CSV rows naming no active contact of any customer
    bad_property_values: int = 0  # property values that are not a number from 0 to 10

    def __iter__(self) -> Iterator[Any]:
        return iter((self.text, self.count))


def export_opportunities(config: Config, *, fmt: Literal["csv", "hubspot"] = "csv",
                         service: str | None = None, owner: str | None = None,
                         as_of: dt.date | None = None,
                         nps: NpsFilter | None = None) -> OpportunityExport:
    """The opportunities (optionally one service's, one sales rep's) as CSV text, and how many.

    With ``nps`` only promoters may be the contact, and customers with none are left out. The
    survey CSV is read (and its header checked) before the database is touched.
    """
    as_of = as_of or dt.date.today()
    rules = _rules_for(config)
    if rules.opportunities is None:
        raise ConfigError("the rules have no 'opportunities:' block, so there is nothing to "
                          "export; see docs/rules.md")
    codes = {s.code.upper(): s.name for s in rules.services}
    if service and service.upper() not in codes:
        raise ConfigError(f"no service {service!r}; the rules define {', '.join(codes)}")
    survey = read_nps_csv(nps.csv) if nps is not None and nps.csv is not None else None
    tables = _tables_for(config, rules)
    engine = _engine_for(config)
    try:
        with engine.connect() as conn:
            attr = attribute_id(conn, tables, rules.property)
            facts = read_facts(conn, tables, rules, attr, as_of, extra=calls.extras(rules))
            stored: dict[int, str | None] = {}
            if nps is not None and nps.property is not None:
                stored = contact_property_values(conn, tables, nps.property)
            rows = _contact_rows(conn, tables)
    except SQLAlchemyError as exc:
        raise _contact_db_error(exc, engine, tables, nps, config.erp.url) from exc
    finally:
        engine.dispose()
    result = OpportunityExport("", 0)
    allowed = None
    if nps is not None:
        allowed = _promoter_test(nps, survey, stored, rows, result)
    contacts = _best_contacts(rows, allowed)
    # the same list, in the same order, as the night's digest (gaps, monitors, priority rules)
    found = calls.who_to_call(facts, classify(facts, rules), rules,
                              monitor_contacts(_best_contacts(rows))).opportunities
    if service:
        found = [o for o in found if o.service == codes[service.upper()]]
    if owner:
        found = [o for o in found if (o.sales_rep or "").casefold() == owner.casefold()]
    by_number = {c.number: c.id for c in facts.customers.values()}
    if nps is not None:
        kept = [o for o in found if by_number[o.number] in contacts]
        result.left_out_rows = len(found) - len(kept)
        result.left_out_customers = len({o.number for o in found} - {o.number for o in kept})
        found = kept
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
    result.text, result.count = buf.getvalue(), len(found)
    return result


class Contact(NamedTuple):
    customer_id: int
    id: int
    first_name: str
    last_name: str
    email: str
    phone: str
    decision_contact_id: int | None  # the customer's (ARCustomers.DecisionContactID)


def _contact_rows(conn: sa.Connection, tables: ErpTables, only: set[int] | None = None
                  ) -> list[Contact]:
    """Every active contact of every customer (of ``only``), in one streamed query."""
    c, ct = tables.customers, tables.contacts
    stmt = (sa.select(ct.c.customer_id, ct.c.id, ct.c.first_name, ct.c.last_name, ct.c.email,
                      ct.c.phone, c.c.decision_contact_id)
            .select_from(ct.join(c, c.c.id == ct.c.customer_id))
            .where(sa.or_(ct.c.active.is_(None), ct.c.active == sa.true()))
            .order_by(ct.c.customer_id, ct.c.id))
    if only is not None:
        # the alerted customers: a few thousand at most (texts are rendered for a capped number
        # per monitor and branch), integers rendered inline so no parameter limit applies
        stmt = stmt.where(ct.c.customer_id.in_(sa.bindparam(
            "alerted", sorted(int(i) for i in only), expanding=True, literal_execute=True)))
    rows = conn.execute(stmt, execution_options={"yield_per": 5000})
    return [Contact(int(cid), int(contact_id), first or "", last or "", email or "",
                    phone or "", decision)
            for cid, contact_id, first, last, email, phone, decision in rows]


def _best_contacts(rows: list[Contact], allowed: Callable[[Contact], bool] | None = None
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


def _promoter_test(nps: NpsFilter, survey: NpsScores | None, stored: dict[int, str | None],
                   rows: list[Contact], result: OpportunityExport) -> Callable[[Contact], bool]:
    """Whether a contact is a promoter; counts promoters, unmatched CSV rows and bad values."""
    scores: dict[int, float] = {}
    for contact_id, text in stored.items():
        score = _score(text)
        if score is not None:
            scores[contact_id] = score
        elif (text or "").strip():  # an empty value is no score, not a bad one
            result.bad_property_values += 1
    if survey is not None:
        result.csv_problems = list(survey.problems)
        ids = {row.id for row in rows}
        emails = {row.email.strip().lower() for row in rows if row.email}
        result.csv_unmatched = (sum(1 for i in survey.by_id if i not in ids)
                                + sum(1 for e in survey.by_email if e not in emails))
        for row in rows:  # by email first, so that a row naming the contact's id wins
            score = survey.by_email.get(row.email.strip().lower()) if row.email else None
            if score is not None:
                scores[row.id] = score
        for contact_id, score in survey.by_id.items():
            scores[contact_id] = score
    promoters = {i for i, score in scores.items() if score >= nps.min_score}
    result.promoters = sum(1 for row in rows if row.id in promoters)
    return lambda row: row.id in promoters


def _score(text: object) -> float | None:
    """An NPS score 0-10 from a stored value or a CSV cell; None when it is not one."""
    raw = str(text if text is not None else "").strip().replace(",", ".")
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if 0 <= value <= 10 else None


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


def _contact_db_error(exc: SQLAlchemyError, engine: sa.Engine, tables: ErpTables,
                      nps: NpsFilter | None, url: str) -> Exception:
    """A missing contact custom property table is a setup problem (exit 2), with the fix."""
    if nps is not None and nps.property is not None:
        try:
            with engine.connect() as conn:
                problems = verify_schema(conn, tables, ["contacts", "contact_custom_properties"])
        except SQLAlchemyError:
            problems = []
        if problems:
            return SchemaError("the contact custom property values cannot be read (the table's "
                               "name in e-automate was never seen, so it is configurable):\n"
                               + "\n".join(f"  - {p}" for p in problems))
    return wrap_db_error(exc, url)


# -- the survey CSV -------------------------------------------------------------------------------
_EMAIL = {"email", "contact_email", "e_mail", "email_address", "contact_email_address"}
_ID = {"contact_id", "contactid", "contact_number_id"}
_SCORE = {"score", "nps", "nps_score", "rating", "likelihood_to_recommend"}


def _header_key(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


def read_nps_csv(path: Path) -> NpsScores:
    """Scores from a survey export: a header row with a score column and a contact email and/or
    contact id column (comma, semicolon or tab separated, UTF-8 with or without a BOM).

    A row that cannot be used is skipped and reported with its line number; a file without the
    needed columns, or with no usable row at all, is an error (exit 2). When a contact appears
    twice, the later row wins (survey exports list the oldest answer first).
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"NPS file {path} not found") from None
    except UnicodeDecodeError:
        raise ConfigError(f"NPS file {path} is not UTF-8 text; save it as 'CSV UTF-8'") from None
    except OSError as exc:
        raise ConfigError(f"cannot read the NPS file {path}: {exc.strerror or exc}") from None
    first = text.split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=first.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = next(reader, None)
    if not header or not any(cell.strip() for cell in header):
        raise ConfigError(f"NPS file {path} is empty; it needs a header row such as "
                          "'email,score' or 'contact_id,score'")
    keys = [_header_key(h) for h in header]

    def column(names: set[str]) -> int | None:
        return next((i for i, k in enumerate(keys) if k in names), None)

    score_at, email_at, id_at = column(_SCORE), column(_EMAIL), column(_ID)
    missing = ([] if score_at is not None else ["a score column (score or nps)"]) + (
        [] if email_at is not None or id_at is not None
        else ["a contact column (email or contact_id)"])
    if missing:
        raise ConfigError(f"{path}:1: the header ({', '.join(h.strip() for h in header)}) lacks "
                          f"{' and '.join(missing)}")
    out = NpsScores()
    for cells in reader:
        line = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        out.rows += 1

        def cell(at: int | None) -> str:
            return cells[at].strip() if at is not None and at < len(cells) else ""

        raw_score, email, raw_id = cell(score_at), cell(email_at), cell(id_at)
        score = _score(raw_score)
        if not raw_score:
            out.problems.append((line, "no score"))
            continue
        if score is None:
            out.problems.append((line, f"score {raw_score!r} is not a number from 0 to 10"))
            continue
        if raw_id:
            if not re.fullmatch(r"\d+", raw_id):
                out.problems.append((line, f"contact id {raw_id!r} is not a whole number"))
                continue
            out.by_id[int(raw_id)] = score
        elif email:
            if "@" not in email:
                out.problems.append((line, f"{email!r} is not an email address"))
                continue
            out.by_email[email.lower()] = score
        else:
            out.problems.append((line, "no contact email or contact id"))
    if len(out.problems) == out.rows:  # nothing to go on: every customer would be left out
        shown = "; ".join(f"line {n}: {what}" for n, what in out.problems[:3])
        more = " ..." if len(out.problems) > 3 else ""
        raise ConfigError(f"NPS file {path} has no usable row" + (f" ({shown}{more})" if shown
                                                                   else ""))
    return out


ALERT_COLUMNS = ["customer_number", "customer_name", "branch", "sales_rep", "monitor_code",
                 "monitor", "text"]


def export_alerts(config: Config, *, monitor: str | None = None, owner: str | None = None,
                  as_of: dt.date | None = None) -> tuple[str, int]:
    """Every status-monitor hit of the night (all of them, not the digest's capped list) as CSV
    text, and how many; optionally one monitor's or one sales rep's."""
    as_of = as_of or dt.date.today()
    rules = _rules_for(config)
    if not rules.monitors:
        raise ConfigError("the rules have no 'monitors:', so there are no status alerts; see "
                          "docs/rules.md")
    known = {m.code.upper() for m in rules.monitors}
    if monitor and monitor.upper() not in known:
        raise ConfigError(f"no monitor {monitor!r}; the rules define {', '.join(sorted(known))}")
    tables = _tables_for(config, rules)
    engine = _engine_for(config)
    try:
        with engine.connect() as conn:
            attr = attribute_id(conn, tables, rules.property)
            facts = read_facts(conn, tables, rules, attr, as_of, extra=calls.extras(rules))
            tonight = calls.who_to_call(facts, classify(facts, rules), rules,
                                        lambda ids: read_contacts(conn, tables, ids),
                                        alert_limit=None)
    except SQLAlchemyError as exc:
        raise wrap_db_error(exc, config.erp.url) from exc
    finally:
        engine.dispose()
    alerts = [a for a in tonight.alerts
              if (not monitor or a.code.upper() == monitor.upper())
              and (not owner or (a.sales_rep or "").casefold() == owner.casefold())]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(ALERT_COLUMNS)
    for a in alerts:
        writer.writerow([a.number, a.name, a.branch or "", a.sales_rep or "", a.code, a.monitor,
                         a.text])
    return buf.getvalue(), len(alerts)


def write(text: str, out: Path | None) -> Path | None:
    """Write with a BOM so that Excel reads accented names right; None means stdout."""
    if out is None:
        return None
    out.write_text("\ufeff" + text, encoding="utf-8", newline="")
    return out


def monitor_contacts(best: dict[int, tuple[str, str, str, str]]) -> dict[int, Contact_]:
    """Each customer's best contact as status-monitor texts name them."""
    return {cid: Contact_(f"{first} {last}".strip(), phone, email)
            for cid, (first, last, email, phone) in best.items()}


def read_contacts(conn: sa.Connection, tables: ErpTables, only: set[int] | None = None
                  ) -> dict[int, Contact_]:
    """The best contact of each customer in ``only`` (all when None), in one streamed query:
    status-monitor texts need a few thousand contacts, not a million."""
    return monitor_contacts(_best_contacts(_contact_rows(conn, tables, only)))
