"""The history's statements read ahead on a second connection (``erp.prefetch``): the same
batches in the same order, a failure raised where the rows are asked for, and a reader that
lets its connection go when closed early (a night writes after its learning)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from keyservices.erp.facts import raw_batches
from keyservices.erp.prefetch import Prefetch


@pytest.fixture
def engine(tmp_path: Path) -> sa.Engine:
    path = tmp_path / "db.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (k INTEGER, v REAL)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(i % 97, i * 0.5) for i in range(30000)])
    engine = sa.create_engine(f"sqlite:///{path}")
    yield engine
    engine.dispose()


def statements() -> list[tuple[str, sa.Select]]:
    t = sa.table("t", sa.column("k"), sa.column("v"))
    return [("sums", sa.select(t.c.k, sa.func.sum(t.c.v)).group_by(t.c.k).order_by(t.c.k)),
            ("rows", sa.select(t.c.k, t.c.v).order_by(t.c.v)),
            ("none", sa.select(t.c.k).where(t.c.k < 0))]


def test_the_same_batches_in_the_same_order(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        expected = {kind: [list(b) for b in raw_batches(conn, stmt)]
                    for kind, stmt in statements()}
    with Prefetch(engine, statements(), raw_batches, depth=2) as ahead:
        got = {kind: [list(b) for b in ahead.rows(kind)] for kind, _ in statements()}
    assert got == expected and len(expected["rows"]) > 2 and expected["none"] == []


def test_a_failure_on_the_thread_is_raised_where_the_rows_are_asked_for(
        engine: sa.Engine) -> None:
    bad = [*statements()[:1], ("missing", sa.select(sa.literal_column("x")).select_from(
        sa.table("no_such_table")))]
    with Prefetch(engine, bad, raw_batches) as ahead:
        assert len(list(ahead.rows("sums"))) == 1
        with pytest.raises(sa.exc.OperationalError, match="no_such_table"):
            list(ahead.rows("missing"))


def test_asked_out_of_order_is_an_error_not_a_wrong_fold(engine: sa.Engine) -> None:
    with (Prefetch(engine, statements(), raw_batches) as ahead,
          pytest.raises(RuntimeError, match="rows asked for, sums was read")):
        list(ahead.rows("rows"))


def test_closed_early_the_thread_ends_and_a_writer_goes_on(engine: sa.Engine) -> None:
    ahead = Prefetch(engine, statements(), raw_batches, depth=1)
    next(iter(ahead.rows("sums")))
    ahead.close()  # the thread was waiting to hand over more
    assert not ahead._thread.is_alive()  # what close promises
    with engine.begin() as conn:  # no reader left holding the database
        conn.execute(sa.text("DELETE FROM t"))
