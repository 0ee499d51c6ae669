"""Read the facts: a handful of aggregate queries, each one pass over its table, grouped by customer
inside the ERP database.

The number of statements does not depend on the number of customers, and memory is bounded by the
number of customers (rows are streamed and folded into compact per-customer facts), never by the
length of GL or invoice history. Category -> class mapping, account globs and lookback windows are
pushed into the SQL so the database returns only what some rule can use.
"""

from __future__ import annotations

import datetime as dt
import itertools
import operator
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa

from .erp import ErpTables
from .metrics import (KINDS, NONE, Codes, Column, Compiled, Extra, Filter, MetricTable,
                      NotCompilable, compile_rules, needed_codes)
from .model import ContractFact, Customer, CustomerFacts, Facts, ItemsSold, add_sold
from .progress import Reporter, Timings, gc_paused, step
from .rules import RuleSet, glob_match

STREAM_ROWS = 5000
FETCH_ROWS = 20_000  # raw rows per fetchmany on the lean (metrics) path
# constants as SQL literals, not parameters: the same text every night keeps one cached plan
_ZERO = sa.literal_column("0")
_ONE = sa.literal_column("1")


def read_facts(conn: sa.Connection, tables: ErpTables, rules: RuleSet, attr_id: int,
               as_of: dt.date, *, reporter: Reporter | None = None,
               timings: Timings | None = None, detail: bool = False,
               extra: Sequence[Extra] = ()) -> Facts:
    """Every fact the rules need, for every customer, in a constant number of statements.

    By default the rules are compiled to per-customer numbers computed in the database
    (``keyservices.metrics``): one row per customer per table, held in one array. ``detail=True``
    reads the per-category / per-code breakdown instead (what ``explain`` shows); the run falls
    back to it only for rules the array path cannot express.
    """
    with gc_paused():
        return _read_facts(conn, tables, rules, attr_id, as_of, reporter, timings, detail, extra)


def _read_facts(conn: sa.Connection, tables: ErpTables, rules: RuleSet, attr_id: int,
                as_of: dt.date, reporter: Reporter | None, timings: Timings | None,
                detail: bool, extra: Sequence[Extra]) -> Facts:
    with step(reporter, timings, "read code lists") as advance:
        needed = set() if detail else needed_codes(rules).union(*(e.codes_needed for e in extra))
        codes = read_codes(conn, tables, needed)
        advance(len(codes.categories))
    categories = {code: desc for code, desc in codes.categories.values()}
    codes.categories = {i: code for i, (code, _) in codes.categories.items()}
    flags: dict[str, list[Any]] = {"active": [], "prospect": [], "parent": []}
    compiled = None
    if not detail:
        try:
            compiled = compile_rules(rules, codes, [c for e in extra for c in e.columns(codes)])
        except NotCompilable:
            compiled = None
    if compiled is None:
        customers = read_customers(conn, tables, rules, attr_id, as_of, reporter=reporter,
                                   timings=timings, flags=flags)
        return _read_detail(conn, tables, rules, as_of, customers, categories, reporter,
                            timings)
    customers = read_customers(conn, tables, rules, attr_id, as_of, reporter=reporter,
                               timings=timings, flags=flags)
    table = MetricTable.empty(compiled, sorted(customers))
    read_metrics(conn, tables, compiled, as_of, table, reporter=reporter, timings=timings)
    arrays: dict[str, np.ndarray] | None = {
        "active": np.array(flags["active"], dtype=bool),
        "prospect": np.array(flags["prospect"], dtype=bool),
        "parent": np.array(flags["parent"], dtype=np.int64)}
    if len(flags["active"]) != len(table.ids):  # ids not unique: let classify rebuild them
        arrays = None
    return Facts(as_of=as_of, customers=customers, facts={}, categories=categories,
                 metrics=table, codes=codes, customer_arrays=arrays)


