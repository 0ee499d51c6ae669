"""The click group, the options every command shares (defined once, stacked), logging, and the one
handler that turns ``KeyservicesError`` into ``Error: ...`` and its exit code."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from .. import __version__
from ..commands.result import Rows
from ..errors import EXIT_CODES, EXIT_FAILURE, KeyservicesError

log = logging.getLogger("keyservices")

EXIT_CODES_HELP = "\b\nExit codes:\n" + "\n".join(f"  {code}  {text}"
                                                  for code, text in EXIT_CODES.items())


# -- shared options (defined once, stacked) ------------------------------------------------------
def config_option(f: Callable) -> Callable:
    return click.option("-c", "--config", "config_path", type=click.Path(path_type=Path),
                        default=Path("config.yaml"), show_default=True,
                        help="The configuration file.")(f)


def json_option(f: Callable) -> Callable:
    return click.option("--json", "as_json", is_flag=True,
                        help="Print the result as JSON (for scripts) instead of text.")(f)


class AsOfDate(click.DateTime):
    """A date (YYYY-MM-DD) a night can be computed for: windows of years are counted back and
    forward from it, so 0001-01-01 or 9999-12-31 is a usage error naming the option (exit 2),
    not an OverflowError deep in the date arithmetic."""

    FIRST, LAST = dt.datetime(1900, 1, 1), dt.datetime(2999, 12, 31)

    def __init__(self) -> None:
        super().__init__(formats=["%Y-%m-%d"])

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        date = super().convert(value, param, ctx)
        if not self.FIRST <= date <= self.LAST:
            self.fail(f"{date:%Y-%m-%d} is out of range ({self.FIRST:%Y-%m-%d} to "
                      f"{self.LAST:%Y-%m-%d})", param, ctx)
        return date


# a run's number as the state store keeps it (a 32-bit integer on every database)
RUN_ID = click.IntRange(1, 2**31 - 1)


COMPANY_KEY = "keyservices.company"


def _remember_company(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    ctx.meta[COMPANY_KEY] = value


def one_company_option(f: Callable) -> Callable:
    """``--company NAME`` for a command that acts on one company (``load_config_at(one=...)``)."""
    return click.option("--company", default=None, metavar="NAME", expose_value=False,
                        callback=_remember_company,
                        help="The company of a group (companies: in the config) to act on.")(f)


def company_option(f: Callable) -> Callable:
    return click.option("--company", "companies", multiple=True, metavar="NAME",
                        help="Only this company of a group (companies: in the config); "
                             "repeatable.")(f)


def as_of_option(f: Callable) -> Callable:
    return click.option("--as-of", type=AsOfDate(), default=None,
                        help="Run as if today were this date (YYYY-MM-DD); default today.")(f)


# -- the group and its error handler -------------------------------------------------------------
class KeyservicesGroup(click.Group):
    """Maps library errors to one readable line and the documented exit code; under ``--json``
    to one JSON document on stdout instead (:mod:`.jsonerrors`), usage errors included."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        from .jsonerrors import META_KEY, json_requested, usage_error

        ctx.meta[META_KEY] = json_requested(args)  # shared with every subcommand's context
        try:
            return super().parse_args(ctx, args)
        except click.ClickException as exc:  # an option of the group itself
            if not ctx.meta[META_KEY]:
                raise
            emit_json(usage_error(exc))
            ctx.exit(exc.exit_code)

    def invoke(self, ctx: click.Context) -> Any:
        from .jsonerrors import json_mode, library_error, usage_error

        try:
            return super().invoke(ctx)
        except KeyservicesError as exc:
            log.error("%s", exc, extra={"echoed": True})  # to the log file; stderr gets the echo
            if json_mode(ctx):
                emit_json(library_error(exc, exc.exit_code))
            else:
                click.echo(f"Error: {_shown(exc)}", err=True)
            ctx.exit(exc.exit_code)
        except click.ClickException as exc:  # a usage error: click prints it, unless --json
            if not json_mode(ctx):
                raise
            emit_json(usage_error(exc))
            ctx.exit(exc.exit_code)
        except (click.exceptions.Exit, click.Abort, BrokenPipeError):
            raise
        except Exception as exc:  # unexpected: one line, the traceback to the log
            if ctx.obj and ctx.obj.get("debug"):
                raise
            log.exception("unexpected error", extra={"echoed": True})
            if json_mode(ctx):
                emit_json(library_error(exc, EXIT_FAILURE))
            else:
                click.echo(f"Error: unexpected {type(exc).__name__}: {_shown(exc)} "
                           "(rerun with --debug for the traceback)", err=True)
            ctx.exit(EXIT_FAILURE)


def _shown(exc: BaseException) -> str:
    """An error message for the terminal: it may quote ERP data, so controls are escaped."""
    from .terminal import terminal_text

    return terminal_text(str(exc), keep_newlines=True)


