"""Many rows into the state store in one driver call.

SQLAlchemy's ``executemany`` builds each row's parameters in Python (``construct_params``), which
costs more than SQLite's own insert at a few hundred thousand audit rows or opportunities. Here
the statement is compiled once and the rows are handed to the driver's ``executemany`` as it
reads them, with the dialect's own value conversions (SQLite's dates) applied once per distinct
value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

import sqlalchemy as sa


def execute_many(conn: sa.Connection, stmt: sa.Insert, table: sa.Table,
                 rows: Sequence[dict[str, Any]]) -> None:
    """Run ``stmt`` (an INSERT into ``table``, maybe with ON CONFLICT) once per row, all rows
    in one driver ``executemany``; every row has the keys of the first."""
    if not rows:
        return
    keys = list(rows[0])
    compiled = stmt.compile(dialect=conn.dialect, column_keys=keys)
    convert = {key: proc for key in keys if (proc := table.c[key].type.dialect_impl(
        conn.dialect).bind_processor(conn.dialect)) is not None}
    if not compiled.positional:
        names = list(compiled.binds)
        conn.exec_driver_sql(str(compiled), [
            {name: _converted(convert, name, row[name]) for name in names} for row in rows])
        return
    order = list(compiled.positiontup or ())
    get = itemgetter(*order)
    params = [(get(row),) for row in rows] if len(order) == 1 else [get(row) for row in rows]
    if convert:
        at = [(order.index(key), proc, {}) for key, proc in convert.items()]
        for n, values in enumerate(params):
            fixed = list(values)
            for i, proc, seen in at:
                value = fixed[i]
                if value not in seen:  # a run's rows share their timestamp and dates
                    seen[value] = proc(value)
                fixed[i] = seen[value]
            params[n] = tuple(fixed)
    conn.exec_driver_sql(str(compiled), params)


def _converted(convert: dict[str, Callable[[Any], Any]], name: str, value: Any) -> Any:
    proc = convert.get(name)
    return value if proc is None else proc(value)