def read_customers(conn: sa.Connection, tables: ErpTables, rules: RuleSet, attr_id: int,
                   as_of: dt.date, *, reporter: Reporter | None = None,
                   timings: Timings | None = None,
                   flags: dict[str, list[Any]] | None = None) -> dict[int, Customer]:
    """Every customer record, in id order, built a batch at a time column by column.

    Repeated values (industry, sales rep, branch, the stored property value, creation dates) are
    shared, one object per distinct value: at a million customers that is hundreds of MB.
    """
    shared: dict[Any, Any] = {}
    share = shared.setdefault
    created_at: dict[Any, dt.datetime | None] = {None: None}
    customers: dict[int, Customer] = {}
    with step(reporter, timings, "read customers") as advance:
        for batch in _raw_batches(conn, customers_query(tables, rules, attr_id)):
            (ids, numbers, names, parents, active, prospect, config, created, industry, rep,
             branch, value_cid, value) = zip(*batch)
            for raw in set(created).difference(created_at):
                created_at[raw] = (raw if isinstance(raw, dt.datetime) else
                                   dt.datetime.fromisoformat(raw) if isinstance(raw, str)
                                   else dt.datetime.combine(raw, dt.time()))
            customers.update(zip(ids, map(
                Customer, ids, numbers, names, parents, map(bool, active), map(bool, prospect),
                map(share, industry, industry), map(share, rep, rep), map(share, branch, branch),
                config, map(operator.is_not, value_cid, _NONES), map(share, value, value),
                map(created_at.__getitem__, created))))
            if flags is not None:  # the columns classify works on, as arrays later
                flags["active"].extend(map(bool, active))
                flags["prospect"].extend(map(bool, prospect))
                flags["parent"].extend(-1 if x is None else x for x in parents)
            advance(len(batch))
    return customers


_NONES = itertools.repeat(None)


def read_codes(conn: sa.Connection, tables: ErpTables, needed: set[str]) -> Codes:
    """The code lists the rules' globs are resolved against: one small query each.

    ``categories`` comes back as id -> (code, description); the caller splits it.
    """
    mc = tables.model_categories
    cats = {int(i): (code, desc or "") for i, code, desc in
            conn.execute(sa.select(mc.c.id, mc.c.code, mc.c.description).order_by(mc.c.code))
            if code}
    codes = Codes(categories=cats)  # type: ignore[arg-type]
    lists = {"contract_codes": (tables.contract_codes, "code"),
             "bill_codes": (tables.bill_codes, "code"),
             "statuses": (tables.contract_statuses, "code"),
             "accounts": (tables.gl_accounts, "number"),
             "item_categories": (tables.item_categories, "code")}
    for name in sorted(needed):
        table, column = lists[name]
        setattr(codes, name, {int(i): c or "" for i, c in
                              conn.execute(sa.select(table.c.id, table.c[column]))})
    return codes


def read_metrics(conn: sa.Connection, tables: ErpTables, compiled: Compiled, as_of: dt.date,
                 table: MetricTable, *, reporter: Reporter | None = None,
                 timings: Timings | None = None) -> None:
    """One aggregate statement per kind of fact, one row per customer, folded into ``table``."""
    for kind, (stmt, columns) in metric_queries(tables, compiled, as_of).items():
        with step(reporter, timings, f"read {_STEP_NAMES[kind]}") as advance:
            for batch in _raw_batches(conn, stmt):
                table.put(columns, np.array(batch, dtype=np.float64))
                advance(len(batch))


_STEP_NAMES = {"equipment": "equipment", "contracts": "contracts", "gl": "GL revenue",
               "items_sold": "items sold", "invoices": "invoices"}


