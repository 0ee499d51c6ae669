"""The facts as they stood on several past dates, read together (``keyservices backtest``).

One statement per kind of fact for all dates at once: each statement joins a small derived
table of the dates (``queries.Clock``) and groups by date, then customer, so a year of monthly
dates costs one pass over each table, not one night per date. Only what the ERP dates is
rebuilt: contracts by start and expiry, their lines by their own dates, GL and invoices by
theirs, machines by install date. What it does not date (a machine's Active flag, a customer's
industry) is today's value on every date; ``Rebuilt.limits`` says so and counts what it touches.

A large dealer is learned from a sample (``ranking.learn_customers``): every k-th customer group
in id order, a parent with its locations as one group (locations roll up into their parent), so
the per-date classification and memory scale with the sample, not the ERP; rows of the other
customers are dropped batch by batch as they are fetched. ``Rebuilt.limits`` names the sample.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import sqlalchemy as sa

from ..engine.metrics import Compiled, Extra, MetricTable, compile_rules, needed_codes
from ..model import CustomerTable, Facts
from ..progress import Reporter, Timings, step
from ..rules import RuleSet
from .clock import BucketClock
from .connection import ErpTables, is_off
from .facts import raw_batches, read_codes, read_customers
from .fleet import add_fleet, fleet_statement
from .fold import float_rows, known_rows
from .prefetch import Prefetch
from .queries import metric_queries
from .spans import add_contracts, contract_statement

# the per-date numbers held at once: the dates are read in chunks, each chunk one pass over every
# table. 320 MB holds 8 of 15 dates at the default sample (250,000 customers, the example rules'
# 19 columns): two passes, not three (a million customers' learning 97 s against 116 s); the
# peak does not move, the customer read sets it. All 15 at once (570 MB) would add 270 MB. The
# chunks are evened out (8 + 7 dates, not 14 + 1), so a bigger budget never holds more than the
# passes need.
CHUNK_BYTES = 400 * 2**20  # a year of dates at 100,000 customers in one pass (31 numbers each)


@dataclass(frozen=True)
class Sample:
    """Which customers the history is learned from: every ``every``-th customer group in id
    order (1: all of them), ``kept`` of ``total`` customers."""

    every: int
    kept: int
    total: int
    limit: int = 0  # ranking.learn_customers

    def describe(self) -> str:
        """The sentence the backtest's output carries."""
        return (f"learned from {self.kept:,} of {self.total:,} customers (every "
                f"{_ordinal(self.every)} customer group in id order, a parent with its "
                f"locations as one; ranking.learn_customers: {self.limit:,}), so the top 25 "
                f"and 100 scored are of a list about {self.every} times shorter than the "
                "night's")


