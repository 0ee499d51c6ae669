"""Index advice for the DBA: which indexes let the database answer the night's statements from
an index range instead of a full table scan, and which of them the ERP lacks.

keyservices never creates anything in the ERP: ``keyservices check --suggest-indexes`` prints the
``CREATE INDEX`` statements (in the ERP's own SQL dialect) for a DBA to review and run. On large
databases the GL statement is the one that matters: with an index leading on the transaction date
it reads only the lookback window, whatever the length of the history.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from ..rules import RuleSet
from .connection import ErpTables


@dataclass(frozen=True, slots=True)
class IndexAdvice:
    """An index on a logical table: key columns (in order) and columns carried along."""

    table: str
    keys: tuple[str, ...]
    include: tuple[str, ...]
    why: str

    def name(self) -> str:
        return "IX_KS_" + self.table.upper() + "_" + "_".join(k.upper() for k in self.keys)


def advice(rules: RuleSet, *, with_invoices: bool = False) -> list[IndexAdvice]:
    """The indexes that serve the statements this rule set sends."""
    out = [IndexAdvice("custom_properties", ("customer_id", "attribute_id"), ("text",),
                       "joins each customer to its property value")]
    if rules.all_sections("equipment"):
        out.append(IndexAdvice("equipment", ("model_id",),
                               ("active", "location_id", "customer_id"),
                               "counts equipment per customer and model category from the "
                               "index alone"))
    if any(getattr(sec, "on_contract", None) is not None for sec in
           [*rules.all_sections("equipment"), *(r.equipment for r in rules.cross_sell)]):
        out.append(IndexAdvice("contract_details", ("equipment_id",), ("contract_id",),
                               "finds the contract lines of the machines in the field "
                               "(on_contract) without a table scan"))
    if rules.all_sections("contracts"):
        out.append(IndexAdvice("contracts", ("active", "exp_date"),
                               ("customer_id", "contract_code_id", "bill_code_id", "start_date",
                                "base_rate"),
                               "reads only contracts active on the run date"))
    if rules.all_sections("gl"):
        out.append(IndexAdvice("gl_detail", ("date",), ("customer_id", "account_id", "amount"),
                               "reads only the GL lines inside the longest lookback window, "
                               "however long the history"))
    if rules.all_sections("items_sold") or with_invoices:
        out.append(IndexAdvice("invoices", ("date",), ("customer_id", "void"),
                               "reads only the invoices inside the lookback window"))
    if rules.all_sections("items_sold"):
        out.append(IndexAdvice("invoice_lines", ("invoice_id",),
                               ("item_id", "quantity", "amount", "cost"),
                               "joins invoice lines to their invoices without a table scan"))
    return out


def missing(conn: sa.Connection, tables: ErpTables, wanted: list[IndexAdvice]
            ) -> list[IndexAdvice]:
    """The advice not already met: no existing index (or primary key) starts with the keys."""
    inspector = sa.inspect(conn)
    out = []
    for item in wanted:
        table = getattr(tables, item.table)
        physical = [table.c[k].name.lower() for k in item.keys]
        existing: list[list[str]] = []
        for index in inspector.get_indexes(table.name, schema=tables.schema):
            existing.append([(c or "").lower() for c in index.get("column_names", [])])
        pk = inspector.get_pk_constraint(table.name, schema=tables.schema)
        existing.append([c.lower() for c in pk.get("constrained_columns", [])])
        if not any(cols[:len(physical)] == physical for cols in existing):
            out.append(item)
    return out


def create_statement(item: IndexAdvice, tables: ErpTables, dialect: sa.Dialect) -> str:
    """``CREATE INDEX`` in the ERP's dialect; INCLUDE columns where the database has them."""
    table = getattr(tables, item.table)
    prep = dialect.identifier_preparer
    target = prep.format_table(table)
    keys = ", ".join(prep.quote(table.c[k].name) for k in item.keys)
    carried = ", ".join(prep.quote(table.c[k].name) for k in item.include)
    name = prep.quote(item.name())
    if dialect.name in ("mssql", "postgresql") and carried:
        return f"CREATE INDEX {name} ON {target} ({keys}) INCLUDE ({carried});"
    # SQLite and others: carry the columns as trailing keys, so the index still covers the query
    columns = keys + (", " + carried if carried else "")
    return f"CREATE INDEX {name} ON {target} ({columns});"