def metric_queries(tables: ErpTables, compiled: Compiled, as_of: dt.date,
                   ) -> dict[str, tuple[sa.Select, list[int]]]:
    """Per kind, the statement computing its columns, and which table columns its values fill.

    Each statement is one pass over its table, grouped by customer, one CASE aggregate per column;
    the WHERE keeps only rows some column can count. Id lists are rendered inline at execution
    (integers read from the ERP's own code tables), which keeps SQL Server's 2,100-parameter limit
    out of reach and the statement text stable from night to night.
    """
    day = dt.datetime.combine(as_of, dt.time())
    until = day + dt.timedelta(days=1)
    names = itertools.count()
    out: dict[str, tuple[sa.Select, list[int]]] = {}
    mc, m = tables.model_categories, tables.models  # noqa: F841 - mc kept for symmetry

    def ids_in(column: sa.ColumnElement, ids: Sequence[int], null: bool = False
               ) -> sa.ColumnElement[bool]:
        cond = (column.in_(sa.bindparam(f"ids{next(names)}", list(ids), expanding=True,
                                        literal_execute=True)) if ids else sa.false())
        return sa.or_(cond, column.is_(None)) if null else cond

    def where_of(f: Filter, col_for: dict[str, sa.ColumnElement]) -> sa.ColumnElement[bool]:
        if f.column == "active":
            return col_for["active"] == sa.true()
        if f.column == "expires_within":  # the base WHERE already keeps exp_date >= the run date
            horizon = day + dt.timedelta(days=f.ids[0])
            return sa.and_(col_for["exp_date"].is_not(None),
                           col_for["exp_date"] < sa.bindparam(f"horizon{next(names)}", horizon,
                                                              type_=sa.DateTime))
        if f.globs:
            text = sa.func.upper(sa.func.coalesce(col_for[f.column], ""))
            return sa.or_(*[text.like(_like(g.upper()), escape="\\") for g in f.globs])
        return ids_in(col_for[f.column], f.ids, f.null)

    def aggregate(col: Column, cond: sa.ColumnElement[bool], value: Any) -> sa.ColumnElement:
        if col.is_max:
            return sa.func.coalesce(sa.func.max(sa.case((cond, value))),
                                    sa.literal_column(repr(NONE)))
        if value is None:  # a count
            return sa.func.sum(sa.case((cond, _ONE), else_=_ZERO))
        return sa.func.coalesce(sa.func.sum(sa.case((cond, value), else_=_ZERO)), _ZERO)

    def conds(col: Column, col_for: dict[str, sa.ColumnElement], date: Any
              ) -> sa.ColumnElement[bool]:
        parts = [where_of(f, col_for) for f in col.filters]
        if col.window is not None:
            parts.append(date >= _since(day, col.window, f"since{next(names)}"))
        return sa.and_(*parts) if parts else sa.true()

    def union(cols: list[Column], name: str) -> list[int]:
        return sorted({i for c in cols for f in c.filters if f.column == name for i in f.ids})

    kinds = {kind: compiled.of_kind(kind) for kind in KINDS}
    if kinds["equipment"]:
        e = tables.equipment
        cols = [compiled.columns[i] for i in kinds["equipment"]]
        key = sa.func.coalesce(e.c.location_id, e.c.customer_id)
        col_for = {"category_id": m.c.category_id, "active": e.c.active}
        where = [key.is_not(None), ids_in(m.c.category_id, union(cols, "category_id"))]
        if all(any(f.column == "active" for f in c.filters) for c in cols):
            where.append(e.c.active == sa.true())
        stmt = (sa.select(key.label("customer_id"),
                          *[aggregate(c, conds(c, col_for, None), None).label(f"c{i}")
                            for i, c in zip(kinds["equipment"], cols)])
                .select_from(e.join(m, m.c.id == e.c.model_id)).where(*where).group_by(key))
        out["equipment"] = (stmt, kinds["equipment"])
    if kinds["contracts"]:
        k = tables.contracts
        cols = [compiled.columns[i] for i in kinds["contracts"]]
        col_for = {"contract_code_id": k.c.contract_code_id, "bill_code_id": k.c.bill_code_id,
                   "status_id": k.c.status_id, "exp_date": k.c.exp_date}
        stmt = (sa.select(k.c.customer_id,
                          *[aggregate(c, conds(c, col_for, None),
                                      k.c.base_rate if c.agg == "rate" else None).label(f"c{i}")
                            for i, c in zip(kinds["contracts"], cols)])
                .where(k.c.customer_id.is_not(None), k.c.contract_code_id.is_not(None),
                       k.c.active == sa.true(),
                       k.c.start_date < sa.bindparam("until", until, type_=sa.DateTime),
                       sa.or_(k.c.exp_date.is_(None),
                              k.c.exp_date >= sa.bindparam("day", day, type_=sa.DateTime)))
                .group_by(k.c.customer_id))
        out["contracts"] = (stmt, kinds["contracts"])
    if kinds["gl"]:
        g = tables.gl_detail
        cols = [compiled.columns[i] for i in kinds["gl"]]
        col_for = {"account_id": g.c.account_id, "transaction_type": g.c.transaction_type}
        longest = max(c.window or 0 for c in cols)
        stmt = (sa.select(g.c.customer_id,
                          *[aggregate(c, conds(c, col_for, g.c.date), g.c.amount).label(f"c{i}")
                            for i, c in zip(kinds["gl"], cols)])
                .where(g.c.customer_id.is_not(None),
                       ids_in(g.c.account_id, union(cols, "account_id")),
                       g.c.date >= _since(day, longest, "gl_since"),
                       g.c.date < sa.bindparam("gl_until", until, type_=sa.DateTime))
                .group_by(g.c.customer_id))
        out["gl"] = (stmt, kinds["gl"])
    if kinds["items_sold"]:
        i, line, it = tables.invoices, tables.invoice_lines, tables.items
        cols = [compiled.columns[j] for j in kinds["items_sold"]]
        col_for = {"category_id": m.c.category_id, "item_category_id": it.c.item_category_id}
        unit = sa.cast(line.c.amount, sa.Float) / sa.func.nullif(line.c.quantity, _ZERO)
        unit_cost = sa.cast(line.c.cost, sa.Float) / sa.func.nullif(line.c.quantity, _ZERO)
        value_of = {"qty": line.c.quantity, "amount": line.c.amount, "top_price": unit,
                    "top_cost": unit_cost}
        longest = max(c.window or 0 for c in cols)
        stmt = (sa.select(i.c.customer_id,
                          *[aggregate(c, conds(c, col_for, i.c.date), value_of[c.agg])
                            .label(f"c{j}") for j, c in zip(kinds["items_sold"], cols)])
                .select_from(line.join(i, i.c.id == line.c.invoice_id)
                             .join(it, it.c.id == line.c.item_id)
                             .join(m, m.c.id == it.c.model_id))
                .where(i.c.customer_id.is_not(None),
                       sa.or_(i.c.void.is_(None), i.c.void == sa.false()),
                       ids_in(m.c.category_id, union(cols, "category_id")),
                       i.c.date >= _since(day, longest, "items_since"),
                       i.c.date < sa.bindparam("items_until", until, type_=sa.DateTime))
                .group_by(i.c.customer_id))
        out["items_sold"] = (stmt, kinds["items_sold"])
    if kinds["invoices"]:
        i = tables.invoices
        cols = [compiled.columns[j] for j in kinds["invoices"]]
        longest = max(c.window or 0 for c in cols)
        stmt = (sa.select(i.c.customer_id,
                          *[aggregate(c, conds(c, {}, i.c.date), None).label(f"c{j}")
                            for j, c in zip(kinds["invoices"], cols)])
                .where(i.c.customer_id.is_not(None),
                       sa.or_(i.c.void.is_(None), i.c.void == sa.false()),
                       i.c.date >= _since(day, longest, "invoices_since"),
                       i.c.date < sa.bindparam("invoices_until", until, type_=sa.DateTime))
                .group_by(i.c.customer_id))
        out["invoices"] = (stmt, kinds["invoices"])
    return out


