"""The history's statements read ahead, on a second connection and a thread.

Rebuilding past dates sends one big grouped statement per kind of fact, and after each Python
folds its rows into every date's numbers. The database's part (scanning, sorting and summing)
needs no Python, so while Python folds one statement's rows, the next statement runs beside it:
``Prefetch`` sends the statements one after another and hands their batches over through a
short queue (a few batches: memory stays with the batch size). The reads are the same
statements the one connection would send, in the same order; a failure on the thread is raised
where the batches are asked for, and ``close`` stops the thread at its next batch.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import suppress
from typing import Any, Self

import sqlalchemy as sa

Batches = Callable[[sa.Connection, sa.Select], Iterator[Sequence[Any]]]
_END = object()  # a statement's last batch was handed over


class Prefetch:
    """``statements`` (kind, statement) sent in order on a connection of ``engine``, each
    one's batches read with ``batches``; ``rows(kind)`` yields them, kind after kind."""

    def __init__(self, engine: sa.Engine, statements: Sequence[tuple[str, sa.Select]],
                 batches: Batches, depth: int = 4) -> None:
        self._statements = list(statements)
        self._batches = batches
        self._engine = engine
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._driver: Any = None  # the thread's own driver connection, while it has one
        self._thread = threading.Thread(target=self._run, name="keyservices-history",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            with self._engine.connect() as conn:
                self._driver = conn.connection.dbapi_connection
                for kind, stmt in self._statements:
                    for batch in self._batches(conn, stmt):
                        if not self._put((kind, batch)):
                            return
                    if not self._put((kind, _END)):
                        return
        except BaseException as exc:  # noqa: BLE001 - raised again on the reading side
            self._put(exc)
        finally:
            self._driver = None

    def _put(self, item: Any) -> bool:
        """Hand one item over, waiting while the queue is full; False once closed."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def rows(self, kind: str) -> Iterator[Sequence[Any]]:
        """The batches of the next statement, which must be ``kind``'s."""
        while True:
            item = self._queue.get()
            if isinstance(item, BaseException):
                raise item
            got, batch = item
            if got != kind:  # a caller asking out of order is a bug, not a database's fault
                raise RuntimeError(f"prefetch: {kind} asked for, {got} was read")
            if batch is _END:
                return
            yield batch

    def close(self) -> None:
        """Stop the thread and wait for it to let its connection go (a night may write next):
        a statement still running is interrupted where the driver can (SQLite's ``interrupt``,
        PostgreSQL's ``cancel``), else it finishes on its own first."""
        self._stop.set()
        driver = self._driver
        stop = getattr(driver, "interrupt", None) or getattr(driver, "cancel", None)
        if stop is not None and self._thread.is_alive():
            with suppress(Exception):  # the statement ended meanwhile
                stop()
        while self._thread.is_alive():
            try:  # free a thread waiting to hand over
                self._queue.get(timeout=0.05)
            except queue.Empty:
                pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["Prefetch"]
