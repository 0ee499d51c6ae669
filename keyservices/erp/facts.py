"""Read the facts: a handful of aggregate queries, each one pass over its table, grouped by customer
inside the ERP database.

The number of statements does not depend on the number of customers, and memory is bounded by the
number of customers (rows are streamed and folded into compact per-customer facts), never by the
length of GL or invoice history. Category -> class mapping, account globs and lookback windows are
pushed into the SQL so the database returns only what some rule can use.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa

from ..engine.metrics import (
    Codes,
    Compiled,
    Extra,
    MetricTable,
    NotCompilable,
    compile_rules,
    needed_codes,
)
from ..model import ContractFact, CustomerFacts, CustomerTable, Facts, ItemsSold, add_sold
from ..progress import Beside, Reporter, Timings, gc_paused, step
from ..rules import RuleSet, glob_match
from .connection import ErpTables
from .fold import CUSTOMER_COLUMNS, ColumnBuilder, CreatedDates, float_rows, fold_customers
from .queries import customers_query, fact_queries, metric_queries

STREAM_ROWS = 5000
FETCH_ROWS = 20_000  # rows per round trip where SQLAlchemy buffers a server-side cursor
# rows per fetchmany where the driver streams itself (SQLite, SQL Server): few enough that the
# objects the driver has just made for a batch are still in the CPU cache while the batch is
# folded into arrays. At 20,000 rows (some 15 MB of customer row objects) every pass over a column
# missed the cache: the same fold of a million customers cost 1.8 s over the bare fetch, 0.8 s at
# this size, and the fetch itself is no slower for it.
NATIVE_ROWS = 1024


def read_facts(conn: sa.Connection, tables: ErpTables, rules: RuleSet, attr_id: int,
               as_of: dt.date, *, reporter: Reporter | None = None,
               timings: Timings | None = None, detail: bool = False,
               extra: Sequence[Extra] = (), beside: Beside | None = None,
               only: Sequence[int] | None = None, customers: CustomerTable | None = None
               ) -> Facts:
    """Every fact the rules need, for every customer, in a constant number of statements.

    By default the rules are compiled to per-customer numbers computed in the database
    (``keyservices.engine.metrics``): one row per customer per table, held in one array. ``detail=True``
    reads the per-category / per-code breakdown instead (what ``explain`` shows); the run falls
    back to it only for rules the array path cannot express. ``beside`` is opened once the
    customers are read: the aggregates leave the interpreter idle while the database works.
    With ``detail``, ``only`` reads the breakdown of these customers alone and ``customers``
    (the night's own table) spares reading every customer again (``explain``).
    """
    with gc_paused():
        try:
            return _read_facts(conn, tables, rules, attr_id, as_of, reporter, timings, detail,
                               extra, beside, only, customers)
        finally:
            if beside is not None:
                beside.open()


def _read_facts(conn: sa.Connection, tables: ErpTables, rules: RuleSet, attr_id: int,
                as_of: dt.date, reporter: Reporter | None, timings: Timings | None,
                detail: bool, extra: Sequence[Extra], beside: Beside | None,
                only: Sequence[int] | None = None,
                known: CustomerTable | None = None) -> Facts:
    with step(reporter, timings, "read code lists") as advance:
        needed = set() if detail else needed_codes(rules).union(*(e.codes_needed for e in extra))
        codes, categories = read_codes(conn, tables, needed)
        advance(len(codes.categories))
    flags: dict[str, np.ndarray] = {}  # read_customers fills it
    compiled = None
    if not detail:
        try:
            compiled = compile_rules(rules, codes, [c for e in extra for c in e.columns(codes)])
        except NotCompilable:
            compiled = None
    if compiled is None:
        customers = known if known is not None and detail else read_customers(
            conn, tables, rules, attr_id, as_of, reporter=reporter, timings=timings, flags=flags)
        return _read_detail(conn, tables, rules, as_of, customers, categories, reporter,
                            timings, only)
    customers = read_customers(conn, tables, rules, attr_id, as_of, reporter=reporter,
                               timings=timings, flags=flags)
    if beside is not None:
        beside.open()
    table = MetricTable.empty(compiled, customers.ids)
    read_metrics(conn, tables, compiled, as_of, table, reporter=reporter, timings=timings)
    arrays: dict[str, np.ndarray] | None = {
        "active": flags["active"], "prospect": flags["prospect"], "parent": flags["parent"]}
    return Facts(as_of=as_of, customers=customers, facts={}, categories=categories,
                 metrics=table, codes=codes, customer_arrays=arrays)


def read_customers(conn: sa.Connection, tables: ErpTables, rules: RuleSet, attr_id: int,
                   as_of: dt.date, *, reporter: Reporter | None = None,
                   timings: Timings | None = None,
                   flags: dict[str, np.ndarray] | None = None) -> CustomerTable:
    """Every customer record, in id order, as columns (``model.CustomerTable``): a batch at a
    time, column by column, with no object per customer (``erp.fold``).

    Repeated values (industry, sales rep, branch, the stored property value, creation dates) are
    shared, one object per distinct value: at a million customers that is hundreds of MB.
    """
    shared: dict[Any, Any] = {}
    created = CreatedDates()
    columns = ColumnBuilder()
    with step(reporter, timings, "read customers") as advance:
        for batch in _raw_batches(conn, customers_query(tables, rules, attr_id)):
            # each batch becomes arrays at once: a million-row list per column would double
            # the memory the customers take while they are read
            columns.add(fold_customers(batch, shared.setdefault, created))
            advance(len(batch))
    built = columns.arrays()
    table = {name: built.get(name, _NO_ROWS) for name in CUSTOMER_COLUMNS}
    ids = table.pop("ids")
    twice: tuple[int, ...] = ()
    if len(ids) > 1 and not bool((ids[1:] > ids[:-1]).all()):
        ids, table, twice = _one_row_each(ids, table)
    if flags is not None:  # the columns classify works on, as arrays
        flags["active"], flags["prospect"] = table["active"], table["prospect"]
        flags["parent"] = table["parent_id"]
    customers = CustomerTable(ids, table)
    customers.two_value_rows = twice
    return customers


_NO_ROWS = np.zeros(0, dtype=np.int64)


def _one_row_each(ids: np.ndarray, table: dict[str, np.ndarray]
                  ) -> tuple[np.ndarray, dict[str, np.ndarray], tuple[int, ...]]:
    """A customer with two value rows of the attribute comes back once per row (the rows are in
    id order, so its rows are neighbours). Which of two values is "the" value would be a guess,
    and the guarded UPDATE would change both: such a customer is kept once, classified like any
    other, and never written (``has_value_row`` off); the run lists it, and the other
    customers' night goes on (nine such rows must not stop 18,000 customers)."""
    first = np.ones(len(ids), dtype=bool)
    first[1:] = ids[1:] != ids[:-1]
    twice = np.unique(ids[~first])
    kept = {name: column[first] for name, column in table.items()}
    kept_ids = ids[first]
    kept["has_value_row"] = kept["has_value_row"] & ~np.isin(kept_ids, twice)
    return kept_ids, kept, tuple(int(i) for i in twice)


def read_codes(conn: sa.Connection, tables: ErpTables,
               needed: set[str]) -> tuple[Codes, dict[str, str]]:
    """The code lists the rules' globs are resolved against, one small query each, and the
    model categories' descriptions (code -> description)."""
    (_, first), *others = code_list_statements(tables, needed)
    cats = [(int(i), code, desc or "") for i, code, desc in conn.execute(first) if code]
    codes = Codes(categories={i: code for i, code, _ in cats})
    for name, stmt in others:
        setattr(codes, name, {int(i): c or "" for i, c in conn.execute(stmt)})
    return codes, {code: desc for _, code, desc in cats}


def code_list_statements(tables: ErpTables, needed: set[str]) -> list[tuple[str, sa.Select]]:
    """The code-list reads in run order, model categories first (``check --show-sql`` too)."""
    mc = tables.model_categories
    lists = {"contract_codes": (tables.contract_codes, "code"),
             "bill_codes": (tables.bill_codes, "code"),
             "statuses": (tables.contract_statuses, "code"),
             "accounts": (tables.gl_accounts, "number"),
             "item_categories": (tables.item_categories, "code")}
    out = [("categories", sa.select(mc.c.id, mc.c.code, mc.c.description).order_by(mc.c.code))]
    for name in sorted(needed):
        table, column = lists[name]
        out.append((name, sa.select(table.c.id, table.c[column])))
    return out


def read_metrics(conn: sa.Connection, tables: ErpTables, compiled: Compiled, as_of: dt.date,
                 table: MetricTable, *, reporter: Reporter | None = None,
                 timings: Timings | None = None) -> None:
    """One aggregate statement per kind of fact, one row per customer, folded into ``table``."""
    for kind, (stmt, columns) in metric_queries(tables, compiled, as_of).items():
        with step(reporter, timings, f"read {_STEP_NAMES[kind]}") as advance:
            for batch in _raw_batches(conn, stmt):
                table.put(columns, float_rows(batch))
                advance(len(batch))


_STEP_NAMES = {"equipment": "equipment", "contracts": "contracts", "gl": "GL revenue",
               "items_sold": "items sold", "invoices": "invoices"}


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
                batch = cursor.fetchmany(NATIVE_ROWS)
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
raw_batches = _raw_batches  # the history reader (``erp.history``) streams the same way


def _read_detail(conn: sa.Connection, tables: ErpTables, rules: RuleSet, as_of: dt.date,
                 customers: CustomerTable, categories: dict[str, str],
                 reporter: Reporter | None, timings: Timings | None,
                 only: Sequence[int] | None = None) -> Facts:
    """The per-category / per-code breakdown: what ``explain`` shows, and the reference path
    (``only``: of these customers alone)."""
    facts: dict[int, CustomerFacts] = {}

    def of(customer_id: int) -> CustomerFacts:
        f = facts.get(customer_id)
        if f is None:
            f = facts[customer_id] = CustomerFacts()
        return f

    queries = fact_queries(tables, rules, list(categories), as_of, only)
    if "equipment" in queries:
        with step(reporter, timings, "read equipment") as advance:
            for row in _stream(conn, queries["equipment"]):
                f, cat, got = of(row[0]), row[1], row._mapping
                if row[2]:
                    f.equipment[cat] = int(row[2])
                for name, into in (("all_units", f.equipment_all),
                                   ("covered_units", f.equipment_covered),
                                   ("covered_all_units", f.equipment_covered_all)):
                    if got.get(name):
                        into[cat] = int(got[name])
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
                        have_sold = f.items_sold.get((row[1], w))
                        if have_sold is not None:
                            sold = add_sold(have_sold, sold)
                    f.items_sold[(row[1], w)] = sold
                advance(1)
    return Facts(as_of=as_of, customers=customers, facts=facts, categories=categories)


def read_categories(conn: sa.Connection, tables: ErpTables) -> dict[str, str]:
    mc = tables.model_categories
    rows = conn.execute(sa.select(mc.c.code, mc.c.description).order_by(mc.c.code))
    return {r.code: r.description or "" for r in rows if r.code}


def _stream(conn: sa.Connection, stmt: sa.Select) -> Iterable[sa.Row]:
    """Rows in batches from a server-side cursor where the driver has one."""
    # per statement: Connection.execution_options() would change the connection for good
    result = conn.execute(stmt, execution_options={"yield_per": STREAM_ROWS})
    for partition in result.partitions():
        yield from partition
