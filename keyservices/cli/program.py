"""The name to print in a suggested command, so that it runs as printed.

After the README's one-liner (``python3 -m venv .venv && .venv/bin/pip install . &&
.venv/bin/keyservices demo``) ``keyservices`` is not on PATH: a "Next: keyservices run ..." line
would answer "command not found". The commands we suggest start with what the user typed to run
us instead, whenever ``keyservices`` on PATH is missing or is another installation.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

NAME = "keyservices"


def invoked_as(argv0: str, *, which: Callable[[str], str | None] = shutil.which,
               executable: str | None = None) -> str:
    """``keyservices`` when that finds the running program on PATH, else the running program:
    the console script's path as it was typed (made absolute when it has no folder, which the
    shell would look up on PATH again), or ``python -m keyservices`` with this interpreter."""
    on_path = which(NAME)
    script = Path(argv0)
    if script.suffix.lower() in (".py", ".pyw") or not argv0:  # python -m keyservices
        interpreter = executable or sys.executable
        if on_path and _same_folder(on_path, interpreter):
            return NAME
        return f"{_quoted(interpreter)} -m {NAME}"
    if on_path and _same_file(on_path, argv0):
        return NAME
    shown = argv0 if script.parent != Path() else str(script.absolute())
    return _quoted(shown)


def _same_file(found: str, argv0: str) -> bool:
    # the console script's argv[0] lacks the .exe that PATH finds on Windows
    for candidate in (argv0, argv0 + ".exe"):
        try:
            if os.path.samefile(found, candidate):
                return True
        except OSError:
            continue
    return False


def _same_folder(found: str, interpreter: str) -> bool:
    """The console script on PATH sits beside this interpreter: it is this installation's."""
    try:
        return os.path.samefile(Path(found).parent, Path(interpreter).parent)
    except OSError:
        return False


def _quoted(path: str) -> str:
    """Quoted as the demo quotes the config path: double quotes work in every shell we print for."""
    return f'"{path}"' if " " in path else path


__all__ = ["NAME", "invoked_as"]