def sample_groups(customers: CustomerTable, limit: int) -> np.ndarray | None:
    """Which customers to learn from when there are more than ``limit`` (0: no limit): with
    k = ceil(n / limit), every k-th customer group in id order, a group being a parent and its
    locations (a location's parent id, or a customer's own id). None: all of them.

    Deterministic (the same ERP gives the same sample) and whole groups, since the night
    classifies a parent on its locations' facts added up."""
    n = len(customers)
    if not limit or n <= limit:
        return None
    every = -(-n // limit)
    parent = np.asarray(customers.columns["parent_id"], dtype=np.int64)
    group = np.where(parent >= 0, parent, customers.ids)
    rank = np.unique(group, return_inverse=True)[1].reshape(-1)
    return np.asarray(rank % every == 0)


def _ordinal(n: int) -> str:
    tail = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{tail}"


def restrict(customers: CustomerTable, keep: np.ndarray) -> CustomerTable:
    """The customer table of the kept rows only (the others' arrays are let go)."""
    out = CustomerTable(customers.ids[keep],
                        {name: column[keep] for name, column in customers.columns.items()})
    kept = set(out.ids.tolist())
    out.two_value_rows = tuple(i for i in customers.two_value_rows if i in kept)
    return out


@dataclass
class Rebuilt:
    """The facts on each date, oldest first (``facts``: made as they are iterated, a chunk of
    dates at a time, each sharing one customer table), and what cannot be rebuilt."""

    points: list[dt.date]
    facts: Iterator[Facts]
    limits: list[str] = field(default_factory=list)
    statements: int = 0  # sent before the facts are iterated (each chunk adds its own)
    sample: Sample | None = None  # None: every customer


def read_history(conn: sa.Connection, tables: ErpTables, rules: RuleSet, attr_id: int,
                 points: Sequence[dt.date], extra: Sequence[Extra] = (), *,
                 reporter: Reporter | None = None, timings: Timings | None = None,
                 chunk_bytes: int = CHUNK_BYTES, limit: int = 0) -> Rebuilt:
    """The rules' numbers for every customer on every date of ``points``: one statement per
    kind of fact for a chunk of dates (as many dates as fit ``chunk_bytes`` of numbers; at
    100,000 customers all of a year's), so memory stays with a chunk, not the whole history.
    The facts are read as ``Rebuilt.facts`` is iterated, on ``conn``. Above ``limit``
    customers (0: none), of a sample of them only (``sample_groups``)."""
    points = sorted(set(points))
    needed = needed_codes(rules).union(*(e.codes_needed for e in extra))
    codes, categories = read_codes(conn, tables, needed)
    compiled = compile_rules(rules, codes, [c for e in extra for c in e.columns(codes)])
    flags: dict[str, np.ndarray] = {}
    customers = read_customers(conn, tables, rules, attr_id, points[-1], reporter=reporter,
                               timings=timings, flags=flags)
    keep = sample_groups(customers, limit)
    sample = None
    if keep is not None:  # before anything per date is made, so memory follows the sample
        sample = Sample(-(-len(customers) // limit), int(keep.sum()), len(customers), limit)
        customers = restrict(customers, keep)
        flags = {name: customers.columns[column] for name, column in
                 (("active", "active"), ("prospect", "prospect"), ("parent", "parent_id"))}
    arrays = {"active": flags["active"], "prospect": flags["prospect"],
              "parent": flags["parent"]}
    per_date = max(1, len(customers.ids) * max(1, len(compiled.columns)) * 8)
    size = max(1, min(len(points), chunk_bytes // per_date))
    size = -(-len(points) // -(-len(points) // size))  # as many passes, even chunks: 8 + 7
    limits, more = _limits(conn, tables, customers, points[0])
    if sample is not None:
        limits.insert(0, sample.describe())

    def dated() -> Iterator[Facts]:
        for start in range(0, len(points), size):
            chunk = points[start:start + size]
            held = [MetricTable.empty(compiled, customers.ids) for _ in chunk]
            sent = ChunkStatements(tables, compiled, chunk)
            with _ahead(conn, [(kind, sent.statement(kind)[0]) for kind in sent.joined]) as ahead:
                for kind in sent.joined:
                    _fold(kind, sent, ahead, held, chunk)
            for day, table in zip(chunk, held):
                yield Facts(as_of=day, customers=customers, facts={}, categories=categories,
                            metrics=table, codes=codes, customer_arrays=arrays)
            held.clear()

    def _fold(kind: str, sent: ChunkStatements, ahead: Prefetch | None,
              held: list[MetricTable], chunk: Sequence[dt.date]) -> None:
        """One statement's rows into every date's numbers."""
        buckets, fleet, spans = sent.buckets, sent.fleet, sent.spans
        stmt, columns = sent.statement(kind)
        by_bucket = kind in BUCKETED
        folded = by_bucket or kind in ("equipment", "contracts")
        key = sent.key_column(kind) if sample is not None else None
        parts: list[np.ndarray] = []  # rows folded once, after the statement
        with step(reporter, timings, f"read {kind} on {len(chunk)} dates") as advance:
            for batch in (ahead.rows(kind) if ahead is not None
                          else raw_batches(conn, stmt)):
                rows = float_rows(batch)
                if key is not None:  # a sample: the others' rows go now, not held
                    rows = known_rows(customers.ids, rows, key)[0]
                if folded:
                    parts.append(rows)
                else:
                    point = rows[:, 0].astype(np.int64)
                    for p in np.unique(point).tolist():
                        held[p].put(columns, rows[point == p, 1:])
                advance(len(batch))
            if parts and by_bucket:
                _add_buckets(held, chunk, buckets, compiled, columns,
                             np.concatenate(parts))
            elif parts and kind == "equipment" and fleet is not None:
                add_fleet(held, fleet[1], np.concatenate(parts))
            elif parts and kind == "contracts" and spans is not None:
                add_contracts(held, spans[1], np.concatenate(parts))
            parts.clear()

    return Rebuilt(points, dated(), limits, 2 + len(needed) + more, sample)


@contextmanager
def _ahead(conn: sa.Connection, statements: Sequence[tuple[str, sa.Select]]
           ) -> Iterator[Prefetch | None]:
    """The chunk's statements read ahead on a second connection (``erp.prefetch``) while
    Python folds the rows, where there can be one (an in-memory SQLite database is one
    connection's alone: there they are read in turn, on ``conn``)."""
    if len(statements) < 2 or isinstance(conn.engine.pool, (sa.pool.StaticPool,
                                                            sa.pool.SingletonThreadPool)):
        yield None
        return
    with Prefetch(conn.engine, statements, raw_batches) as ahead:
        yield ahead


# the statements whose rows carry a date: counted once, in the bucket of dates they fall in
BUCKETED = frozenset({"gl", "items_sold", "invoices"})


class ChunkStatements:
    """The statements ``read_history`` sends for one chunk of dates, one per kind of fact:
    dated rows by the bucket of dates they fall in, machines by their first date and the
    dates a line covers them, contracts by their horizons, the rest joined to the dates.
    ``check --show-sql`` prints the same (``history_statements``)."""

    def __init__(self, tables: ErpTables, compiled: Compiled,
                 chunk: Sequence[dt.date]) -> None:
        self.joined = metric_queries(tables, compiled, chunk[-1], chunk)
        self.buckets = BucketClock(chunk, compiled)
        self.bucketed = metric_queries(tables, compiled, chunk[-1], clock=self.buckets)
        self.fleet = fleet_statement(tables, compiled, chunk)
        self.spans = contract_statement(tables, compiled, chunk)

    def key_column(self, kind: str) -> int:
        """Where a row of ``kind`` carries its customer id: after the bucket or the date; after
        the first date and cover bits; after the first and gone dates and each horizon."""
        if kind in BUCKETED:
            return 1
        if kind == "equipment" and self.fleet is not None:
            return 2
        if kind == "contracts" and self.spans is not None:
            return 2 + max((w for _, _, w in self.spans[1] if w is not None), default=-1) + 1
        return 1  # (date, customer, ...) of a statement joined to the dates

    def statement(self, kind: str) -> tuple[sa.Select, Sequence[int]]:
        """The statement sent for ``kind`` and the compiled columns its rows carry."""
        stmt, columns = self.joined[kind]
        if kind in BUCKETED:
            return self.bucketed[kind]
        if kind == "equipment" and self.fleet is not None:
            return self.fleet[0], columns
        if kind == "contracts" and self.spans is not None:
            return self.spans[0], columns
        return stmt, columns


def history_statements(tables: ErpTables, compiled: Compiled, points: Sequence[dt.date]
                       ) -> list[tuple[str, sa.Select]]:
    """(kind of fact, statement) as ``read_history`` sends them for ``points`` in one chunk
    (a year of dates fits one up to a few hundred thousand customers), and the count of the
    machines inactive today it sends first."""
    sent = ChunkStatements(tables, compiled, sorted(set(points)))
    return ([("machines inactive today", inactive_statement(tables))]
            + [(kind, sent.statement(kind)[0]) for kind in sent.joined])


def inactive_statement(tables: ErpTables) -> sa.Select:
    """The machines inactive today: counted, since the history keeps no removal date."""
    e = tables.equipment
    return sa.select(sa.func.count()).select_from(e).where(is_off(e.c.active))


def _add_buckets(held: list[MetricTable], chunk: Sequence[dt.date], buckets: BucketClock,
                 compiled: Compiled, columns: Sequence[int], rows: np.ndarray) -> None:
    """Rows of (bucket, customer, value...) added to each date's numbers: a row counts for a
    date when its bucket lies inside the column's window ending on that date (sums add,
    maxima take the larger; a column without a window takes its statement's longest)."""
    if not len(rows):
        return
    ids = held[0].ids
    rows, pos = known_rows(ids, rows, 1)
    bucket = rows[:, 0].astype(np.int64)
    longest = max((compiled.columns[c].window or 0 for c in columns), default=1) or 1
    for j, c in enumerate(columns):
        col = compiled.columns[c]
        values = rows[:, 2 + j]
        for table, day in zip(held, chunk):
            first, last = buckets.span(day, col.window or longest)
            inside = (bucket >= first) & (bucket <= last)
            if not inside.any():
                continue
            if col.is_max:
                np.maximum.at(table.values[:, c], pos[inside], values[inside])
            else:
                table.values[:, c] += np.bincount(pos[inside], weights=values[inside],
                                                  minlength=len(ids))


def _limits(conn: sa.Connection, tables: ErpTables, customers: CustomerTable,
            first: dt.date) -> tuple[list[str], int]:
    """What the ERP cannot rebuild, counted (one small statement): machines inactive today
    (e-automate keeps no removal date, so they count as removed on every past date) and the
    dated columns this database lacks."""
    inactive = int(conn.execute(inactive_statement(tables)).scalar() or 0)
    out = []
    if inactive:
        out.append(f"{inactive:,} machines are inactive today; the ERP keeps no removal date, "
                   f"so they count as gone on every date since {first.isoformat()}")
    for logical, column in sorted(tables.absent):
        out.append(f"{tables.physical(logical)} has no "
                   f"{tables.profile[logical]['columns'][column]}: every past date counts "
                   "its rows as they stand today")
    out.append(f"industries, branches and sales reps are today's for all "
               f"{len(customers):,} customers")
    return out, 1
