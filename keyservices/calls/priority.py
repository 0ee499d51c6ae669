"""Dynamic priority (Amity): who to call first, from tier, renewal window, monitors and the gap.

The ``priority:`` block of the rules holds customer ``tiers`` (from trailing revenue on account
globs, by amount thresholds or by rank quantiles) and ``rules`` evaluated in order over each
opportunity. A rule's conditions (``when``) must all hold:

* ``services``: the opportunity is for one of these services;
* ``tiers``: the customer is in one of these tiers;
* ``renewal``: the customer has an active contract (any, or of given codes) expiring within N days;
* ``monitors``: the customer hit any status monitor (``any``) or one of the named ones;
* ``min_share``: at least this share of the customer's industry peers use the service;
* ``min_value``: the opportunity's estimated annual value is at least this (money at stake);
* ``source``: ``typical`` (found by industry typicality) or ``cross_sell`` (by a cross-sell rule).

Semantics: the **first** matching rule that has a ``priority`` sets it; the ``points`` of **every**
matching rule add to the opportunity's score (which starts at the industry share x 100 that
``opportunities.find`` gives it). Without a matching priority rule the opportunity keeps the
priority it came with. ``why`` names every rule that changed something, in order. The result is
sorted Critical to Low, then by score (highest first), then by estimated annual value (highest
first), then by customer number.

Pure: numpy and the rule models; no SQLAlchemy, no I/O.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..engine.metrics import Codes, Column, Extra, contracts_matching, gl_revenue
from ..model import Opportunity
from ..rules import Renewal, RuleSet, Tiers, When
from .frame import Offer, OpportunityFrame
from .monitors import indexer

Index = Callable[[Column], int] | Mapping[Column, int]


# -- columns --------------------------------------------------------------------------------------
def tier_column(rules: RuleSet, codes: Codes) -> Column | None:
    """Trailing revenue on the tiers' accounts, or None without tiers."""
    spec = rules.priority.tiers if rules.priority else None
    return None if spec is None else gl_revenue(codes, spec.accounts, spec.window_days)


def renewal_globs(rules: RuleSet, renewal: Renewal) -> tuple[str, ...]:
    """The contract code globs a renewal condition counts (``*``: every contract)."""
    if renewal.service:
        svc = rules.service(renewal.service)
        assert svc is not None and svc.contracts is not None  # rules.py validated the reference
        return tuple(svc.contracts.contract_codes)
    return tuple(renewal.contract_codes) or ("*",)


def renewal_key(rules: RuleSet, renewal: Renewal) -> str:
    """How ``renewals`` names a renewal condition, e.g. ``90d:COPY-*,RENT-*``."""
    return f"{renewal.within_days}d:{','.join(renewal_globs(rules, renewal))}"


def renewal_conditions(rules: RuleSet) -> list[Renewal]:
    """The distinct renewal conditions of the priority rules, in rule order."""
    out: list[Renewal] = []
    keys: set[str] = set()
    for rule in rules.priority.rules if rules.priority else ():
        r = rule.when.renewal if rule.when else None
        if r is not None and renewal_key(rules, r) not in keys:
            keys.add(renewal_key(rules, r))
            out.append(r)
    return out


def renewal_column(rules: RuleSet, codes: Codes, renewal: Renewal) -> Column:
    return contracts_matching(codes, renewal_globs(rules, renewal),
                              expires_within=renewal.within_days)


class PriorityColumns(Extra):
    """Tier revenue and one column per renewal window; pass to ``read_facts(extra=[...])``."""

    def __init__(self, rules: RuleSet) -> None:
        self.rules = rules
        need = set()
        if rules.priority is not None and rules.priority.tiers is not None:
            need.add("accounts")
        if renewal_conditions(rules):
            need.add("contract_codes")
        self.codes_needed = frozenset(need)

    def columns(self, codes: Codes) -> list[Column]:
        out = [c for c in [tier_column(self.rules, codes)] if c is not None]
        for r in renewal_conditions(self.rules):
            col = renewal_column(self.rules, codes, r)
            if col not in out:
                out.append(col)
        return out


