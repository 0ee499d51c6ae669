"""Before the first night: ``check`` (config, rules, tables, columns, the attribute), index
advice for the DBA, and the SQL a run sends. None of these writes anything."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from .. import night
from ..calls import extras as call_extras
from ..calls.backtest import as_of_dates
from ..calls.tonight import monitors_naming_contacts
from ..calls.wonlost import ValueColumns
from ..config import Config
from ..engine.diff import attribute_is_foreign, owned, two_rows_note
from ..engine.metrics import Codes, needed_codes
from ..erp import ErpTables, attribute_id, display_url, indexes, verify_schema, wrap_db_error
from ..erp.connection import is_on, session_settings
from ..erp.dated import note_absent
from ..erp.facts import read_categories, read_codes
from ..erp.needs import needed_tables, placeholder_codes, run_reads, unused_columns
from ..erp.profile import OPTIONAL_COLUMNS
from ..erp.script import Printer, night_steps
from ..erp.shapes import prepare
from ..errors import SchemaError
from ..rules import RuleSet, glob_match
from ..state import StateStore
from .alerts import monitor_warnings, renewal_days
from .settings import password_sources


@dataclass
class CheckReport:
    """What ``check`` found; ``problems`` make it fail (exit 2), ``warnings`` do not."""

    erp: str
    rules_files: list[Path]
    services: list[str]
    attribute_id: int | None = None
    customers: int = 0
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    unmapped_categories: dict[str, int] = field(default_factory=dict)
    # where each password came from ("env KEYSERVICES_ERP_PASSWORD", "keyring", "not set")
    passwords: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["rules_files"] = [str(p) for p in self.rules_files]
        return data


def check(config: Config) -> CheckReport:
    """Validate config and rules, connect, verify tables, columns and the attribute.

    Raises SchemaError (exit 2) when something the run reads is missing (every table and
    column any of its statements reads, monitors and contact names included) or holds values
    the rules cannot interpret; unmapped dealer model categories and missing enrichment tables
    (branches, sales reps, customer types) are warnings.
    """
    rules = night.rules_for(config)
    tables = night.tables_for(config, rules)
    report = CheckReport(erp=display_url(config.erp.url), rules_files=list(rules.files),
                         services=[f"{s.code} ({s.name})" for s in rules.services],
                         passwords=password_sources(config))
    engine = night.engine_for(config)
    try:
        with engine.connect() as conn:
            contacts = night.reads_contacts(config, rules)
            note_absent(conn, tables, needed_tables(rules, tables, contacts=contacts))
            report.problems = verify_schema(
                conn, tables, needed_tables(rules, tables, contacts=contacts),
                unused_columns(rules, tables, contacts=contacts), report.warnings)
            report.warnings += [
                f"column {tables.physical(lo)}.{tables.profile[lo]['columns'][col]} ({lo}.{col}) "
                f"not found: {OPTIONAL_COLUMNS[(lo, col)]}; if your database names it "
                f"differently, set erp.profile.{lo}.columns.{col}" for lo, col in sorted(tables.absent)]
            if contacts:  # say which setting or rule needs the contacts table
                marks = (tables.physical("contacts"),
                         tables.profile["customers"]["columns"]["decision_contact_id"])
                report.problems = [f"{p} (read because {_contacts_reason(config, rules)})"
                                   if any(m in p for m in marks) else p
                                   for p in report.problems]
            if not report.problems:
                # values the rules interpret (flags, dates, amounts), as the run checks them
                report.problems += prepare(conn, tables,
                                           run_reads(tables, rules, contacts=contacts))
            attributes_ok = not any(tables.physical("attributes") in p for p in report.problems)
            if report.problems and attributes_ok:
                # every problem at once: a missing column must not hide a missing attribute
                try:
                    attribute_id(conn, tables, rules.property)
                except SchemaError as exc:
                    report.problems.append(str(exc))
            if not report.problems:
                try:
                    report.attribute_id = attribute_id(conn, tables, rules.property)
                except SchemaError as exc:
                    report.problems.append(str(exc))
                else:  # the values keyservices would overwrite: are they its own?
                    refuse, said = _ownership(conn, tables, rules, report.attribute_id,
                                              _written(config, rules))
                    (report.problems if refuse else report.warnings).extend(said)
                    report.warnings += _two_value_rows(conn, tables, rules, report.attribute_id)
                if not rules.property.upper().startswith("Z"):
                    report.warnings.append(
                        f"the property {rules.property} does not start with Z, as e-automate's "
                        "custom properties for dealer processes do: make sure it is the "
                        "attribute keyservices owns")
                c = tables.customers
                report.customers = int(conn.execute(
                    sa.select(sa.func.count()).select_from(c)).scalar() or 0)
                report.unmapped_categories = _unmapped(conn, tables, rules)
                for cat, units in report.unmapped_categories.items():
                    report.warnings.append(f"model category {cat} ({units} active units) maps to "
                                           "no model class; add it under model_classes")
                report.warnings += _dead_globs(conn, tables, rules)
                report.warnings += _uncounted(conn, tables)
                if renewal_days(config):  # the renewals calendar reads the contract number too
                    report.problems += verify_schema(conn, tables, ["contracts"], {
                        ("contracts", c) for c in tables.profile["contracts"]["columns"]
                        if c != "number"})
    except SQLAlchemyError as exc:
        raise wrap_db_error(exc, config.erp.url) from exc
    finally:
        engine.dispose()
    if not report.problems:  # a monitor most customers hit every night is noise
        report.warnings += monitor_warnings(config, rules)
    if report.problems:
        raise SchemaError("the ERP database is not as configured:\n" + "\n".join(
            f"  - {p}" for p in report.problems), report)
    return report


def _contacts_reason(config: Config, rules: RuleSet) -> str:
    """Why a run reads the contacts table, for the message that says it is missing."""
    naming = monitors_naming_contacts(rules)
    if naming:
        return (f"the text of monitor(s) {', '.join(naming)} shows the customer's contact; "
                "remove {{ contact }}, {{ phone }} and {{ email }} from them to run without it")
    return ("digest.sales_reps or digest.branches copies print whom to call for each "
            "opportunity and alert")


def _two_value_rows(conn: sa.Connection, tables: ErpTables, rules: RuleSet,
                    attr: int) -> list[str]:
    """Customers with two or more value rows of the attribute, named as the run's digest
    names them: the run classifies them and never writes them (the rest of the night goes on)."""
    cp, c = tables.custom_properties, tables.customers
    numbers = [str(n) for n in conn.execute(
        sa.select(c.c.number).join(cp, cp.c.customer_id == c.c.id)
        .where(cp.c.attribute_id == attr).group_by(c.c.id, c.c.number)
        .having(sa.func.count() > 1).order_by(c.c.number)).scalars()]
    if not numbers:
        return []
    return [two_rows_note(rules.property, tables.physical("custom_properties"), numbers)]


def _dead_globs(conn: sa.Connection, tables: ErpTables, rules: RuleSet) -> list[str]:
    """Globs in the rules that match nothing in this database: usually a typo."""
    def codes(table: sa.Table) -> list[str]:
        return [c for c in conn.execute(sa.select(table.c.code if "code" in table.c
                                                  else table.c.number)).scalars() if c]

    categories = list(read_categories(conn, tables))
    checks: list[tuple[str, list[str], list[str]]] = [
        ("model_classes", [g for g, _ in rules.model_classes], categories)]
    for kind in ("equipment", "items_sold"):
        checks.append((f"{kind}.categories",
                       [g for sec in rules.all_sections(kind) for g in sec.categories], categories))
    if rules.all_sections("contracts"):
        contract = rules.all_sections("contracts")
        checks.append(("contracts.contract_codes", [g for c in contract for g in c.contract_codes],
                       codes(tables.contract_codes)))
        checks.append(("contracts.bill_codes", [g for c in contract for g in c.bill_codes],
                       codes(tables.bill_codes)))
    if rules.all_sections("gl"):
        checks.append(("gl.accounts", rules.gl_account_globs(), codes(tables.gl_accounts)))
    warnings = []
    for where, globs, values in checks:
        for glob in sorted(set(globs)):
            if not any(glob_match(v, [glob]) for v in values):
                warnings.append(f"{where}: {glob!r} matches nothing in this database")
    return warnings


def _uncounted(conn: sa.Connection, tables: ErpTables) -> list[str]:
    """What the rules can never count, silently: active units whose model has no category (or
    no model), and locations whose parent record is missing (they roll up to nobody)."""
    e, m, mc, c = tables.equipment, tables.models, tables.model_categories, tables.customers
    warnings = []
    units = conn.execute(
        sa.select(sa.func.count())
        .select_from(e.outerjoin(m, m.c.id == e.c.model_id)
                     .outerjoin(mc, mc.c.id == m.c.category_id))
        .where(is_on(e.c.active), mc.c.id.is_(None))).scalar() or 0
    if units:
        warnings.append(f"{units:,} active unit(s) in {tables.physical('equipment')} have a model "
                        f"with no category in {tables.physical('model_categories')} (or no "
                        "model): no rule counts them. Give their models a category in "
                        "e-automate")
    parent = c.alias("parent")
    orphans = conn.execute(
        sa.select(c.c.number)
        .select_from(c.outerjoin(parent, parent.c.id == c.c.parent_id))
        .where(c.c.parent_id.is_not(None), c.c.parent_id != 0, c.c.parent_id != c.c.id,
               parent.c.id.is_(None))
        .order_by(c.c.number).limit(11)).scalars().all()
    if orphans:
        shown = ", ".join(map(str, orphans[:10])) + (" ..." if len(orphans) > 10 else "")
        warnings.append(f"location(s) whose parent record is missing from "
                        f"{tables.physical('customers')}: {shown}; they are judged on their own "
                        "(their parent cannot be found). Fix the parent in e-automate")
    return warnings


def _unmapped(conn: sa.Connection, tables: ErpTables, rules: RuleSet) -> dict[str, int]:
    categories = read_categories(conn, tables)
    unmapped = [c for c in categories if rules.class_of(c) is None]
    if not unmapped:
        return {}
    e, m, mc = tables.equipment, tables.models, tables.model_categories
    rows = conn.execute(
        sa.select(mc.c.code, sa.func.count(e.c.model_id))
        .select_from(mc.join(m, m.c.category_id == mc.c.id)
                     .outerjoin(e, sa.and_(e.c.model_id == m.c.id, is_on(e.c.active))))
        .where(mc.c.code.in_(unmapped)).group_by(mc.c.code))
    counts = {code: int(n) for code, n in rows}
    return {c: counts.get(c, 0) for c in unmapped}


def suggest_indexes(config: Config) -> list[tuple[Any, str]]:
    """The indexes the night's statements could use that the ERP lacks, as (advice, CREATE INDEX
    in the ERP's dialect). Read-only: the schema is inspected, nothing is created."""
    rules = night.rules_for(config)
    tables = night.tables_for(config, rules)
    engine = night.engine_for(config)
    try:
        with engine.connect() as conn:
            missing = indexes.missing(conn, tables, indexes.advice(rules))
    except SQLAlchemyError as exc:
        raise wrap_db_error(exc, config.erp.url) from exc
    finally:
        engine.dispose()
    return [(a, indexes.create_statement(a, tables, engine.dialect)) for a in missing]


