"""A dealer group's night in one message (#25): a table of every company, what its night did or
why it failed, sent to the group's ``digest.to`` beside each company's own digest.

Kept out of ``digest`` (near its size limit); it reuses its message and outbox functions.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .digest import RenderedDigest

COLUMNS = ("company", "status", "classified", "added", "removed", "cannot be written",
           "money at stake")
WHY_LIMIT = 500  # characters of a failure shown here: 20 long ones stay within the mail's 100 KB
# the figures under each company's name and status in HTML, as shares of the width (name and
# status have a row of their own above them): five columns fit a 375 px phone with no fixed
# width, up to 9 characters classified, 7 added, removed or unwritable, 11 at stake
HTML_WIDTHS = ("21%", "17%", "17%", "17%", "28%")
TOTAL = "Group total"
AT_STAKE_NOTE = ("Money at stake: the estimated annual value of the opportunities each company's "
                 "digest lists.")


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
    at_stake: float | None = None  # estimated annual value of its listed opportunities


def total_row(rows: Sequence[CompanyRow]) -> CompanyRow:
    """The group's line: each count summed over the companies that have it."""
    def add(name: str) -> Any:
        values = [getattr(r, name) for r in rows if getattr(r, name) is not None]
        return sum(values) if values else None

    done = sum(1 for r in rows if r.status not in ("failed", "guard"))
    return CompanyRow(TOTAL, f"{done} of {len(rows)}", 0, add("classified"), add("added"),
                      add("removed"), add("unwritable"), at_stake=add("at_stake"))


def render_group(dealer: str, as_of: dt.date, rows: Sequence[CompanyRow]) -> RenderedDigest:
    """The group's table as text and HTML (no attachment: each company's digest has its lists)."""
    failed = [r for r in rows if r.status in ("failed", "guard")]
    subject = (f"keyservices {dealer}, {as_of:%Y-%m-%d}: {len(rows)} companies"
               + (f", {len(failed)} not written ({', '.join(r.company for r in failed)})"
                  if failed else ""))
    everyone = [*rows, total_row(rows)]
    cells = [[r.company, r.status, *(_n(v) for v in (r.classified, r.added, r.removed,
                                                     r.unwritable)), _money(r.at_stake)]
             for r in everyone]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(COLUMNS)]
    lines = [subject, "", "  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths,
                                                                strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
              for row in cells]
    problems = [f"{r.company} (exit {r.exit_code}): {_short(r.why)}" for r in rows if r.why]
    if problems:
        lines += ["", "Why:", *problems]
    lines += ["", AT_STAKE_NOTE, "Each company's own digest follows as a message of its own."]
    return RenderedDigest(subject=subject, html=_html(subject, cells, problems),
                          text="\n".join(lines) + "\n")


def _html(subject: str, cells: Sequence[Sequence[str]], problems: Sequence[str]) -> str:
    """The table for any screen: each company's name and status on a row of their own, its five
    figures below in columns of shares of the width, long names and messages wrapping anywhere."""
    cell = "padding:3px;overflow-wrap:anywhere;vertical-align:top"
    cols = "".join(f"<col style=\"width:{w}\">" for w in HTML_WIDTHS)
    head = "".join(f"<th style=\"text-align:right;{cell};font-size:12px;color:#6b7280\">"
                   f"{html.escape(c)}</th>" for c in COLUMNS[2:])
    body = []
    for n, row in enumerate(cells):
        weight = "font-weight:bold;" if n == len(cells) - 1 else ""
        body.append(f"<tr><td colspan=\"{len(HTML_WIDTHS)}\" style=\"{cell};padding-top:8px;"
                    f"border-top:1px solid #e5e7eb\"><b>{html.escape(row[0])}</b> &middot; "
                    f"<span style=\"color:#6b7280\">{html.escape(row[1])}</span></td></tr>")
        body.append("<tr>" + "".join(f"<td style=\"{cell};{weight}text-align:right\">"
                                     f"{html.escape(v)}</td>" for v in row[2:]) + "</tr>")
    why = "".join(f"<li>{html.escape(p)}</li>" for p in problems)
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" "
            f"content=\"width=device-width\"><title>{html.escape(subject)}</title></head>"
            f"<body style=\"font-family:sans-serif;font-size:13px;margin:8px\">"
            f"<h1 style=\"font-size:1.2em;overflow-wrap:anywhere\">{html.escape(subject)}</h1>"
            f"<table style=\"width:100%;border-collapse:collapse;table-layout:fixed\">"
            f"<colgroup>{cols}</colgroup><tr>{head}</tr>{''.join(body)}</table>"
            + (f"<h2 style=\"font-size:1em\">Why</h2><ul style=\"overflow-wrap:anywhere;"
               f"padding-left:16px\">{why}</ul>" if why else "")
            + f"<p>{html.escape(AT_STAKE_NOTE)}</p><p>Each company's own digest follows as a "
            "message of its own.</p></body></html>")


def _n(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _money(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _short(why: str | None) -> str:
    """A failure as the table shows it: the whole message is in the log and the company's
    own digest, a runaway one (every bad column named) is cut here."""
    text = why or ""
    return text if len(text) <= WHY_LIMIT else text[:WHY_LIMIT - 1].rstrip() + "…"
