"""The dates a fact statement counts on (``queries.metric_queries``).

``Clock``: the night's bounds as bind parameters, or a small table of as-of dates every
statement joins (all dates in one pass, grouped by date then customer). ``BucketClock``: for the
statements whose rows carry a date (GL, invoices, items sold), each row counted once in the
*bucket* of dates it falls in (the intervals between every date's window bounds), grouped by
bucket then customer; the buckets are added up per date afterwards (``history``), so a GL line
is not joined to the dozen dates whose window holds it.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from ..engine.metrics import Compiled


def since_bound(day: dt.date, window: int, name: str | None = None) -> sa.BindParameter:
    """The first day of a window of ``window`` days ending on ``day``."""
    return sa.bindparam(name or f"since_{window}", day - dt.timedelta(days=window - 1),
                        type_=sa.Date)


class Clock:
    """The dates a statement counts on: the run date's bounds as bind parameters (the night),
    or, with ``points``, one row per as-of date of a small derived table every statement joins
    (the backtest: all dates in one pass per table, grouped by ``point`` then customer).

    A condition on dates goes into ``join`` (and, for the night, ``where``); the values it
    compares with come from ``day``, ``until``, ``since`` and ``plus``.
    """

    def __init__(self, day: dt.date, points: Sequence[dt.date] = (),
                 compiled: Compiled | None = None) -> None:
        self.today = day
        self.points = [p.date() if isinstance(p, dt.datetime) else p for p in points]
        self.table: sa.Subquery | None = None
        if self.points:
            windows = {c.window for c in (compiled.columns if compiled else ())
                       if c.window is not None}
            windows |= {max(windows, default=1)}
            ahead = {f.ids[0] for c in (compiled.columns if compiled else ())
                     for f in c.filters if f.column == "expires_within"}
            rows = []
            for n, p in enumerate(self.points):
                cells: list[sa.Label[Any]] = [sa.literal(n, sa.Integer).label("point"),
                         sa.literal(p, sa.Date).label("day"),
                         sa.literal(p + dt.timedelta(days=1), sa.Date).label("until")]
                cells += [sa.literal(p - dt.timedelta(days=w - 1), sa.Date).label(f"since{w}")
                          for w in sorted(windows)]
                cells += [sa.literal(p + dt.timedelta(days=a), sa.Date).label(f"plus{a}")
                          for a in sorted(ahead)]
                rows.append(sa.select(*cells))
            self.table = sa.union_all(*rows).subquery("points")

    def day(self, name: str = "day") -> sa.ColumnElement[Any]:
        if self.table is None:
            return sa.bindparam(name, self.today, type_=sa.Date)
        return self.table.c.day

    def until(self, name: str = "until") -> sa.ColumnElement[Any]:
        if self.table is None:
            return sa.bindparam(name, self.today + dt.timedelta(days=1), type_=sa.Date)
        return self.table.c.until

    def since(self, window: int, name: str) -> sa.ColumnElement[Any]:
        if self.table is None:
            return since_bound(self.today, window, name)
        return self.table.c[f"since{window}"]

    def plus(self, days: int, name: str) -> sa.ColumnElement[Any]:
        if self.table is None:
            return sa.bindparam(name, self.today + dt.timedelta(days=days), type_=sa.Date)
        return self.table.c[f"plus{days}"]

    def join(self, frm: sa.FromClause, on: sa.ColumnElement[bool]) -> sa.FromClause:
        """``frm`` joined to the dates its rows count on (the night: ``frm`` itself)."""
        return frm if self.table is None else frm.join(self.table, on)

    def where(self, *conds: sa.ColumnElement[bool]) -> list[sa.ColumnElement[bool]]:
        """The night's date conditions, for its WHERE (with points they are in the join)."""
        return list(conds) if self.table is None else []

    def key(self) -> list[sa.ColumnElement[Any]]:
        return [] if self.table is None else [self.table.c.point]

    def same(self, other: sa.Subquery, on: sa.ColumnElement[bool]) -> sa.ColumnElement[bool]:
        """``on``, and (with points) for the same date as ``other``."""
        if self.table is None:
            return on
        return sa.and_(on, other.c.point == self.table.c.point)

    def grouped(self, stmt: sa.Select, key: sa.ColumnElement[Any],
                date: sa.ColumnElement[Any] | None = None) -> sa.Select:
        """Grouped by customer (with points: by date, then customer, the date first)."""
        if self.table is None:
            return stmt.group_by(key)
        point = self.table.c.point
        return (stmt.with_only_columns(point, *stmt.selected_columns, maintain_column_froms=True)
                .group_by(point, key).order_by(point))


