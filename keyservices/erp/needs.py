"""Which of the profile's tables and columns a rule set reads, so ``check`` and a failed run can
tell a missing table (a setup problem) from an outage.

The answer is taken from the statements themselves (every statement a run, ``explain`` and the
monitor texts send, built from the rules with a stand-in code per glob), not from a list kept
beside them: a table a new feature reads cannot be forgotten here.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql import visitors

from ..calls import extras as call_extras
from ..calls.tonight import monitors_naming_contacts
from ..calls.wonlost import ValueColumns
from ..engine.metrics import Codes, NotCompilable, compile_rules, needed_codes
from ..rules import RuleSet
from .connection import ErpTables, attribute_statement
from .contacts import contacts_statement
from .facts import code_list_statements
from .queries import customers_query, fact_queries, metric_queries
from .writeback import update_statements

Reads = dict[str, set[str]]  # logical table -> logical columns read


def run_statements(tables: ErpTables, rules: RuleSet, *,
                   contacts: bool | None = None) -> list[sa.ClauseElement]:
    """Every statement a run of these rules may send to the ERP, with stand-in code ids.

    ``contacts``: whether the run reads the contacts (``Listing.contacts_for_alerts``, or
    the rep and branch copies' "call" lines); by default, whether a monitor text names one."""
    extra = [ValueColumns(rules), *call_extras(rules)]
    codes = placeholder_codes(rules)
    needed = needed_codes(rules).union(*(e.codes_needed for e in extra))
    out: list[sa.ClauseElement] = [attribute_statement(tables, rules.property)]
    out += [stmt for _, stmt in code_list_statements(tables, needed)]
    out.append(customers_query(tables, rules, 0))
    today = dt.date.today()
    try:
        compiled = compile_rules(rules, codes, [c for e in extra for c in e.columns(codes)])
        out += [stmt for stmt, _ in metric_queries(tables, compiled, today).values()]
    except NotCompilable:
        pass
    out += list(fact_queries(tables, rules, list(codes.categories.values()), today).values())
    if contacts is None:
        contacts = bool(monitors_naming_contacts(rules))
    if contacts:  # alert texts, or the copies' "call" lines, name each customer's contact
        out.append(contacts_statement(tables, None))
    out += list(update_statements(tables, 0))
    return out


def run_reads(tables: ErpTables, rules: RuleSet, *, contacts: bool | None = None) -> Reads:
    """Logical table -> the logical columns the run's statements read from it."""
    reads: Reads = {}
    for stmt in run_statements(tables, rules, contacts=contacts):
        for element in visitors.iterate(stmt):
            if isinstance(element, sa.Table):
                logical = tables.logical_of(element)
                if logical:
                    reads.setdefault(logical, set())
            table = getattr(element, "table", None)
            if isinstance(element, sa.ColumnClause) and table is not None:
                logical = tables.logical_of(table)
                if logical and not element.key.startswith("extra:"):
                    reads.setdefault(logical, set()).add(element.key)
    return reads


def placeholder_codes(rules: RuleSet) -> Codes:
    """Stand-in code lists for building every statement without a connection: each glob the
    rules, monitors and priority name stands for one code (so each id list shows which globs
    select it, and every filter of every statement is built)."""
    def found(key: str) -> list[str]:
        dumped = [m.model_dump() for m in rules.monitors]
        if rules.priority is not None:
            dumped.append(rules.priority.model_dump())
        return values_under(dumped, key)

    def fake(globs: list[str]) -> dict[int, str]:
        return dict(enumerate(sorted(set(globs)), start=1))

    contracts = rules.all_sections("contracts")
    return Codes(categories=fake([g for g, _ in rules.model_classes]
                                 + [g for k in ("equipment", "items_sold")
                                    for sec in rules.all_sections(k) for g in sec.categories]),
                 contract_codes=fake([g for c in contracts for g in c.contract_codes]
                                     + found("contract_codes")),
                 bill_codes=fake([g for c in contracts for g in c.bill_codes]),
                 statuses=fake([g for c in contracts for g in c.statuses]),
                 accounts=fake(rules.gl_account_globs() + found("accounts")),
                 item_categories=fake([g for sec in rules.all_sections("items_sold")
                                       for g in sec.item_categories]))


def values_under(data: Any, key: str) -> list[str]:
    """Every string in a list stored under ``key`` anywhere in nested dicts and lists."""
    out: list[str] = []
    if isinstance(data, dict):
        for k, v in data.items():
            if k == key and isinstance(v, list):
                out += [x for x in v if isinstance(x, str)]
            else:
                out += values_under(v, key)
    elif isinstance(data, list):
        for v in data:
            out += values_under(v, key)
    return out



def _tables(rules: RuleSet) -> ErpTables:
    source = rules.industry_source
    extra = {"customers": [source.split(":", 1)[1]]} if source.startswith("column:") else None
    return ErpTables(extra_columns=extra)


def needed_tables(rules: RuleSet, tables: ErpTables | None = None, *,
                  contacts: bool | None = None) -> list[str]:
    """The profile tables this rule set reads (and so must exist, enrichments apart)."""
    return list(run_reads(tables or _tables(rules), rules, contacts=contacts))


def unused_columns(rules: RuleSet, tables: ErpTables | None = None, *,
                   contacts: bool | None = None) -> set[tuple[str, str]]:
    """The profile columns of the read tables that no statement reads (so need not exist)."""
    tables = tables or _tables(rules)
    reads = run_reads(tables, rules, contacts=contacts)
    return {(logical, column) for logical, columns in reads.items()
            for column in tables.profile[logical]["columns"] if column not in columns}
