"""Who lacks a service worth offering: industry typicality (CEO Juice ID789's point) and the
admin's cross-sell rules, each with the money at stake.

Pure: per peer group (the industry, or industry x size tier with ``opportunities.peers:
industry_and_tier``), the share of classified customers that use each service is computed from
the night's own classification; a customer lacking a service that at least ``typical_share`` of
at least ``min_peers`` peers use is an opportunity. Cross-sell rules (``rules.cross_sell``) add
opportunities of their own. One (customer, service) is listed once: a pair found by typicality
and by a rule keeps the more urgent priority and both reasons. Each carries an estimated annual
value (``calls.money``). Priority rules refine the priorities afterwards (``calls.priority``).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Mapping

import numpy as np

from ..engine.classify import Classification
from ..model import Facts, Opportunity
from ..rules import RuleSet
from . import cross_sell as xs
from .money import PeerValues, peer_values

PRIORITY_ORDER = {"Critical": 0, "High": 1, "Medium": 2, "Low": 3}

Group = tuple[str | None, str | None]  # (industry, tier); tier None when peers: industry
Combo = tuple[Group, frozenset[str]]


def industry_shares(facts: Facts, classification: Classification,
                    ) -> tuple[Counter[str], dict[tuple[str, str], int]]:
    """Classified customers per industry, and per (industry, service) how many use it."""
    ids = list(classification.services)
    combos = Counter(zip([facts.customers[cid].industry for cid in ids],
                         classification.services.values()))
    peers: Counter[str] = Counter()
    users: dict[tuple[str, str], int] = {}
    for (industry, services), n in combos.items():
        if not industry:
            continue
        peers[industry] += n
        for code in services:
            users[(industry, code)] = users.get((industry, code), 0) + n
    return peers, users


def sort_key(o: Opportunity) -> tuple[int, float, float, str, str]:
    """Most urgent first, then score, then money at stake, then customer number."""
    return (PRIORITY_ORDER.get(o.priority, 9), -o.score, -(o.estimated_annual_value or 0.0),
            o.number, o.service_code)


def label(group: Group) -> str:
    """A peer group as people read it: 'Legal' or 'Legal tier A'."""
    industry, tier = group
    return f"{industry} tier {tier}" if tier is not None else str(industry)


def find(facts: Facts, classification: Classification, rules: RuleSet, *,
         ordered: bool = True, tiers: Mapping[int, str] | None = None,
         values: Mapping[str, np.ndarray] | None = None,
         units: Mapping[int, np.ndarray] | None = None) -> list[Opportunity]:
    """Every opportunity, most promising first (``ordered=False``: in customer order, for a
    caller that ranks them again).

    ``tiers``: each customer's size tier (``priority.tiers``), for ``peers: industry_and_tier``
    and the rules' ``tiers``; ``values``: service code -> annual contract value per in-scope
    customer in ``classification.services`` order (the money at stake); ``units``: cross-sell
    rule position -> its equipment count per customer, same order (``cross_sell.units``). A
    rule with an equipment condition finds nobody without its counts.
    """
    settings = rules.opportunities
    if settings is None:
        return []
    tiers = tiers or {}
    by_tier = settings.peers == "industry_and_tier"
    customers = facts.customers
    ids = list(classification.services)
    keys: list[Combo] = [((customers[cid].industry, tiers.get(cid) if by_tier else None), svc)
                         for cid, svc in zip(ids, classification.services.values())]
    combo_of: dict[Combo, int] = {}
    at = np.fromiter((combo_of.setdefault(k, len(combo_of)) for k in keys), dtype=np.int64,
                     count=len(keys))
    combos = list(combo_of)
    counts = np.bincount(at, minlength=len(combos)) if len(combos) else np.zeros(0, np.int64)
    peers: Counter[Group] = Counter()
    users: dict[tuple[Group, str], int] = {}
    for (group, services), n in zip(combos, counts.tolist()):
        if group[0]:
            peers[group] += n
            for code in services:
                users[(group, code)] = users.get((group, code), 0) + n
    names = rules.service_names()
    money = _peer_values(values, combos, at)
    allowed = _allowed(facts, settings.grace_days, settings.exclude_customers)
    found: dict[tuple[int, str], Opportunity] = {}
    _typical(found, rules, combos, at, ids, allowed, peers, users, names, money, facts)
    _cross_sell(found, rules, combos, at, ids, allowed, peers, users, names, money, facts,
                tiers, units)
    out = list(found.values())
    if ordered:
        out.sort(key=sort_key)
    return out


def _allowed(facts: Facts, grace_days: int, excluded: list[str]) -> Callable[[int], bool]:
    """Whether a customer may be offered anything: not excluded, past the grace period (asked
    only for the customers some opportunity names)."""
    newest = facts.as_of - dt.timedelta(days=grace_days)
    # created on or after this moment: still in the grace period
    too_new = dt.datetime.combine(newest + dt.timedelta(days=1), dt.time())
    skip = {n.upper() for n in excluded}
    customers = facts.customers

    def allowed(cid: int) -> bool:
        c = customers[cid]
        return not ((skip and c.number.upper() in skip)
                    or (c.created is not None and c.created >= too_new))
    return allowed


def _peer_values(values: Mapping[str, np.ndarray] | None, combos: list[Combo],
                 at: np.ndarray) -> PeerValues:
    if not values or not combos:
        return PeerValues()
    groups: dict[Group, int] = {}
    group_at = np.array([groups.setdefault(g, len(groups)) for g, _ in combos], dtype=np.int64)
    uses = {code: np.array([code in s for _, s in combos], dtype=bool)[at] for code in values}
    return peer_values(values, uses, group_at[at], [g if g[0] else None for g in groups])


def _add(found: dict[tuple[int, str], Opportunity], facts: Facts, cid: int, code: str,
         names: Mapping[str, str], priority: str, reason: str, share: float,
         money: PeerValues, group: Group, *, rule: str | None = None,
         value: float | None = None) -> None:
    """One (customer, service) opportunity; a second finding adds its reason and may raise the
    priority or set the value, never a second row."""
    have = found.get((cid, code))
    if have is not None:
        if PRIORITY_ORDER[priority] < PRIORITY_ORDER[have.priority]:
            have.priority = priority
        if reason not in have.reason:
            have.reason = f"{have.reason}; {reason}"
        if rule is not None and rule not in have.cross_sell:
            have.cross_sell = (*have.cross_sell, rule)
        if value is not None and have.value_basis != "set by a cross-sell rule":
            have.estimated_annual_value, have.value_basis = value, "set by a cross-sell rule"
        return
    c = facts.customers[cid]
    if value is not None:
        worth: float | None = value
        basis = "set by a cross-sell rule"
    else:
        estimate = money.estimate(group if group[0] else None, label(group), code)
        worth, basis = (estimate.value, estimate.basis) if estimate else (None, "")
    found[(cid, code)] = Opportunity(
        number=c.number, name=c.name, branch=c.branch, sales_rep=c.sales_rep,
        service=names[code], priority=priority, reason=reason, customer_id=cid,
        service_code=code, score=round(share * 100, 1), estimated_annual_value=worth,
        value_basis=basis, typical=rule is None, cross_sell=(rule,) if rule else ())


def _typical(found: dict[tuple[int, str], Opportunity], rules: RuleSet, combos: list[Combo],
             at: np.ndarray, ids: list[int], allowed: Callable[[int], bool],
             peers: Counter[Group],
             users: dict[tuple[Group, str], int], names: Mapping[str, str], money: PeerValues,
             facts: Facts) -> None:
    """Industry (or industry x tier) gaps: services most peers use that a customer lacks."""
    settings = rules.opportunities
    assert settings is not None
    skip = {i.casefold() for i in settings.exclude_industries}
    gaps: dict[int, list[tuple[str, float, str, str]]] = {}
    for k, (group, services) in enumerate(combos):
        n = peers[group]
        if not group[0] or n < settings.min_peers or group[0].casefold() in skip:
            continue
        lacking = []
        for svc in rules.services:
            share = users.get((group, svc.code), 0) / n
            if svc.code in services or share < settings.typical_share:
                continue
            priority = "High" if share >= 0.75 else "Medium" if share >= 0.6 else "Low"
            why = f"{share:.0%} of {n} {label(group)} customers use {names[svc.code]}"
            lacking.append((svc.code, share, priority, why))
        if lacking:
            gaps[k] = lacking
    if not gaps:
        return
    hit = np.isin(at, np.fromiter(gaps, dtype=np.int64))
    for i in np.flatnonzero(hit).tolist():
        if not allowed(ids[i]):
            continue
        k = int(at[i])
        for code, share, priority, reason in gaps[k]:
            _add(found, facts, ids[i], code, names, priority, reason, share, money,
                 combos[k][0])


def _cross_sell(found: dict[tuple[int, str], Opportunity], rules: RuleSet,
                combos: list[Combo], at: np.ndarray, ids: list[int],
                allowed: Callable[[int], bool],
                peers: Counter[Group], users: dict[tuple[Group, str], int],
                names: Mapping[str, str], money: PeerValues, facts: Facts,
                tiers: Mapping[int, str], units: Mapping[int, np.ndarray] | None) -> None:
    """The admin's cross-sell rules, in file order."""
    for r, rule in enumerate(rules.cross_sell):
        offered: dict[int, list[str]] = {}
        for k, (group, services) in enumerate(combos):
            codes = xs.combo_matches(rule, group[0], services)
            if codes:
                offered[k] = codes
        if not offered:
            continue
        hit = np.isin(at, np.fromiter(offered, dtype=np.int64))
        hit &= xs.tier_ok(rule, ids, tiers)
        count: np.ndarray | None = None
        if rule.equipment is not None:
            count = (units or {}).get(r)
            if count is None:
                continue  # no counts (the detail path): nobody can be shown to meet it
            hit &= count >= rule.equipment.min_count - 1e-9
        rows = np.flatnonzero(hit)
        units_of = (np.rint(count[rows]).astype(np.int64).tolist() if count is not None
                    else [None] * len(rows))
        reasons: dict[int | None, str] = {}  # the same text for every customer with n units
        for i, n_units in zip(rows.tolist(), units_of):
            if not allowed(ids[i]):
                continue
            k = int(at[i])
            group = combos[k][0]
            n = peers.get(group, 0)
            why = reasons.get(n_units)
            if why is None:
                why = reasons[n_units] = xs.reason(rule, names, n_units)
            for code in offered[k]:  # an offer (not a gap) starts at no share of peers
                share = users.get((group, code), 0) / n if n and rule.lacks else 0.0
                _add(found, facts, ids[i], code, names, rule.priority, why, share, money, group,
                     rule=rule.name, value=rule.value)


__all__ = ["PRIORITY_ORDER", "find", "industry_shares", "label", "sort_key"]
