"""The check of the values the rules interpret runs beside the night's Python work.

On SQLite it is a pass over every table, the night's most expensive statement; the run sends it
after the facts are read, on a second connection, and waits for its verdict before anything is
written or shown. These tests pin what must not change with that: bad values still stop the
night with the same clear error (even when they break the work that goes on beside the scan),
nothing is written, and the database runs the scan after the reads, not against them.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import keyservices
from keyservices import night
from keyservices.commands import run as run_command
from keyservices.errors import SchemaError

from .conftest import AS_OF, ErpBuilder


def _dealer(erp: ErpBuilder) -> dict[str, int]:
    ids = {}
    for n in range(4):
        cid = erp.customer(f"C{n:03d}")
        erp.equipment(cid, "MFP-A3-CO-03")
        ids[f"gl{n}"] = erp.gl(cid, "4300", 1500.0)
        erp.contract(cid, "IT-MANAGED")
        ids[f"c{n}"] = cid
    return ids


def _bad_amounts(erp: ErpBuilder, ids: dict[str, int]) -> None:
    """Text amounts: SQLite adds them up as 0, only the scan of the values sees them."""
    with erp.engine.begin() as conn:
        for n, text in enumerate(["1,200.00", "$5", "twelve"]):
            conn.execute(sa.text('UPDATE "GLDetail" SET "Amount" = :v WHERE "GLDetailID" = :k'),
                         {"v": text, "k": ids[f"gl{n}"]})


def _values(erp: ErpBuilder) -> list[tuple[Any, ...]]:
    written = erp.t["ARCustomerCustomProperties"]
    with erp.engine.connect() as conn:
        return sorted(map(tuple, conn.execute(sa.select(written))), key=repr)


def test_the_scan_is_sent_after_the_reads_on_its_own_connection(
        erp: ErpBuilder, config_for: Any) -> None:
    _dealer(erp)
    config = config_for(erp)
    sent: list[tuple[str, bool, str]] = []

    def record(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        aside = bool(conn.get_execution_options().get("keyservices_aside"))
        sent.append((" ".join(statement.split()), aside, threading.current_thread().name))

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", record)
    try:
        result = keyservices.run(config, as_of=AS_OF, dry_run=True)
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", record)
    scans = [n for n, (sql, _, _) in enumerate(sent) if "scan_" in sql]
    assert len(scans) == 1, sent
    _, aside, thread = sent[scans[0]]
    assert aside and thread.startswith("keyservices-check")
    reads = [n for n, (sql, aside, _) in enumerate(sent)
             if not aside and ('FROM "GLDetail"' in sql
                                              or 'FROM "ARCustomers"' in sql)]
    assert reads and max(reads) < scans[0], "the scan must follow the facts, not run against them"
    # which enrichment tables exist is known before the facts are read (they depend on it)
    present = [n for n, (sql, _, _) in enumerate(sent) if "sqlite_master" in sql
               and "group_concat" in sql]
    assert present and present[0] < min(reads)
    assert result.statements == 14  # (one asks which dated columns exist) the scan counted once, though on another connection
    assert result.timings["check the data"] > 0


def test_bad_values_stop_a_live_run_before_anything_is_written_or_sent(
        erp: ErpBuilder, config_for: Any, tmp_path: Path) -> None:
    ids = _dealer(erp)
    _bad_amounts(erp, ids)
    config = config_for(erp, "mode: live\n")
    before = _values(erp)
    with pytest.raises(SchemaError, match=r"GLDetail\.Amount") as caught:
        keyservices.run(config, as_of=AS_OF)
    assert caught.value.exit_code == 2
    assert "'twelve'" in str(caught.value)
    assert _values(erp) == before
    # no digest: only the failure notice, which names the column
    mails = list(config.digest.outbox.rglob("*.eml"))
    assert [m.name for m in mails if "failure" not in m.name] == []
    assert all("GLDetail.Amount" in m.read_text(encoding="utf-8") for m in mails)


def _raising(exc: Exception) -> Any:
    def broken(*_: Any, **__: Any) -> Any:
        raise exc
    return broken


@pytest.mark.parametrize("module,name,bad_values,raised", [
    # bad values that break the work done beside the scan: the verdict names them (exit 2)
    # rather than a traceback of what they broke, in compute and after it (the plan)
    (night, "classify", True, SchemaError),
    (run_command, "plan_changes", True, SchemaError),
    # without bad values a failure stands as it was
    (night, "classify", False, ZeroDivisionError),
    (run_command, "plan_changes", False, ZeroDivisionError),
], ids=["classify-bad", "plan-bad", "classify-good", "plan-good"])
def test_a_failure_beside_the_scan_waits_for_its_verdict(
        erp: ErpBuilder, config_for: Any, monkeypatch: pytest.MonkeyPatch, module: Any,
        name: str, bad_values: bool, raised: type[Exception]) -> None:
    ids = _dealer(erp)
    if bad_values:
        _bad_amounts(erp, ids)
    config = config_for(erp)
    monkeypatch.setattr(module, name, _raising(ZeroDivisionError("what went wrong")))
    with pytest.raises(raised) as caught:
        keyservices.run(config, as_of=AS_OF, dry_run=True)
    if bad_values:
        assert "GLDetail.Amount" in str(caught.value)
        assert isinstance(caught.value.__cause__, ZeroDivisionError)


def test_a_date_that_breaks_the_customer_read_is_named_not_a_traceback(
        erp: ErpBuilder, config_for: Any) -> None:
    """``CreateDate`` is converted while the customers are read, before the scan has run: the
    failure waits for the scan, which names the column and the values."""
    ids = _dealer(erp)
    with erp.engine.begin() as conn:
        conn.execute(sa.text('UPDATE "ARCustomers" SET "CreateDate" = :v '
                             'WHERE "CustomerID" = :k'), {"v": "sometime in May", "k": ids["c1"]})
    config = config_for(erp, "mode: live\n")
    before = _values(erp)
    with pytest.raises(SchemaError, match=r"ARCustomers\.CreateDate") as caught:
        keyservices.run(config, as_of=AS_OF)
    assert "'sometime in May'" in str(caught.value)
    assert _values(erp) == before


@pytest.mark.parametrize("command", ["explain", "report", "export"])
def test_every_command_that_computes_the_night_waits_for_the_verdict(
        erp: ErpBuilder, config_for: Any, tmp_path: Path, command: str) -> None:
    ids = _dealer(erp)
    _bad_amounts(erp, ids)
    config = config_for(erp)
    attempt = {"explain": lambda: keyservices.explain(config, "C000", as_of=AS_OF),
               "report": lambda: keyservices.report(config, out=tmp_path / "report",
                                                    as_of=AS_OF),
               "export": lambda: keyservices.export_opportunities(config, as_of=AS_OF)}[command]
    with pytest.raises(SchemaError, match=r"GLDetail\.Amount"):
        attempt()
    assert not (tmp_path / "report").exists() or not any((tmp_path / "report").iterdir())


def test_an_interrupted_night_stops_the_scan_rather_than_waiting_for_it(
        erp: ErpBuilder, config_for: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C (or a stopped task) while the scan runs beside the work: the scan's statement is
    interrupted, so the process ends at once instead of waiting for a verdict nobody reads."""
    import time

    from keyservices.erp import shapes

    _dealer(erp)
    config = config_for(erp)
    ended: list[float] = []

    def slow_scan(conn: Any, *_: Any) -> list[bool]:
        try:  # a statement that would run for many seconds
            conn.exec_driver_sql("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
                                 "WHERE i < 300000000) SELECT count(*) FROM n").one()
        finally:
            ended.append(time.perf_counter())
        return []

    def interrupted(*_: Any, **__: Any) -> Any:
        time.sleep(0.3)  # the scan is under way
        raise KeyboardInterrupt

    monkeypatch.setattr(shapes, "_sqlite_scan", slow_scan)
    monkeypatch.setattr(night, "classify", interrupted)
    with pytest.raises(KeyboardInterrupt):
        keyservices.run(config, as_of=AS_OF, dry_run=True)
    raised = time.perf_counter()
    deadline = raised + 10
    while not ended and time.perf_counter() < deadline:
        time.sleep(0.01)
    assert ended and ended[0] - raised < 2, "the scan ran on after the interrupt"
