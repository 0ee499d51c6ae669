"""A sales rep's contract renewals as an iCalendar file (RFC 5545), attached to the rep's digest.

One all-day VEVENT per contract expiring, on its expiry date. Each event's UID is the contract
and its expiry date, so importing tomorrow's file again updates the same events instead of
doubling them, and a renewed contract (a new expiry) is a new event. Written by hand rather than
with a library: the format is small, and what matters (TEXT escaping, CRLF line ends, lines
folded at 75 octets without splitting a UTF-8 character) is tested by parsing it back.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from ..model import DigestData, Renewal

PRODID = "-//keyservices//renewals//EN"
FOLD = 75  # octets per line, CRLF excluded (RFC 5545 3.1)


def escape(text: str) -> str:
    """A TEXT value (RFC 5545 3.3.11): backslash, semicolon, comma and newlines escaped."""
    return (text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
            .replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n"))


def fold(line: str) -> str:
    """One content line folded into lines of at most 75 octets, each ending with CRLF; a
    continuation starts with a space and a UTF-8 character is never split."""
    out: list[str] = []
    current, size = "", 0
    for ch in line:
        width = len(ch.encode("utf-8"))
        limit = FOLD if not out else FOLD - 1  # a continuation's leading space is an octet
        if size + width > limit:
            out.append(current)
            current, size = "", 0
        current += ch
        size += width
    out.append(current)
    return "\r\n ".join(out) + "\r\n"


def _event(r: Renewal, stamp: str) -> list[str]:
    what = " ".join(x for x in (r.contract_code, r.contract_number) if x) or "contract"
    summary = f"Renewal: {r.name} ({r.number}) {what}"
    details = [f"Contract {what} of {r.name} ({r.number}) expires on {r.expires.isoformat()}."]
    if r.branch:
        details.append(f"Branch: {r.branch}.")
    if r.sales_rep:
        details.append(f"Sales rep: {r.sales_rep}.")
    return ["BEGIN:VEVENT",
            f"UID:keyservices-contract-{r.contract_id}-{r.expires.isoformat()}@keyservices",
            f"DTSTAMP:{stamp}",
            f"DTSTART;VALUE=DATE:{r.expires:%Y%m%d}",
            f"DTEND;VALUE=DATE:{r.expires + dt.timedelta(days=1):%Y%m%d}",
            f"SUMMARY:{escape(summary)}",
            f"DESCRIPTION:{escape(chr(10).join(details))}",
            "TRANSP:TRANSPARENT",
            "END:VEVENT"]


def renewals_ics(renewals: Sequence[Renewal], *, dealer: str, stamp: dt.datetime) -> str:
    """The calendar text (CRLF line ends), one event per renewal; ``stamp`` is when it was made."""
    # DTSTAMP is UTC (RFC 5545 3.8.7.2); a naive ``stamp`` is local time, as the run records it
    stamp_text = f"{stamp.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}"
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", f"PRODID:{PRODID}", "CALSCALE:GREGORIAN",
             "METHOD:PUBLISH", f"X-WR-CALNAME:{escape(f'Contract renewals - {dealer}')}"]
    for r in renewals:
        lines += _event(r, stamp_text)
    lines.append("END:VCALENDAR")
    return "".join(fold(line) for line in lines)


def calendar_for(data: DigestData) -> str:
    """A sales rep's copy's renewals calendar; empty for other copies and without renewals."""
    mine = [r for r in data.renewals if data.sales_rep and (r.sales_rep or "") == data.sales_rep]
    return renewals_ics(mine, dealer=data.dealer, stamp=data.generated_at) if mine else ""