# -- per customer ---------------------------------------------------------------------------------
def assign_tiers(spec: Tiers, revenue: np.ndarray) -> np.ndarray:
    """The index into ``spec.ordered()`` of each customer's tier, or -1 for none.

    Thresholds: the first tier (highest minimum) whose minimum the revenue reaches. Quantiles: a
    customer's rank is the share of customers with less revenue (ties share a rank), so with
    revenue 1..10 and ``{A: 0.9, B: 0.6, C: 0}`` the 10 is A, 7 to 9 are B and 1 to 6 are C.
    """
    ordered = spec.ordered()
    revenue = np.asarray(revenue, dtype=np.float64)
    n = len(revenue)
    if spec.quantiles is not None:
        below = np.searchsorted(np.sort(revenue), revenue, side="left").astype(np.float64)
        measure, slack = below, 1e-9 * max(n, 1)
        minima = [q * n for _, q in ordered]
    else:
        measure, slack = revenue, 1e-6  # money sums: a threshold met to the cent holds
        minima = [m for _, m in ordered]
    out = np.full(n, -1, dtype=np.int64)
    for k in range(len(ordered) - 1, -1, -1):  # highest tier last, so it wins
        out[measure >= minima[k] - slack] = k
    return out


def tiers(rules: RuleSet, compiled_index: Index, codes: Codes,
          services: Mapping[int, frozenset[str]], rolled: np.ndarray | None) -> dict[int, str]:
    """Each in-scope customer's tier (customers reaching no tier are left out); quantiles rank
    every row of ``rolled`` (``Classification.rolled``, in ``services`` order); none where the
    facts carry no numbers (rules read as per-code detail: no codes, no rolled rows)."""
    if rolled is None or codes is None or not len(services):
        return {}
    col = tier_column(rules, codes)
    if col is None:
        return {}
    assert rules.priority is not None and rules.priority.tiers is not None
    j = indexer(compiled_index, "PriorityColumns")(col)
    which = assign_tiers(rules.priority.tiers, rolled[:, j])
    names = [t for t, _ in rules.priority.tiers.ordered()]
    ids = list(services)
    return {ids[i]: names[k] for i, k in enumerate(which.tolist()) if k >= 0}


def renewals(rules: RuleSet, compiled_index: Index, codes: Codes,
             services: Mapping[int, frozenset[str]], rolled: np.ndarray | None
             ) -> dict[int, frozenset[str]]:
    """Per customer with a contract renewing, the renewal conditions (``renewal_key``) it meets."""
    conditions = renewal_conditions(rules)
    if not conditions or rolled is None:
        return {}
    find = indexer(compiled_index, "PriorityColumns")
    ids = np.fromiter(services.keys(), dtype=np.int64, count=len(services))
    out: dict[int, set[str]] = {}
    for r in conditions:
        rows = np.nonzero(rolled[:, find(renewal_column(rules, codes, r))] >= 1 - 1e-6)[0]
        key = renewal_key(rules, r)
        for cid in ids[rows].tolist():
            out.setdefault(cid, set()).add(key)
    return {cid: frozenset(keys) for cid, keys in out.items()}


