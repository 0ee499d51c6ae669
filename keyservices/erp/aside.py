"""One of the night's fact statements read on a second connection, beside the others (#26).

Why: on SQLite each fact statement is one core's work inside the engine (it releases the
interpreter while it steps), and a night reads its statements one after the other. The
equipment statement (the largest pass after GL) is therefore sent on a second connection, on a
thread, as soon as the statements are known, and its rows are folded in once the customers and
the other statements have been read: two cores read instead of one. The same statement, the
same rows: only when it runs changes.

Only where it cannot change an answer: SQLite files and PostgreSQL, whose reads are
statement by statement already (no snapshot spans them). SQL Server with
``read_isolation: snapshot`` reads every statement from one snapshot, and a production server
is not asked for two big statements at once: it keeps reading one at a time, as does an
in-memory SQLite database (a second connection would be another, empty, database).

Memory: the rows wait as float arrays (8 bytes a value), one per customer with machines.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sqlalchemy as sa

from .fold import float_rows

log = logging.getLogger(__name__)
SIDE_KINDS = ("equipment",)  # the statements read aside, where a second connection may be used
BATCH_ROWS = 1024  # the fetch size of the main connection's reads (erp.facts.NATIVE_ROWS)


def can_read_aside(dialect: str, database: str | None) -> bool:
    """Whether a second connection reads the same data, statement by statement (see above)."""
    if dialect == "postgresql":
        return True
    if dialect != "sqlite" or not database:
        return False
    return database != ":memory:" and "mode=memory" not in database \
        and not database.startswith("file::memory:")


@dataclass
class Aside:
    """A statement running on its own connection; ``rows`` waits for it and returns its rows as
    float arrays (and re-raises what stopped it)."""

    kind: str
    columns: list[int]
    seconds: float = 0.0
    _future: Future[list[np.ndarray]] | None = field(default=None, repr=False)
    _driver: Any = field(default=None, repr=False)
    _stopped: bool = field(default=False, repr=False)

    def start(self, engine: sa.Engine, stmt: sa.Select) -> None:
        pool = ThreadPoolExecutor(1, thread_name_prefix=f"keyservices-{self.kind}")
        self._future = pool.submit(self._read, engine, stmt)
        pool.shutdown(wait=False)

    def _read(self, engine: sa.Engine, stmt: sa.Select) -> list[np.ndarray]:
        start = time.perf_counter()
        out: list[np.ndarray] = []
        with engine.connect() as conn:
            self._driver = conn.connection.dbapi_connection
            try:
                if self._stopped:
                    return out
                result = conn.execute(stmt)
                try:
                    cursor = result.cursor
                    if cursor is None:
                        return out
                    while batch := cursor.fetchmany(BATCH_ROWS):
                        out.append(float_rows(batch))
                finally:
                    result.close()
            finally:
                self._driver = None
        self.seconds = time.perf_counter() - start
        return out

    def rows(self) -> list[np.ndarray]:
        assert self._future is not None
        return self._future.result()

    def cancel(self) -> None:
        """Stop it (the night failed meanwhile): SQLite's ``interrupt`` ends the statement;
        elsewhere it finishes on its own thread and its rows are dropped."""
        self._stopped = True
        interrupt = getattr(self._driver, "interrupt", None)
        if interrupt is not None:
            try:
                interrupt()
            except Exception:  # noqa: BLE001 - the connection may be closing already
                log.debug("could not interrupt the %s statement", self.kind)
        if self._future is not None:
            self._future.cancel()


def start_aside(conn: sa.Connection, queries: dict[str, tuple[sa.Select, list[int]]]
                ) -> tuple[list[Aside], dict[str, tuple[sa.Select, list[int]]]]:
    """Start the side statements (where allowed) and return them with the statements left for
    the main connection, in their order."""
    if not can_read_aside(conn.dialect.name, conn.engine.url.database):
        return [], queries
    started = []
    for kind in SIDE_KINDS:
        if kind in queries:
            stmt, columns = queries[kind]
            side = Aside(kind, columns)
            side.start(conn.engine, stmt)
            started.append(side)
    rest = {k: v for k, v in queries.items() if k not in {s.kind for s in started}}
    return started, rest


def cancel_all(asides: Sequence[Aside]) -> None:
    for side in asides:
        side.cancel()


__all__ = ["Aside", "can_read_aside", "cancel_all", "start_aside"]
