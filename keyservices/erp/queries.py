"""The statements that read the facts, built once per night from the compiled rules.

Each is one pass over its table, grouped by customer inside the ERP database; category, account
and code globs and the lookback windows are pushed into the SQL so the database returns only what
some rule can use. ``keyservices.erp.facts`` runs them; ``check --show-sql`` prints them.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from ..engine.metrics import KINDS, NONE, Column, Compiled, Filter
from ..rules import RuleSet
from .clock import Clock, since_bound
from .connection import ErpTables, is_off, is_on

# constants as SQL literals, not parameters: the same text every night keeps one cached plan
_ZERO: sa.ColumnClause[Any] = sa.literal_column("0")
_ONE: sa.ColumnClause[Any] = sa.literal_column("1")


def metric_queries(tables: ErpTables, compiled: Compiled, as_of: dt.date,
                   points: Sequence[dt.date] = (), clock: Clock | None = None,
                   ) -> dict[str, tuple[sa.Select, list[int]]]:
    """Per kind, the statement computing its columns, and which table columns its values fill.

    Each statement is one pass over its table, grouped by customer, one CASE aggregate per column;
    the WHERE keeps only rows some column can count. Id lists are rendered inline at execution
    (integers read from the ERP's own code tables), which keeps SQL Server's 2,100-parameter limit
    out of reach and the statement text stable from night to night.
    """
    day = _bounds(as_of)[0]
    names = itertools.count()
    out: dict[str, tuple[sa.Select, list[int]]] = {}
    mc, m = tables.model_categories, tables.models  # noqa: F841 - mc kept for symmetry
    clock = clock or Clock(day, points, compiled)

    def ids_in(column: sa.ColumnElement, ids: Sequence[int], null: bool = False
               ) -> sa.ColumnElement[bool]:
        cond = (column.in_(sa.bindparam(f"ids{next(names)}", list(ids), expanding=True,
                                        literal_execute=True)) if ids else sa.false())
        return sa.or_(cond, column.is_(None)) if null else cond

    def where_of(f: Filter, col_for: Mapping[str, sa.ColumnElement]) -> sa.ColumnElement[bool]:
        if f.column == "active":
            return is_on(col_for["active"])
        if f.column == "on_contract":  # the covered machines' derived table, outer-joined
            on = col_for["on_contract"]
            return on.is_not(None) if f.ids[0] else on.is_(None)
        if f.column == "expires_within":  # the base WHERE already keeps exp_date >= the run date
            return sa.and_(col_for["exp_date"].is_not(None),
                           col_for["exp_date"] < clock.plus(f.ids[0], f"horizon{next(names)}"))
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

    def conds(col: Column, col_for: Mapping[str, sa.ColumnElement], date: Any
              ) -> sa.ColumnElement[bool]:
        parts = [where_of(f, col_for) for f in col.filters]
        if col.window is not None:
            parts.append(date >= clock.since(col.window, f"since{next(names)}"))
        return sa.and_(*parts) if parts else sa.true()

    def union(cols: list[Column], name: str) -> list[int]:
        return sorted({i for c in cols for f in c.filters if f.column == name for i in f.ids})

    kinds = {kind: compiled.of_kind(kind) for kind in KINDS}
    if kinds["equipment"]:
        e = tables.equipment
        cols = [compiled.columns[i] for i in kinds["equipment"]]
        key = sa.func.coalesce(e.c.location_id, e.c.customer_id)
        col_for: dict[str, sa.ColumnElement[Any]] = {"category_id": m.c.category_id,
                                                      "active": e.c.active}
        where = [key.is_not(None), ids_in(m.c.category_id, union(cols, "category_id"))]
        if all(any(f.column == "active" for f in c.filters) for c in cols):
            where.append(is_on(e.c.active))
        inst = installed(tables, clock.until("installed_until"))
        where += clock.where(inst)
        frm = clock.join(e.join(m, m.c.id == e.c.model_id), inst)
        if any(f.column == "on_contract" for c in cols for f in c.filters):
            covered = covered_equipment(tables, as_of, clock)
            frm = frm.outerjoin(covered, clock.same(covered, covered.c.equipment_id == e.c.id))
            col_for["on_contract"] = covered.c.equipment_id
        stmt = clock.grouped(sa.select(key.label("customer_id"),
                                       *[aggregate(c, conds(c, col_for, None), None)
                                         .label(f"c{i}")
                                         for i, c in zip(kinds["equipment"], cols)])
                             .select_from(frm).where(*where), key)
        out["equipment"] = (stmt, kinds["equipment"])
    if kinds["contracts"]:
        k = tables.contracts
        cols = [compiled.columns[i] for i in kinds["contracts"]]
        col_for = {"contract_code_id": k.c.contract_code_id, "bill_code_id": k.c.bill_code_id,
                   "status_id": k.c.status_id, "exp_date": k.c.exp_date}
        live = sa.and_(k.c.start_date < clock.until("until"),
                       sa.or_(k.c.exp_date.is_(None), k.c.exp_date >= clock.day("day")))
        stmt = clock.grouped(
            sa.select(k.c.customer_id,
                      *[aggregate(c, conds(c, col_for, None),
                                  k.c.base_rate if c.agg == "rate" else None).label(f"c{i}")
                        for i, c in zip(kinds["contracts"], cols)])
            .select_from(clock.join(k, live))
            .where(k.c.customer_id.is_not(None), k.c.contract_code_id.is_not(None),
                   is_on(k.c.active), *clock.where(live)), k.c.customer_id)
        out["contracts"] = (stmt, kinds["contracts"])
    if kinds["gl"]:
        g = tables.gl_detail
        cols = [compiled.columns[i] for i in kinds["gl"]]
        col_for = {"account_id": g.c.account_id, "transaction_type": g.c.transaction_type}
        longest = max(c.window or 0 for c in cols)
        dated = sa.and_(g.c.date >= clock.since(longest, "gl_since"),
                        g.c.date < clock.until("gl_until"))
        stmt = clock.grouped(
            sa.select(g.c.customer_id,
                      *[aggregate(c, conds(c, col_for, g.c.date), g.c.amount).label(f"c{i}")
                        for i, c in zip(kinds["gl"], cols)])
            .select_from(clock.join(g, dated))
            .where(g.c.customer_id.is_not(None),
                   ids_in(g.c.account_id, union(cols, "account_id")), *clock.where(dated)),
            g.c.customer_id, g.c.date)
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
        dated = sa.and_(i.c.date >= clock.since(longest, "items_since"),
                        i.c.date < clock.until("items_until"))
        stmt = clock.grouped(
            sa.select(i.c.customer_id,
                      *[aggregate(c, conds(c, col_for, i.c.date), value_of[c.agg])
                        .label(f"c{j}") for j, c in zip(kinds["items_sold"], cols)])
            .select_from(clock.join(line.join(i, i.c.id == line.c.invoice_id)
                                    .join(it, it.c.id == line.c.item_id)
                                    .join(m, m.c.id == it.c.model_id), dated))
            .where(i.c.customer_id.is_not(None),
                   sa.or_(i.c.void.is_(None), is_off(i.c.void)),
                   ids_in(m.c.category_id, union(cols, "category_id")), *clock.where(dated)),
            i.c.customer_id, i.c.date)
        out["items_sold"] = (stmt, kinds["items_sold"])
    if kinds["invoices"]:
        i = tables.invoices
        cols = [compiled.columns[j] for j in kinds["invoices"]]
        longest = max(c.window or 0 for c in cols)
        dated = sa.and_(i.c.date >= clock.since(longest, "invoices_since"),
                        i.c.date < clock.until("invoices_until"))
        stmt = clock.grouped(
            sa.select(i.c.customer_id,
                      *[aggregate(c, conds(c, {}, i.c.date), None).label(f"c{j}")
                        for j, c in zip(kinds["invoices"], cols)])
            .select_from(clock.join(i, dated))
            .where(i.c.customer_id.is_not(None),
                   sa.or_(i.c.void.is_(None), is_off(i.c.void)), *clock.where(dated)),
            i.c.customer_id, i.c.date)
        out["invoices"] = (stmt, kinds["invoices"])
    return out


def covered_equipment(tables: ErpTables, as_of: dt.date, clock: Clock | None = None
                      ) -> sa.Subquery:
    """The machines on a contract active on the run date (``SCContractDetails`` lines), each
    once: a derived table the equipment statement outer-joins, so "on a contract" and "on none"
    are counted in the same single pass (CEO Juice's MIF report, ID923). A contract counts as
    the rules' contracts sections count it: active, started, not expired on the run date; its
    line, where the database dates lines, only between the line's start and end (either may
    be empty). With a ``clock`` of several dates: per date (its ``point`` column)."""
    d, k = tables.contract_details, tables.contracts
    clock = clock or Clock(_bounds(as_of)[0])
    live = line_live(tables, clock.day("cover_day"), clock.until("cover_until"))
    frm = clock.join(d.join(k, k.c.id == d.c.contract_id), sa.and_(*live))
    return (sa.select(*clock.key(), d.c.equipment_id)
            .select_from(frm)
            .where(d.c.equipment_id.is_not(None), is_on(k.c.active), *clock.where(*live))
            .distinct().subquery("covered"))


def line_live(tables: ErpTables, day: sa.ColumnElement[Any], until: sa.ColumnElement[Any]
              ) -> list[sa.ColumnElement[bool]]:
    """A contract line covers its machine on a day: its contract started by then and not
    expired (as the rules' contracts sections count it), the line itself between its own
    start and end where the database dates lines (either may be empty)."""
    d, k = tables.contract_details, tables.contracts
    live = [k.c.start_date < until, sa.or_(k.c.exp_date.is_(None), k.c.exp_date >= day)]
    if tables.has("contract_details", "start_date"):
        live.append(sa.or_(d.c.start_date.is_(None), d.c.start_date < until))
    if tables.has("contract_details", "end_date"):
        live.append(sa.or_(d.c.end_date.is_(None), d.c.end_date >= day))
    return live


def installed(tables: ErpTables, until: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    """A machine counts on a date once installed (no install date: always), where the database
    dates installs."""
    if not tables.has("equipment", "install_date"):
        return sa.true()
    e = tables.equipment
    return sa.or_(e.c.install_date.is_(None), e.c.install_date < until)


def _like(glob: str) -> str:
    escaped = glob.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def customers_query(tables: ErpTables, rules: RuleSet, attr_id: int) -> sa.Select:
    """Customers with parent, industry, rep, branch, configuration and the current value.

    An enrichment table missing from the database (``tables.missing``) is left out: its value
    is NULL (shown blank)."""
    c, cp = tables.customers, tables.custom_properties
    value = cp.alias("value")
    industry, joins = _industry(tables, rules.industry_source, c)
    frm = c.outerjoin(value, sa.and_(value.c.customer_id == c.c.id,
                                     value.c.attribute_id == sa.bindparam("attr_id", attr_id)))
    names: dict[str, sa.ColumnElement] = {}
    for logical, key in (("sales_reps", "sales_rep_id"), ("branches", "branch_id")):
        if logical in tables.missing:
            names[logical] = sa.null()
            continue
        t = getattr(tables, logical)
        frm = frm.outerjoin(t, t.c.id == c.c[key])
        names[logical] = t.c.name
    for join_to, on in joins:
        frm = frm.outerjoin(join_to, on)
    return (sa.select(
        c.c.id, c.c.number, c.c.name, c.c.parent_id, c.c.active, c.c.prospect, c.c.config_id,
        c.c.created, industry.label("industry"), names["sales_reps"].label("sales_rep"),
        names["branches"].label("branch"),
        value.c.customer_id.label("value_customer_id"), value.c.text.label("current_value"))
        .select_from(frm).order_by(c.c.id))


def _industry(tables: ErpTables, source: str, c: sa.Table) -> tuple[sa.ColumnElement, list]:
    if source == "customer_type" and "customer_types" in tables.missing:
        return sa.null(), []
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
                 as_of: dt.date, only: Sequence[int] | None = None) -> dict[str, sa.Select]:
    """The aggregate queries this rule set needs; a kind no rule uses is not queried at all.

    ``only``: the rows of these customers alone (``explain``: one customer and its locations,
    not the per-code breakdown of a million)."""
    day, until = _bounds(as_of)
    queries: dict[str, sa.Select] = {}

    def of(*columns: sa.ColumnElement[Any]) -> list[sa.ColumnElement[bool]]:
        if only is None:
            return []
        ids: sa.BindParameter[int] = sa.bindparam("only_ids", sorted(only), expanding=True)
        return [sa.or_(*(column.in_(ids) for column in columns))]
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
        dated = [installed(tables, sa.bindparam("installed_until", until, type_=sa.Date))]
        on: list[sa.ColumnElement] = []  # units on an active contract: active, then all
        if any(s.on_contract is not None for s in rules.all_sections("equipment")):
            covered = covered_equipment(tables, as_of)
            frm = frm.outerjoin(covered, covered.c.equipment_id == e.c.id)
            covered_now = covered.c.equipment_id.is_not(None)
            on = [sa.func.sum(sa.case((sa.and_(covered_now, is_on(e.c.active)), _ONE),
                                      else_=_ZERO)).label("covered_units")]
            if rules.counts_inactive_equipment():
                on.append(sa.func.sum(sa.case((covered_now, _ONE), else_=_ZERO))
                          .label("covered_all_units"))
        if rules.counts_inactive_equipment():  # one pass counts active and all units
            active = sa.func.sum(sa.case((is_on(e.c.active), _ONE), else_=_ZERO))
            stmt = (sa.select(where.label("customer_id"), mc.c.code, active.label("units"),
                              sa.func.count().label("all_units"), *on)
                    .select_from(frm).where(in_categories, *dated,
                                            *of(e.c.customer_id, e.c.location_id)))
        else:
            stmt = (sa.select(where.label("customer_id"), mc.c.code,
                              sa.func.count().label("units"), *on)
                    .select_from(frm).where(is_on(e.c.active), in_categories, *dated,
                                            *of(e.c.customer_id, e.c.location_id)))
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
            .where(is_on(k.c.active),
                   k.c.start_date < sa.bindparam("until", until, type_=sa.Date),
                   sa.or_(k.c.exp_date.is_(None),
                          k.c.exp_date >= sa.bindparam("day", day, type_=sa.Date)),
                   *of(k.c.customer_id))
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
                   g.c.date < sa.bindparam("gl_until", until, type_=sa.Date),
                   g.c.customer_id.is_not(None),
                   _like_any(a.c.number, rules.gl_account_globs()), *of(g.c.customer_id))
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
            .where(sa.or_(i.c.void.is_(None), is_off(i.c.void)),
                   i.c.date >= _since(day, max(item_windows), "items_since"),
                   i.c.date < sa.bindparam("items_until", until, type_=sa.Date),
                   mc.c.code.in_(sa.bindparam("item_model_categories", sorted(item_cats),
                                              expanding=True)), *of(i.c.customer_id))
            .group_by(*keys))
    return queries


def _bounds(as_of: dt.date) -> tuple[dt.date, dt.date]:
    """The run date and the day after it, as dates.

    Dates are compared with date parameters, never datetimes: SQLite compares text, and a date
    stored as 'YYYY-MM-DD' sorts before '<the same day> 00:00:00.000000', which would make a
    contract expiring on the run date expired, drop a window's first day and count the day after
    an earlier --as-of. A 'YYYY-MM-DD' bound sorts right against both 'YYYY-MM-DD' and
    'YYYY-MM-DD HH:MM:SS' text (so an index on the column still serves the range), and
    PostgreSQL and SQL Server compare date and datetime columns with a date as dates. A column
    value on day D counts as D whatever its time. Inclusive bounds (docs/rules.md): active on
    the run date means start <= run date <= expiry; a window of N days is the run date and the
    N-1 days before it; "expiring within N days" is the run date and the N-1 days after it.
    """
    day = as_of.date() if isinstance(as_of, dt.datetime) else as_of
    return day, day + dt.timedelta(days=1)


_since = since_bound


def _like_any(column: sa.ColumnElement, globs: Iterable[str]) -> sa.ColumnElement[bool]:
    """Push account globs into SQL as LIKE patterns (exact glob matching is re-checked in Python)."""
    clauses = []
    for glob in globs:
        if re.search(r"[\[\]]", glob):
            return sa.true()  # character classes have no LIKE equivalent everywhere: no pushdown
        escaped = glob.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        clauses.append(column.like(escaped.replace("*", "%").replace("?", "_"), escape="\\"))
    return sa.or_(*clauses) if clauses else sa.true()