def _like(glob: str) -> str:
    escaped = glob.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def _raw_batches(conn: sa.Connection, stmt: sa.Select) -> Iterator[Sequence[Any]]:
    """Rows in batches, streamed, with as little per-row work above the driver's as possible.

    SQLite and SQL Server drivers stream a plain cursor through ``fetchmany``: their own tuples
    are read directly (SQLAlchemy compiles, binds and counts the statement but skips its per-row
    processing, at a million rows most of the cost above the database's own). Other drivers need
    a server-side cursor to stream, which SQLAlchemy buffers itself: its rows are used there.
    """
    if conn.dialect.name in _NATIVE_STREAMING:
        result = conn.execute(stmt)
        try:
            cursor = result.cursor
            while True:
                batch = cursor.fetchmany(FETCH_ROWS)
                if not batch:
                    break
                yield batch
        finally:
            result.close()
        return
    result = conn.execute(stmt, execution_options={"stream_results": True,
                                                   "yield_per": FETCH_ROWS})
    try:
        for partition in result.partitions():
            yield [tuple(row) for row in partition]
    finally:
        result.close()


_NATIVE_STREAMING = {"sqlite", "mssql"}


def _read_detail(conn: sa.Connection, tables: ErpTables, rules: RuleSet, as_of: dt.date,
                 customers: dict[int, Customer], categories: dict[str, str],
                 reporter: Reporter | None, timings: Timings | None) -> Facts:
    """The per-category / per-code breakdown: what ``explain`` shows, and the reference path."""
    facts: dict[int, CustomerFacts] = {}

    def of(customer_id: int) -> CustomerFacts:
        f = facts.get(customer_id)
        if f is None:
            f = facts[customer_id] = CustomerFacts()
        return f

    queries = fact_queries(tables, rules, list(categories), as_of)
    if "equipment" in queries:
        with step(reporter, timings, "read equipment") as advance:
            for cid, cat, units, *everything in _stream(conn, queries["equipment"]):
                f = of(cid)
                if units:
                    f.equipment[cat] = int(units)
                if everything:
                    f.equipment_all[cat] = int(everything[0])
                advance(1)
    if "contracts" in queries:
        with step(reporter, timings, "read contracts") as advance:
            for cid, code, bill, count, rate, *status in _stream(conn, queries["contracts"]):
                f = of(cid)
                key = (code or "", bill or "")
                fact = ContractFact(int(count), float(rate or 0))
                if status:
                    f.contracts_by_status[(*key, status[0] or "")] = fact
                    have = f.contracts.get(key)
                    if have is not None:
                        fact = ContractFact(have.count + fact.count, have.base_rate + fact.base_rate)
                f.contracts[key] = fact
                advance(1)
    gl_windows, item_windows = (sorted(w) for w in rules.windows())
    if "gl" in queries:
        globs = rules.gl_account_globs()
        typed = rules.uses_transaction_types()
        first = 3 if typed else 2
        with step(reporter, timings, "read GL revenue") as advance:
            for row in _stream(conn, queries["gl"]):
                cid, account = row[0], row[1]
                if not glob_match(account, globs):
                    continue
                f = of(cid)
                for i, w in enumerate(gl_windows):
                    amount = float(row[first + i] or 0)
                    f.gl[(account, w)] = f.gl.get((account, w), 0.0) + amount
                    if typed:
                        f.gl_typed[(account, row[2] or "", w)] = amount
                advance(1)
    if "items_sold" in queries:
        by_item_category = rules.uses_item_categories()
        first = 3 if by_item_category else 2
        with step(reporter, timings, "read items sold") as advance:
            for row in _stream(conn, queries["items_sold"]):
                f = of(row[0])
                for i, w in enumerate(item_windows):
                    lines, qty, amount, top, top_cost = row[first + 5 * i: first + 5 + 5 * i]
                    if not lines:
                        continue
                    sold = ItemsSold(int(lines), float(qty or 0), float(amount or 0),
                                     None if top is None else float(top),
                                     None if top_cost is None else float(top_cost))
                    if by_item_category:
                        f.items_by_item_category[(row[1], row[2] or "", w)] = sold
                        have = f.items_sold.get((row[1], w))
                        if have is not None:
                            sold = add_sold(have, sold)
                    f.items_sold[(row[1], w)] = sold
                advance(1)
    return Facts(as_of=as_of, customers=customers, facts=facts, categories=categories)


