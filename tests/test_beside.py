"""State-store work on a second thread, let go only once the customers are read.

Python runs one thread at a time: state-store work beside the customer read slowed it by the
work's whole length. ``progress.Beside`` holds it until the database aggregates (no Python), and
never lets a caller wait forever or a failed night run it.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import CancelledError
from typing import Any

import pytest
import sqlalchemy as sa

import keyservices
from keyservices.commands import run as run_command
from keyservices.progress import Beside

from .conftest import AS_OF, ErpBuilder


def test_work_waits_for_the_gate() -> None:
    beside = Beside()
    started = threading.Event()
    future = beside.submit(started.set)
    assert not started.wait(0.2), "the work began before the gate opened"
    beside.open()
    future.result(timeout=5)
    assert started.is_set()
    beside.close()


def test_asking_for_a_result_opens_the_gate() -> None:
    beside = Beside()
    future = beside.submit(lambda x: x * 2, 21)
    got: list[int] = []
    asker = threading.Thread(target=lambda: got.append(beside.result(future)), daemon=True)
    asker.start()
    asker.join(5)
    beside.close()  # lets a stuck asker go
    assert got == [42], "result() waited for a gate nobody would open"


def test_a_cancelled_night_does_not_run_the_work() -> None:
    beside = Beside()
    ran: list[int] = []
    first = beside.submit(ran.append, 1)
    second = beside.submit(ran.append, 2)
    time.sleep(0.05)  # the first is taken by the thread and waits at the gate
    beside.close(cancel=True)
    for future in (first, second):
        with pytest.raises(CancelledError):
            future.result(timeout=5)
    assert ran == []


def test_the_state_store_is_read_after_the_customers_not_against_them(
        erp: ErpBuilder, config_for: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for n in range(5):
        cid = erp.customer(f"C{n:03d}")
        erp.equipment(cid, "MFP-A3-CO-03")
        erp.gl(cid, "4300", 1500.0)
    config = config_for(erp)
    keyservices.run(config, as_of=AS_OF)  # a store with a night in it
    sent: list[str] = []
    seen_at_start: dict[str, list[str]] = {}

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(" ".join(statement.split()))

    def watched(name: str, real: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            seen_at_start[name] = list(sent)
            return real(*args, **kwargs)
        return call

    monkeypatch.setattr(run_command, "listing_for", watched("listing", run_command.listing_for))
    load_life = run_command.StateStore.load_life
    monkeypatch.setattr(run_command.StateStore, "load_life",
                        lambda self: watched("life", load_life)(self))
    sa.event.listen(sa.engine.Engine, "before_cursor_execute", record)
    try:
        keyservices.run(config, as_of=AS_OF, dry_run=True)
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", record)
    assert set(seen_at_start) == {"listing", "life"}
    for name, before in seen_at_start.items():
        assert any('FROM "ARCustomers"' in s and "ORDER BY" in s for s in before), (
            f"{name} was read before the customers were")