def show_sql(config: Config, *, with_ids: bool = False, conn: sa.Connection | None = None,
             dialect: sa.Dialect | None = None, as_of: dt.date | None = None,
             ) -> list[tuple[str, str]]:
    """Every statement a run sends to the ERP, in run order, as (name, SQL a DBA can paste).

    Built by the functions the run calls, with its extra columns (contract values, monitors,
    priority), for the configured database (or ``dialect``). Without a connection nothing is
    connected: the attribute id is looked up by name in the text and the code-list ids show as
    placeholders. ``with_ids`` connects (reads only) to write in the dealer's own ids, as does
    passing ``conn``.
    """
    if with_ids and conn is None:
        engine = night.engine_for(config)
        try:
            with engine.connect() as live:
                return show_sql(config, conn=live, dialect=dialect, as_of=as_of)
        except SQLAlchemyError as exc:
            raise wrap_db_error(exc, config.erp.url) from exc
        finally:
            engine.dispose()
    rules = night.rules_for(config)
    tables = night.tables_for(config, rules)
    dialect = dialect or make_url(config.erp.url).get_dialect()()
    extra = [ValueColumns(rules), *call_extras(rules)]  # what night.compute reads beside the rules
    needed = needed_codes(rules).union(*(e.codes_needed for e in extra))
    attr: int | None = None
    examples: Codes | None = None
    if conn is None:
        codes = examples = placeholder_codes(rules)
    else:
        attr = attribute_id(conn, tables, rules.property)
        codes, _ = read_codes(conn, tables, needed)
    session = session_settings(config.erp.read_isolation, config.erp.lock_timeout_seconds,
                               backend=dialect.name)
    routed = bool(config.digest.sales_reps or config.digest.branches)
    as_of = as_of or dt.date.today()
    # the night learns its win rates with every call extra (night.learn)
    learning = None if rules.opportunities is None else [
        c for e in call_extras(rules) for c in e.columns(codes)]
    steps = night_steps(tables, rules, codes, needed, [c for e in extra for c in e.columns(codes)],
                        as_of, attr_id=attr or 0, session=session,
                        listed=routed, renewals_days=renewal_days(config), learn=learning,
                        learn_dates=as_of_dates(as_of, config.ranking.months),
                        learn_every=config.ranking.learn_every_days)
    printer = Printer(dialect, tables, rules, attribute=attr, examples=examples)
    return [(step.name, printer.sql(step)) for step in steps]