@click.group(cls=KeyservicesGroup, epilog=EXIT_CODES_HELP,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="keyservices")
@click.option("-v", "--verbose", count=True, help="More detail on stderr (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr.")
@click.option("--debug", is_flag=True, help="Show tracebacks for unexpected errors.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool, debug: bool) -> None:
    """Which customers use which key services, and who is missing one.

    keyservices reads an ECi e-automate database each night, classifies every customer against
    the rules in rules/*.yaml, writes the result into one customer custom property (such as
    ZCJKeyServices) where it changed, and emails managers a digest.

    \b
    New here? See it work on a generated demo dealer:
      keyservices demo
    Then point a config at your ERP and check it:
      keyservices check -c config.yaml
      keyservices run -c config.yaml --dry-run
    """
    from .terminal import configure_streams

    configure_streams()  # a Windows code page (cp1252, cp437) replaces what it lacks, never raises
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    setup_stderr_logging(level)


class TerminalFormatter(logging.Formatter):
    """Log lines for a terminal (stderr, and the log file that ``type`` or ``tail`` show):
    control characters in messages (ERP data) shown escaped, line breaks kept."""

    def format(self, record: logging.LogRecord) -> str:
        from .terminal import terminal_text

        return terminal_text(super().format(record), keep_newlines=True)


def setup_stderr_logging(level: int, stream: Any = None) -> None:
    root = logging.getLogger("keyservices")
    root.setLevel(logging.DEBUG)
    for h in list(root.handlers):
        if getattr(h, "_keyservices_stderr", False):
            root.removeHandler(h)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setLevel(level)
    handler.setFormatter(TerminalFormatter("%(levelname)s %(message)s"))
    handler._keyservices_stderr = True  # type: ignore[attr-defined]  # our mark, found above
    handler.addFilter(lambda record: not getattr(record, "echoed", False))
    root.addHandler(handler)


def setup_file_logging(state_dir: Path) -> None:
    """The human-readable log in the state folder, one file a day (``keyservices-YYYY-MM-DD.log``,
    see :mod:`keyservices.commands.logs`): what an admin reads the morning after. Several
    processes append to it at once and nothing is renamed, so it works on Windows too."""
    from ..commands.logs import DailyFileHandler

    root = logging.getLogger("keyservices")
    target = state_dir.resolve()
    for h in root.handlers:
        if isinstance(h, DailyFileHandler) and h.state_dir == target:
            return
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        handler = DailyFileHandler(target)
    except OSError:  # a read-only state folder (or a file): readers go on without the log,
        return       # writers are refused with a message before they touch anything
    handler.setLevel(logging.INFO)
    # escaped like the terminal: the file is read with type/tail, and mailed in failure alerts
    handler.setFormatter(TerminalFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)


def load_config_at(config_path: Path, overrides: dict[str, Any] | None = None, *,
                   one: str | None = None) -> Any:
    """The config; ``one`` (the command, for the message): the config of the one company
    ``--company`` names (a group's command that acts on one company's database or store)."""
    from ..config import load_config

    config = load_config(config_path, overrides)
    setup_file_logging(config.state.dir)
    if one is not None:
        from ..commands.group import one_company

        name = click.get_current_context().meta.get(COMPANY_KEY)
        config = one_company(config, [name] if name else [], one)
    return config


def progress_reporter(as_json: bool) -> Any:
    from .console import reporter

    return reporter(enabled=not as_json)


def emit_json(data: Any) -> None:
    """``data`` as indented JSON on stdout. A top-level value that is a ``Rows`` (a run's
    long lists, ``RunResult.to_dict(passing=True)``) is written an item at a time, in pieces
    of about a megabyte, as ``json.dumps`` would have written the whole list."""
    if not (isinstance(data, dict) and any(isinstance(v, Rows) for v in data.values())):
        click.echo(json.dumps(data, indent=2, default=str, ensure_ascii=False))
        return

    def dumped(value: Any, indent: str) -> str:  # JSON text has no raw newline but these
        return json.dumps(value, indent=2, default=str, ensure_ascii=False).replace(
            "\n", "\n" + indent)

    out: list[str] = []
    size = 0

    def write(text: str) -> None:
        nonlocal size
        out.append(text)
        size += len(text)
        if size >= 1 << 20:
            click.echo("".join(out), nl=False)
            out.clear()
            size = 0

    write("{")
    for n, (key, value) in enumerate(data.items()):
        write(("," if n else "") + "\n  " + json.dumps(str(key), ensure_ascii=False) + ": ")
        if not isinstance(value, Rows):
            write(dumped(value, "  "))
            continue
        first = True
        for row in value:
            write(("[" if first else ",") + "\n    " + dumped(row, "    "))
            first = False
        write("[]" if first else "\n  ]")
    write("\n}" if data else "}")
    click.echo("".join(out))


def program() -> str:
    """How to run keyservices again, as the user can paste it: ``keyservices``, or the path of
    the running executable when that is not what ``keyservices`` on PATH finds (set by
    :func:`keyservices.cli.main`; ``keyservices`` when called in-process)."""
    ctx = click.get_current_context(silent=True)
    obj = ctx.find_root().obj if ctx is not None else None
    return str(obj.get("program") or "keyservices") if isinstance(obj, dict) else "keyservices"