def read_categories(conn: sa.Connection, tables: ErpTables) -> dict[str, str]:
    mc = tables.model_categories
    rows = conn.execute(sa.select(mc.c.code, mc.c.description).order_by(mc.c.code))
    return {r.code: r.description or "" for r in rows if r.code}


def customers_query(tables: ErpTables, rules: RuleSet, attr_id: int) -> sa.Select:
    """Customers with parent, industry, rep, branch, configuration and the current value."""
    c, cp = tables.customers, tables.custom_properties
    rep, br = tables.sales_reps, tables.branches
    value = cp.alias("value")
    industry, joins = _industry(tables, rules.industry_source, c)
    frm = (c.outerjoin(value, sa.and_(value.c.customer_id == c.c.id,
                                      value.c.attribute_id == sa.bindparam("attr_id", attr_id)))
           .outerjoin(rep, rep.c.id == c.c.sales_rep_id)
           .outerjoin(br, br.c.id == c.c.branch_id))
    for join_to, on in joins:
        frm = frm.outerjoin(join_to, on)
    return (sa.select(
        c.c.id, c.c.number, c.c.name, c.c.parent_id, c.c.active, c.c.prospect, c.c.config_id,
        c.c.created,
        industry.label("industry"), rep.c.name.label("sales_rep"), br.c.name.label("branch"),
        value.c.customer_id.label("value_customer_id"), value.c.text.label("current_value"))
        .select_from(frm).order_by(c.c.id))


