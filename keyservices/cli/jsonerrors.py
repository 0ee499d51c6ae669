"""Errors for scripts: under ``--json`` a failure is one JSON document on stdout, not a line of
text on stderr, so a script that parses stdout can tell what went wrong and where.

The document is ``{"error": {"code", "type", "message", "location"}}`` with ``code`` the exit
code the process ends with. Library errors (:class:`~keyservices.errors.KeyservicesError`),
click's usage errors (a bad option value, exit 2) and unexpected exceptions all take this shape;
an error that carries a result (a run stopped by the change guard) has the result's fields beside
``"error"``. Kept apart from :mod:`.base` so that the shape is defined in one place and the
group's handler stays short.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import click

from ..commands.result import RunResult

JSON_FLAG = "--json"
META_KEY = "keyservices.json"  # ctx.meta: --json was among the command line's arguments

# "path/to/file.yaml:12" or "C:\\ks\\config.yaml:3:5" as a problem list starts a line with it;
# the file name must have an extension (a host "127.0.0.1:5432" in a URL is no file)
_FILE_LINE = re.compile(r"((?:[A-Za-z]:[\\/])?[^\s:\"'()]*\.[A-Za-z]\w{0,5}):(\d+)(?::\d+)?:")
# a problem from the environment or a flag names the setting: "env KEYSERVICES_X: write.max: ..."
_SETTING = re.compile(r"(?:^|\n)\s*(?:env [A-Z0-9_]+|command line): ([a-z_][\w.\[\]]*):")


def json_requested(args: Sequence[str]) -> bool:
    """Whether ``--json`` is among the arguments (before a ``--``): decided before click parses
    them, so that a usage error in any option is answered in JSON too."""
    args = list(args)
    return JSON_FLAG in (args[:args.index("--")] if "--" in args else args)


def json_mode(ctx: click.Context | None) -> bool:
    return bool(ctx is not None and ctx.meta.get(META_KEY))


def error_object(code: int, kind: str, message: str,
                 location: str | None = None) -> dict[str, Any]:
    """The one shape of an error for scripts."""
    return {"code": code, "type": kind, "message": message, "location": location}


def location_in(message: str) -> str | None:
    """Where a library error points, read from its message: the first ``file:line`` of a
    problem list, else the setting an environment variable or a flag got wrong, else None."""
    found = _FILE_LINE.search(message)
    if found:
        return f"{found.group(1)}:{found.group(2)}"
    setting = _SETTING.search(message)
    return setting.group(1) if setting else None


def library_error(exc: Exception, code: int) -> dict[str, Any]:
    """The document for a library or unexpected error, with the result it carries (if any)."""
    message = str(exc)
    location = getattr(exc, "location", None)
    error = error_object(code, type(exc).__name__, message,
                         location if isinstance(location, str) else location_in(message))
    detail = getattr(exc, "detail", None)
    if detail is None:
        return {"error": error}
    if isinstance(detail, RunResult):  # a stopped night's plan: written a row at a time
        data = detail.to_dict(passing=True)
    else:
        data = detail.to_dict() if hasattr(detail, "to_dict") else detail
    return {**data, "error": error} if isinstance(data, dict) else {"error": error,
                                                                     "result": data}


def usage_error(exc: click.ClickException) -> dict[str, Any]:
    """The document for a click error: the option or argument it is about as the location."""
    location: str | None = None
    if isinstance(exc, click.BadParameter):
        hint = exc.param_hint
        if isinstance(hint, str):
            location = hint
        elif hint:
            location = " / ".join(hint)
        elif exc.param is not None:
            opts = getattr(exc.param, "opts", None) or []
            location = (opts[0] if isinstance(exc.param, click.Option) and opts
                        else exc.param.human_readable_name)
    elif isinstance(getattr(exc, "option_name", None), str):  # no such option, bad usage
        location = exc.option_name  # type: ignore[attr-defined]
    return {"error": error_object(exc.exit_code, type(exc).__name__, exc.format_message(),
                                  location)}


__all__ = ["JSON_FLAG", "META_KEY", "error_object", "json_mode", "json_requested",
           "library_error", "location_in", "usage_error"]
