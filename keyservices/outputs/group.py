"""A dealer group's night in one message (#25): a table of every company, what its night did or
why it failed, then each company's digest as a section of the same message, for the group's
``digest.to`` (a company with recipients of its own also gets its digest as a message of its own).

Kept out of ``digest`` (near its size limit); it reuses its rendering, message and outbox
functions. The HTML stays within the digest's 100 KB: the sections' caps are lowered together,
in proportion, until the whole fits; when even sections with no rows listed do not (dozens of
companies), the companies that do not fit are named and get their digest as a message of their
own, so nothing is lost.
"""

from __future__ import annotations

import datetime as dt
import html
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..model import DigestData
from ..resources import SECTION_TEMPLATE
from ..resources import templates_dir as packaged_templates
from .attachment import Listing
from .digest import HTML_LIMIT, MAX_NOTES, RenderedDigest, render

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
SEPARATE = "Each company's own digest follows as a message of its own."
BELOW = "Each company's digest follows below."
NO_ATTACHMENT = Listing(attachment=None, rows=0)  # sections name the command that lists it all


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


def render_group(dealer: str, as_of: dt.date, rows: Sequence[CompanyRow], *,
                 followed: str = SEPARATE) -> RenderedDigest:
    """The group's table as text and HTML (no attachment: the sections name the commands that
    list everything). ``followed``: what comes after the table, said at its foot."""
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
    lines += ["", AT_STAKE_NOTE, followed]
    return RenderedDigest(subject=subject, html=_html(subject, cells, problems, followed),
                          text="\n".join(lines) + "\n")


def _html(subject: str, cells: Sequence[Sequence[str]], problems: Sequence[str],
          followed: str) -> str:
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
            + f"<p>{html.escape(AT_STAKE_NOTE)}</p><p>{html.escape(followed)}</p></body></html>")


def _n(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _money(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _short(why: str | None) -> str:
    """A failure as the table shows it: the whole message is in the log and the company's
    own digest, a runaway one (every bad column named) is cut here."""
    text = why or ""
    return text if len(text) <= WHY_LIMIT else text[:WHY_LIMIT - 1].rstrip() + "…"


@dataclass(frozen=True, slots=True)
class Consolidated:
    """The group's one message, and the companies whose section did not fit in it."""

    rendered: RenderedDigest
    left_out: list[str]


def render_consolidated(dealer: str, as_of: dt.date, rows: Sequence[CompanyRow],
                        sections: Sequence[DigestData], templates_dir: Path, *, max_rows: int,
                        max_unwritable_rows: int, max_opportunities: int,
                        limit: int = HTML_LIMIT) -> Consolidated:
    """The table, then each company's digest (its own templates' body) as a section.

    Every section is rendered with the same caps; when the whole passes ``limit`` bytes the
    caps are lowered together, in proportion to what the listed rows cost, so a quiet company
    and a busy one shrink alike. Sections that do not fit even with no rows listed are left out
    from the last one up (``left_out`` names them)."""
    def bodies(caps: tuple[int, ...], picked: Sequence[DigestData]) -> list[Any]:
        return [_section(d, templates_dir, caps) for d in picked]

    def size(parts: Sequence[tuple[str, str]]) -> int:
        return sum(len(part.encode("utf-8")) for part, _ in parts)

    table = render_group(dealer, as_of, rows, followed=BELOW if sections else SEPARATE)
    # the table, and room for the line naming every company left out, should it come to that
    fixed = len(table.html.encode("utf-8")) + len(_left_out_note(
        [d.company or d.dealer for d in sections]).encode("utf-8")) + 20
    bare = bodies((0, 0, 0, 0), sections)
    kept = 0
    room = limit - fixed
    while kept < len(sections) and len(bare[kept][0].encode("utf-8")) <= room:
        room -= len(bare[kept][0].encode("utf-8"))
        kept += 1
    picked = sections[:kept]
    floor = size(bare[:kept])
    caps: tuple[int, ...] = (max_rows, max_unwritable_rows, max_opportunities, MAX_NOTES)
    parts = bodies(caps, picked)
    while fixed + size(parts) > limit and any(caps):
        factor = 0.95 * (limit - fixed - floor) / max(1, size(parts) - floor)
        caps = tuple(max(0, min(n - 1, int(n * factor))) for n in caps)
        parts = bodies(caps, picked)
    left_out = [d.company or d.dealer for d in sections[kept:]]
    html_sections = "".join(body for body, _ in parts)
    text_sections = "".join(f"\n{'=' * 20} {d.company or d.dealer} {'=' * 20}\n{text}"
                            for d, (_, text) in zip(picked, parts, strict=True))
    note = _left_out_note(left_out) if left_out else ""
    page = table.html.replace("</body>", (f"<p><b>{note}</b></p>" if note else "")
                              + html_sections + "</body>", 1)
    text = table.text + (f"\n{html.unescape(note)}\n" if note else "") + text_sections
    return Consolidated(RenderedDigest(subject=table.subject, html=page, text=text), left_out)


def _left_out_note(names: Sequence[str]) -> str:
    return html.escape(f"Not in this message (too many companies for one mail): "
                       f"{', '.join(names)}; each gets its digest as a message of its own.")


def _section(data: DigestData, templates_dir: Path,
             caps: tuple[int, ...]) -> tuple[str, str]:
    """A company's digest as the group's message shows it: the small section (its HTML) and the
    digest's text, with no attachment (each "+N more" names the command, with --company, that
    lists the rest)."""
    rows, unwritable, opportunities, notes = caps
    if not (templates_dir / SECTION_TEMPLATE).is_file():  # a folder made before it existed
        templates_dir = packaged_templates()
    rendered = render(data, templates_dir, max_rows=rows, max_unwritable_rows=unwritable,
                      max_opportunities=opportunities, max_notes=notes,
                      max_html_bytes=sys.maxsize, listing=NO_ATTACHMENT,
                      html_template=SECTION_TEMPLATE)
    return rendered.html, rendered.text