def _industry(tables: ErpTables, source: str, c: sa.Table) -> tuple[sa.ColumnElement, list]:
    if source == "customer_type":
        ct = tables.customer_types
        return ct.c.name, [(ct, ct.c.id == c.c.type_id)]
    kind, _, name = source.partition(":")
    if kind == "custom_property":
        a, cp = tables.attributes, tables.custom_properties.alias("industry_value")
        attr = sa.select(a.c.id).where(a.c.name == name).scalar_subquery()
        return cp.c.text, [(cp, sa.and_(cp.c.customer_id == c.c.id, cp.c.attribute_id == attr))]
    # column:<name> on the customers table itself (declared by ErpTables via extra_columns)
    for col in c.columns:
        if col.name == name:
            return sa.cast(col, sa.String), []
    raise KeyError(f"industry column {name} is not declared on {c.name}")


def fact_queries(tables: ErpTables, rules: RuleSet, categories: list[str],
                 as_of: dt.date) -> dict[str, sa.Select]:
    """The aggregate queries this rule set needs; a kind no rule uses is not queried at all."""
    day = dt.datetime.combine(as_of, dt.time())
    until = day + dt.timedelta(days=1)
    queries: dict[str, sa.Select] = {}
    equipment_cats: set[str] = set()
    item_cats: set[str] = set()
    for sec in rules.all_sections("equipment"):
        equipment_cats |= rules.categories_for(sec, categories)
    for sec in rules.all_sections("items_sold"):
        item_cats |= rules.categories_for(sec, categories)
    mc, m = tables.model_categories, tables.models
    if equipment_cats:
        e = tables.equipment
        where = sa.func.coalesce(e.c.location_id, e.c.customer_id)
        in_categories = mc.c.code.in_(sa.bindparam("equipment_categories",
                                                   sorted(equipment_cats), expanding=True))
        frm = e.join(m, m.c.id == e.c.model_id).join(mc, mc.c.id == m.c.category_id)
        if rules.counts_inactive_equipment():  # one pass counts active and all units
            active = sa.func.sum(sa.case((e.c.active == sa.true(), _ONE), else_=_ZERO))
            stmt = (sa.select(where.label("customer_id"), mc.c.code, active.label("units"),
                              sa.func.count().label("all_units"))
                    .select_from(frm).where(in_categories))
        else:
            stmt = (sa.select(where.label("customer_id"), mc.c.code,
                              sa.func.count().label("units"))
                    .select_from(frm).where(e.c.active == sa.true(), in_categories))
        queries["equipment"] = stmt.group_by(where, mc.c.code)
    if rules.all_sections("contracts"):
        k, cc, bc = tables.contracts, tables.contract_codes, tables.bill_codes
        keys = [k.c.customer_id, cc.c.code, bc.c.code]
        frm = (k.join(cc, cc.c.id == k.c.contract_code_id)
               .outerjoin(bc, bc.c.id == k.c.bill_code_id))
        if rules.uses_contract_statuses():
            st = tables.contract_statuses
            frm = frm.outerjoin(st, st.c.id == k.c.status_id)
            keys.append(st.c.code)
        queries["contracts"] = (
            sa.select(k.c.customer_id, cc.c.code, bc.c.code.label("bill_code"),
                      sa.func.count().label("contracts"),
                      sa.func.sum(k.c.base_rate).label("base_rate"), *keys[3:])
            .select_from(frm)
            .where(k.c.active == sa.true(),
                   k.c.start_date < sa.bindparam("until", until, type_=sa.DateTime),
                   sa.or_(k.c.exp_date.is_(None),
                          k.c.exp_date >= sa.bindparam("day", day, type_=sa.DateTime)))
            .group_by(*keys))
    gl_windows, item_windows = (sorted(w) for w in rules.windows())
    if gl_windows:
        g, a = tables.gl_detail, tables.gl_accounts
        cols = [sa.func.sum(sa.case((g.c.date >= _since(day, w), g.c.amount), else_=_ZERO))
                .label(f"w{w}") for w in gl_windows]
        keys = [g.c.customer_id, a.c.number]
        if rules.uses_transaction_types():
            keys.append(g.c.transaction_type)
        queries["gl"] = (
            sa.select(*keys, *cols)
            .select_from(g.join(a, a.c.id == g.c.account_id))
            .where(g.c.date >= _since(day, max(gl_windows), "gl_since"),
                   g.c.date < sa.bindparam("gl_until", until, type_=sa.DateTime),
                   g.c.customer_id.is_not(None),
                   _like_any(a.c.number, rules.gl_account_globs()))
            .group_by(*keys))
    if item_windows and item_cats:
        i, line, it = tables.invoices, tables.invoice_lines, tables.items
        unit = sa.cast(line.c.amount, sa.Float) / sa.func.nullif(line.c.quantity, _ZERO)
        unit_cost = sa.cast(line.c.cost, sa.Float) / sa.func.nullif(line.c.quantity, _ZERO)
        cols = []
        for w in item_windows:
            inside = i.c.date >= _since(day, w)
            cols += [sa.func.count(sa.case((inside, _ONE))).label(f"lines{w}"),
                     sa.func.sum(sa.case((inside, line.c.quantity), else_=_ZERO)).label(f"qty{w}"),
                     sa.func.sum(sa.case((inside, line.c.amount), else_=_ZERO))
                     .label(f"amount{w}"),
                     sa.func.max(sa.case((inside, unit))).label(f"top{w}"),
                     sa.func.max(sa.case((inside, unit_cost))).label(f"topcost{w}")]
        keys = [i.c.customer_id, mc.c.code]
        frm = (line.join(i, i.c.id == line.c.invoice_id).join(it, it.c.id == line.c.item_id)
               .join(m, m.c.id == it.c.model_id).join(mc, mc.c.id == m.c.category_id))
        if rules.uses_item_categories():
            ic = tables.item_categories
            frm = frm.outerjoin(ic, ic.c.id == it.c.item_category_id)
            keys.append(ic.c.code)
        queries["items_sold"] = (
            sa.select(*keys, *cols)
            .select_from(frm)
            .where(sa.or_(i.c.void.is_(None), i.c.void == sa.false()),
                   i.c.date >= _since(day, max(item_windows), "items_since"),
                   i.c.date < sa.bindparam("items_until", until, type_=sa.DateTime),
                   mc.c.code.in_(sa.bindparam("item_model_categories", sorted(item_cats),
                                              expanding=True)))
            .group_by(*keys))
    return queries


def _since(day: dt.datetime, window: int, name: str | None = None) -> sa.BindParameter:
    return sa.bindparam(name or f"since_{window}", day - dt.timedelta(days=window - 1),
                        type_=sa.DateTime)


def _like_any(column: sa.ColumnElement, globs: Iterable[str]) -> sa.ColumnElement[bool]:
    """Push account globs into SQL as LIKE patterns (exact glob matching is re-checked in Python)."""
    clauses = []
    for glob in globs:
        if re.search(r"[\[\]]", glob):
            return sa.true()  # character classes have no LIKE equivalent everywhere: no pushdown
        escaped = glob.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        clauses.append(column.like(escaped.replace("*", "%").replace("?", "_"), escape="\\"))
    return sa.or_(*clauses) if clauses else sa.true()


def _stream(conn: sa.Connection, stmt: sa.Select) -> Iterable[sa.Row]:
    """Rows in batches from a server-side cursor where the driver has one."""
    # per statement: Connection.execution_options() would change the connection for good
    result = conn.execute(stmt, execution_options={"yield_per": STREAM_ROWS})
    for partition in result.partitions():
        yield from partition
