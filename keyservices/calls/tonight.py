"""Who to call first: industry gaps, status monitors and priority rules, in one place.

The nightly run, ``export opportunities`` and ``explain`` must agree on the list, so the three
steps are composed here once. Pure: facts and classification in, opportunities and alerts out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..engine.classify import Classification
from ..engine.metrics import Extra
from ..model import Facts, Opportunity, StatusAlert
from ..rules import RuleSet
from . import monitors, priority
from .opportunities import find

ALERTS_PER_MONITOR_AND_BRANCH = 200  # texts rendered; hits and counts stay complete


def extras(rules: RuleSet) -> list[Extra]:
    """The extra columns monitors and priority rules need, for ``read_facts(extra=...)``."""
    return [monitors.MonitorColumns(rules), priority.PriorityColumns(rules)]


@dataclass(slots=True)
class Calls:
    opportunities: list[Opportunity]  # most urgent first
    alerts: list[StatusAlert] = field(default_factory=list)
    alert_counts: dict[str, int] = field(default_factory=dict)  # monitor code -> customers hit
    notes: list[str] = field(default_factory=list)


def who_to_call(facts: Facts, classification: Classification, rules: RuleSet,
                contacts: Mapping[int, monitors.Contact]
                | Callable[[set[int]], Mapping[int, monitors.Contact]], *,
                alert_limit: int | None = ALERTS_PER_MONITOR_AND_BRANCH) -> Calls:
    """Tonight's opportunities, prioritised, and the status alerts behind them (texts rendered
    for at most ``alert_limit`` customers per monitor and branch; None: all, for an export)."""
    index = facts.metrics.compiled.index_of if facts.metrics is not None else {}
    hits: dict[int, tuple[str, ...]] = {}
    out = Calls(opportunities=[])
    if rules.monitors:
        result = monitors.evaluate(rules, index, facts.codes, classification.services,
                                   classification.rolled, facts.customers, contacts,
                                   limit=alert_limit)
        hits, out.alerts, out.alert_counts = result.hits, result.alerts, dict(result.counts)
        if result.note:
            out.notes.append(result.note)
    found = find(facts, classification, rules, ordered=rules.priority is None)
    if rules.priority is not None and found:
        found = priority.apply(
            rules, found,
            priority.tiers(rules, index, facts.codes, classification.services,
                           classification.rolled),
            priority.renewals(rules, index, facts.codes, classification.services,
                              classification.rolled),
            hits, in_place=True)  # ``found`` is this function's own fresh list
    out.opportunities = found
    return out
