"""The monitor plays: a status monitor's hit as a call on the one expected-value scale.

A monitor (``monitors:``) watches business a customer may be about to stop: revenue on some
accounts, invoices, contracts of some codes. Each hit is a call, play ``monitor:<code>``, about
the monitor (its code stands where a service code stands, its name where the service's). It
is judged the same way everywhere, by what the monitor watches:

* **won** when the customer still buys it: in the 90 days after the call, revenue on the
  monitor's accounts or an invoice (for its ``revenue`` and ``invoices`` counters), or a
  contract of its codes running 90 days on (``contracts_expiring``);
* the backtest labels a past call so (``calls.backtest``); a night closes a monitor call that
  no longer fires as won when the customer bought it in the last 90 days, else as *lost*
  (``calls.lifecycle``).

Its value is what the monitor watches over a year: the largest of its revenue counters, scaled
from its period to 365 days (none without one: the call is valued at the median, and ranks by
its chance).

Pure: numpy and the rule models; no SQLAlchemy, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from ..engine.classify import Classification
from ..engine.metrics import Codes, Column, contracts_matching, gl_revenue, invoices_within
from ..model import Facts
from ..rules import Criterion, Monitor, RuleSet
from .monitors import (
    EPS,
    MonitorColumns,
    criterion_accounts,
    criterion_column,
    criterion_globs,
    matches,
)

PREFIX = "monitor:"
HORIZON = 90  # days the follow-up counters look back (p_win's horizon)
PRIORITY = "Medium"  # a monitor without its own priority
VALUE_BASIS = "the revenue it watches over a year, to two digits"


def play_of(monitor: Monitor) -> str:
    return f"{PREFIX}{monitor.code}"


def is_monitor_play(play: str | None) -> bool:
    return bool(play) and str(play).startswith(PREFIX)


def follow_column(rules: RuleSet, codes: Codes, crit: Criterion) -> Column:
    """What a criterion watches, over the 90 days after a call (read on the later date)."""
    if crit.counter == "invoices":
        return invoices_within(HORIZON)
    if crit.counter == "revenue":
        return gl_revenue(codes, criterion_accounts(rules, crit), HORIZON)
    return contracts_matching(codes, criterion_globs(rules, crit))


class FollowColumns(MonitorColumns):
    """The monitors' follow-up columns (``follow_column`` for each criterion); pass to
    ``read_facts(extra=[...])`` beside ``monitors.MonitorColumns``."""

    def column(self, codes: Codes, crit: Criterion) -> Column:
        return follow_column(self.rules, codes, crit)


Index = Callable[[Column], int] | Mapping[Column, int]


def _finder(index: Index) -> Callable[[Column], int]:
    return index.__getitem__ if isinstance(index, Mapping) else index


def hits(rules: RuleSet, index: Index, codes: Codes, rolled: np.ndarray | None
         ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Monitor code -> (the rows it hits, each one's annual value or NaN), in the rolled-up
    array's order; {} when the facts carry no monitor counters."""
    if rolled is None or not rules.monitors:
        return {}
    find = _finder(index)
    out = {}
    try:
        for mon in rules.monitors:
            values = rolled[:, [find(criterion_column(rules, codes, c)) for c in mon.criteria]]
            rows = np.flatnonzero(matches(mon, values))
            yearly = np.full(len(rows), np.nan)
            for j, crit in enumerate(mon.criteria):
                if crit.counter == "revenue":
                    scaled = values[rows, j] * (365 / crit.period)
                    yearly = np.where(scaled > EPS, np.fmax(yearly, scaled), yearly)
            out[mon.code] = (rows, yearly)
    except KeyError:
        return {}
    return out


def kept(rules: RuleSet, index: Index, codes: Codes, rolled: np.ndarray | None,
         ids: Sequence[int] | np.ndarray) -> dict[str, np.ndarray]:
    """Monitor code -> the sorted ids of the customers who bought what it watches in the last
    90 days (judging); {} without the follow-up columns."""
    if rolled is None or not rules.monitors:
        return {}
    find = _finder(index)
    ids = np.asarray(ids, dtype=np.int64)
    out = {}
    try:
        for mon in rules.monitors:
            cols = [find(follow_column(rules, codes, c)) for c in mon.criteria]
            out[mon.code] = np.sort(ids[(rolled[:, cols] > EPS).any(axis=1)])
    except KeyError:
        return {}
    return out


def kept_tonight(facts: Facts, classification: Classification, rules: RuleSet
                 ) -> dict[str, np.ndarray] | None:
    """``kept`` for the night's classification (what closes its monitor calls); None when
    there are no monitors."""
    if not rules.monitors:
        return None
    index = facts.metrics.compiled.index_of if facts.metrics is not None else {}
    return kept(rules, index, facts.codes, classification.rolled, list(classification.services))


def reason(monitor: Monitor) -> str:
    return f"status monitor: {monitor.name}"


__all__ = ["HORIZON", "PREFIX", "PRIORITY", "VALUE_BASIS", "FollowColumns", "follow_column",
           "hits", "is_monitor_play", "kept", "kept_tonight", "play_of", "reason"]
