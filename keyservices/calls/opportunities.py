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

import dataclasses
import datetime as dt
import itertools
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..engine.classify import Classification
from ..model import Facts, Opportunity, customer_column
from ..rules import RuleSet
from . import cross_sell as xs
from . import monitor_calls as mc
from . import renewal as rn
from .frame import PRIORITY_ORDER, Offer, OpportunityFrame
from .money import PeerValues, peer_values

INDUSTRY_GAP = "industry_gap"  # the play of an offer found by industry typicality
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
         units: Mapping[int, np.ndarray] | None = None,
         renewals: rn.Counts | None = None,
         monitored: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None
         ) -> OpportunityFrame:
    """Every opportunity, most promising first (``ordered=False``: in the order found, for a
    caller that ranks them again), as a frame (``calls.frame``): one row per (customer,
    service), an ``Opportunity`` made only for the rows read.

    ``tiers``: each customer's size tier (``priority.tiers``), for ``peers: industry_and_tier``
    and the rules' ``tiers``; ``values``: service code -> annual contract value per in-scope
    customer in ``classification.services`` order (the money at stake); ``units``: cross-sell
    rule position -> its equipment count per customer, same order (``cross_sell.units``). A
    rule with an equipment condition finds nobody without its counts. ``renewals``: the
    renewal play's contract counts (``calls.renewal.counts``), same order; ``monitored``:
    each status monitor's hits and their values (``calls.monitor_calls.hits``), same order.
    """
    settings = rules.opportunities
    customers = facts.customers
    if settings is None:
        return OpportunityFrame.empty(customers)
    tiers = tiers or {}
    by_tier = settings.peers == "industry_and_tier"
    ids = list(classification.services)
    combos, at = _combos(customer_column(customers, "industry", ids), ids,
                         list(classification.services.values()), tiers if by_tier else None)
    # peers are the customers that existed on the night's date (a list as of a past date
    # knows nobody created after it)
    existed = _existed(facts, ids)
    counts = (np.bincount(at[existed], minlength=len(combos)) if len(combos)
              else np.zeros(0, np.int64))
    peers: Counter[Group] = Counter()
    users: dict[tuple[Group, str], int] = {}
    for (group, services), n in zip(combos, counts.tolist()):
        if group[0]:
            peers[group] += n
            for code in services:
                users[(group, code)] = users.get((group, code), 0) + n
    names = rules.service_names()
    found = _Found(names, _peer_values(values, combos, at))
    allowed = _allowed(facts, ids, settings.grace_days, settings.exclude_customers)
    _typical(found, rules, combos, at, allowed, peers, users, names)
    _cross_sell(found, rules, combos, at, ids, allowed, peers, users, names, tiers, units)
    _renewals(found, rules, allowed, renewals or {}, values or {}, names)
    _monitored(found, rules, allowed, monitored or {})
    frame = found.frame(np.asarray(ids, dtype=np.int64), customers)
    return frame.ranked() if ordered else frame


def _combos(industry: np.ndarray, ids: list[int], services: list[frozenset[str]],
            tiers: Mapping[int, str] | None) -> tuple[list[Combo], np.ndarray]:
    """The distinct (peer group, services) combinations, and each customer's, by codes: a
    million customers share a few thousand."""
    if not ids:
        return [], np.zeros(0, np.int64)
    codes: list[dict[Any, int]] = [{}, {}, {}]

    def coded(values: Any, book: dict[Any, int]) -> np.ndarray:
        return np.fromiter(map(book.setdefault, values, itertools.count()), dtype=np.int64,
                           count=len(ids))

    parts = [coded(industry.tolist(), codes[0]), coded(services, codes[2])]
    if tiers is not None:
        parts.insert(1, coded(map(tiers.get, ids), codes[1]))
    key = parts[0]
    for part in parts[1:]:
        key = key * (int(part.max()) + 1) + part
    _, first, at = np.unique(key, return_index=True, return_inverse=True)
    order = np.argsort(first)  # numbered in the order first met, as a dict would
    renumber = np.empty(len(order), dtype=np.int64)
    renumber[order] = np.arange(len(order))
    combos: list[Combo] = [((industry[row], tiers.get(ids[row]) if tiers is not None else None),
                            services[row]) for row in first[order].tolist()]
    return combos, renumber[at.reshape(-1)]


