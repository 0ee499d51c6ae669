"""Many rows into the state store in one driver call.

SQLAlchemy's ``executemany`` builds each row's parameters in Python (``construct_params``), which
costs more than SQLite's own insert at a few hundred thousand audit rows or opportunities. Here
the statement is compiled once and the rows are handed to the driver's ``executemany`` as it
reads them, with the dialect's own value conversions (SQLite's dates) applied once per distinct
value.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from operator import itemgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.compiler import SQLCompiler


def execute_many(conn: sa.Connection, stmt: sa.Insert, table: sa.Table,
                 rows: Sequence[dict[str, Any]]) -> None:
    """Run ``stmt`` (an INSERT into ``table``, maybe with ON CONFLICT) once per row, all rows
    in one driver ``executemany``; every row has the keys of the first."""
    if rows:
        keys = list(rows[0])
        get = itemgetter(*keys)
        execute_many_tuples(conn, stmt, table, keys, [
            (get(row),) if len(keys) == 1 else get(row) for row in rows])


def execute_many_tuples(conn: sa.Connection, stmt: sa.Insert, table: sa.Table,
                        keys: Sequence[str], rows: Sequence[tuple[Any, ...]], *,
                        converted: bool = False) -> None:
    """``execute_many`` for rows given as tuples of the values of ``keys``, in that order;
    ``converted``: the values are already in the driver's form (no per-value conversion)."""
    if not rows:
        return
    compiled = stmt.compile(dialect=conn.dialect, column_keys=list(keys))
    convert: dict[str, Callable[[Any], Any]] = {} if converted else {
        key: proc for key in keys if (proc := table.c[key].type.dialect_impl(
            conn.dialect).bind_processor(conn.dialect)) is not None}
    if not compiled.positional:
        names = list(compiled.binds)
        conn.exec_driver_sql(str(compiled), [
            {name: _converted(convert, name, value) for name, value in zip(keys, row)
             if name in names} for row in rows])
        return
    order = list(compiled.positiontup or ())
    params = driver_rows(compiled, keys, rows)
    if convert:
        at: list[tuple[int, Callable[[Any], Any], dict[Any, Any]]] = [
            (order.index(key), proc, {}) for key, proc in convert.items()]
        for n, values in enumerate(params):
            fixed = list(values)
            for i, to_driver, seen in at:
                value = fixed[i]
                if value not in seen:  # a run's rows share their timestamp and dates
                    seen[value] = to_driver(value)
                fixed[i] = seen[value]
            params[n] = tuple(fixed)
    conn.exec_driver_sql(str(compiled), params)


def driver_rows(compiled: SQLCompiler, keys: Sequence[str],
                rows: Sequence[tuple[Any, ...]]) -> list[Any]:
    """Rows given as tuples of the values of ``keys`` as the driver takes them for ``compiled``:
    the same tuples when its parameters come in that order, reordered tuples for another
    order, a mapping per row for a named-parameter driver."""
    if not compiled.positional:
        names = set(compiled.binds)
        return [{k: v for k, v in zip(keys, row) if k in names} for row in rows]
    order = list(compiled.positiontup or ())
    if order == list(keys):
        return list(rows)
    get = itemgetter(*[list(keys).index(name) for name in order])
    return [(get(row),) if len(order) == 1 else get(row) for row in rows]


def _converted(convert: dict[str, Callable[[Any], Any]], name: str, value: Any) -> Any:
    proc = convert.get(name)
    return value if proc is None else proc(value)


def fetch_tuples(conn: sa.Connection, stmt: sa.Select) -> list[tuple[Any, ...]]:
    """Every row of ``stmt`` as plain tuples, straight from the driver (see ``fetch_batches``)."""
    return [row for batch in fetch_batches(conn, stmt) for row in batch]


def fetch_batches(conn: sa.Connection, stmt: sa.Select, size: int = 50_000, *,
                  raw: bool = False) -> Generator[list[tuple[Any, ...]], None, None]:
    """The rows of ``stmt`` as plain tuples, ``size`` at a time, straight from the driver.

    SQLAlchemy converts each value of each row (SQLite's dates are text), which at a million
    stored opportunities costs more than reading them. Here each column's conversion runs once
    per distinct value (a night's rows share their dates), and a caller that folds each batch
    into arrays never holds a million tuples. ``raw``: the driver's values as they come (the
    caller converts each distinct value itself, e.g. a date stored as text).
    """
    compiled = stmt.compile(dialect=conn.dialect)
    procs = [c.type.dialect_impl(conn.dialect).result_processor(conn.dialect, None)
             for c in stmt.selected_columns]
    params = compiled.construct_params()
    result = conn.exec_driver_sql(str(compiled), tuple(
        params[k] for k in compiled.positiontup or ()) if compiled.positional else params)
    cursor = result.cursor  # the driver's own rows: no per-row work above it
    fixes: list[tuple[int, Callable[[Any], Any], dict[Any, Any]]] = [] if raw else [
        (i, proc, {}) for i, proc in enumerate(procs) if proc is not None]
    try:
        while rows := cursor.fetchmany(size):
            if not fixes:
                yield [tuple(r) for r in rows]
                continue
            out = []
            for row in rows:
                values = list(row)
                for i, proc, seen in fixes:
                    raw = values[i]
                    try:
                        values[i] = seen[raw]
                    except KeyError:
                        values[i] = seen[raw] = proc(raw)
                out.append(tuple(values))
            yield out
    finally:
        result.close()
