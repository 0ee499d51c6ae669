"""The log works on Windows: one file per day, appended to by every process, never renamed.

On Windows a file another process holds open cannot be renamed, so the size-based rotation every
command used to set up failed ("--- Logging error --- PermissionError [WinError 32]") whenever a
``status`` or a second task had the log open. The tests play Windows by making every rename fail.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from keyservices.cli.base import setup_file_logging
from keyservices.commands.deliver import alert_failure
from keyservices.commands.logs import DailyFileHandler, current_log_file, log_file_for, prune_logs

from .conftest import ErpBuilder

log = logging.getLogger("keyservices.test")


@pytest.fixture(autouse=True)
def no_file_handlers() -> Iterator[None]:
    root = logging.getLogger("keyservices")
    before, level = list(root.handlers), root.level
    root.setLevel(logging.INFO)  # as the CLI sets it
    yield
    root.setLevel(level)
    for h in root.handlers:
        if h not in before:
            root.removeHandler(h)
            h.close()


@pytest.fixture
def windows_renames(monkeypatch: pytest.MonkeyPatch) -> list[BaseException]:
    """Renaming a file fails as on Windows while another process has it open; logging errors
    (which logging prints and swallows) are collected."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(32, "The process cannot access the file because it is being used "
                                  "by another process")

    monkeypatch.setattr(os, "rename", refuse)
    monkeypatch.setattr(os, "replace", refuse)
    errors: list[BaseException] = []
    monkeypatch.setattr(logging.Handler, "handleError",
                        lambda self, record: errors.append(__import__("sys").exc_info()[1]))
    return errors


def test_a_busy_night_of_logging_needs_no_rename(tmp_path: Path,
                                                 windows_renames: list[BaseException]) -> None:
    setup_file_logging(tmp_path)
    for i in range(3_000):  # about 3 MB: past any size a rotating handler would roll over at
        log.info("line %d %s", i, "x" * 1_000)
    assert windows_renames == []
    (written,) = tmp_path.glob("keyservices-*.log")
    assert written == log_file_for(tmp_path, dt.date.today())
    assert written.stat().st_size > 3_000_000


def test_control_characters_in_the_log_file_are_escaped(tmp_path: Path) -> None:
    setup_file_logging(tmp_path)
    log.warning("customer %s\nsecond line", "\x1b[2JCleared\x07")
    text = current_log_file(tmp_path).read_text(encoding="utf-8")
    assert text.endswith("customer \\x1b[2JCleared\\x07\nsecond line\n")


def test_two_processes_append_to_the_same_day_file(tmp_path: Path,
                                                   windows_renames: list[BaseException]) -> None:
    first, second = DailyFileHandler(tmp_path), DailyFileHandler(tmp_path)
    try:
        for i, handler in enumerate((first, second, first)):
            handler.emit(logging.LogRecord("keyservices", logging.INFO, __file__, 1,
                                           f"from process {i}", None, None))
    finally:
        first.close()
        second.close()
    text = current_log_file(tmp_path).read_text(encoding="utf-8")
    assert text.splitlines() == ["from process 0", "from process 1", "from process 2"]
    assert windows_renames == []


def test_the_next_day_goes_to_the_next_file(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    handler = DailyFileHandler(tmp_path)
    day = dt.date(2026, 11, 24)
    monkeypatch.setattr(handler, "_today", lambda: day)

    def emit(message: str) -> None:
        handler.emit(logging.LogRecord("keyservices", logging.INFO, __file__, 1, message, None,
                                       None))

    try:
        emit("before midnight")
        day = dt.date(2026, 11, 25)
        emit("after midnight")
    finally:
        handler.close()
    assert log_file_for(tmp_path, dt.date(2026, 11, 24)).read_text("utf-8") == "before midnight\n"
    assert log_file_for(tmp_path, dt.date(2026, 11, 25)).read_text("utf-8") == "after midnight\n"
    assert current_log_file(tmp_path).name == "keyservices-2026-11-25.log"


def test_old_logs_are_pruned_and_one_still_open_elsewhere_is_left(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    today = dt.date(2026, 11, 24)
    for age in (0, 29, 30, 31, 45, 400):
        log_file_for(tmp_path, today - dt.timedelta(days=age)).write_text("x", encoding="utf-8")
    (tmp_path / "keyservices.log").write_text("the old rotating log", encoding="utf-8")
    held = log_file_for(tmp_path, today - dt.timedelta(days=45))
    real_unlink = Path.unlink

    def unlink(self: Path, missing_ok: bool = False) -> None:
        if self == held:
            raise PermissionError(32, "being used by another process")
        real_unlink(self, missing_ok)

    monkeypatch.setattr(Path, "unlink", unlink)
    deleted = prune_logs(tmp_path, today=today, keep_days=30)
    assert sorted(p.name for p in deleted) == ["keyservices-2025-10-20.log",
                                               "keyservices-2026-10-24.log"]
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["keyservices-2026-10-10.log", "keyservices-2026-10-25.log",
                    "keyservices-2026-10-26.log", "keyservices-2026-11-24.log", "keyservices.log"]


def test_current_log_file_without_any_log_is_todays(tmp_path: Path) -> None:
    assert current_log_file(tmp_path / "none") == log_file_for(tmp_path / "none",
                                                                dt.date.today())


def test_the_failure_alert_carries_the_tail_of_the_current_log(erp: ErpBuilder, config_for,
                                                              tmp_path: Path) -> None:
    config = config_for(erp)
    setup_file_logging(config.state.dir)
    log.warning("the last thing that happened before the failure")
    path = alert_failure(config, RuntimeError("database went away"), 1)
    assert path is not None
    msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    body = msg.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert "the last thing that happened before the failure" in body
