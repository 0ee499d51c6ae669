"""The opportunity life cycle across nightly runs (CRM.COM's new, open, won, closed).

Each night the opportunities step finds who lacks a service worth offering. On its own that is a
fresh list every night: a sales rep cannot tell what is new, what has been waiting for weeks, or
what happened to last week's lead. Here the night's list is folded into one record per
(customer, service) kept in the state store, so that:

* an opportunity seen again is **updated, never created twice** (Gainsight's CTAs upsert);
* one no longer found **closes by itself**, as *won* when the customer now has the service, or
  *closed* when the condition cleared or the customer left the scope;
* one that comes back later **reopens the same record** (``reopened`` counts how often), so its
  history and any override stay attached to it;
* a manager's **override** hides it until a date (Amity): a *snooze* says "not now", a
  *dismiss* says "not interested"; both carry a reason and both expire, after which the
  opportunity shows again if it still holds. Overrides are set by
  :mod:`keyservices.commands.opportunity`, not here.

Pure: no database, no clock. The caller passes the stored records, the night's opportunities,
the night's services and the date, and saves what :func:`advance` returns.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field

from ..model import Opportunity

NEW, OPEN, WON, CLOSED = "new", "open", "won", "closed"
STATUSES: tuple[str, ...] = (NEW, OPEN, WON, CLOSED)
ACTIVE: frozenset[str] = frozenset({NEW, OPEN})  # still worth a call; won and closed are history

REASON_WON = "service appeared"
REASON_OUT_OF_SCOPE = "customer inactive or out of scope"
REASON_CLEARED = "condition cleared"

Key = tuple[int, str]  # (customer_id, service_code)


@dataclass(slots=True)
class OpportunityRecord:
    """One (customer, service) opportunity as remembered between nights.

    ``first_seen`` is the night it was found (again, after a reopen); ``last_seen`` the last
    night it was found. ``closed_on``/``close_reason`` say when and why it left the active list.
    The ``snoozed_*`` fields are the manager's override: while ``snoozed_until`` is today or
    later the opportunity is tracked but not shown; ``dismissed`` tells a dismiss ("not
    interested") from a snooze ("not now"). They are kept after they expire, as history.
    """

    customer_id: int
    service_code: str
    customer_number: str
    customer_name: str
    branch: str | None
    owner: str | None  # the customer's sales rep
    status: str  # new | open | won | closed
    priority: str
    score: float
    reason: str
    first_seen: dt.date
    last_seen: dt.date
    closed_on: dt.date | None = None
    close_reason: str | None = None
    snoozed_until: dt.date | None = None
    snooze_reason: str | None = None
    snoozed_by: str | None = None
    dismissed: bool = False
    reopened: int = 0

    @property
    def key(self) -> Key:
        return (self.customer_id, self.service_code)

    def hidden_on(self, day: dt.date) -> bool:
        """Whether an override (snooze or dismiss) hides it on ``day``; the date is inclusive."""
        return self.snoozed_until is not None and self.snoozed_until >= day

    def age_days(self) -> int:
        """Days from first seen to the last night it was seen (or to when it closed)."""
        return ((self.closed_on or self.last_seen) - self.first_seen).days


@dataclass(slots=True)
class LifecycleResult:
    """What one night changed.

    ``records`` are the records to save (new or changed: every one found tonight, since its
    ``last_seen`` moves, plus those that closed). ``visible`` are copies of tonight's
    opportunities with ``status`` and ``age_days`` filled, in the order found, without those an
    override hides. ``counts``: ``new`` first seen tonight, ``reopened`` back after being won or
    closed (status new again), ``open`` seen before and still there (so new + reopened + open is
    the number found), ``won`` and ``closed`` closed tonight, ``hidden`` found but hidden by an
    override (they are in new, reopened or open too).
    """

    records: list[OpportunityRecord]
    visible: list[Opportunity]
    counts: dict[str, int] = field(default_factory=dict)


def advance(stored: Mapping[Key, OpportunityRecord], found: Sequence[Opportunity],
            services: Mapping[int, Set[str]], as_of: dt.date) -> LifecycleResult:
    """Fold tonight's opportunities into the stored records.

    ``services`` maps every in-scope customer (active, not a prospect) to its services tonight:
    it tells a won opportunity (the service appeared) from one whose customer left the scope
    and from one whose condition merely cleared (e.g. its industry peers changed).
    ``stored`` is not modified; changed records are new objects in the result.
    """
    counts = dict.fromkeys((NEW, OPEN, WON, CLOSED, "reopened", "hidden"), 0)
    records: list[OpportunityRecord] = []
    visible: list[Opportunity] = []
    seen: set[Key] = set()
    for opp in found:
        key = (opp.customer_id, opp.service_code)
        if key in seen:  # the same pair twice in one night: the first (most promising) counts
            continue
        seen.add(key)
        before = stored.get(key)
        record = _found(before, opp, as_of)
        counts[NEW if before is None else OPEN if before.status in ACTIVE else "reopened"] += 1
        records.append(record)
        if record.hidden_on(as_of):
            counts["hidden"] += 1
            continue
        visible.append(dataclasses.replace(opp, status=record.status,
                                           age_days=record.age_days(), why=list(opp.why)))
    for key, old in stored.items():
        if key in seen or old.status not in ACTIVE:
            continue
        record = _lost(old, services, as_of)
        counts[record.status] += 1
        records.append(record)
    return LifecycleResult(records=records, visible=visible, counts=counts)


def _found(old: OpportunityRecord | None, opp: Opportunity, as_of: dt.date) -> OpportunityRecord:
    """The record of an opportunity found tonight: new, still open, or reopened."""
    fresh = {"customer_number": opp.number, "customer_name": opp.name, "branch": opp.branch,
             "owner": opp.sales_rep, "priority": opp.priority, "score": opp.score,
             "reason": opp.reason, "last_seen": as_of}
    if old is None:
        return OpportunityRecord(customer_id=opp.customer_id, service_code=opp.service_code,
                                 status=NEW, first_seen=as_of, **fresh)
    if old.status in ACTIVE:
        return dataclasses.replace(old, status=OPEN, **fresh)
    # won or closed before: the same record comes back, so its override and count stay with it
    return dataclasses.replace(old, status=NEW, first_seen=as_of, closed_on=None,
                               close_reason=None, reopened=old.reopened + 1, **fresh)


def _lost(old: OpportunityRecord, services: Mapping[int, Set[str]],
          as_of: dt.date) -> OpportunityRecord:
    """An active opportunity not found tonight closes, with the reason why."""
    have = services.get(old.customer_id)
    if have is not None and old.service_code in have:
        status, reason = WON, REASON_WON
    elif have is None:
        status, reason = CLOSED, REASON_OUT_OF_SCOPE
    else:
        status, reason = CLOSED, REASON_CLEARED
    return dataclasses.replace(old, status=status, closed_on=as_of, close_reason=reason)
