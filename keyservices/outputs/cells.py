"""CSV cells that a spreadsheet cannot run: one writer for every CSV the tool writes.

Excel, LibreOffice and Google Sheets treat a cell that begins with ``=``, ``+``, ``-`` or ``@``
as a formula (and tab or CR can hide one), so an ERP customer named
``=HYPERLINK("https://evil","click")`` or ``+cmd|' /C calc'!A0`` would run in the manager's
spreadsheet. OWASP's advice (CSV Injection): prefix such a text cell with a single quote, which
the spreadsheet shows as text. Numbers the tool computes stay numbers: ints, floats, Decimals and
a text that is nothing but a number ("-12.50", "0.4000") are written as they are.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from typing import Any, Protocol

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


class _TextSink(Protocol):
    def write(self, s: str, /) -> Any: ...


def safe_cell(value: Any) -> Any:
    """``value`` as a CSV cell a spreadsheet shows and never evaluates."""
    if not isinstance(value, str) or not value.startswith(FORMULA_START):
        return value
    if _PLAIN_NUMBER.fullmatch(value):
        return value  # "-12.50" is a number, not a formula
    return "'" + value


def safe_row(row: Iterable[Any]) -> list[Any]:
    return [safe_cell(v) for v in row]


class SafeWriter:
    """``csv.writer`` (CRLF rows) whose text cells are neutralised by :func:`safe_cell`."""

    def __init__(self, sink: _TextSink, **fmtparams: Any) -> None:
        fmtparams.setdefault("lineterminator", "\r\n")
        self._writer = csv.writer(sink, **fmtparams)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow(safe_row(row))

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def csv_writer(sink: _TextSink, **fmtparams: Any) -> SafeWriter:
    """The writer every CSV of the tool uses (digest attachment, exports, report)."""
    return SafeWriter(sink, **fmtparams)


__all__ = ["FORMULA_START", "SafeWriter", "csv_writer", "safe_cell", "safe_row"]