def bounds_before(date: sa.ColumnElement[Any], bounds: Sequence[dt.date], lo: int = 0,
                  hi: int | None = None, prefix: str = "b") -> sa.ColumnElement[Any]:
    """How many of the sorted ``bounds`` are on or before ``date`` (between ``lo`` and
    ``hi``): a nest of CASEs halving the range, some 6 comparisons a row for 50 bounds."""
    hi = len(bounds) if hi is None else hi
    if lo == hi:
        return sa.literal_column(str(lo))
    mid = (lo + hi + 1) // 2
    return sa.case((date < sa.bindparam(f"{prefix}{mid}", bounds[mid - 1], type_=sa.Date),
                    bounds_before(date, bounds, lo, mid - 1, prefix)),
                   else_=bounds_before(date, bounds, mid, hi, prefix))


class SpanClock(Clock):
    """Every row live on any of the dates: ``day`` is the first date, ``until`` the day after
    the last (the contracts statement of ``spans``, which sorts the rows into dates itself)."""

    def __init__(self, points: Sequence[dt.date]) -> None:
        super().__init__(max(points))
        self.first = min(points)

    def day(self, name: str = "day") -> sa.ColumnElement[Any]:
        return sa.bindparam(name, self.first, type_=sa.Date)


class BucketClock(Clock):
    """Every date's window bounds as bucket boundaries (see the module docstring): a windowed
    statement keeps its rows from the earliest bound to the last day, its columns count every
    row it keeps (``since`` is the earliest bound), and it groups by bucket then customer."""

    def __init__(self, points: Sequence[dt.date], compiled: Compiled) -> None:
        super().__init__(max(points))
        self.points = sorted(points)
        windows = {c.window for c in compiled.columns if c.window is not None} | {1}
        self.windows = windows
        bounds = {p + dt.timedelta(days=1) for p in self.points}
        bounds |= {p - dt.timedelta(days=w - 1) for p in self.points for w in windows}
        self.bounds = sorted(bounds)

    def since(self, window: int, name: str) -> sa.ColumnElement[Any]:
        return sa.bindparam(name, self.bounds[0], type_=sa.Date)

    def until(self, name: str = "until") -> sa.ColumnElement[Any]:
        return sa.bindparam(name, self.bounds[-1], type_=sa.Date)

    def grouped(self, stmt: sa.Select, key: sa.ColumnElement[Any],
                date: sa.ColumnElement[Any] | None = None) -> sa.Select:
        if date is None:  # a statement without dated rows (not read this way): as a night
            return super().grouped(stmt, key)
        bucket = self._bucket(date, 0, len(self.bounds)).label("bucket")
        return (stmt.with_only_columns(bucket, *stmt.selected_columns,
                                       maintain_column_froms=True)
                .group_by(bucket, key))

    def _bucket(self, date: sa.ColumnElement[Any], lo: int, hi: int) -> sa.ColumnElement[Any]:
        return bounds_before(date, self.bounds, lo, hi)

    def span(self, point: dt.date, window: int) -> tuple[int, int]:
        """The buckets (first, last, inclusive) that make up a window of ``window`` days
        ending on ``point``."""
        first = bisect.bisect_left(self.bounds, point - dt.timedelta(days=window - 1)) + 1
        last = bisect.bisect_left(self.bounds, point + dt.timedelta(days=1))
        return first, last


__all__ = ["BucketClock", "Clock", "SpanClock", "bounds_before", "since_bound"]
