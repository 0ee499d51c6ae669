"""Which of the optional dated columns (``profile.OPTIONAL_COLUMNS``) this database has.

Asked once per night, before any statement that could read one is built: a column the database
lacks is left out of every statement (``ErpTables.has``) and named by ``check``, instead of
failing the night. One statement on SQLite (``pragma_table_info`` of the tables concerned),
one reflection call elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine.reflection import ObjectKind

from .connection import ErpTables
from .profile import OPTIONAL_COLUMNS


def note_absent(conn: sa.Connection, tables: ErpTables, logicals: Iterable[str]) -> None:
    """Record on ``tables`` the optional columns of these tables the database lacks. A table
    that is missing altogether is left to the checks that name it."""
    wanted = sorted({lo for lo, _ in OPTIONAL_COLUMNS} & set(logicals))
    if not wanted:
        return
    present = _columns(conn, tables, wanted)
    tables.absent = {
        (lo, col) for lo, col in OPTIONAL_COLUMNS
        if lo in wanted and tables.physical(lo).lower() in present
        and tables.profile[lo]["columns"][col].lower() not in present[tables.physical(lo).lower()]}


def _columns(conn: sa.Connection, tables: ErpTables, logicals: list[str]
             ) -> dict[str, set[str]]:
    """Lower-cased table name -> its lower-cased column names, for the tables that exist."""
    names = [tables.physical(lo) for lo in logicals]
    if conn.dialect.name == "sqlite":
        parts = []
        for name in names:
            args = [sa.literal(name)] + ([sa.literal(tables.schema)] if tables.schema else [])
            info = sa.func.pragma_table_info(*args).table_valued("name").alias()
            parts.append(sa.select(sa.literal(name.lower()).label("t"),
                                   sa.func.lower(info.c.name).label("c")).select_from(info))
        out: dict[str, set[str]] = {}
        for table, column in conn.execute(sa.union_all(*parts)):
            out.setdefault(table, set()).add(column)
        return out
    reflected = sa.inspect(conn).get_multi_columns(schema=tables.schema, filter_names=names,
                                                    kind=ObjectKind.ANY)
    return {table.lower(): {c["name"].lower() for c in cols}
            for (_, table), cols in reflected.items()}