def sql_script(config: Config, statements: list[tuple[str, str]], *, with_ids: bool = False
               ) -> str:
    """``show_sql``'s statements as one script: a header, each statement named, and on SQL
    Server each followed by GO (SSMS's batch separator), so it pastes as is."""
    tsql = make_url(config.erp.url).get_backend_name() == "mssql"
    header = [(f"-- keyservices: every statement a night sends to "
               f"{display_url(config.erp.url)}, in run order."),
              ("-- Nothing here was run. Values are written in; a DECLARE or (NULL /* ... */) "
               "stands for what the run knows only then.")]
    if not with_ids:
        header.append("-- Code-list ids are read at run time: 'keyservices check --show-sql "
                      "--with-ids' writes in this database's own.")
    header.append("-- Not listed: the driver's start-up queries and the schema reflection that "
                  "checks the columns' types.")
    if tsql:
        header.append("-- Paste into SSMS as is: each batch ends with GO.")
    parts = ["\n".join(header), ""]
    for name, sql in statements:
        parts.append(f"-- {name}\n{sql}\n" + ("GO\n" if tsql else ""))
    return "\n".join(parts)


def _written(config: Config, rules: RuleSet) -> set[str]:
    """The values the audit says keyservices wrote (its own, as the run judges them); read
    without creating or migrating the state store."""
    reader = StateStore.reader(config.state_url)
    if reader is None:
        return set()
    try:
        return reader.written_values(rules.property)
    finally:
        reader.close()


