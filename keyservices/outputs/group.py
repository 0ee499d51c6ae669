"""A dealer group's night in one message (#25): a table of every company, what its night did or
why it failed, sent to the group's ``digest.to`` beside each company's own digest.

Kept out of ``digest`` (near its size limit); it reuses its message and outbox functions.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Sequence
from dataclasses import dataclass

from .digest import RenderedDigest

COLUMNS = ("company", "status", "classified", "added", "removed", "cannot be written")


@dataclass(frozen=True, slots=True)
class CompanyRow:
    """One company's line: its counts when its night got as far as a plan, else why not."""

    company: str
    status: str  # written | test mode | dry run | guard | failed
    exit_code: int
    classified: int | None = None
    added: int | None = None  # services added across its changes
    removed: int | None = None
    unwritable: int | None = None  # customers without configuration or attribute row
    why: str | None = None  # the failure or guard message


def render_group(dealer: str, as_of: dt.date, rows: Sequence[CompanyRow]) -> RenderedDigest:
    """The group's table as text and HTML (no attachment: each company's digest has its lists)."""
    failed = [r for r in rows if r.status in ("failed", "guard")]
    subject = (f"keyservices {dealer}, {as_of:%Y-%m-%d}: {len(rows)} companies"
               + (f", {len(failed)} not written ({', '.join(r.company for r in failed)})"
                  if failed else ""))
    cells = [[r.company, r.status, *(_n(v) for v in (r.classified, r.added, r.removed,
                                                     r.unwritable))] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(COLUMNS)]
    lines = [subject, "", "  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    problems = [f"{r.company} (exit {r.exit_code}): {r.why}" for r in rows if r.why]
    if problems:
        lines += ["", "Why:", *problems]
    lines += ["", "Each company's own digest follows as a message of its own."]
    head = "".join(f"<th style=\"text-align:left;padding:4px 8px\">{html.escape(c)}</th>"
                   for c in COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td style=\"padding:4px 8px\">{html.escape(v)}</td>" for v in row)
        + "</tr>" for row in cells)
    why = "".join(f"<li>{html.escape(p)}</li>" for p in problems)
    page = (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" "
            f"content=\"width=device-width\"><title>{html.escape(subject)}</title></head>"
            f"<body style=\"font-family:sans-serif\"><h1 style=\"font-size:1.2em\">"
            f"{html.escape(subject)}</h1><div style=\"overflow-x:auto\"><table "
            f"style=\"border-collapse:collapse\"><tr>{head}</tr>{body}</table></div>"
            + (f"<h2 style=\"font-size:1em\">Why</h2><ul>{why}</ul>" if why else "")
            + "<p>Each company's own digest follows as a message of its own.</p></body></html>")
    return RenderedDigest(subject=subject, html=page, text="\n".join(lines) + "\n")


def _n(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"
