"""Read the facts: a handful of aggregate queries, each one pass over its table, grouped by customer
inside the ERP database.

The number of statements does not depend on the number of customers, and memory is bounded by the
number of customers (rows are streamed and folded into compact per-customer facts), never by the
length of GL or invoice history. Category -> class mapping, account globs and lookback windows are
pushed into the SQL so the database returns only what some rule can use.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable

import sqlalchemy as sa

from .erp import ErpTables
from .model import ContractFact, Customer, CustomerFacts, Facts, ItemsSold, add_sold
from .progress import Reporter, Timings, step
from .rules import RuleSet, glob_match

STREAM_ROWS = 5000
# constants as SQL literals, not parameters: the same text every night keeps one cached plan
_ZERO = sa.literal_column("0")
_ONE = sa.literal_column("1")


def read_facts(conn: sa.Connection, tables: ErpTables, rules: RuleSet, attr_id: int,
               as_of: dt.date, *, reporter: Reporter | None = None,
               timings: Timings | None = None) -> Facts:
    """Every fact the rules need, for every customer, in a constant number of statements."""
    categories = read_categories(conn, tables)
    with step(reporter, timings, "read customers") as advance:
        customers = {}
        for c in _stream(conn, customers_query(tables, rules, attr_id)):
            customers[c.id] = Customer(
                id=c.id, number=c.number, name=c.name, parent_id=c.parent_id,
                active=bool(c.active), prospect=bool(c.prospect), industry=c.industry,
                sales_rep=c.sales_rep, branch=c.branch, config_id=c.config_id,
                has_value_row=c.value_customer_id is not None, current_value=c.current_value,
                created=c.created)
            advance(1)
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
    result = conn.execution_options(yield_per=STREAM_ROWS).execute(stmt)
    for partition in result.partitions():
        yield from partition