# -- the rules ------------------------------------------------------------------------------------
def _met(rules: RuleSet, when: When | None, opp: Opportunity, tiers: Mapping[int, str],
         renewals: Mapping[int, frozenset[str]], hits: Mapping[int, Sequence[str]]
         ) -> list[str] | None:
    """What made the conditions hold, as people read it, or None when one fails."""
    if when is None:
        return []
    facts: list[str] = []
    if when.services:
        if opp.service_code not in when.services:
            return None
        facts.append(f"{opp.service_code} opportunity")
    if when.tiers:
        tier = tiers.get(opp.customer_id)
        if tier not in when.tiers:
            return None
        facts.append(f"tier {tier}")
    if when.renewal is not None:
        if renewal_key(rules, when.renewal) not in renewals.get(opp.customer_id, ()):
            return None
        globs = renewal_globs(rules, when.renewal)
        what = "a contract" if globs == ("*",) else f"a {', '.join(globs)} contract"
        facts.append(f"{what} expires within {when.renewal.within_days} days")
    if when.monitors is not None:
        hit = list(hits.get(opp.customer_id, ()))
        if when.monitors != "any":
            hit = [h for h in hit if h in when.monitors]
        if not hit:
            return None
        facts.append(f"status {', '.join(hit)}")
    if when.min_share is not None:
        share = opp.score / 100
        if share < when.min_share - 1e-9:
            return None
        facts.append(f"{share:.0%} of industry peers use it")
    if when.min_value is not None:
        worth = opp.estimated_annual_value
        if worth is None or worth < when.min_value - 1e-6:
            return None
        facts.append(f"worth about {worth:,.0f} a year")
    if when.source == "typical" and not opp.typical:
        return None
    if when.source == "cross_sell":
        if not opp.cross_sell:
            return None
        facts.append(f"cross-sell: {', '.join(opp.cross_sell)}")
    return facts


@dataclasses.dataclass
class Decision:
    """What the priority rules decide for one offer: the label, the points, and the admin's
    overrides on top of the ranking (pin, boost, hide)."""

    priority: str
    points: float
    why: tuple[str, ...]
    pin: bool = False
    boost: float = 1.0
    hide: bool = False


def _decide(rules: RuleSet, spec: Any, opp: Opportunity, tiers: Mapping[int, str],
            renewals: Mapping[int, frozenset[str]], hits: Mapping[int, Sequence[str]]
            ) -> Decision:
    """Priority, points, overrides and why for one opportunity: the first rule with a
    priority sets it, every matching rule's points add, boosts multiply, any pin or hide
    holds."""
    priority: str | None = None
    points, boost, pin, hide = 0.0, 1.0, False, False
    why: list[str] = []
    for rule in spec.rules:
        facts = _met(rules, rule.when, opp, tiers, renewals, hits)
        if facts is None:
            continue
        effects = []
        if rule.priority is not None and priority is None:
            priority = rule.priority
            effects.append(rule.priority)
        if rule.points:
            points += rule.points
            effects.append(f"{rule.points:+g} points")
        if rule.pin:
            pin = True
            effects.append("pinned to the top")
        if rule.boost != 1.0:
            boost *= rule.boost
            effects.append(f"expected value x{rule.boost:g}")
        if rule.hide:
            hide = True
            effects.append("hidden")
        if effects:
            why.append(f"{rule.name} ({'; '.join(facts) or 'every opportunity'}): "
                       f"{', '.join(effects)}")
    if priority is None:
        origin = ("the industry share" if opp.typical else
                  f"cross-sell rule {opp.cross_sell[0]}" if opp.cross_sell else
                  f"the {opp.play} play")
        why.append(f"{opp.priority} from {origin} (no priority rule matched)")
    return Decision(priority or opp.priority, points, tuple(why), pin, boost, hide)


