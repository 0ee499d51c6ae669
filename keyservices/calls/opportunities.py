"""Who lacks a service that is typical for customers like them (CEO Juice ID789's point).

Pure: per industry, the share of classified customers that use each service is computed from the
night's own classification; a customer lacking a service that at least ``typical_share`` of at least
``min_peers`` industry peers use is an opportunity. Priorities here are a first cut by how typical
the service is; dynamic priority rules will refine them.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

from ..engine.classify import Classification
from ..model import Facts, Opportunity
from ..rules import RuleSet

PRIORITY_ORDER = {"Critical": 0, "High": 1, "Medium": 2, "Low": 3}


def industry_shares(facts: Facts, classification: Classification,
                    ) -> tuple[Counter[str], dict[tuple[str, str], int]]:
    """Classified customers per industry, and per (industry, service) how many use it."""
    return _shares(_combos(facts, classification)[2])


def _combos(facts: Facts, classification: Classification
            ) -> tuple[list[int], list[tuple[str | None, frozenset[str]]],
                       Counter[tuple[str | None, frozenset[str]]]]:
    """Each classified customer's (industry, services), in classification order, and how many
    customers share each combination (a few hundred combinations for a million customers)."""
    customers = facts.customers
    ids = list(classification.services)
    keys = list(zip([customers[cid].industry for cid in ids], classification.services.values()))
    return ids, keys, Counter(keys)


def _shares(combos: Counter[tuple[str | None, frozenset[str]]]
            ) -> tuple[Counter[str], dict[tuple[str, str], int]]:
    peers: Counter[str] = Counter()
    users: dict[tuple[str, str], int] = {}
    for (industry, services), n in combos.items():
        if not industry:
            continue
        peers[industry] += n
        for code in services:
            users[(industry, code)] = users.get((industry, code), 0) + n
    return peers, users


def find(facts: Facts, classification: Classification, rules: RuleSet, *,
         ordered: bool = True) -> list[Opportunity]:
    """Every opportunity, most promising first (``ordered=False``: in customer order, for a
    caller that ranks them again)."""
    settings = rules.opportunities
    if settings is None:
        return []
    ids, keys, combos = _combos(facts, classification)
    peers, users = _shares(combos)
    names = rules.service_names()
    newest = facts.as_of - dt.timedelta(days=settings.grace_days)
    skip_customers = {n.upper() for n in settings.exclude_customers}
    skip_industries = {i.casefold() for i in settings.exclude_industries}
    # customers of one industry with the same services lack the same ones: work it out once
    gaps = {key: _lacking(key[0], key[1], peers[key[0]], users, rules, names, skip_industries)
            for key in combos if key[0]}
    # created on or after this moment: still in the grace period
    too_new = dt.datetime.combine(newest + dt.timedelta(days=1), dt.time())
    customers = facts.customers
    found: list[tuple[float, Opportunity]] = []
    for cid, key in zip(ids, keys):
        lacking = gaps.get(key)
        if not lacking:
            continue
        c = customers[cid]
        if ((skip_customers and c.number.upper() in skip_customers)
                or (c.created is not None and c.created >= too_new)):
            continue
        for code, share, priority, reason in lacking:
            found.append((share, Opportunity(
                number=c.number, name=c.name, branch=c.branch, sales_rep=c.sales_rep,
                service=names[code], priority=priority, reason=reason,
                customer_id=cid, service_code=code, score=round(share * 100, 1))))
    if ordered:
        found.sort(key=lambda x: (PRIORITY_ORDER[x[1].priority], -x[0], x[1].number))
    return [o for _, o in found]


def _lacking(industry: str, services: frozenset[str], n: int, users: dict[tuple[str, str], int],
             rules: RuleSet, names: dict[str, str], skip_industries: set[str],
             ) -> list[tuple[str, float, str, str]]:
    """The services typical for ``industry`` that a customer with ``services`` lacks."""
    settings = rules.opportunities
    assert settings is not None
    if n < settings.min_peers or industry.casefold() in skip_industries:
        return []
    out = []
    for svc in rules.services:
        share = users.get((industry, svc.code), 0) / n
        if svc.code in services or share < settings.typical_share:
            continue
        priority = "High" if share >= 0.75 else "Medium" if share >= 0.6 else "Low"
        out.append((svc.code, share, priority,
                    f"{share:.0%} of {n} {industry} customers use {names[svc.code]}"))
    return out
