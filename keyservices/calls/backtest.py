"""The backtest: the call list as it would have been on past dates, against what was won.

For as-of dates 30 days apart, the list is rebuilt from the facts as they stood on each date
(``erp.history``) with tonight's rules, and each offer is judged by the facts 90 days later:

* an offer of a service the customer lacked is *won* when the customer uses the service 90
  days on (its contract started, its machines or items were sold, its revenue came in, as the
  rules define the service);
* an offer of a service contract for machines on none (``uncovered_machines``) is won when
  fewer of the rule's machines are on no contract 90 days on (one was put on a contract).
  The dated history keeps no removal date (a machine inactive today is gone on every date),
  so the count falls only when a contract line (or the contract it is on) starts covering a
  machine: the night's rule for such an offer (``calls.lifecycle.covered_since``: won when a
  line started since the offer covers a machine it was about, withdrawn when it was pulled).
* a renewal call (every contract of a service the customer has ends within the window) is won
  when the customer has a contract of the service running 90 days on (``calls.renewal``);
* a status monitor's hit (``monitor:<code>``) is won when the customer bought what the monitor
  watches in the 90 days after it (``calls.monitor_calls``).

The rates a date is ranked with are learned only from offers whose 90 days had passed by that
date, so a date's list never uses what happened after it. Reported per play and overall: the
precision of the top 25 and 100 (the share of them won), its lift over a random order and over
the static priority order, the annual value the top 25 won, and calibration (predicted rate
against what happened, by tenth of the predicted rate).

Pure: numpy, the engine and the calls; the facts come in.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..engine.classify import Classification, classify
from ..model import Facts
from ..rules import RuleSet
from . import cross_sell, monitor_calls, priority, ranking, renewal, tonight
from .rates import Cell, Rates

STEP_DAYS = 30
HORIZON_DAYS = 90
TOPS = (25, 100)


def as_of_dates(day: dt.date, months: int) -> list[dt.date]:
    """The dates to rebuild, oldest first: ``months`` as-of dates 30 days apart whose 90 days
    have passed by ``day``, and the dates their outcomes are read on (up to ``day``)."""
    steps = months + HORIZON_DAYS // STEP_DAYS
    return [day - dt.timedelta(days=STEP_DAYS * k) for k in range(steps - 1, -1, -1)]


@dataclass
class Trials:
    """The offers of one as-of date and what became of them, as columns."""

    as_of: dt.date
    cells: list[Cell]
    at: np.ndarray  # each offer's cell
    value: np.ndarray  # estimated annual value (0: none)
    won: np.ndarray  # bool
    static: np.ndarray  # the offers in the static priority order (positions)
    customer: np.ndarray  # each offer's customer id

    def counts(self) -> list[tuple[Cell, int, int]]:
        """(cell, offered, won) for learning."""
        n = np.bincount(self.at, minlength=len(self.cells))
        w = np.bincount(self.at, weights=self.won.astype(np.float64), minlength=len(self.cells))
        return [(c, int(a), int(b)) for c, a, b in zip(self.cells, n.tolist(), w.tolist()) if a]


@dataclass
class Pending:
    """One as-of date's list, waiting for the date 90 days on to judge it: what judging needs
    of the date itself, kept once its facts are let go (memory stays with a few dates)."""

    trials: Trials
    codes: list[str]  # each offer's service code
    uncovered_rows: np.ndarray  # offers of the uncovered_machines play
    services: Mapping[int, frozenset[str]]  # the services each customer used on the date
    bare: dict[int, float]  # machines on no contract, per customer (uncovered_machines)
    renewal_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    # service -> sorted ids of the customers with a contract of it running (renewal)
    running: Mapping[str, np.ndarray] = field(default_factory=dict)
    monitor_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    # monitor code -> sorted ids of the customers who bought what it watches (monitor plays)
    kept: Mapping[str, np.ndarray] = field(default_factory=dict)
    _sets: tuple[np.ndarray, np.ndarray, list[frozenset[str]]] | None = field(
        default=None, repr=False)

    def users(self, codes: set[str]) -> dict[str, np.ndarray]:
        """Service code -> the ids of the customers using it on the date, worked out per
        distinct set of services (a few hundred), not per customer and offer; the sets are
        found once per date (a date is judged on, and judges an earlier one)."""
        if self._sets is None:
            ids = np.fromiter(self.services.keys(), dtype=np.int64, count=len(self.services))
            distinct: dict[frozenset[str], int] = {}
            at = np.fromiter((distinct.setdefault(v, len(distinct))
                              for v in self.services.values()),
                             dtype=np.int64, count=len(self.services))
            self._sets = ids, at, list(distinct)
        ids, at, sets = self._sets
        return {code: ids[np.array([code in used for used in sets], dtype=bool)[at]]
                if sets else ids for code in codes}


def prepare(facts: Facts, rules: RuleSet, offers: bool = True) -> Pending:
    """The list as of ``facts.as_of`` (its facts may be let go afterwards); without
    ``offers``, only what judging an earlier date needs of this one."""
    now = classify(facts, rules)
    index = facts.metrics.compiled.index_of if facts.metrics is not None else {}
    running = renewal.running(renewal.counts(rules, index, facts.codes, now.rolled),
                              list(now.services))
    kept = monitor_calls.kept(rules, index, facts.codes, now.rolled, list(now.services))
    if not offers:
        return Pending(Trials(facts.as_of, [], np.zeros(0, np.int64), np.zeros(0),
                              np.zeros(0, bool), np.zeros(0, np.int64), np.zeros(0, np.int64)),
                       [], np.zeros(0, np.int64), now.services,
                       _uncovered_units(rules, facts, now), running=running, kept=kept)
    tiers = priority.tiers(rules, index, facts.codes, now.services, now.rolled)
    units = cross_sell.units(rules, index, facts.codes, now.rolled)
    found = tonight.offers(facts, now, rules, tiers, units, {})
    cells, at = ranking.cells(found, now.services, tiers,
                              ranking.fleets(facts, now.rolled, list(now.services)))
    value = np.array([o.estimated_annual_value or 0.0 for o in found.offers],
                     dtype=np.float64)[found.offer] if len(found) else np.zeros(0)
    plays = found.column("play") if len(found) else np.zeros(0, dtype=object)
    uncovered = np.flatnonzero(plays == "uncovered_machines")
    out = Trials(facts.as_of, cells, at, value, np.zeros(len(found), dtype=bool),
                 np.arange(len(found)), found.customer)
    return Pending(out, found.column("service_code").tolist() if len(found) else [],
                   uncovered, now.services, _uncovered_units(rules, facts, now),
                   np.flatnonzero(plays == renewal.RENEWAL), running,
                   np.flatnonzero(np.array([monitor_calls.is_monitor_play(o.play)
                                            for o in found.offers], dtype=bool)[found.offer]),
                   kept)


def judge(pending: Pending, later: Pending) -> Trials:
    """Each offer of the pending date won or not, by the date 90 days on."""
    tr = pending.trials
    codes = np.asarray(pending.codes, dtype=object)
    wanted = set(pending.codes)
    had, has = pending.users(wanted), later.users(wanted)
    tr.won = np.zeros(len(codes), dtype=bool)
    for code in wanted:  # used 90 days on, not on the date
        mine = np.flatnonzero(codes == code)
        tr.won[mine] = (np.isin(tr.customer[mine], has[code])
                        & ~np.isin(tr.customer[mine], had[code]))
    if len(pending.uncovered_rows):
        rows = pending.uncovered_rows
        tr.won[rows] = np.fromiter(
            (later.bare.get(c, 0.0) < pending.bare.get(c, 0.0)
             for c in tr.customer[rows].tolist()), dtype=bool, count=len(rows))
    # renewed: a contract of the service runs 90 days on; a monitor's: the customer bought
    # what it watches in those 90 days
    for rows, bought in ((pending.renewal_rows, later.running),
                         (pending.monitor_rows, later.kept)):
        codes = np.asarray(pending.codes, dtype=object)[rows]
        for code in set(codes.tolist()):
            mine = rows[codes == code]
            tr.won[mine] = np.isin(tr.customer[mine], bought.get(code, np.zeros(0, np.int64)))
    return tr


def _uncovered_units(rules: RuleSet, facts: Facts, c: Classification) -> dict[int, float]:
    """Customer id -> machines on no contract (the uncovered_machines rules' count; customers
    with none are left out)."""
    plays = [r for r, rule in enumerate(rules.cross_sell)
             if cross_sell.play_of(rule) == "uncovered_machines"]
    if not plays:
        return {}
    index = facts.metrics.compiled.index_of if facts.metrics is not None else {}
    counts = cross_sell.units(rules, index, facts.codes, c.rolled) or {}
    ids = np.fromiter(c.services, dtype=np.int64, count=len(c.services))
    total = np.zeros(len(ids))
    for r in plays:
        if r in counts:
            total = np.maximum(total, counts[r])
    some = np.flatnonzero(total > 0)
    return dict(zip(ids[some].tolist(), total[some].tolist()))


@dataclass
class Score:
    """How one list did (a play's, or all), averaged over the as-of dates."""

    play: str
    offers: int = 0
    won: int = 0
    precision: dict[int, float] = field(default_factory=dict)  # top k -> share won
    static: dict[int, float] = field(default_factory=dict)  # the static order's
    value_won_top25: float = 0.0  # annual value won by the top 25, summed over the dates

    @property
    def base_rate(self) -> float:
        """A random order's precision: the share of all offers won."""
        return self.won / self.offers if self.offers else 0.0

    def lift(self, k: int) -> float | None:
        return self.precision[k] / self.base_rate if self.base_rate else None

    def lift_static(self, k: int) -> float | None:
        s = self.static.get(k)
        return self.precision[k] / s if s else None

    def to_dict(self) -> dict[str, Any]:
        """Plain, rounded numbers: what ``--json`` prints and the state store keeps for the
        report's chart (one shape for both, so they never disagree)."""
        return {"play": self.play, "offers": self.offers, "won": self.won,
                "random": round(self.base_rate, 4),
                **{f"precision_at_{k}": round(v, 4) for k, v in self.precision.items()},
                **{f"static_at_{k}": round(v, 4) for k, v in self.static.items()},
                **{f"lift_random_at_{k}": _r(self.lift(k)) for k in self.precision},
                **{f"lift_static_at_{k}": _r(self.lift_static(k)) for k in self.precision},
                "annual_value_won_top_25": round(self.value_won_top25, 2)}


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


@dataclass
class Backtest:
    """The result: scores per play and overall, calibration, the learned rates."""

    dates: list[dt.date]  # as-of dates scored (those with history to learn from)
    overall: Score
    plays: list[Score]
    calibration: list[tuple[float, float, int]]  # (predicted, observed, offers) per tenth
    rates: Rates  # learned from every as-of date (what the night ranks with)
    limits: list[str] = field(default_factory=list)
    # per scored date: its offers, their learned p_win and expected value (``keep=True``)
    scored: list[tuple[Trials, np.ndarray, np.ndarray]] = field(default_factory=list)

    def summary(self, as_of: dt.date, months: int) -> dict[str, Any]:
        """The scores as plain data: per play and overall, calibration by tenth, the dates.
        ``backtest --json`` prints it; the state store keeps it for ``report``'s chart."""
        return {"as_of": as_of.isoformat(), "months": months,
                "dates": [d.isoformat() for d in self.dates],
                "overall": self.overall.to_dict(), "plays": [s.to_dict() for s in self.plays],
                "calibration": [{"predicted": round(p, 4), "observed": round(o, 4),
                                 "offers": n} for p, o, n in self.calibration]}


def run_backtest(history: Iterable[Facts], rules: RuleSet, *, limits: Sequence[str] = (),
                 names: Mapping[str, str] | None = None, keep: bool = False,
                 last: dt.date | None = None) -> Backtest:
    """Score the learned ranking on every as-of date with history before it. ``history``:
    the facts on each date, oldest first, 30 days apart; each is let go once its list is
    made, so memory holds a few dates' lists, not every date's facts. ``last``: the latest
    date; the dates within 90 days of it only judge earlier ones (no list of their own)."""
    step = HORIZON_DAYS // STEP_DAYS
    pending: deque[Pending] = deque()
    judged: list[Trials] = []
    learned_on = None
    for facts in history:
        learned_on = facts.as_of
        made = prepare(facts, rules, offers=last is None or
                       facts.as_of + dt.timedelta(days=HORIZON_DAYS) <= last)
        if facts.metrics is not None:
            facts.metrics.release()
        if len(pending) == step:
            judged.append(judge(pending.popleft(), made))
        pending.append(made)
    rates = Rates.learn((t for tr in judged for t in tr.counts()),
                        first=judged[0].as_of if judged else None,
                        last=judged[-1].as_of if judged else None, learned_on=learned_on)
    scored: list[tuple[Trials, np.ndarray, np.ndarray]] = []  # trials, p, expected value
    for i, tr in enumerate(judged):
        known = [t for t in judged[:i] if t.as_of + dt.timedelta(days=HORIZON_DAYS) <= tr.as_of]
        if not known or not len(tr.at):
            continue
        r = Rates.learn((c for t in known for c in t.counts()), first=known[0].as_of,
                        last=known[-1].as_of)
        p = np.array([r.p(c) for c in tr.cells])[tr.at]
        neutral = ranking.neutral_value(tr.value)
        scored.append((tr, p, p * np.where(tr.value > 0, tr.value, neutral)))
    plays = sorted({c[0] for tr, _, _ in scored for c in tr.cells})
    overall = _score("all plays", scored, None)
    return Backtest([tr.as_of for tr, _, _ in scored], overall,
                    [_score(play, scored, play) for play in plays], _calibration(scored),
                    rates, list(limits), scored if keep else [])


def _score(play: str, scored: Sequence[tuple[Trials, np.ndarray, np.ndarray]],
           only: str | None) -> Score:
    out = Score(play)
    sums: dict[str, dict[int, float]] = {"p": {}, "s": {}}
    dates = 0
    for tr, _, ev in scored:
        mask = np.ones(len(tr.at), dtype=bool) if only is None else \
            np.array([c[0] == only for c in tr.cells], dtype=bool)[tr.at]
        rows = np.flatnonzero(mask)
        if not len(rows):
            continue
        dates += 1
        out.offers += len(rows)
        out.won += int(tr.won[rows].sum())
        order = rows[np.lexsort((-tr.value[rows], -ev[rows]))]
        static = tr.static[np.isin(tr.static, rows)]
        for k in TOPS:
            sums["p"][k] = sums["p"].get(k, 0.0) + float(tr.won[order[:k]].mean())
            sums["s"][k] = sums["s"].get(k, 0.0) + float(tr.won[static[:k]].mean())
        top = order[:25]
        out.value_won_top25 += float(tr.value[top][tr.won[top]].sum())
    out.precision = {k: v / dates for k, v in sums["p"].items()} if dates else {}
    out.static = {k: v / dates for k, v in sums["s"].items()} if dates else {}
    return out


def _calibration(scored: Sequence[tuple[Trials, np.ndarray, np.ndarray]]
                 ) -> list[tuple[float, float, int]]:
    if not scored:
        return []
    p = np.concatenate([s[1] for s in scored])
    won = np.concatenate([s[0].won for s in scored])
    order = np.argsort(p, kind="stable")
    out = []
    for part in np.array_split(order, 10):
        if len(part):
            out.append((float(p[part].mean()), float(won[part].mean()), len(part)))
    return out


__all__ = ["HORIZON_DAYS", "STEP_DAYS", "Backtest", "Pending", "Score", "Trials",
           "as_of_dates", "judge", "prepare", "run_backtest"]