def apply(rules: RuleSet, opportunities: Sequence[Opportunity], tiers: Mapping[int, str],
          renewals: Mapping[int, frozenset[str]], hits: Mapping[int, Sequence[str]]
          ) -> OpportunityFrame:
    """The opportunities re-prioritised (as ``opportunities.find`` returns them: score =
    industry share x 100), sorted Critical to Low, then score, then money at stake, then
    customer number.

    ``tiers`` from ``tiers``, ``renewals`` from ``renewals``, ``hits`` is ``MonitorResult.hits``.
    Without a ``priority:`` block the opportunities keep their priority, score and order. The
    outcome depends only on the offer and the customer's tier, renewals and alerts, which
    repeat across thousands of customers: each distinct pair is decided once. A list is taken
    as a frame of its objects; the result never shares an object whose fields changed.
    """
    frame = OpportunityFrame.of(opportunities)
    spec = rules.priority
    if spec is None or not len(frame):
        return frame.with_offers(frame.offer, frame.offers)  # new objects, as with rules
    # each customer's (tier, renewals, alerts) as three small codes, looked up by array
    tier_at, tier_values = _codes_of(tiers, frame.customer)
    renew_at, renew_values = _codes_of(renewals, frame.customer)
    hit_at, hit_values = _codes_of({k: tuple(v) for k, v in hits.items()}, frame.customer)
    width = (len(tier_values) + 1) * (len(renew_values) + 1) * (len(hit_values) + 1)
    context = ((tier_at + 1) * (len(renew_values) + 1) + renew_at + 1) * (
        len(hit_values) + 1) + hit_at + 1
    pairs, which = np.unique(frame.offer * width + context, return_inverse=True)
    offers: list[Offer] = []
    hidden: list[bool] = []  # a rule hides the offer: left out of every list
    for pair in pairs.tolist():
        offer_id, rest = divmod(pair, width)
        rest, hit_code = divmod(rest, len(hit_values) + 1)
        tier_code, renew_code = divmod(rest, len(renew_values) + 1)
        offer = frame.offers[offer_id]
        tier = tier_values[tier_code - 1] if tier_code else None
        renewing = renew_values[renew_code - 1] if renew_code else None
        hit = hit_values[hit_code - 1] if hit_code else ()
        probe = Opportunity(number="", name="", branch=None, sales_rep=None,
                            service=offer.service, priority=offer.priority, reason=offer.reason,
                            customer_id=0, service_code=offer.service_code, score=offer.score,
                            estimated_annual_value=offer.estimated_annual_value,
                            typical=offer.typical, cross_sell=offer.cross_sell,
                            play=offer.play)
        d = _decide(rules, spec, probe, {} if tier is None else {0: tier},
                    {} if renewing is None else {0: renewing}, {0: hit} if hit else {})
        offers.append(dataclasses.replace(offer, priority=d.priority,
                                          score=round(offer.score + d.points, 1), why=d.why,
                                          pinned=d.pin, boost=d.boost))
        hidden.append(d.hide)
    which = which.reshape(-1)
    shown = ~np.array(hidden, dtype=bool)[which]
    out = frame.with_offers(which, offers)
    return (out if shown.all() else out.take(shown)).ranked()


def _codes_of(by_customer: Mapping[int, Any], customers: np.ndarray
              ) -> tuple[np.ndarray, list[Any]]:
    """Each customer's value as a code into the distinct values (-1: none), by array lookup."""
    if not by_customer:
        return np.full(len(customers), -1, dtype=np.int64), []
    distinct: dict[Any, int] = {}
    keys = np.fromiter(by_customer.keys(), dtype=np.int64, count=len(by_customer))
    codes = np.fromiter(map(distinct.setdefault, by_customer.values(),
                            itertools.count()), dtype=np.int64, count=len(by_customer))
    # setdefault with a running count: a value seen before keeps its first (sparse) code
    first, codes = np.unique(codes, return_inverse=True)
    value_of = {code: value for value, code in distinct.items()}
    order = np.argsort(keys)
    keys, codes = keys[order], codes.reshape(-1)[order]
    pos = np.clip(np.searchsorted(keys, customers), 0, len(keys) - 1)
    out = np.where(keys[pos] == customers, codes[pos], -1)
    return out, [value_of[int(code)] for code in first.tolist()]


__all__ = ["Decision", "PriorityColumns", "apply", "assign_tiers", "renewal_conditions", "renewal_key",
           "renewals", "tier_column", "tiers"]
