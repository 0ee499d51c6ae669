"""One run at a time: an OS file lock per state folder.

``filelock`` works on Windows and Linux and the OS releases the lock when a run dies, so a crashed
run never blocks the next night. Who holds it is written beside it, for the message.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from ..errors import LockHeld

log = logging.getLogger("keyservices.state")


@contextmanager
def run_lock(state_dir: Path) -> Iterator[None]:
    """Hold the run lock for the state folder; a second run gets LockHeld (exit 4) at once."""
    state_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(state_dir / "run.lock"), timeout=0)
    info = state_dir / "run.lock.json"
    try:
        lock.acquire()
    except Timeout:
        holder = ""
        try:
            data = json.loads(info.read_text(encoding="utf-8"))
            holder = (f" (pid {data.get('pid')} on {data.get('host')}, "
                      f"since {data.get('since')})")
        except (OSError, ValueError):
            pass
        raise LockHeld(f"another keyservices run holds the lock{holder}; it is still running. "
                       f"Wait for it to finish; 'keyservices status' shows the last runs.") from None
    if info.exists():  # the OS released the lock of a process that died without cleaning up
        try:
            stale = json.loads(info.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            stale = {}
        log.warning("taking over the run lock left by pid %s on %s (since %s): that process "
                    "ended without releasing it", stale.get("pid"), stale.get("host"),
                    stale.get("since"))
    try:
        info.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                    "since": _now().isoformat(timespec="seconds")}),
                        encoding="utf-8")
        yield
    finally:
        try:
            info.unlink()
        except OSError:
            pass
        lock.release()


def _now() -> dt.datetime:
    return dt.datetime.now().replace(microsecond=0)