def _existed(facts: Facts, ids: list[int]) -> np.ndarray:
    """Whether each customer (``ids`` order) was created by the end of the night's date."""
    after = dt.datetime.combine(facts.as_of + dt.timedelta(days=1), dt.time())
    created = customer_column(facts.customers, "created", ids).tolist()
    later = {c for c in set(created) if c is not None and c >= after}
    if not later:
        return np.ones(len(ids), dtype=bool)
    return np.fromiter((c not in later for c in created), dtype=bool, count=len(ids))


def _allowed(facts: Facts, ids: list[int], grace_days: int, excluded: list[str]) -> np.ndarray:
    """Whether each customer (``ids`` order) may be offered anything: not excluded, past the
    grace period."""
    newest = facts.as_of - dt.timedelta(days=grace_days)
    # created on or after this moment: still in the grace period
    too_new = dt.datetime.combine(newest + dt.timedelta(days=1), dt.time())
    skip = {n.upper() for n in excluded}
    customers = facts.customers
    created = customer_column(customers, "created", ids).tolist()
    recent = {c for c in set(created) if c is not None and c >= too_new}
    out = np.fromiter((c not in recent for c in created), dtype=bool, count=len(ids))
    if skip:
        numbers = customer_column(customers, "number", ids).tolist()
        out &= np.fromiter((n.upper() not in skip for n in numbers), dtype=bool,
                           count=len(ids))
    return out


def _peer_values(values: Mapping[str, np.ndarray] | None, combos: list[Combo],
                 at: np.ndarray) -> PeerValues:
    if not values or not combos:
        return PeerValues()
    groups: dict[Group, int] = {}
    group_at = np.array([groups.setdefault(g, len(groups)) for g, _ in combos], dtype=np.int64)
    uses = {code: np.array([code in s for _, s in combos], dtype=bool)[at] for code in values}
    return peer_values(values, uses, group_at[at], [g if g[0] else None for g in groups])


class _Found:
    """Opportunities as they are found: rows of (customer position, service, offer), in the
    order found; a (customer, service) found twice is one row with both findings merged."""

    def __init__(self, names: Mapping[str, str], money: PeerValues) -> None:
        self.names, self.money = names, money
        self.offers: list[Offer] = []
        self._offer_ids: dict[Offer, int] = {}
        self._merged: dict[tuple[int, int], int] = {}
        self.parts: list[tuple[np.ndarray, np.ndarray]] = []  # (customer positions, offer ids)

    def offer(self, code: str, priority: str, reason: str, share: float, group: Group, *,
              rule: str | None = None, value: float | None = None,
              play: str = INDUSTRY_GAP, basis: str = "") -> int:
        """The id of this offer (one object per distinct offer)."""
        if value is not None:
            worth: float | None = value
            basis = basis or BY_RULE
        else:
            estimate = self.money.estimate(group if group[0] else None, label(group), code)
            worth, basis = (estimate.value, estimate.basis) if estimate else (None, "")
        offer = Offer(code, self.names[code], priority, reason, round(share * 100, 1), worth,
                      basis, rule is None and play == INDUSTRY_GAP, (rule,) if rule else (),
                      play=play)
        return self._id(offer)

    def add_offer(self, offer: Offer) -> int:
        """The id of an offer made whole by the caller (a play with its own fields)."""
        return self._id(offer)

    def _id(self, offer: Offer) -> int:
        got = self._offer_ids.get(offer)
        if got is None:
            got = self._offer_ids[offer] = len(self.offers)
            self.offers.append(offer)
        return got

    def add(self, rows: np.ndarray, offer_ids: np.ndarray) -> None:
        if len(rows):
            self.parts.append((rows, offer_ids))

    def merge(self, first: int, then: int) -> int:
        """A second finding adds its reason and may raise the priority or set the value."""
        key = (first, then)
        got = self._merged.get(key)
        if got is None:
            have, new = self.offers[first], self.offers[then]
            changes: dict[str, Any] = {}
            if PRIORITY_ORDER[new.priority] < PRIORITY_ORDER[have.priority]:
                changes["priority"] = new.priority
            if new.reason not in have.reason:
                changes["reason"] = f"{have.reason}; {new.reason}"
            rule = new.cross_sell[0] if new.cross_sell else None
            if rule is not None and rule not in have.cross_sell:
                changes["cross_sell"] = (*have.cross_sell, rule)
            if have.play == INDUSTRY_GAP and new.play != INDUSTRY_GAP:  # the rule's play
                changes["play"] = new.play
            if new.value_basis == BY_RULE and have.value_basis != BY_RULE:
                changes["estimated_annual_value"] = new.estimated_annual_value
                changes["value_basis"] = BY_RULE
            got = self._merged[key] = self._id(dataclasses.replace(have, **changes))
        return got

    def frame(self, ids: np.ndarray, customers: Mapping[int, Any]) -> OpportunityFrame:
        if not self.parts:
            return OpportunityFrame.empty(customers)
        rows = np.concatenate([r for r, _ in self.parts])
        offer = np.concatenate([o for _, o in self.parts])
        codes = {code: i for i, code in enumerate(sorted({o.service_code for o in self.offers}))}
        service = np.array([codes[o.service_code] for o in self.offers], dtype=np.int64)[offer]
        key = rows * len(codes) + service
        first = np.unique(key, return_index=True, return_inverse=True)
        _, firsts, inverse = first
        keep = np.sort(firsts)  # the first finding of each pair, in the order found
        twice = np.flatnonzero(np.bincount(inverse) > 1)
        if len(twice):  # fold later findings into the first, in the order found
            merged = offer[firsts].copy()
            later = np.flatnonzero(np.isin(inverse, twice))
            later = later[~np.isin(later, firsts)]
            for pair, then in zip(inverse[later].tolist(), offer[later].tolist()):
                merged[pair] = self.merge(int(merged[pair]), then)
            offer = offer.copy()
            offer[firsts] = merged
        return OpportunityFrame(ids[rows[keep]], offer[keep], self.offers, customers)


