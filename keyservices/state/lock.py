"""One run at a time: an OS file lock per state folder.

``filelock`` works on Windows and Linux and the OS releases the lock when a run dies, so a crashed
run never blocks the next night. Who holds it is written beside it, for the message.

``status`` must be able to ask "is a run going on?" without ever making one fail, so it never
touches ``run.lock``. A run also holds a second lock, ``run.busy``, for as long as its holder
info exists; ``status`` probes that one only when the info file is there (a run is going on, or
one died), for a moment, and a run that starts during that moment waits for it (BUSY_WAIT)
instead of exiting 4. Runs still exclude each other at once through ``run.lock``.
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
from typing import Any

from filelock import FileLock, Timeout

from ..errors import ConfigError, LockHeld

log = logging.getLogger("keyservices.state")

BUSY_WAIT = 10.0  # seconds a starting run waits for a status probe to let go of run.busy
LOCK_FILE, BUSY_FILE, INFO_FILE = "run.lock", "run.busy", "run.lock.json"


@contextmanager
def run_lock(state_dir: Path) -> Iterator[None]:
    """Hold the run lock for the state folder; a second run gets LockHeld (exit 4) at once."""
    writable_folder(state_dir, "the run lock")
    lock = FileLock(str(state_dir / LOCK_FILE), timeout=0)
    busy = FileLock(str(state_dir / BUSY_FILE), timeout=BUSY_WAIT)
    info = state_dir / INFO_FILE
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
    try:
        busy.acquire(poll_interval=0.02)  # held only by a status probe, for a moment
    except Timeout:
        lock.release()
        raise LockHeld(f"{state_dir / BUSY_FILE} stayed locked for {BUSY_WAIT:g} s although no "
                       "run holds the run lock; a 'keyservices status' may be hanging. Try "
                       "again; stop that process if this repeats.") from None
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
        busy.release()
        lock.release()


def writable_folder(folder: Path, what: str) -> None:
    """The folder exists (made if need be) and can be written: a state folder that is a file,
    or read-only, is named before anything is read from the ERP (not an OSError traceback)."""
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"state.dir {folder} is a file, not a folder; {what} needs a folder. "
                          "Point state.dir at a folder (it is made if missing)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot make the state folder {folder} ({exc.strerror}); point "
                          "state.dir at a folder the service account can write") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"the state folder {folder} is read-only: a run, a rollback and "
                          f"{what} write there (run lock, audit, log). Nothing was read from the "
                          "ERP or written. Give the service account write access, or point "
                          "state.dir at a folder it can write; status and history still read it")


def lock_holder(state_dir: Path) -> dict[str, Any] | None:
    """Who runs now (pid, host, since), or None; never takes ``run.lock``, so it cannot make a
    run fail (see the module docstring). Holder info left by a run that died gives None."""
    info = Path(state_dir) / INFO_FILE
    try:
        data = json.loads(info.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):  # being written this very moment, or unreadable
        data = {}
    if not isinstance(data, dict):
        data = {}
    probe = FileLock(str(Path(state_dir) / BUSY_FILE), timeout=0)
    try:
        probe.acquire()
    except Timeout:
        return {"pid": data.get("pid"), "host": data.get("host"), "since": data.get("since")}
    probe.release()
    return None


def _now() -> dt.datetime:
    return dt.datetime.now().replace(microsecond=0)
