"""The opportunity life cycle across nightly runs (CRM.COM's new, open, won, closed).

Each night the opportunities step finds who lacks a service worth offering. On its own that is a
fresh list every night: a sales rep cannot tell what is new, what has been waiting for weeks, or
what happened to last week's lead. Here the night's list is folded into one record per
(customer, service) kept in the state store, so that:

* an opportunity seen again is **updated, never created twice** (Gainsight's CTAs upsert);
* one no longer found **closes by itself**: *won* only when its service appeared through a sale
  the causes engine names (a new contract, an item sold, GL revenue, a machine put on a
  contract line), else *withdrawn* with the cause its reason vanished (the customer went
  inactive, the machines were pulled, the peers changed); never won, never counted as won
  (*closed* is what earlier versions recorded);
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
import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..model import Opportunity
from .frame import OpportunityFrame
from .monitor_calls import is_monitor_play
from .renewal import RENEWAL

NEW, OPEN, WON, CLOSED, WITHDRAWN, LOST = "new", "open", "won", "closed", "withdrawn", "lost"
STATUSES: tuple[str, ...] = (NEW, OPEN, WON, CLOSED, WITHDRAWN, LOST)
ACTIVE: frozenset[str] = frozenset({NEW, OPEN})  # still worth a call; the others are history

REASON_WON = "service appeared"
REASON_OUT_OF_SCOPE = "customer inactive or out of scope"
REASON_CLEARED = "condition cleared"
# an uncovered-machines offer whose machines went on a contract line after it was made (won)
REASON_COVERED = "machines put on a contract line"
REASON_GONE = "the offer's reason is gone (machines covered or pulled)"
# ... and, once contract lines were looked at, one whose machines no new line covers
REASON_PULLED = ("the offer's reason is gone (machines pulled or moved; no contract line "
                 "started since the offer)")
# a win recorded before wins needed a sale the causes engine names (state store migration)
REASON_UNVERIFIED = "service appeared (not verified: recorded before a win needed a named sale)"
# a renewal call (calls.renewal) closes by the contracts alone: renewed, or not
REASON_RENEWED = "renewed: a contract of the service runs past the renewal window"
REASON_NOT_RENEWED = "not renewed: no contract of the service runs any more"
# a monitor's call (calls.monitor_calls): by what the monitor watches, over the last 90 days
REASON_KEPT = "kept: the customer bought what the monitor watches in the last 90 days"
REASON_NOT_KEPT = "lost: nothing the monitor watches was bought in the last 90 days"
REASON_RULE_GONE = "the rule that made the call is no longer in the rules"
# what the causes engine says when it cannot name a sale: not enough to credit a win
_UNNAMED = ("not compared", "its facts changed", "no such service", "its rule changed")

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
    play: str | None = None  # the ranking's, as last found (None: stored by an older version)
    p_win: float | None = None
    expected_value: float | None = None

    @property
    def key(self) -> Key:
        return (self.customer_id, self.service_code)

    def hidden_on(self, day: dt.date) -> bool:
        """Whether an override (snooze or dismiss) hides it on ``day``; the date is inclusive."""
        return self.snoozed_until is not None and self.snoozed_until >= day

    def age_days(self) -> int:
        """Days from first seen to the last night it was seen (or to when it closed)."""
        return ((self.closed_on or self.last_seen) - self.first_seen).days


@dataclass
class Stored:
    """The remembered opportunities as columns, in any order: what the night needs of them
    (key, status, dates as day numbers, -1 for none, reopen count). ``records``: the full
    records, when they were given as objects (tests, small stores); the state store reads
    only these columns, and a million records as objects would cost seconds and gigabytes."""

    customer: np.ndarray  # int64
    service: np.ndarray  # object: service codes
    status: np.ndarray  # int8: index into STATUSES
    first_seen: np.ndarray  # int64 day numbers
    closed_on: np.ndarray
    snoozed_until: np.ndarray
    reopened: np.ndarray  # int64
    records: list[OpportunityRecord] | None = None
    kind: np.ndarray | None = None  # int8 per record, by its play: ``_KINDS`` (when read)

    def kinds(self) -> np.ndarray:
        """Each record's kind of call: 0 judged by its service, 1 a renewal, 2 a monitor's (0
        where the play was not read)."""
        return (self.kind if self.kind is not None
                else np.zeros(len(self.customer), dtype=np.int8))

    @classmethod
    def of(cls, stored: Mapping[Key, OpportunityRecord] | Stored) -> Stored:
        if isinstance(stored, Stored):
            return stored
        records = list(stored.values())
        return cls.from_rows([(r.customer_id, r.service_code, r.status, r.first_seen,
                               r.closed_on, r.snoozed_until, r.reopened, r.play)
                              for r in records], records)

    @classmethod
    def from_rows(cls, rows: Sequence[tuple[Any, ...]],
                  records: list[OpportunityRecord] | None = None) -> Stored:
        """From (customer_id, service_code, status, first_seen, closed_on, snoozed_until,
        reopened[, play]) tuples, dates as ``date``, ISO text (a SQLite store read raw) or
        None."""
        n = len(rows)
        cols = list(zip(*rows)) if n else [()] * 7
        ordinal: dict[Any, int] = {None: -1}

        def day_numbers(values: Sequence[Any]) -> np.ndarray:
            for v in set(values).difference(ordinal):
                ordinal[v] = (dt.date.fromisoformat(v[:10]) if isinstance(v, str)
                              else v).toordinal()
            return np.fromiter(map(ordinal.__getitem__, values), dtype=np.int64, count=n)

        status_of = {name: i for i, name in enumerate(STATUSES)}
        codes: dict[str, str] = {}  # one string object per service, not one per row
        service = np.empty(n, dtype=object)
        service[:] = list(map(codes.setdefault, cols[1], cols[1]))
        return cls(np.fromiter(cols[0], dtype=np.int64, count=n), service,
                   np.fromiter(map(status_of.__getitem__, cols[2]), dtype=np.int8, count=n),
                   day_numbers(cols[3]), day_numbers(cols[4]), day_numbers(cols[5]),
                   np.fromiter(cols[6], dtype=np.int64, count=n), records,
                   np.fromiter(map({p: _kind(p) for p in set(cols[7])}.__getitem__, cols[7]),
                               dtype=np.int8, count=n) if len(cols) > 7 else None)

    @classmethod
    def joined(cls, parts: Sequence[Stored]) -> Stored:
        """Parts read a batch at a time, as one."""
        if not parts:
            return cls.from_rows([])
        if len(parts) == 1:
            return parts[0]
        def column(name: str) -> np.ndarray:
            return np.concatenate([getattr(p, name) for p in parts])

        return cls(column("customer"), column("service"), column("status"), column("first_seen"),
                   column("closed_on"), column("snoozed_until"), column("reopened"), None,
                   np.concatenate([p.kinds() for p in parts]))

    def __len__(self) -> int:
        return len(self.customer)

    def active_keys(self) -> set[Key]:
        """(customer, service) of the records still new or open."""
        active = self.status <= 1  # NEW, OPEN
        return set(zip(self.customer[active].tolist(), self.service[active].tolist()))


@dataclass(slots=True)
class Closing:
    """An active opportunity not found tonight: how it closes."""

    customer_id: int
    service_code: str
    status: str  # won | withdrawn | lost
    closed_on: dt.date
    close_reason: str


_ROWS_AT_ONCE = 50_000


@dataclass
class LifecycleResult:
    """What one night changed.

    ``found`` is every opportunity found tonight (hidden ones included) with its ``status``
    (0 new, 1 open), ``first_seen`` (day number), ``closed_on`` (-1, or the day an active
    record kept), ``reopened`` (counts) and ``as_of``: its record is saved (``last_seen``
    moves). ``closings``: the records that close tonight. ``visible``: tonight's opportunities
    with ``status`` and ``age_days`` filled, in the order found, without those an override
    hides. ``counts``: ``new`` first seen tonight, ``reopened`` back after being won or closed
    (status new again), ``open`` seen before and still there (so new + reopened + open is the
    number found), ``won`` and ``closed`` closed tonight, ``hidden`` found but hidden by an
    override (they are in new, reopened or open too).
    """

    found: OpportunityFrame
    first_seen: np.ndarray
    closed_on: np.ndarray
    reopened: np.ndarray
    closings: list[Closing]
    visible: OpportunityFrame
    as_of: dt.date
    counts: dict[str, int] = field(default_factory=dict)
    stored: Stored | None = None

    def rows(self, day: Callable[[dt.date], Any] | None = None, dismissed: Any = False, *,
             ordered: bool = False) -> Iterator[tuple[Any, ...]]:
        """The found records as rows of the opportunities table, every column in table order
        (customer_id, service_code, customer_number, customer_name, branch, owner, status,
        priority, score, reason, first_seen, last_seen, closed_on, close_reason,
        snoozed_until, snooze_reason, snoozed_by, dismissed, reopened, play, p_win,
        expected_value); the overrides empty
        (an upsert leaves a stored row's own). ``day`` turns a date into what the driver takes
        and ``dismissed`` is False as it takes it: each distinct value converted once."""
        f = self.found
        order = (np.lexsort((f.column("service_code").astype(str), f.customer)) if ordered
                 else np.arange(len(f)))  # by key (customer, service): a B-tree appended to
        convert = day or (lambda d: d)
        days: dict[int, Any] = {-1: None}
        for n in set(self.first_seen.tolist()) | set(self.closed_on.tolist()):
            if n not in days:
                days[n] = convert(dt.date.fromordinal(n))
        columns = {name: f.column(name) for name in ("service_code", "priority", "score",
                                                      "reason", "play", "p_win",
                                                      "expected_value")}
        people = {name: f.people(name) for name in ("number", "name", "branch", "sales_rep")}
        today, none = convert(self.as_of), itertools.repeat(None)
        for start in range(0, len(order), _ROWS_AT_ONCE):  # lists of a slice, not of them all
            at = order[start:start + _ROWS_AT_ONCE]
            yield from zip(
                f.customer[at].tolist(), columns["service_code"][at].tolist(),
                people["number"][at].tolist(), people["name"][at].tolist(),
                people["branch"][at].tolist(), people["sales_rep"][at].tolist(),
                [STATUSES[s] for s in f.status[at].tolist()], columns["priority"][at].tolist(),
                columns["score"][at].tolist(), columns["reason"][at].tolist(),
                map(days.__getitem__, self.first_seen[at].tolist()), itertools.repeat(today),
                map(days.__getitem__, self.closed_on[at].tolist()), none, none, none, none,
                itertools.repeat(dismissed), self.reopened[at].tolist(),
                columns["play"][at].tolist(), columns["p_win"][at].tolist(),
                columns["expected_value"][at].tolist())

    @property
    def records(self) -> list[OpportunityRecord]:
        """The records to save as objects (tests and small callers; the run saves ``rows``):
        every one found tonight, then those that closed, with their overrides."""
        old: dict[Key, OpportunityRecord] = {}
        if self.stored is not None and self.stored.records is not None:
            old = {r.key: r for r in self.stored.records}
        out = []
        for row in self.rows():
            before = old.get((row[0], row[1]))
            record = OpportunityRecord(*row)  # every field, the overrides empty
            if before is not None:  # a stored record keeps its own
                record = dataclasses.replace(
                    record, snoozed_until=before.snoozed_until, snooze_reason=before.snooze_reason,
                    snoozed_by=before.snoozed_by, dismissed=before.dismissed)
            out.append(record)
        for c in self.closings:
            before = old.get((c.customer_id, c.service_code))
            if before is not None:
                out.append(dataclasses.replace(before, status=c.status, closed_on=c.closed_on,
                                               close_reason=c.close_reason))
        return out


def advance(stored: Mapping[Key, OpportunityRecord] | Stored,
            found: Sequence[Opportunity] | OpportunityFrame,
            services: Mapping[int, AbstractSet[str]], as_of: dt.date, *,
            appeared: Mapping[int, AbstractSet[str]] | None = None,
            causes: Mapping[Key, str] | None = None,
            covered: Mapping[Key, str] | None = None,
            running: Mapping[str, np.ndarray] | None = None,
            kept: Mapping[str, np.ndarray] | None = None) -> LifecycleResult:
    """Fold tonight's opportunities into the stored records.

    ``services`` maps every in-scope customer (active, not a prospect) to its services tonight:
    it tells a won opportunity (the service appeared) from one whose customer left the scope
    and from one whose condition merely cleared (e.g. its industry peers changed).
    ``appeared`` (the services tonight's values add, per customer), when given, is what a win
    needs: an offer to a customer who had the service all along (an uncovered machine on a
    copier customer) that is no longer found closed because its condition cleared (the
    machine was deactivated), not because a sale was made. ``causes``: the causes engine's
    sentence for each (customer, service) that appeared; given, a win needs one that names a
    sale, and an appearance it cannot explain is withdrawn, not won. ``covered``: the
    uncovered-machine offers whose machines were put on a contract line after the offer was
    made (``covered_since``: every closing one asked about, with what covered it, or "" for
    none): won; the others asked about are withdrawn as pulled. ``running``: service -> the
    sorted ids of the customers with a contract of it running tonight (``calls.renewal``),
    which closes a renewal call as won (renewed) or lost (not renewed); ``kept``: monitor code
    -> the sorted ids of the customers who bought what it watches in the last 90 days
    (``calls.monitor_calls``), which closes a monitor's call as won or lost.
    ``stored`` is not modified. Array work: a night's opportunities and the stored ones are
    matched by key in one sort, not one at a time.
    """
    old = Stored.of(stored)
    # a list is the caller's: its objects are copied, not given tonight's status
    frame = (found if isinstance(found, OpportunityFrame) else
             OpportunityFrame.of([dataclasses.replace(o) for o in found]))
    codes_now = frame.column("service_code")
    # one number per (customer, service): services numbered over both sides
    names = sorted(set(codes_now.tolist()) | set(old.service.tolist()))
    number = {c: i for i, c in enumerate(names)}
    width = max(len(names), 1)

    def keys(customer: np.ndarray, service: np.ndarray) -> np.ndarray:
        codes = np.fromiter(map(number.__getitem__, service.tolist()), dtype=np.int64,
                            count=len(service))
        return customer * width + codes

    mine = keys(frame.customer, codes_now)
    _, first = np.unique(mine, return_index=True)  # the same pair twice: the first counts
    if len(first) < len(frame):
        frame, mine = frame.take(np.sort(first)), mine[np.sort(first)]
    theirs = keys(old.customer, old.service)
    order = np.argsort(theirs, kind="stable")
    pos = np.searchsorted(theirs[order], mine)
    pos[pos >= len(theirs)] = 0
    at = order[pos] if len(theirs) else np.zeros(len(mine), np.int64)
    known = (theirs[at] == mine) if len(theirs) else np.zeros(len(mine), bool)

    def before(column: np.ndarray) -> np.ndarray:  # the stored value of each row's match
        return column[at] if len(column) else np.zeros(len(mine), column.dtype)

    active_before = known & (before(old.status) <= 1)
    reopened_now = known & ~active_before
    today = as_of.toordinal()
    status = np.where(active_before, 1, 0).astype(np.int8)
    first_seen = np.where(active_before, before(old.first_seen), today)
    closed_on = np.where(active_before, before(old.closed_on), -1)
    reopened = np.where(known, before(old.reopened), 0) + reopened_now
    snoozed = np.where(known, before(old.snoozed_until), -1)
    hidden = snoozed >= today
    age = np.where(closed_on >= 0, closed_on, today) - first_seen
    counts = dict.fromkeys((NEW, OPEN, WON, CLOSED, WITHDRAWN, LOST, "reopened", "hidden"), 0)
    counts[NEW] = int((~known).sum())
    counts[OPEN] = int(active_before.sum())
    counts["reopened"] = int(reopened_now.sum())
    counts["hidden"] = int(hidden.sum())
    found_now = frame.with_life(status, age)
    seen = np.zeros(len(theirs), dtype=bool)
    seen[at[known]] = True
    gone = ~seen & (old.status <= 1)
    by_kind = {1: (running, REASON_RENEWED, REASON_NOT_RENEWED),
               2: (kept, REASON_KEPT, REASON_NOT_KEPT)}
    closings = []
    for cid, code, kind in zip(old.customer[gone].tolist(), old.service[gone].tolist(),
                               old.kinds()[gone].tolist()):
        bought, won, lost = by_kind.get(kind, (None, "", ""))
        closings.append(_lost(cid, code, services, as_of, appeared, causes, covered)
                        if bought is None else
                        _bought_or_not(cid, code, services, as_of, bought, won, lost))
    for c in closings:
        counts[c.status] += 1
    return LifecycleResult(found=found_now, first_seen=first_seen, closed_on=closed_on,
                           reopened=reopened, closings=closings,
                           visible=found_now.take(~hidden), as_of=as_of, counts=counts,
                           stored=old)


def _lost(customer_id: int, code: str, services: Mapping[int, AbstractSet[str]],
          as_of: dt.date, appeared: Mapping[int, AbstractSet[str]] | None = None,
          causes: Mapping[Key, str] | None = None,
          covered: Mapping[Key, str] | None = None) -> Closing:
    """An active opportunity not found tonight closes: won by a named sale (or its machines
    put on a contract line), else withdrawn with the cause its reason vanished."""
    have = services.get(customer_id)
    new = appeared is None or code in appeared.get(customer_id, ())
    if have is None:
        return Closing(customer_id, code, WITHDRAWN, as_of, REASON_OUT_OF_SCOPE)
    if code in have and new:
        if causes is None:
            return Closing(customer_id, code, WON, as_of, REASON_WON)
        cause = causes.get((customer_id, code), "")
        if cause and not any(word in cause for word in _UNNAMED):
            return Closing(customer_id, code, WON, as_of, f"{REASON_WON}: {cause}"[:128])
        return Closing(customer_id, code, WITHDRAWN, as_of,
                       f"{REASON_WON} with no sale named{': ' + cause if cause else ''}"[:128])
    line = (covered or {}).get((customer_id, code))
    if code in have and line is not None:  # an uncovered-machine offer, its lines looked at
        if line:
            return Closing(customer_id, code, WON, as_of, f"{REASON_COVERED}: {line}"[:128])
        return Closing(customer_id, code, WITHDRAWN, as_of, REASON_PULLED)
    return Closing(customer_id, code, WITHDRAWN, as_of, REASON_GONE if code in have
                   else REASON_CLEARED)


def _bought_or_not(customer_id: int, code: str, services: Mapping[int, AbstractSet[str]],
                   as_of: dt.date, bought: Mapping[str, np.ndarray], won: str, lost: str
                   ) -> Closing:
    """A renewal or monitor call no longer found: won when the customer is among ``bought``
    for its code (a contract of the service runs; it bought what the monitor watches), else
    lost."""
    if customer_id not in services:
        return Closing(customer_id, code, WITHDRAWN, as_of, REASON_OUT_OF_SCOPE)
    if code not in bought:  # its monitor or renewable service is no longer in the rules
        return Closing(customer_id, code, WITHDRAWN, as_of, REASON_RULE_GONE)
    ids = bought[code]
    at = int(np.searchsorted(ids, customer_id))
    if at < len(ids) and int(ids[at]) == customer_id:
        return Closing(customer_id, code, WON, as_of, won)
    return Closing(customer_id, code, LOST, as_of, lost)


def _kind(play: str | None) -> int:
    """A stored play's kind of call (``Stored.kinds``)."""
    return 1 if play == RENEWAL else 2 if is_monitor_play(play) else 0


def closing(stored: Stored, found: Sequence[Opportunity] | OpportunityFrame,
            codes: AbstractSet[str]) -> dict[Key, dt.date]:
    """The active records of these services not found tonight (they close tonight), with the
    day each was first seen: what ``covered_since`` asks the ERP about."""
    if not codes or not len(stored):
        return {}
    mine = (stored.status <= 1) & np.isin(stored.service, list(codes))
    if not mine.any():
        return {}
    now = frame_keys(found, codes)
    return {(c, s): dt.date.fromordinal(f) for c, s, f in zip(
        stored.customer[mine].tolist(), stored.service[mine].tolist(),
        stored.first_seen[mine].tolist()) if (c, s) not in now}


def frame_keys(found: Sequence[Opportunity] | OpportunityFrame, codes: AbstractSet[str]
               ) -> set[Key]:
    """(customer, service) of tonight's opportunities of these services."""
    if not len(found):
        return set()
    if not isinstance(found, OpportunityFrame):
        return {(o.customer_id, o.service_code) for o in found if o.service_code in codes}
    service = found.column("service_code")
    rows = np.flatnonzero(np.isin(service, list(codes)))
    return set(zip(found.customer[rows].tolist(), service[rows].tolist()))


def covered_since(asked: Mapping[Key, dt.date],
                  lines: Sequence[tuple[int, int | None, int, dt.date | None, dt.date | None]]
                  ) -> dict[Key, str]:
    """Of the closing uncovered-machine offers ``asked`` (with the day each was first seen),
    each with what put its machines on a contract line on or after that day ("" for none).

    ``lines``: (site, its parent, machine, line start, install date) of the machines of the
    rule's categories on a contract line live tonight (``erp.lines``); a site counts for its
    own offers, else for its parent's. A machine installed after the offer was made is a new
    machine, not one the offer was about; a machine pulled has no live line."""
    days: dict[int, list[tuple[str, dt.date]]] = {}
    for (cid, code), first in asked.items():
        days.setdefault(cid, []).append((code, first))
    starts: dict[Key, dict[int, dt.date]] = {}
    for site, parent, machine, start, installed in lines:
        owner = site if site in days else parent
        if owner is None:
            continue
        for code, first in days.get(owner, []):
            if start is not None and start >= first and (installed is None or installed <= first):
                mine = starts.setdefault((owner, code), {})
                mine[machine] = max(start, mine.get(machine, start))
    out = dict.fromkeys(asked, "")
    for key, machines in starts.items():
        low, high = min(machines.values()), max(machines.values())
        when = f"from {low.isoformat()}" if low == high else (
            f"from {low.isoformat()} to {high.isoformat()}")
        n = len(machines)
        out[key] = f"{n} machine{'s' if n != 1 else ''}, {'lines' if n != 1 else 'line'} {when}"
    return out
