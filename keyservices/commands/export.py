"""``keyservices export opportunities`` and ``export alerts``: the night's calls as CSV.

The same pipeline as a run (``night.compute``): the same facts, classification, opportunities
and alerts, in the same order as the digest. The opportunity export adds one query for every
active contact (and, with the promoter filter, one for the NPS property).
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable, Sequence
from typing import Literal

from sqlalchemy.exc import SQLAlchemyError

from .. import night
from ..calls import Listing
from ..config import Config
from ..erp import verify_schema
from ..erp.contacts import ContactRow, best_contacts, contact_property_values, contact_rows
from ..errors import ConfigError, KeyservicesError, SchemaError
from ..model import Opportunity
from ..outputs.cells import csv_writer
from ..outputs.exports import (
    ALERT_COLUMNS,
    HUBSPOT,
    PLAIN,
    NpsFilter,
    NpsScores,
    OpportunityExport,
    money_cell,
    nps_score,
    rate_cell,
    read_nps_csv,
    write,
)
from ..state import StateStore
from ..state.opportunities import folded
from . import why

__all__ = ["NpsFilter", "OpportunityExport", "export_alerts", "export_opportunities",
           "read_nps_csv", "write"]


def _hidden(config: Config, as_of: dt.date) -> frozenset[tuple[int, str]]:
    """The (customer id, service code) pairs a snooze or dismiss hides on ``as_of``."""
    reader = StateStore.reader(config.state_url)
    if reader is None:
        return frozenset()
    try:
        return reader.hidden_opportunities(as_of)
    finally:
        reader.close()


def export_opportunities(config: Config, *, fmt: Literal["csv", "hubspot"] = "csv",
                         service: str | None = None, owner: str | None = None,
                         as_of: dt.date | None = None,
                         nps: NpsFilter | None = None,
                         include_hidden: bool = False) -> OpportunityExport:
    """The opportunities (optionally one service's, one sales rep's) as CSV text, and how many,
    in rank order (``rank``: the position in the night's one ranking by expected value).

    With ``nps`` only promoters may be the contact, and customers with none are left out. The
    survey CSV is read (and its header checked) before the database is touched. Snoozed and
    dismissed opportunities are left out until their date (``include_hidden``: kept, marked
    ``hidden``). Without a contacts table the contact columns are blank, with a warning.
    """
    as_of = as_of or dt.date.today()
    rules = night.rules_for(config)
    if rules.opportunities is None:
        raise ConfigError("the rules have no 'opportunities:' block, so there is nothing to "
                          "export; see docs/rules.md")
    codes = {s.code.upper(): s.name for s in rules.services}
    if service and service.upper() not in codes:
        raise ConfigError(f"no service {service!r}; the rules define {', '.join(codes)}")
    survey = read_nps_csv(nps.csv) if nps is not None and nps.csv is not None else None
    with night.open_erp(config, rules) as erp:
        tonight = night.compute(config, as_of, erp=erp, values=False)
        # customers at risk (takeout, churn) are not offered, as in the night's digest
        at_risk = why.at_risk(why.comparison(config, rules, tonight, erp_id=erp.identity()),
                              tonight, rules)
        result = OpportunityExport("", 0)
        stored: dict[int, str | None] = {}
        rows: list[ContactRow] = []
        try:
            with erp.engine.connect() as conn:
                if nps is not None and nps.property is not None:
                    stored = contact_property_values(conn, erp.tables, nps.property)
                rows = contact_rows(conn, erp.tables)
        except SQLAlchemyError as exc:
            if nps is not None or not _no_contacts(erp):
                raise _contact_db_error(exc, erp, nps) from exc
            # contacts are optional here as everywhere else: the rows go out without them
            result.warnings.append(
                f"the contacts table {erp.tables.physical('contacts')} (or a column of it) was "
                "not found: the contact columns are blank. Set erp.profile.contacts in "
                "config.yaml if your database names it differently")
    allowed = None
    if nps is not None:
        allowed = _promoter_test(nps, survey, stored, rows, result)
    contacts = best_contacts(rows, allowed)
    assert tonight.calls is not None
    found: Sequence[Opportunity] = why.hold_back(tonight.calls.opportunities, at_risk)
    rank = {id(o): n for n, o in enumerate(found, 1)}  # the place in the one ranking
    hidden = _hidden(config, as_of)  # snoozed or dismissed: hidden here as in the digest
    if not include_hidden:
        found = [o for o in found if (o.customer_id, o.service_code) not in hidden]
    if service:
        found = [o for o in found if o.service == codes[service.upper()]]
    if owner:  # as the opportunity list compares names (accents composed, case folded)
        owner = folded(owner)
        found = [o for o in found if folded(o.sales_rep) == owner]
    if nps is not None:
        kept = [o for o in found if o.customer_id in contacts]
        result.left_out_rows = len(found) - len(kept)
        result.left_out_customers = len({o.number for o in found} - {o.number for o in kept})
        found = kept
    buf = io.StringIO()
    writer = csv_writer(buf)  # ERP text that looks like a formula is neutralised (OWASP)
    writer.writerow(HUBSPOT if fmt == "hubspot" else PLAIN)
    for o in found:
        first, last, email, phone = contacts.get(o.customer_id, ("", "", "", ""))
        ranked = [o.play, rate_cell(o.p_win), money_cell(o.expected_value)]
        if fmt == "hubspot":
            writer.writerow([first, last, email, phone, o.name, o.service, o.priority, o.reason,
                             o.sales_rep or "", o.number, money_cell(o.estimated_annual_value),
                             *ranked, rank[id(o)]])
        else:
            writer.writerow([o.number, o.name, o.branch or "", o.sales_rep or "", o.service,
                             o.priority, o.reason, first, last, email, phone,
                             money_cell(o.estimated_annual_value), o.value_basis, *ranked,
                             o.evidence, rank[id(o)],
                             "yes" if (o.customer_id, o.service_code) in hidden else ""])
    result.text, result.count = buf.getvalue(), len(found)
    return result


def _promoter_test(nps: NpsFilter, survey: NpsScores | None, stored: dict[int, str | None],
                   rows: list[ContactRow], result: OpportunityExport
                   ) -> Callable[[ContactRow], bool]:
    """Whether a contact is a promoter; counts promoters, unmatched CSV rows and bad values."""
    scores: dict[int, float] = {}
    for contact_id, text in stored.items():
        score = nps_score(text)
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


def _no_contacts(erp: night.Erp) -> bool:
    """Whether the contacts table (or a column the export reads of it) is missing: asked
    only after reading them failed."""
    try:
        with erp.engine.connect() as conn:
            return bool(verify_schema(conn, erp.tables, ["contacts"]))
    except SQLAlchemyError:
        return False


def _contact_db_error(exc: SQLAlchemyError, erp: night.Erp,
                      nps: NpsFilter | None) -> KeyservicesError:
    """A missing contact custom property table is a setup problem (exit 2), with the fix."""
    if nps is not None and nps.property is not None:
        try:
            with erp.engine.connect() as conn:
                problems = verify_schema(conn, erp.tables,
                                         ["contacts", "contact_custom_properties"])
        except SQLAlchemyError:
            problems = []
        if problems:
            return SchemaError("the contact custom property values cannot be read (the table's "
                               "name in e-automate was never seen, so it is configurable):\n"
                               + "\n".join(f"  - {p}" for p in problems))
    return night.explain_db_error(exc, erp)


def export_alerts(config: Config, *, monitor: str | None = None, owner: str | None = None,
                  as_of: dt.date | None = None, new: bool = False) -> tuple[str, int]:
    """Every status-monitor hit of the night (all of them, not the digest's capped list) as CSV
    text, and how many; optionally one monitor's or one sales rep's, or only those first seen
    tonight (``new``). ``first_seen`` comes from the state store (read only; a hit it does not
    know is first seen tonight), so the export agrees with the night's digest."""
    as_of = as_of or dt.date.today()
    rules = night.rules_for(config)
    if not rules.monitors:
        raise ConfigError("the rules have no 'monitors:', so there are no status alerts; see "
                          "docs/rules.md")
    known = {m.code.upper() for m in rules.monitors}
    if monitor and monitor.upper() not in known:
        raise ConfigError(f"no monitor {monitor!r}; the rules define {', '.join(sorted(known))}")
    reader = StateStore.reader(config.state_url)
    try:
        seen = reader.alert_first_seen() if reader is not None else {}
    finally:
        if reader is not None:
            reader.close()
    with night.open_erp(config, rules) as erp:
        tonight = night.compute(config, as_of, erp=erp, values=False, alert_limit=None,
                                listing=Listing(seen=seen, alert_contacts=True))
    assert tonight.calls is not None
    alerts = [a for a in tonight.calls.alerts
              if (not monitor or a.code.upper() == monitor.upper())
              and (not owner or folded(a.sales_rep) == folded(owner))
              and (not new or a.new)]
    buf = io.StringIO()
    writer = csv_writer(buf)
    writer.writerow(ALERT_COLUMNS)
    for a in alerts:
        writer.writerow([a.number, a.name, a.branch or "", a.sales_rep or "", a.code, a.monitor,
                         a.text, a.first_seen.isoformat() if a.first_seen else "", a.priority])
    return buf.getvalue(), len(alerts)
