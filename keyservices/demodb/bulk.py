"""Rows into the demo database in batches: through the driver on SQLite (positional tuples,
values stored as SQLAlchemy stores them), through SQLAlchemy elsewhere."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy import MetaData, Table

from .schema import BATCH


def flush(conn: sa.Connection, md: MetaData, gen: Any, force: bool = False) -> None:
    """Insert the rows the generator holds, table by table, once a batch is full (``force``:
    whatever is left)."""
    key = (md.schema + ".") if md.schema else ""
    for name in list(gen.rows):
        rows = gen.rows[name]
        if rows and (force or len(rows) >= BATCH):
            table = md.tables[key + name]
            if conn.dialect.name == "sqlite":
                _sqlite_insert(conn, table, rows)
            else:
                conn.execute(table.insert(), rows)
            gen.rows[name] = []


def _sqlite_insert(conn: sa.Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Bulk insert through the driver with positional tuples: SQLAlchemy's per-row parameter
    processing is most of the build time at scale. Values are stored exactly as SQLAlchemy
    stores them (datetimes as 'YYYY-MM-DD HH:MM:SS.ffffff', dates as 'YYYY-MM-DD', booleans as
    0/1), column defaults included, so the data and the queries over it are the same either way."""
    columns = list(table.columns)
    defaults = {c.name: c.default.arg for c in columns
                if isinstance(c.default, sa.ColumnDefault) and c.default.is_scalar}
    plain = {c.name for c in columns if isinstance(c.type, sa.Date)}  # 'YYYY-MM-DD' text

    def value(v: Any, name: str) -> Any:
        if isinstance(v, dt.datetime):
            return v.date().isoformat() if name in plain else v.isoformat(" ", "microseconds")
        if isinstance(v, bool):
            return int(v)
        return v

    data = [tuple(value(r[c.name] if c.name in r else defaults.get(c.name), c.name)
                  for c in columns) for r in rows]
    sql = (f'INSERT INTO "{table.name}" ({", ".join(f"{chr(34)}{c.name}{chr(34)}" for c in columns)}) '
           f'VALUES ({", ".join("?" for _ in columns)})')
    conn.exec_driver_sql(sql, data)


__all__ = ["flush"]