BY_RULE = "set by a cross-sell rule"


def _expand(rows: np.ndarray, combo: np.ndarray, per_combo: Mapping[int, list[int]]
            ) -> tuple[np.ndarray, np.ndarray]:
    """Each row once per offer of its combo, offers in their listed order."""
    if not len(rows):
        return rows, rows
    lists = {k: np.asarray(v, dtype=np.int64) for k, v in per_combo.items()}
    sizes = np.array([len(lists[k]) for k in combo.tolist()], dtype=np.int64)
    out_rows = np.repeat(rows, sizes)
    out_offers = np.concatenate([lists[k] for k in combo.tolist()]) if len(combo) else rows
    return out_rows, out_offers


def _typical(found: _Found, rules: RuleSet, combos: list[Combo], at: np.ndarray,
             allowed: np.ndarray, peers: Counter[Group],
             users: dict[tuple[Group, str], int], names: Mapping[str, str]) -> None:
    """Industry (or industry x tier) gaps: services most peers use that a customer lacks."""
    settings = rules.opportunities
    assert settings is not None
    skip = {i.casefold() for i in settings.exclude_industries}
    gaps: dict[int, list[int]] = {}
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
            # the share as the score keeps it (a tenth of a percent), so that every line that
            # states it (this reason, a priority rule's min_share) shows the same figure
            shown = round(share * 100, 1) / 100
            why = f"{shown:.0%} of {n} {label(group)} customers use {names[svc.code]}"
            lacking.append(found.offer(svc.code, priority, why, share, group))
        if lacking:
            gaps[k] = lacking
    if not gaps:
        return
    rows = np.flatnonzero(np.isin(at, np.fromiter(gaps, dtype=np.int64)) & allowed)
    found.add(*_expand(rows, at[rows], gaps))


