"""Who to call first: industry gaps, status monitors and priority rules, in one place.

The nightly run, ``export opportunities`` and ``explain`` must agree on the list, so the three
steps are composed here once. Pure: facts and classification in, opportunities and alerts out.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..engine.classify import Classification
from ..engine.metrics import Extra
from ..model import Facts, Opportunity, StatusAlert
from ..rules import RuleSet
from ..rules.texts import names_contact
from . import alertlife, cross_sell, monitor_calls, monitors, priority, ranking, renewal
from .cross_sell import CrossSellColumns
from .frame import OpportunityFrame
from .opportunities import find
from .rates import Rates
from .wonlost import MONTHS, ValueColumns

ALERTS_PER_MONITOR_AND_BRANCH = 200  # texts rendered; hits and counts stay complete


def extras(rules: RuleSet) -> list[Extra]:
    """The extra columns monitors and priority rules need, for ``read_facts(extra=...)``."""
    # contract values first, as night.compute and check --show-sql put them (same SQL text)
    values = [ValueColumns(rules)] if rules.opportunities is not None else []
    fleet = [ranking.FleetColumns()] if rules.opportunities is not None else []
    return [*values, monitors.MonitorColumns(rules), priority.PriorityColumns(rules),
            CrossSellColumns(rules), *fleet, renewal.RenewalColumns(rules),
            monitor_calls.FollowColumns(rules)]


@dataclass(frozen=True, slots=True)
class Listing:
    """What tonight's digest will show, known before the night is computed.

    ``seen``: the alerts' first-seen dates kept from earlier nights (state store), so new hits
    are rendered first and marked new. ``sales_reps``/``branches``: the digest copies that list
    each opportunity and alert with the contact to call; their listed customers' contacts are
    read with the alerts' in the one contacts statement. ``top``: opportunities per copy;
    ``hidden``: (customer id, service code) of opportunities a snooze or dismiss hides.
    ``renewals_days``: read the contracts expiring within that many days (0: do not).
    """

    seen: Mapping[alertlife.Key, dt.date] = field(default_factory=dict)
    sales_reps: frozenset[str] = frozenset()
    branches: frozenset[str] = frozenset()
    top: int = 0
    hidden: frozenset[tuple[int, str]] = frozenset()
    renewals_days: int = 0
    alert_contacts: bool = False  # every alert carries its contact (the alerts export)

    def contacts_for_alerts(self, rules: RuleSet) -> bool:
        """Whether the alerts' contacts are read: a monitor text shows one, a rep or branch
        copy prints whom to call, or the caller lists them (the alerts export). Otherwise the
        contacts table is not read at all (and need not exist)."""
        return (self.alert_contacts or bool(self.sales_reps or self.branches)
                or bool(monitors_naming_contacts(rules)))


def monitors_naming_contacts(rules: RuleSet) -> list[str]:
    """The monitors whose text shows the customer's contact ({{ contact }}, phone, email)."""
    return [m.code for m in rules.monitors if names_contact(m.text)]


@dataclass(slots=True)
class Calls:
    opportunities: OpportunityFrame  # most urgent first (a Sequence of Opportunity)
    alerts: list[StatusAlert] = field(default_factory=list)
    alert_counts: dict[str, int] = field(default_factory=dict)  # monitor code -> customers hit
    notes: list[str] = field(default_factory=list)
    alert_life: alertlife.AlertLife | None = None  # every hit's first-seen date (None: no monitors)
    alert_monitors: list[dict[str, Any]] = field(default_factory=list)  # alertlife.summary


def who_to_call(facts: Facts, classification: Classification, rules: RuleSet,
                contacts: Mapping[int, monitors.Contact]
                | Callable[[set[int]], Mapping[int, monitors.Contact]], *,
                alert_limit: int | None = ALERTS_PER_MONITOR_AND_BRANCH,
                listing: Listing | None = None, rates: Rates | None = None) -> Calls:
    """Tonight's opportunities, prioritised, and the status alerts behind them (texts rendered
    for at most ``alert_limit`` customers per monitor and branch; None: all, for an export).

    The contacts are asked for once, for the alerted customers and the opportunities the
    ``listing``'s rep and branch copies list (capped), so the statement count stays constant.
    """
    listing = listing or Listing()
    index = facts.metrics.compiled.index_of if facts.metrics is not None else {}
    hits: dict[int, tuple[str, ...]] = {}
    out = Calls(opportunities=OpportunityFrame.empty(facts.customers))
    chosen = None
    if rules.monitors:
        chosen = monitors.select(rules, index, facts.codes, classification.services,
                                 classification.rolled, facts.customers, limit=alert_limit,
                                 seen=listing.seen)
        hits, out.alert_counts = chosen.result.hits, dict(chosen.result.counts)
        if chosen.result.note:
            out.notes.append(chosen.result.note)
    tiers = priority.tiers(rules, index, facts.codes, classification.services,
                           classification.rolled)
    counts = cross_sell.units(rules, index, facts.codes, classification.rolled)
    if counts is None:
        out.notes.append("cross-sell rules with an equipment condition were skipped tonight: "
                         "the rules could not be computed as numbers (see the run log)")
    found = offers(facts, classification, rules, tiers, counts, hits)
    found = ranking.ranked(ranking.scored(
        found, rates or Rates(), classification.services, tiers,
        {**rules.service_names(), **{m.code: m.name for m in rules.monitors}},
        ranking.fleets(facts, classification.rolled, list(classification.services))))
    out.opportunities = found
    listed = listed_rows(found, listing)
    alerted = chosen.wanted if chosen is not None and listing.contacts_for_alerts(rules) else set()
    wanted = alerted | set(found.customer[listed].tolist())
    book = (contacts(wanted) if wanted else {}) if callable(contacts) else contacts
    for i in listed.tolist():
        person = book.get(int(found.customer[i]))
        if person is not None:
            found.set_contact(i, person.name, person.phone, person.email)
    if chosen is not None:
        out.alerts = monitors.render_alerts(chosen, facts.customers, book).alerts
        life = alertlife.advance(listing.seen, hits, facts.as_of)
        alertlife.mark(out.alerts, life, facts.as_of)
        out.alert_life = life
        out.alert_monitors = alertlife.summary(life, rules.monitors, facts.customers,
                                               len(classification.services))
        out.notes += monitors.noisy(rules.monitors, out.alert_counts,
                                    len(classification.services))
    return out


