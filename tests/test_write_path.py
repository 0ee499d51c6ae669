"""The write path: chunking, the order of audit and ERP writes, statement counts, conflicts.

Behaviour only; how fast it is lives in ``benchmarks/`` (``writeback.py``, ``nightly.py``).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from keyservices.calls.lifecycle import OpportunityRecord
from keyservices.erp import ErpTables
from keyservices.erp.writeback import apply_changes, reconcile, write_order
from keyservices.model import Change
from keyservices.state import StateStore

from .conftest import ATTR_ID, ErpBuilder

AS_OF = dt.date(2026, 11, 24)


def customers(erp: ErpBuilder, n: int) -> list[Change]:
    """``n`` customers with a value row: every third empty, the others holding text."""
    planned = []
    for i in range(n):
        before = None if i % 3 == 0 else "CPY"
        cid = erp.customer(f"W{i:04d}", value=before)
        planned.append(Change(cid, f"W{i:04d}", f"Customer {i}", "North", "Dana Rep", before,
                              "CPY;MPS", ("MPS",), (), annual_values=(("MPS", 1200.5),)))
    return planned


class Recorder:
    """What reaches the ERP and the state store, in order: ('erp', sql, rows) when a statement
    is sent, ('state', 'stored', audit rows of the run committed so far) when an audit store
    returns (on the write path's thread too), ('state', 'settle', conflicts)."""

    def __init__(self, erp: ErpBuilder, store: StateStore) -> None:
        self.events: list[tuple[str, str, int]] = []
        sa.event.listen(erp.engine, "before_cursor_execute", self._erp)
        real_store, real_settle = store.store_pending, store.settle

        def stored(run_id: int, statements: Any) -> None:
            real_store(run_id, statements)
            with store.engine.connect() as conn:
                n = conn.execute(sa.text("SELECT count(*) FROM changes WHERE run_id = :r"),
                                 {"r": run_id}).scalar()
            self.events.append(("state", "stored", int(n or 0)))

        def settle(run_id: int, conflicts: Any, already: Any = ()) -> None:
            self.events.append(("state", "settle", len(conflicts)))
            real_settle(run_id, conflicts, already)

        store.store_pending = stored  # type: ignore[method-assign]
        store.settle = settle  # type: ignore[method-assign]

    def _erp(self, _conn: Any, _cursor: Any, sql: str, params: Any, _ctx: Any,
             many: bool) -> None:
        kind = sql.lstrip().split()[0].upper()
        if kind in ("UPDATE", "SELECT"):
            self.events.append(("erp", kind, len(params) if many else 1))

    def erp(self) -> list[tuple[str, str, int]]:
        return [e for e in self.events if e[0] == "erp"]

    def audited_before_each_chunk(self, chunks: list[int]) -> list[int]:
        """The audit rows committed when each chunk's first statement was sent (the chunks'
        sizes and their statements per chunk found from the ERP events)."""
        out, stored, sent, ends = [], 0, 0, [sum(chunks[:i + 1]) for i in range(len(chunks))]
        for kind, what, n in self.events:
            if kind == "state" and what == "stored":
                stored = n
            elif kind == "erp" and what == "UPDATE":
                # (a chunk done again after a guard held sends more rows than it has)
                if not out or (len(out) < len(ends) and sent >= ends[len(out) - 1]):
                    out.append(stored)
                sent += n
        return out


@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = StateStore(f"sqlite:///{(tmp_path / 'state.sqlite').as_posix()}")
    yield s
    s.close()


def test_each_chunk_is_audited_before_it_is_written_and_the_run_settled_after_the_last(
        any_erp: ErpBuilder, store: StateStore) -> None:
    """Chunk k's audit rows are committed before its first UPDATE, at most one chunk ahead
    (the next chunk's are stored while one is written), and the run is settled last."""
    planned = customers(any_erp, 12)
    run_id = store.begin_run(as_of=AS_OF, erp="t", prop="ZCJKeyServices", mode="live",
                             baseline=False)
    seen = Recorder(any_erp, store)
    report = apply_changes(any_erp.engine, ErpTables(schema=any_erp.schema), ATTR_ID, planned,
                           state=store, run_id=run_id, chunk_size=5)
    assert seen.events[0] == ("state", "stored", 5)  # the first chunk's rows, before any UPDATE
    assert seen.events[-1] == ("state", "settle", 0)  # after the last chunk, no conflicts
    audited = seen.audited_before_each_chunk([5, 5, 2])
    assert [low <= n <= high for n, low, high in zip(audited, (5, 10, 12), (10, 12, 12))] == [
        True] * 3, audited
    # three chunks (5, 5, 2), each one batch per kind of UPDATE (the last has only values read
    # as text), no read-back: every guard held
    assert seen.erp() == [("erp", "UPDATE", 2), ("erp", "UPDATE", 3),
                          ("erp", "UPDATE", 2), ("erp", "UPDATE", 3), ("erp", "UPDATE", 2)]
    assert report.statements == 5 and report.read_backs == 0
    assert len(report.applied) == 12 and report.conflicts == []
    assert all(any_erp.value(c.customer_id) == "CPY;MPS" for c in planned)
    rows = store.history(run_id=run_id)
    assert [r["status"] for r in rows] == ["applied"] * 12
    assert rows[1]["before"] == "CPY" and rows[1]["annual_values"] == '{"MPS":1200.5}'
    assert not [t for t in threading.enumerate() if t.name.startswith("keyservices-audit")]


def test_the_state_store_commits_once_per_chunk_and_once_to_settle(
        erp: ErpBuilder, store: StateStore) -> None:
    """Each chunk's audit rows in one transaction, the settle in one more: the settle writes
    no audit row again, whatever the size."""
    commits: list[int] = []
    sa.event.listen(store.engine, "commit", lambda _conn: commits.append(1))
    counts = []
    for n in (4, 40):
        run_id = store.begin_run(as_of=AS_OF, erp="t", prop="ZCJKeyServices", mode="live",
                                 baseline=False)
        planned = customers_for(erp, n, prefix=f"S{n}")
        commits.clear()
        apply_changes(erp.engine, ErpTables(), ATTR_ID, planned, state=store, run_id=run_id,
                      chunk_size=3)
        counts.append(len(commits))
    assert counts == [2 + 1, 14 + 1]


def customers_for(erp: ErpBuilder, n: int, *, prefix: str) -> list[Change]:
    out = []
    for i in range(n):
        cid = erp.customer(f"{prefix}{i:03d}", value=None)
        out.append(Change(cid, f"{prefix}{i:03d}", "x", None, None, None, "CPY", ("CPY",), ()))
    return out


def test_a_value_edited_since_the_read_is_a_conflict_found_by_a_read_back_of_its_chunk(
        any_erp: ErpBuilder, store: StateStore) -> None:
    planned = customers(any_erp, 6)
    any_erp.set_value(planned[4].customer_id, "EDITED IN E-AUTOMATE")
    run_id = store.begin_run(as_of=AS_OF, erp="t", prop="ZCJKeyServices", mode="live",
                             baseline=False)
    seen = Recorder(any_erp, store)
    report = apply_changes(any_erp.engine, ErpTables(schema=any_erp.schema), ATTR_ID, planned,
                           state=store, run_id=run_id, chunk_size=3)
    # the second chunk's UPDATEs update 2 of 3 rows: it is rolled back and done again knowing
    # the values (read in its transaction), the edited value left out
    assert seen.erp() == [("erp", "UPDATE", 1), ("erp", "UPDATE", 2),
                          ("erp", "UPDATE", 1), ("erp", "UPDATE", 2), ("erp", "SELECT", 1),
                          ("erp", "UPDATE", 1), ("erp", "UPDATE", 1)]
    assert seen.audited_before_each_chunk([3, 3]) in ([3, 6], [6, 6])
    assert seen.events[-1] == ("state", "settle", 1)
    assert report.read_backs == 1 and report.statements == 7
    assert report.conflicts == [planned[4].customer_id]
    assert any_erp.value(planned[4].customer_id) == "EDITED IN E-AUTOMATE"
    statuses = {r["customer_number"]: r["status"] for r in store.history(run_id=run_id)}
    assert statuses == {**{c.number: "applied" for c in planned}, "W0004": "conflict"}
    assert [c.status for c in planned].count("conflict") == 1


def test_a_driver_that_cannot_count_rows_gets_every_chunk_read_back(
        erp: ErpBuilder, store: StateStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """pyodbc with fast_executemany reports no row count: the values decide."""
    monkeypatch.setattr(erp.engine.dialect, "supports_sane_multi_rowcount", False)
    planned = customers(erp, 7)
    erp.set_value(planned[1].customer_id, "EDITED")
    run_id = store.begin_run(as_of=AS_OF, erp="t", prop="ZCJKeyServices", mode="live",
                             baseline=False)
    report = apply_changes(erp.engine, ErpTables(), ATTR_ID, planned, state=store,
                           run_id=run_id, chunk_size=3)
    # no count: every chunk's values are read first, in its transaction, so that a value held
    # already is told from one this run wrote; the edited one is left out of the UPDATEs
    assert report.read_backs == 3 and report.already == []
    assert report.conflicts == [planned[1].customer_id]
    assert sorted(report.applied) == sorted(c.customer_id for c in planned if c is not planned[1])
    assert erp.value(planned[1].customer_id) == "EDITED"


def test_an_erp_error_mid_write_leaves_pending_rows_the_next_run_settles(
        erp: ErpBuilder, store: StateStore) -> None:
    planned = customers(erp, 6)
    run_id = store.begin_run(as_of=AS_OF, erp="t", prop="ZCJKeyServices", mode="live",
                             baseline=False)
    updates: list[int] = []

    def fail_second_chunk(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        if sql.startswith("UPDATE"):
            updates.append(1)
            if len(updates) == 3:  # the second chunk's first UPDATE
                raise RuntimeError("lock request time out period exceeded")

    sa.event.listen(erp.engine, "before_cursor_execute", fail_second_chunk)
    with pytest.raises(RuntimeError, match="lock request"):
        apply_changes(erp.engine, ErpTables(), ATTR_ID, planned, state=store, run_id=run_id,
                      chunk_size=3)
    sa.event.remove(erp.engine, "before_cursor_execute", fail_second_chunk)
    assert [erp.value(c.customer_id) for c in planned] == ["CPY;MPS"] * 3 + [
        c.before for c in planned[3:]]
    assert {r["status"] for r in store.history(run_id=run_id)} == {"pending"}
    assert reconcile(erp.engine, ErpTables(), ATTR_ID, store) == {
        "applied": 3, "not_applied": 3, "conflict": 0}
    assert not store.pending()


def test_sqlite_is_written_in_customer_order_and_audited_in_the_order_written(
        erp: ErpBuilder, store: StateStore) -> None:
    """On SQLite each chunk is a range of customer ids, whatever order the plan lists them
    in (a server is written in the plan's order)."""
    planned = customers(erp, 7)[::-1]  # the plan in another order than the ids
    run_id = store.begin_run(as_of=AS_OF, erp="t", prop="ZCJKeyServices", mode="live",
                             baseline=False)
    chunks: list[list[int]] = []

    def updates(_conn: Any, _cursor: Any, sql: str, params: Any, _ctx: Any, many: bool) -> None:
        if sql.lstrip().upper().startswith("UPDATE"):
            rows = params if many else [params]
            chunks.append([r[1] for r in rows])  # (after, customer id, attribute[, before])

    sa.event.listen(erp.engine, "before_cursor_execute", updates)
    report = apply_changes(erp.engine, ErpTables(), ATTR_ID, planned, state=store,
                           run_id=run_id, chunk_size=3)
    ids = sorted(c.customer_id for c in planned)
    # per chunk: the values read as NULL, then those read as text; chunks follow the ids
    assert [sorted(a + b) for a, b in zip(chunks[::2], chunks[1::2])] == [
        ids[:3], ids[3:6]] and chunks[-1] == ids[6:]
    assert sorted(report.applied) == ids and report.conflicts == []
    assert all(erp.value(c.customer_id) == "CPY;MPS" for c in planned)
    audit = store.history(run_id=run_id)
    # each chunk's rows are stored just before it: the audit lists them as written
    assert [r["customer_number"] for r in audit] == [c.number for c in planned[::-1]]
    assert {r["status"] for r in audit} == {"applied"}
    # a server keeps the plan's order
    assert write_order(postgresql.dialect(), planned) == planned
    assert write_order(erp.engine.dialect, planned) == planned[::-1]


def test_many_audit_rows_are_stored_whole_in_plan_order_in_a_few_statements(
        store: StateStore) -> None:
    """SQLite gets many rows per INSERT: every row and column must still land where it
    belongs, the last, partial group included."""
    run_id = store.begin_run(as_of=AS_OF, erp="t", prop="ZCJKeyServices", mode="live",
                             baseline=False)
    planned = [Change(10_000 - i, f"N{i:04d}", f"Name {i} 'quoted', é", f"Branch {i % 3}",
                      None if i % 4 else f"Rep {i}", None if i % 2 else f"OLD{i}",
                      None if i % 5 == 0 else f"NEW{i}", (f"A{i}", "B") if i % 2 else (),
                      (f"OLD{i}",) if i % 2 == 0 else (),
                      annual_values=((f"A{i}", i * 1.5),) if i % 2 else (),
                      follows=f"P{i}" if i % 7 == 0 else None,
                      causes=(f"cause {i}", "shared cause") if i % 3 else ())
               for i in range(150)]
    inserts: list[str] = []
    sa.event.listen(store.engine, "before_cursor_execute",
                    lambda _c, _cur, sql, *_: inserts.append(sql)
                    if sql.startswith("INSERT") else None)
    store.record_pending(run_id, planned)
    assert 1 <= len(inserts) <= 3  # groups of many rows, then the rest: not one per row
    rows = store.history(run_id=run_id)
    assert len(rows) == 150 and [r["id"] for r in rows] == sorted(r["id"] for r in rows)
    for c, r in zip(planned, rows):
        assert (r["customer_id"], r["customer_number"], r["customer_name"], r["branch"],
                r["sales_rep"], r["before"], r["after"], r["follows"], r["status"]) == (
            c.customer_id, c.number, c.name, c.branch, c.sales_rep, c.before, c.after,
            c.follows, "pending")
        assert (r["added"], r["removed"]) == (";".join(c.added), ";".join(c.removed))
        assert r["annual_values"] == (json.dumps(dict(c.annual_values), separators=(",", ":"))
                                      if c.annual_values else None)
        assert r["causes"] == list(c.causes)
    assert len(store.pending()) == 150


def test_the_write_step_leaves_the_state_store_checkpointing_as_it_was(
        erp: ErpBuilder, store: StateStore) -> None:
    """The audit's commits skip SQLite's WAL checkpoint; the connection goes back to the pool
    checkpointing again, after a failed insert too."""
    def autocheckpoint() -> int:
        with store.engine.connect() as conn:
            return int(conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() or 0)

    run_id = store.begin_run(as_of=AS_OF, erp="t", prop="ZCJKeyServices", mode="live",
                             baseline=False)
    apply_changes(erp.engine, ErpTables(), ATTR_ID, customers(erp, 4), state=store,
                  run_id=run_id, chunk_size=2)
    assert autocheckpoint() == 1000
    broken = Change(1, None, "x", None, None, None, "CPY", ("CPY",), ())  # type: ignore[arg-type]
    with pytest.raises(sa.exc.IntegrityError):
        store.record_pending(run_id, [broken])
    assert autocheckpoint() == 1000
    assert len(store.history(run_id=run_id)) == 4  # the failed insert stored nothing


def test_two_hundred_thousand_opportunities_are_saved_in_one_statement(
        tmp_path: Path, store: StateStore) -> None:
    statements: list[str] = []
    sa.event.listen(store.engine, "before_cursor_execute",
                    lambda _c, _cur, sql, *_: statements.append(sql))
    day = AS_OF
    records = [OpportunityRecord(
        customer_id=i // 2, service_code=("MIT", "DM")[i % 2], customer_number=f"C{i // 2:06d}",
        customer_name=f"Customer {i // 2}", branch="North", owner="Dana Rep", status="new",
        priority="High", score=1.5, reason="peers use it", first_seen=day, last_seen=day,
        closed_on=None, close_reason=None, snoozed_until=None, snooze_reason=None,
        snoozed_by=None, dismissed=False, reopened=0) for i in range(200_000)]
    store.save_opportunities(records)
    assert [s.split()[0] for s in statements] == ["INSERT"]
    records[7].status, records[7].closed_on = "closed", day + dt.timedelta(days=1)
    store.save_opportunities(records)  # the same keys: updated in place, still one statement
    assert len(statements) == 2
    loaded = store.load_opportunities()
    assert len(loaded) == 200_000
    assert loaded[(3, "DM")].status == "closed"
    assert loaded[(3, "DM")].closed_on == dt.date(2026, 11, 25)
    assert loaded[(0, "MIT")] == records[0]


def test_settling_writes_the_conflicts_and_the_run_not_every_audit_row_again(
        erp: ErpBuilder, store: StateStore) -> None:
    """The pending mark is the run's: settling a write of many values updates the conflicts'
    rows and one run row, whatever the number of values applied."""
    planned = customers(erp, 40)
    erp.set_value(planned[5].customer_id, "EDITED")  # a conflict
    run_id = store.begin_run(as_of=AS_OF, erp="t", prop="ZCJKeyServices", mode="live",
                             baseline=False)
    touched: list[tuple[str, int]] = []
    settling = []

    def count(_conn: Any, cursor: Any, sql: str, *_: Any) -> None:
        if settling and sql.lstrip().upper().startswith("UPDATE"):
            touched.append((sql.split()[1].strip('"'), cursor.rowcount))

    real = store.settle

    def settle(*args: Any) -> None:
        settling.append(1)
        real(*args)

    store.settle = settle  # type: ignore[method-assign]
    sa.event.listen(store.engine, "after_cursor_execute", count)
    report = apply_changes(erp.engine, ErpTables(), ATTR_ID, planned, state=store,
                           run_id=run_id, chunk_size=7)
    assert len(report.applied) == 39 and report.conflicts == [planned[5].customer_id]
    assert sum(n for table, n in touched if table == "changes") == 1
    assert sum(n for table, n in touched if table == "runs") == 1
    statuses = [r["status"] for r in store.history(run_id=run_id)]
    assert statuses.count("applied") == 39 and statuses[5] == "conflict"
    assert not store.has_pending()


def test_an_audit_store_that_fails_stops_the_write_before_its_chunk(
        erp: ErpBuilder, store: StateStore) -> None:
    """The next chunk's rows are stored on a thread while a chunk is written: when that store
    fails, its chunk is never written, the error is the write's, and what was written is
    audited and settled by the next run."""
    planned = customers(erp, 9)
    run_id = store.begin_run(as_of=AS_OF, erp="t", prop="ZCJKeyServices", mode="live",
                             baseline=False)
    real = store.store_pending
    calls: list[str] = []

    def second_fails(rid: int, statements: Any) -> None:
        calls.append(threading.current_thread().name)
        if len(calls) == 2:
            raise sa.exc.OperationalError("INSERT", {}, Exception("disk I/O error"))
        real(rid, statements)

    store.store_pending = second_fails  # type: ignore[method-assign]
    with pytest.raises(sa.exc.OperationalError, match="disk I/O error"):
        apply_changes(erp.engine, ErpTables(), ATTR_ID, planned, state=store, run_id=run_id,
                      chunk_size=3)
    assert calls[1].startswith("keyservices-audit")  # stored ahead, on the write's thread
    ids = sorted(c.customer_id for c in planned)
    assert [erp.value(i) for i in ids[:3]] == ["CPY;MPS"] * 3  # the first chunk only
    assert [erp.value(c.customer_id) for c in planned if c.customer_id in ids[3:]] == [
        c.before for c in planned if c.customer_id in ids[3:]]
    assert {r["status"] for r in store.history(run_id=run_id)} == {"pending"}
    assert reconcile(erp.engine, ErpTables(), ATTR_ID, store) == {
        "applied": 3, "not_applied": 0, "conflict": 0}
    assert not store.has_pending()
    assert not [t for t in threading.enumerate() if t.name.startswith("keyservices-audit")]


def test_audit_rows_stored_by_ranges_are_the_rows_stored_whole(tmp_path: Path) -> None:
    """A write stores its audit chunk by chunk (ranges of any size, groups of many rows per
    INSERT cut where a range ends): the rows are the same as stored at once, in order."""
    planned = [Change(500 + i, f"R{i:04d}", f"Name {i}", None, f"Rep {i % 3}", None,
                      f"NEW{i % 4}", (f"A{i % 4}",), (), annual_values=((f"A{i % 4}", i * 2.5),),
                      causes=(f"cause {i % 5}",)) for i in range(150)]
    stores = []
    for name in ("whole", "ranges"):
        store = StateStore(f"sqlite:///{(tmp_path / f'{name}.sqlite').as_posix()}")
        run_id = store.begin_run(as_of=AS_OF, erp="t", prop="ZCJKeyServices", mode="live",
                                 baseline=False)
        if name == "whole":
            store.record_pending(run_id, planned)
        else:
            rows = store.audit_rows(run_id, planned)
            for start, stop in ((0, 70), (70, 71), (71, 150)):
                store.store_pending(run_id, rows.statements(start, stop))
        stores.append([{k: v for k, v in r.items() if k not in ("id", "at")}
                       for r in store.history(run_id=run_id)])
        store.close()
    assert len(stores[0]) == 150 and stores[0] == stores[1]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """The state store in a SQLite file, or in a fresh database on a real PostgreSQL server
    (``state.url``)."""
    if request.param == "sqlite":
        s = StateStore(f"sqlite:///{(tmp_path / 'state.sqlite').as_posix()}")
        yield s
        s.close()
        return
    server = request.getfixturevalue("pg_server")
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    name = f"ks_state_{tmp_path.name.lower()}"[:60]
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(server).set(database=name).render_as_string(hide_password=False)
    s = StateStore(url)
    try:
        yield s
    finally:
        s.close()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


def test_the_run_keeps_the_pending_mark_on_either_state_database(
        erp: ErpBuilder, any_store: StateStore) -> None:
    """On SQLite and on PostgreSQL: a write stopped midway reads as pending until the next
    run settles it; a finished write with a conflict settles without rewriting its rows; an
    earlier version's pending rows are flagged when the store is opened."""
    store = any_store
    planned = customers(erp, 8)
    run_id = store.begin_run(as_of=AS_OF, erp="t", prop="ZCJKeyServices", mode="live",
                             baseline=False)
    fail = {"on": True}

    def second_chunk_fails(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        if fail["on"] and sql.startswith("UPDATE") and erp.value(planned[0].customer_id) != (
                planned[0].before):
            raise RuntimeError("lock request time out period exceeded")

    erp.set_value(planned[7].customer_id, "EDITED")
    sa.event.listen(erp.engine, "before_cursor_execute", second_chunk_fails)
    with pytest.raises(RuntimeError, match="lock request"):
        apply_changes(erp.engine, ErpTables(), ATTR_ID, planned, state=store, run_id=run_id,
                      chunk_size=4)
    fail["on"] = False
    assert store.has_pending() and len(store.pending()) == 8
    assert {r["status"] for r in store.history(run_id=run_id)} == {"pending"}
    assert store.written_values("ZCJKeyServices") == set()
    assert reconcile(erp.engine, ErpTables(), ATTR_ID, store) == {
        "applied": 4, "not_applied": 3, "conflict": 1}
    assert not store.has_pending()
    assert store.written_values("ZCJKeyServices") == {"CPY;MPS"}

    again = store.begin_run(as_of=AS_OF, erp="t", prop="ZCJKeyServices", mode="live",
                            baseline=False)
    rest = [Change(c.customer_id, c.number, c.name, c.branch, c.sales_rep,
                   erp.value(c.customer_id), "DM", ("DM",), ()) for c in planned]
    erp.set_value(planned[2].customer_id, "EDITED AGAIN")  # a conflict of this write
    report = apply_changes(erp.engine, ErpTables(), ATTR_ID, rest, state=store, run_id=again,
                           chunk_size=3)
    assert report.conflicts == [planned[2].customer_id] and len(report.applied) == 7
    assert sorted(r["status"] for r in store.history(run_id=again)) == ["applied"] * 7 + [
        "conflict"]

    with store.engine.begin() as conn:  # as the version before kept it: a pending status
        conn.execute(sa.text("UPDATE changes SET status = 'pending' WHERE run_id = :r"),
                     {"r": again})
        conn.execute(sa.text("ALTER TABLE runs DROP COLUMN unsettled"))
    reopened = StateStore(store.url)
    try:
        assert reopened.has_pending()
        assert {r["status"] for r in reopened.history(run_id=again)} == {"pending"}
        assert {r["status"] for r in reopened.history(run_id=run_id)} == {
            "applied", "not_applied", "conflict"}
    finally:
        reopened.close()