def _cross_sell(found: _Found, rules: RuleSet, combos: list[Combo], at: np.ndarray,
                ids: list[int], allowed: np.ndarray, peers: Counter[Group],
                users: dict[tuple[Group, str], int], names: Mapping[str, str],
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
        hit = np.isin(at, np.fromiter(offered, dtype=np.int64)) & allowed
        hit &= xs.tier_ok(rule, ids, tiers)
        count: np.ndarray | None = None
        if rule.equipment is not None:
            count = (units or {}).get(r)
            if count is None:
                continue  # no counts (the detail path): nobody can be shown to meet it
            hit &= count >= rule.equipment.min_count - 1e-9
        rows = np.flatnonzero(hit)
        if not len(rows):
            continue
        n_units = (np.rint(count[rows]).astype(np.int64) if count is not None
                   else np.full(len(rows), -1, dtype=np.int64))
        # the offers depend on the combo and the unit count only: one list per distinct pair,
        # found as one number per row (a sort of numbers, not of rows)
        width = int(n_units.max()) + 2
        pairs, which = np.unique(at[rows].astype(np.int64) * width + n_units + 1,
                                 return_inverse=True)
        per_pair: dict[int, list[int]] = {}
        for p, (k, n) in enumerate(zip((pairs // width).tolist(),
                                       (pairs % width - 1).tolist())):
            group = combos[k][0]
            peer_count = peers.get(group, 0)
            why = xs.reason(rule, names, None if n < 0 else n)
            per_pair[p] = [  # an offer (not a gap) starts at no share of peers
                found.offer(code, rule.priority, why,
                            users.get((group, code), 0) / peer_count
                            if peer_count and rule.lacks else 0.0,
                            group, rule=rule.name, value=rule.value, play=xs.play_of(rule))
                for code in offered[k]]
        found.add(*_expand(rows, which.reshape(-1), per_pair))


def _renewals(found: _Found, rules: RuleSet, allowed: np.ndarray, counts: rn.Counts,
              values: Mapping[str, np.ndarray], names: Mapping[str, str]) -> None:
    """The renewal play: customers whose every contract of a service ends within the window,
    each valued at its own contracts' annual value."""
    settings = rules.opportunities
    assert settings is not None
    for code, due in rn.due(counts).items():
        rows = np.flatnonzero(due & allowed)
        if not len(rows):
            continue
        n = np.rint(counts[code][0][rows]).astype(np.int64)
        worth = values.get(code)
        money = (about(worth[rows]) if worth is not None
                 else np.full(len(rows), np.nan))
        # one offer per distinct (contracts, value) pair, not per customer
        pairs, which = np.unique(np.stack([n.astype(np.float64), money]), axis=1,
                                 return_inverse=True)
        offers = [found.offer(code, rn.PRIORITY, rn.reason(names[code], int(k),
                                                           settings.renewal_days),
                              0.0, (None, None), value=None if np.isnan(v) or v <= 0 else v,
                              play=rn.RENEWAL, basis=rn.VALUE_BASIS)
                  for k, v in zip(pairs[0].tolist(), pairs[1].tolist())]
        found.add(rows, np.asarray(offers, dtype=np.int64)[which.reshape(-1)])


def about(values: np.ndarray) -> np.ndarray:
    """Values to two significant digits (22,326 -> 22,000; NaN and 0 stay): a customer's own
    value is an estimate of what the call is worth, and rounded, a million customers share a
    few hundred offers instead of one each (the priority rules and the rates are worked out
    per offer)."""
    v = np.asarray(values, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        step = 10.0 ** (np.floor(np.log10(np.abs(v))) - 1)
        out = np.round(v / step) * step
    return np.where(np.isfinite(out), out, v)


def _monitored(found: _Found, rules: RuleSet, allowed: np.ndarray,
               monitored: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """The monitor plays: each status monitor's hits, valued at the revenue it watches."""
    for mon in rules.monitors:
        got = monitored.get(mon.code)
        if got is None:
            continue
        rows, yearly = got
        keep = allowed[rows]
        rows, yearly = rows[keep], yearly[keep]
        if not len(rows):
            continue
        # one offer per distinct value (whole units), not per customer
        distinct, which = np.unique(about(yearly), return_inverse=True)
        offers = [found.add_offer(Offer(
            mon.code, mon.name, mon.priority or mc.PRIORITY, mc.reason(mon), 0.0,
            None if np.isnan(v) else v, "" if np.isnan(v) else mc.VALUE_BASIS, False,
            play=mc.play_of(mon))) for v in distinct.tolist()]
        found.add(rows, np.asarray(offers, dtype=np.int64)[which.reshape(-1)])


__all__ = ["PRIORITY_ORDER", "find", "industry_shares", "label", "sort_key"]