def offers(facts: Facts, classification: Classification, rules: RuleSet,
           tiers: Mapping[int, str], counts: Mapping[int, np.ndarray] | None,
           hits: Mapping[int, tuple[str, ...]]) -> OpportunityFrame:
    """Every opportunity with the priority rules applied, in the static order (priority,
    score, value): what the night ranks, and what the backtest compares its ranking with."""
    index = facts.metrics.compiled.index_of if facts.metrics is not None else {}
    found = find(facts, classification, rules, tiers=tiers, ordered=rules.priority is None,
                 values=annual_by_service(rules, facts, classification), units=counts,
                 renewals=renewal.counts(rules, index, facts.codes, classification.rolled),
                 monitored=monitor_calls.hits(rules, index, facts.codes, classification.rolled))
    if rules.priority is not None and found:
        found = priority.apply(
            rules, found, tiers,
            priority.renewals(rules, index, facts.codes, classification.services,
                              classification.rolled),
            hits)
    return found


def annual_by_service(rules: RuleSet, facts: Facts, classification: Classification
                      ) -> dict[str, np.ndarray]:
    """Service code -> each in-scope customer's annual contract value for it (12 x the monthly
    base rate of its matching contracts, rolled up), in ``classification.services`` order; {}
    when the facts carry no numbers."""
    rolled = classification.rolled
    if rules.opportunities is None or rolled is None:
        return {}
    try:
        pos = ValueColumns(rules).positions(facts)
    except KeyError:  # read without the value columns (a caller's own extras)
        return {}
    return {code: np.maximum(rolled[:, j], 0.0) * MONTHS for code, j in pos.items()}


def listed_opportunities(found: Sequence[Opportunity], listing: Listing) -> list[Opportunity]:
    """The opportunities a rep or branch copy of the digest lists: each copy's first ``top``
    that no override hides (``found`` is most urgent first)."""
    frame = OpportunityFrame.of(found)
    return [frame[i] for i in listed_rows(frame, listing).tolist()]


def listed_rows(found: OpportunityFrame, listing: Listing) -> np.ndarray:
    """The rows of ``listed_opportunities``, in order: a row is listed when it is among the
    first ``top`` not hidden of its sales rep's copy or of its branch's copy."""
    if not listing.top or not (listing.sales_reps or listing.branches) or not len(found):
        return np.zeros(0, dtype=np.int64)
    shown = np.ones(len(found), dtype=bool)
    if listing.hidden:
        codes = found.column("service_code").tolist()
        shown = np.fromiter(((c, s) not in listing.hidden
                             for c, s in zip(found.customer.tolist(), codes)),
                            dtype=bool, count=len(found))
    listed = np.zeros(len(found), dtype=bool)
    for attribute, copies in (("sales_rep", listing.sales_reps), ("branch", listing.branches)):
        if copies:
            listed |= _first_of_each(found.people(attribute), copies, shown, listing.top)
    return np.flatnonzero(listed)


def _first_of_each(values: np.ndarray, copies: frozenset[str], shown: np.ndarray,
                   top: int) -> np.ndarray:
    """Rows among the first ``top`` shown rows of their value, for the values in ``copies``."""
    group_of: dict[str, int] = {}
    group = np.fromiter((group_of.setdefault(v or "", len(group_of)) if (v or "") in copies
                         else -1 for v in values.tolist()), dtype=np.int64, count=len(values))
    rows = np.flatnonzero(shown & (group >= 0))
    g = group[rows]
    order = np.argsort(g, kind="stable")
    sorted_g = g[order]
    starts = np.r_[0, np.flatnonzero(sorted_g[1:] != sorted_g[:-1]) + 1] if len(g) else g
    run_start = np.repeat(starts, np.diff(np.r_[starts, len(g)])) if len(g) else g
    rank = np.empty(len(g), dtype=np.int64)
    rank[order] = np.arange(len(g)) - run_start
    out = np.zeros(len(values), dtype=bool)
    out[rows[rank < top]] = True
    return out