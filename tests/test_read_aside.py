"""The equipment statement read on a second connection beside the other facts (#26,
``erp.aside``): the same facts as read one after the other, only where a second connection
reads the same data, and a night that fails meanwhile does not hang on it."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

import keyservices
from keyservices.erp import aside as aside_mod
from keyservices.erp.aside import can_read_aside

from .conftest import AS_OF, ErpBuilder


def _dealer(erp: ErpBuilder) -> None:
    for n in range(30):
        cid = erp.customer(f"C{n:03d}", f"Customer {n}")
        for _ in range(n % 4):
            erp.equipment(cid, "MFP-A3-CO-03")


@pytest.mark.parametrize(("dialect", "database", "allowed"), [
    ("sqlite", "/data/erp.sqlite", True), ("sqlite", None, False), ("sqlite", ":memory:", False),
    ("sqlite", "file:erp?mode=memory&cache=shared", False), ("postgresql", "erp", True),
    ("mssql", "erp", False)])
def test_only_where_a_second_connection_reads_the_same_data(dialect: str, database: str | None,
                                                            allowed: bool) -> None:
    assert can_read_aside(dialect, database) is allowed


def test_the_same_facts_with_and_without_the_second_connection(
        erp: ErpBuilder, config_for: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _dealer(erp)
    config = config_for(erp)
    threads: list[str] = []

    def record(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if 'FROM "SCEquipments"' in statement and "GROUP BY" in statement:
            threads.append(threading.current_thread().name)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", record)
    try:
        beside = keyservices.run(config, as_of=AS_OF, dry_run=True)
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", record)
    assert any(t.startswith("keyservices-equipment") for t in threads), threads
    monkeypatch.setattr(aside_mod, "can_read_aside", lambda *_: False)
    alone = keyservices.run(config, as_of=AS_OF, dry_run=True)
    assert beside.statements == alone.statements
    assert [(c.number, c.after) for c in beside.changes] == \
        [(c.number, c.after) for c in alone.changes]
    assert [(s.code, s.customers) for s in beside.services] == \
        [(s.code, s.customers) for s in alone.services]
    assert "equipment beside" in beside.timings and "equipment beside" not in alone.timings


def test_a_night_that_fails_meanwhile_stops_the_side_statement(
        erp: ErpBuilder, config_for: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _dealer(erp)
    config = config_for(erp)
    cancelled: list[str] = []
    real_cancel = aside_mod.Aside.cancel

    def cancel(self: aside_mod.Aside) -> None:
        cancelled.append(self.kind)
        real_cancel(self)

    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("the customers could not be read")

    monkeypatch.setattr(aside_mod.Aside, "cancel", cancel)
    monkeypatch.setattr("keyservices.erp.facts.read_customers", broken)
    with pytest.raises(RuntimeError, match="could not be read"):
        keyservices.run(config, as_of=AS_OF, dry_run=True)
    assert cancelled == ["equipment"]


def test_an_error_in_the_side_statement_stops_the_night(
        erp: ErpBuilder, config_for: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _dealer(erp)
    config = config_for(erp)

    def failing(self: aside_mod.Aside, engine: sa.Engine, stmt: sa.Select) -> list[np.ndarray]:
        raise sa.exc.OperationalError("SELECT ...", {}, Exception("disk I/O error"))

    monkeypatch.setattr(aside_mod.Aside, "_read", failing)
    with pytest.raises(Exception, match="disk I/O error"):
        keyservices.run(config, as_of=AS_OF, dry_run=True)
