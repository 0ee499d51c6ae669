"""The command line: parse, call one library function, print the result, map errors to exit codes.

No business logic lives here: each command module is a thin click layer over ``keyservices.commands``.
"""

from __future__ import annotations

import sys

from . import audit, backtest, demo, export, rules, run, secret, setup  # noqa: F401 - register commands
from .base import KeyservicesGroup, cli
from .opportunity import opportunity
from .report import report

cli.add_command(opportunity)
cli.add_command(report)

__all__ = ["KeyservicesGroup", "cli", "main"]


def main() -> None:
    """Console-script entry point (also ``python -m keyservices``).

    Run as the program, it ends the process with ``os._exit`` once the command's output and
    logs are flushed (:mod:`.exiting`): freeing a million customers' objects at exit takes
    time and changes nothing. Called from other code, it exits the normal way.
    """
    from . import exiting
    from .program import invoked_as
    from .terminal import configure_streams

    if exiting.called_as_program(sys._getframe(1).f_globals):
        exiting.arm()
    configure_streams()  # before click parses: a usage error may quote a name too
    try:
        try:
            # the suggested next commands start with what runs this program (not on PATH
            # after the README's one-liner)
            cli(prog_name="keyservices", obj={"program": invoked_as(sys.argv[0])})
        except BrokenPipeError:  # output piped into 'head' and the like: stop quietly
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(1)
    except SystemExit as exc:  # click's standalone mode always ends here, with the exit code
        if exiting.armed():
            exiting.end_process(exc.code)
        raise
