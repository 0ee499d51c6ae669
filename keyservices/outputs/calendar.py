"""A sales rep's contract renewals as an iCalendar file (RFC 5545), attached to the rep's digest.

One all-day VEVENT per contract expiring, on its expiry date. Each event's UID is the contract
and its expiry date, so importing tomorrow's file again updates the same events instead of
doubling them, and a renewed contract (a new expiry) is a new event. Built with ``icalendar``,
which escapes TEXT values, ends lines with CRLF and folds them at 75 octets without splitting a
UTF-8 character (tests/test_alerts_new.py parses the file back).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from icalendar import Calendar, Event

from ..model import DigestData, Renewal

PRODID = "-//keyservices//renewals//EN"


def _event(r: Renewal, stamp: dt.datetime) -> Event:
    what = " ".join(x for x in (r.contract_code, r.contract_number) if x) or "contract"
    details = [f"Contract {what} of {r.name} ({r.number}) expires on {r.expires.isoformat()}."]
    if r.branch:
        details.append(f"Branch: {r.branch}.")
    if r.sales_rep:
        details.append(f"Sales rep: {r.sales_rep}.")
    event = Event()
    event.add("uid", f"keyservices-contract-{r.contract_id}-{r.expires.isoformat()}@keyservices")
    event.add("dtstamp", stamp)
    event.add("dtstart", r.expires)  # a date: an all-day event
    event.add("dtend", r.expires + dt.timedelta(days=1))
    event.add("summary", f"Renewal: {r.name} ({r.number}) {what}")
    event.add("description", "\n".join(details))
    event.add("transp", "TRANSPARENT")
    return event


def renewals_ics(renewals: Sequence[Renewal], *, dealer: str, stamp: dt.datetime) -> str:
    """The calendar text (CRLF line ends), one event per renewal; ``stamp`` is when it was made."""
    # DTSTAMP is UTC (RFC 5545 3.8.7.2); a naive ``stamp`` is local time, as the run records it
    utc = stamp.astimezone(dt.UTC)
    calendar = Calendar()
    calendar.add("version", "2.0")
    calendar.add("prodid", PRODID)
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-calname", f"Contract renewals - {dealer}")
    for r in renewals:
        calendar.add_component(_event(r, utc))
    return calendar.to_ical().decode("utf-8")


def calendar_for(data: DigestData) -> str:
    """A sales rep's copy's renewals calendar; empty for other copies and without renewals."""
    mine = [r for r in data.renewals if data.sales_rep and (r.sales_rep or "") == data.sales_rep]
    return renewals_ics(mine, dealer=data.dealer, stamp=data.generated_at) if mine else ""