def _ownership(conn: sa.Connection, tables: ErpTables, rules: RuleSet, attr: int,
               written: set[str]) -> tuple[bool, list[str]]:
    """(refuse?, messages) about the attribute's values keyservices could not have written:
    a problem when they are too many to be a person's odd edit (the run refuses the same way),
    a warning naming them otherwise (the run leaves them alone)."""
    cp = tables.custom_properties
    rows = conn.execute(
        sa.select(cp.c.text, sa.func.count()).where(cp.c.attribute_id == attr,
                                                    cp.c.text.is_not(None))
        .group_by(cp.c.text)).all()
    values = {text: int(n) for text, n in rows if (text or "").strip()}
    foreign = {text: n for text, n in values.items() if not owned(text, rules, written)}
    if not foreign:
        return False, []
    n_foreign = sum(foreign.values())
    examples = ", ".join(repr(v[:40]) for v in list(foreign)[:3])
    if attribute_is_foreign(n_foreign, sum(values.values())):
        return True, [(f"the attribute {rules.property} holds {n_foreign} value(s) keyservices "
                       f"could not have written (e.g. {examples}): it looks like another "
                       "process's attribute, and a run would refuse to write. Point "
                       "'property:' in the rules at the attribute keyservices owns, or clear "
                       "those values")]
    return False, [(f"{n_foreign} value(s) of {rules.property} were not written by keyservices "
                    f"(e.g. {examples}); runs leave them as they are")]
