"""The log in the state folder: one file per day, ``keyservices-YYYY-MM-DD.log``, kept KEEP_DAYS.

Every command of every process appends to the day's file; nothing is ever renamed. A size-based
``RotatingFileHandler`` renames the file it rotates, which fails on Windows while another process
(a ``status`` during the night's run, a second scheduled task) holds it open. A dated name needs
no rename: the next day simply opens the next file, and an old file that another process still
holds open is left for a later prune. Part of the library API so that the CLI (which opens the
log) and the failure alert (which mails its tail) agree on what "the log" is.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from pathlib import Path

KEEP_DAYS = 30
PREFIX = "keyservices-"
_DATED = re.compile(r"keyservices-(\d{4})-(\d{2})-(\d{2})\.log")


def log_file_for(state_dir: Path, day: dt.date) -> Path:
    """The log file of ``day``."""
    return Path(state_dir) / f"{PREFIX}{day:%Y-%m-%d}.log"


def current_log_file(state_dir: Path) -> Path:
    """The log file written last: the newest dated file in the state folder, else today's
    (which may not exist yet). What "the log" means for an admin and for the failure alert."""
    state_dir = Path(state_dir)
    dated = sorted(p for p in state_dir.glob(f"{PREFIX}*.log") if _DATED.fullmatch(p.name)) \
        if state_dir.is_dir() else []
    return dated[-1] if dated else log_file_for(state_dir, dt.date.today())


def prune_logs(state_dir: Path, *, today: dt.date, keep_days: int = KEEP_DAYS) -> list[Path]:
    """Delete dated logs older than ``keep_days``; one still open elsewhere (Windows refuses to
    delete it) stays for the next prune. Returns what was deleted."""
    deleted = []
    cutoff = today - dt.timedelta(days=keep_days)
    for path in Path(state_dir).glob(f"{PREFIX}*.log"):
        m = _DATED.fullmatch(path.name)
        if not m:
            continue
        try:
            day = dt.date(int(m[1]), int(m[2]), int(m[3]))
        except ValueError:
            continue
        if day < cutoff:
            try:
                path.unlink()
                deleted.append(path)
            except OSError:
                pass
    return deleted


class DailyFileHandler(logging.FileHandler):
    """Appends to the day's log file (UTF-8), moving to the next file when the date changes.

    Several processes may append to the same file at once: each opens it in append mode and
    nothing ever renames it, so no process can make another's logging fail.
    """

    def __init__(self, state_dir: Path, *, keep_days: int = KEEP_DAYS) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.keep_days = keep_days
        self.day = self._today()
        super().__init__(log_file_for(self.state_dir, self.day), mode="a", encoding="utf-8",
                         delay=True)

    def _today(self) -> dt.date:
        return dt.date.today()

    def emit(self, record: logging.LogRecord) -> None:
        today = self._today()
        if today != self.day or self.stream is None:
            self._open_day(today)
        super().emit(record)

    def _open_day(self, today: dt.date) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None
        self.day = today
        self.baseFilename = str(log_file_for(self.state_dir, today))
        self.state_dir.mkdir(parents=True, exist_ok=True)
        prune_logs(self.state_dir, today=today, keep_days=self.keep_days)


__all__ = ["KEEP_DAYS", "DailyFileHandler", "current_log_file", "log_file_for", "prune_logs"]
