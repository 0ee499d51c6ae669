"""``status`` reads who holds the run lock without ever making a run fail.

It used to check the lock by taking it for a moment, so a run that the scheduler started at that
moment found the lock held and exited 4: a lost night because someone looked.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import filelock
import pytest

import keyservices
from keyservices.commands.setup import status
from keyservices.errors import LockHeld
from keyservices.state import run_lock
from keyservices.state.lock import lock_holder

from .conftest import AS_OF, ErpBuilder


def dealer(erp: ErpBuilder) -> ErpBuilder:
    cid = erp.customer("COP001", "Copier Customer")
    erp.equipment(cid, "MFP-A3-CO-03")
    return erp


def stale_holder(state_dir: Path) -> None:
    """What a run killed by the OS leaves: the lock file and its holder info."""
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "run.lock").touch()
    (state_dir / "run.lock.json").write_text(json.dumps(
        {"pid": 999_999, "host": "old-host", "since": "2026-11-23T02:30:00"}), encoding="utf-8")


def test_a_run_started_while_status_is_checking_succeeds(
        erp: ErpBuilder, config_for, monkeypatch: pytest.MonkeyPatch) -> None:
    config = config_for(dealer(erp))
    stale_holder(config.state.dir)
    checking = threading.Event()
    original = filelock.BaseFileLock.acquire

    def slow_status_probe(self, *args, **kwargs):  # status holds whatever it takes for 0.5 s
        proxy = original(self, *args, **kwargs)
        if threading.current_thread().name == "status":
            checking.set()
            time.sleep(0.5)
        return proxy

    monkeypatch.setattr(filelock.BaseFileLock, "acquire", slow_status_probe)
    seen: list[keyservices.commands.setup.Status] = []
    watcher = threading.Thread(target=lambda: seen.append(status(config)), name="status")
    watcher.start()
    checking.wait(5)
    try:
        assert checking.is_set(), "status did not probe the lock of a run that died"
        result = keyservices.run(config, as_of=AS_OF)  # the scheduler starts the night now
    finally:
        watcher.join()
    assert result.exit_code == 0 and result.counts.written == 1
    assert seen[0].lock_holder is None  # the holder info was left by a run that died


def test_status_names_the_holder_of_a_running_run(erp: ErpBuilder, config_for) -> None:
    config = config_for(dealer(erp))
    with run_lock(config.state.dir):
        holder = status(config).lock_holder
        assert holder is not None and holder["pid"] == os.getpid()
        with pytest.raises(LockHeld):  # a second run still stops at once (exit 4)
            keyservices.run(config, as_of=AS_OF)
    assert status(config).lock_holder is None
    assert lock_holder(config.state.dir) is None


def test_status_without_any_run_takes_no_lock(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    taken: list[str] = []
    original = filelock.BaseFileLock.acquire

    def record(self, *args, **kwargs):
        taken.append(self.lock_file)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(filelock.BaseFileLock, "acquire", record)
    (tmp_path / "run.lock").touch()  # left by every finished run
    assert lock_holder(tmp_path) is None
    assert taken == []
