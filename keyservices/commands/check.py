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
from ..config import Config
from ..engine.metrics import Codes, compile_rules, needed_codes
from ..erp import ErpTables, attribute_id, display_url, indexes, verify_schema, wrap_db_error
from ..erp.facts import read_categories
from ..erp.needs import needed_tables, unused_columns
from ..erp.queries import customers_query, metric_queries
from ..erp.writeback import update_statements
from ..errors import SchemaError
from ..rules import RuleSet, glob_match


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

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["rules_files"] = [str(p) for p in self.rules_files]
        return data


def check(config: Config) -> CheckReport:
    """Validate config and rules, connect, verify tables, columns and the attribute.

    Raises SchemaError (exit 2) when something the run needs is missing; unmapped dealer model
    categories are warnings, listed with their active equipment counts.
    """
    rules = night.rules_for(config)
    tables = night.tables_for(config, rules)
    report = CheckReport(erp=display_url(config.erp.url), rules_files=list(rules.files),
                         services=[f"{s.code} ({s.name})" for s in rules.services])
    engine = night.engine_for(config)
    try:
        with engine.connect() as conn:
            report.problems = verify_schema(conn, tables, needed_tables(rules),
                                            unused_columns(rules))
            if not report.problems:
                try:
                    report.attribute_id = attribute_id(conn, tables, rules.property)
                except SchemaError as exc:
                    report.problems.append(str(exc))
                c = tables.customers
                report.customers = int(conn.execute(
                    sa.select(sa.func.count()).select_from(c)).scalar() or 0)
                report.unmapped_categories = _unmapped(conn, tables, rules)
                for cat, units in report.unmapped_categories.items():
                    report.warnings.append(f"model category {cat} ({units} active units) maps to "
                                           "no model class; add it under model_classes")
                report.warnings += _dead_globs(conn, tables, rules)
    except SQLAlchemyError as exc:
        raise wrap_db_error(exc, config.erp.url) from exc
    finally:
        engine.dispose()
    if report.problems:
        raise SchemaError("the ERP database is not as configured:\n" + "\n".join(
            f"  - {p}" for p in report.problems), report)
    return report


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


def _unmapped(conn: sa.Connection, tables: ErpTables, rules: RuleSet) -> dict[str, int]:
    categories = read_categories(conn, tables)
    unmapped = [c for c in categories if rules.class_of(c) is None]
    if not unmapped:
        return {}
    e, m, mc = tables.equipment, tables.models, tables.model_categories
    rows = conn.execute(
        sa.select(mc.c.code, sa.func.count(e.c.id))
        .select_from(mc.join(m, m.c.category_id == mc.c.id)
                     .outerjoin(e, sa.and_(e.c.model_id == m.c.id, e.c.active == sa.true())))
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


def show_sql(config: Config) -> list[tuple[str, str]]:
    """Every statement a run sends to the ERP, compiled for the configured database, without
    connecting: for the DBA to review before the first run. Values appear as parameters."""
    rules = night.rules_for(config)
    tables = night.tables_for(config, rules)
    dialect = make_url(config.erp.url).get_dialect()()
    attr = sa.bindparam("attribute_id", type_=sa.Integer)
    a = tables.attributes
    mc = tables.model_categories
    # code lists are read at run time; here every glob in the rules stands for a code, so each
    # id list shows as the placeholder its integers are rendered into at execution
    def fake(globs: list[str]) -> dict[int, str]:
        return dict(enumerate(sorted(set(globs)), start=1))

    contracts = rules.all_sections("contracts")
    codes = Codes(categories=fake([g for g, _ in rules.model_classes]
                                  + [g for k in ("equipment", "items_sold")
                                     for sec in rules.all_sections(k) for g in sec.categories]),
                  contract_codes=fake([g for c in contracts for g in c.contract_codes]),
                  bill_codes=fake([g for c in contracts for g in c.bill_codes]),
                  statuses=fake([g for c in contracts for g in c.statuses]),
                  accounts=fake(rules.gl_account_globs()),
                  item_categories=fake([g for sec in rules.all_sections("items_sold")
                                        for g in sec.item_categories]))
    lists = {"contract_codes": (tables.contract_codes, "code"),
             "bill_codes": (tables.bill_codes, "code"),
             "statuses": (tables.contract_statuses, "code"),
             "accounts": (tables.gl_accounts, "number"),
             "item_categories": (tables.item_categories, "code")}
    statements: list[tuple[str, sa.Executable]] = [
        ("attribute id", sa.select(a.c.id).where(a.c.name == rules.property)),
        ("model categories", sa.select(mc.c.id, mc.c.code, mc.c.description)
         .order_by(mc.c.code)),
        *[(f"code list: {name}", sa.select(lists[name][0].c.id,
                                           lists[name][0].c[lists[name][1]]))
          for name in sorted(needed_codes(rules))],
        ("customers", customers_query(tables, rules, attr)),  # type: ignore[arg-type]
        *((kind, stmt) for kind, (stmt, _) in
          metric_queries(tables, compile_rules(rules, codes), dt.date.today()).items()),
    ]
    when_null, when_text = update_statements(tables, attr)  # type: ignore[arg-type]
    statements += [("update (value was empty)", when_null), ("update (value was text)", when_text)]
    return [(name, str(stmt.compile(dialect=dialect))) for name, stmt in statements]
