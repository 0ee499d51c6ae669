"""Ending the program without freeing what a command built.

At a million customers a run holds millions of small objects. Once its output and log lines are
written, freeing them one by one (and the interpreter's last garbage collection over them) only
delays the exit. When keyservices runs as a program (the console script or ``python -m
keyservices``), :func:`keyservices.cli.main` ends it with ``os._exit`` after what Python's own
shutdown does that matters: the exit handlers run (``logging`` flushes and closes its files),
stdout and stderr are flushed, and the exit code is the same. Called in-process (tests, click's
``CliRunner``, a script importing ``keyservices.cli``), nothing here is armed and nothing changes.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
from typing import Any, NoReturn

_armed: list[bool] = [False]
_kept: list[Any] = []


def called_as_program(caller_globals: dict[str, Any]) -> bool:
    """Whether ``main`` was called by the program's ``__main__`` module itself (the console
    script, ``python -m keyservices``), not imported and called by other code, and not under a
    tracer or profiler (coverage, cProfile) or ``-X dev``, which need the normal shutdown."""
    main_module = sys.modules.get("__main__")
    return (main_module is not None and caller_globals is vars(main_module)
            and sys.gettrace() is None and sys.getprofile() is None
            and not sys.flags.dev_mode)


def arm() -> None:
    """From here on, :func:`keep` holds objects and :func:`end_process` may end the process."""
    _armed[0] = True


def armed() -> bool:
    return _armed[0]


def keep(*objects: Any) -> None:
    """Hold a command's large result until the process ends, so that returning from the
    command does not free it object by object first. A no-op unless armed (in-process callers
    keep their memory)."""
    if _armed[0]:
        _kept.extend(objects)


def exit_status(code: object) -> int:
    """The status Python gives ``sys.exit(code)``: None is 0, an int is itself, anything else
    is printed to stderr and is 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    try:
        print(code, file=sys.stderr)
    except (OSError, ValueError):
        pass
    return 1


def end_process(code: object) -> NoReturn:
    """End the process now with ``sys.exit(code)``'s status, skipping the teardown of objects.

    What Python's shutdown would do first is done here, in its order: exit handlers (which
    include ``logging.shutdown``: every handler flushed and closed), then stdout and stderr
    flushed. A flush that fails turns a 0 status into 120, as Python does. When another
    non-daemon thread is still running, Python would wait for it: so does this, by raising
    ``SystemExit`` for the normal shutdown instead.
    """
    if any(t.is_alive() and not t.daemon for t in threading.enumerate()
           if t is not threading.main_thread()):
        raise SystemExit(code)
    status = exit_status(code)
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)  # CPython's, since 2.x
    if run_exit_handlers is not None:
        run_exit_handlers()
    else:  # pragma: no cover - other interpreters: at least the log files
        logging.shutdown()
    for stream in dict.fromkeys((sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)):
        if stream is None:
            continue
        try:
            stream.flush()
        except ValueError:  # closed: nothing buffered
            pass
        except OSError:
            status = status or 120
    os._exit(status)
