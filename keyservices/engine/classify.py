"""Classify: which key services each customer uses, with the reasons when asked.

Pure Python over the compact facts. With ``level: location`` each customer record is evaluated on
its own facts. With ``level: parent`` a parent is evaluated on the facts of its own record and of its
active locations added together, because e-automate dealers keep contracts on the parent and machines
at the locations: a managed-print contract on the parent and printers at three sites make one
managed-print customer. Every section is monotone (counts, sums, maxima), so a parent always has
every service that its own record or any one active location would qualify for on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..model import ContractFact, CustomerFacts, Facts, add_sold
from ..rules import (
    ContractsSection,
    EquipmentSection,
    Exclude,
    GlSection,
    ItemsSoldSection,
    RuleSet,
    Service,
    glob_match,
)
from .metrics import evaluate, rolled_up


@dataclass(slots=True)
class SectionResult:
    section: str
    matched: bool
    reason: str = ""


@dataclass(slots=True)
class Verdict:
    code: str
    name: str
    has: bool
    sections: list[SectionResult] = field(default_factory=list)


@dataclass(slots=True)
class Classification:
    """Services per in-scope customer (the records that get written), plus why others are out."""

    services: dict[int, frozenset[str]]
    inactive: int = 0
    prospects: int = 0
    locations_rolled_up: int = 0
    # the lean path: each written customer's numbers after roll-up, for later steps (monitors);
    # row i belongs to the i-th customer of ``services``
    rolled: Any = None  # np.ndarray | None


class Classifier:
    """Rules compiled against the dealer's categories: glob matching happens once per code."""

    def __init__(self, rules: RuleSet, categories: list[str]) -> None:
        self.rules = rules
        self._cats: dict[int, set[str]] = {}
        for sec in rules.all_sections("equipment") + rules.all_sections("items_sold"):
            self._cats[id(sec)] = rules.categories_for(sec, categories)
        self._glob_cache: dict[tuple[int, str], bool] = {}

    def _match(self, key: int, value: str, globs: list[str]) -> bool:
        if not globs:
            return True
        hit = self._glob_cache.get((key, value))
        if hit is None:
            hit = self._glob_cache[(key, value)] = glob_match(value, globs)
        return hit

    # -- one section ------------------------------------------------------------------------------
    def equipment(self, sec: EquipmentSection, f: CustomerFacts, why: bool) -> SectionResult:
        cats = self._cats[id(sec)]
        counted = f.equipment if sec.active_only else f.equipment_all
        units = sum(n for cat, n in counted.items() if cat in cats)
        if sec.on_contract is not None:  # units on an active contract, or on none
            on = f.equipment_covered if sec.active_only else f.equipment_covered_all
            covered = sum(n for cat, n in on.items() if cat in cats)
            units = covered if sec.on_contract else units - covered
        ok = units >= sec.min_count
        kind = "active unit(s)" if sec.active_only else "unit(s), active or not,"
        if sec.on_contract is not None:
            kind += " on an active contract" if sec.on_contract else " on no active contract"
        reason = (f"{units} {kind} in {_describe(sec.model_classes, sec.categories)}; "
                  f"needs {sec.min_count}") if why else ""
        return SectionResult("equipment", ok, reason)

    def items_sold(self, sec: ItemsSoldSection, f: CustomerFacts, why: bool) -> SectionResult:
        cats = self._cats[id(sec)]
        qty = amount = 0.0
        top: float | None = None
        top_cost: float | None = None
        if sec.item_categories:
            key = id(sec)
            sold = ((cat, window, agg) for (cat, item_cat, window), agg
                    in f.items_by_item_category.items()
                    if self._match(key, item_cat, sec.item_categories))
        else:
            sold = ((cat, window, agg) for (cat, window), agg in f.items_sold.items())
        for cat, window, agg in sold:
            if window == sec.window_days and cat in cats:
                qty += agg.quantity
                amount += agg.amount
                top = _max(top, agg.max_unit_price)
                top_cost = _max(top_cost, agg.max_unit_cost)
        ok = qty >= sec.min_quantity
        if sec.min_unit_price is not None:
            ok = ok and top is not None and top >= sec.min_unit_price
        if sec.min_unit_cost is not None:
            ok = ok and top_cost is not None and top_cost >= sec.min_unit_cost
        if sec.min_amount is not None:
            ok = ok and amount >= sec.min_amount
        reason = ""
        if why:
            reason = (f"{qty:g} sold in {_describe(sec.model_classes, sec.categories)} in the last "
                      f"{sec.window_days} days, {amount:,.2f} in all, highest unit price "
                      f"{'none' if top is None else f'{top:,.2f}'}")
            floors = [f"unit price >= {sec.min_unit_price:g}" if sec.min_unit_price is not None
                      else "",
                      f"unit cost >= {sec.min_unit_cost:g}" if sec.min_unit_cost is not None
                      else "",
                      f"amount >= {sec.min_amount:g}" if sec.min_amount is not None else "",
                      f"quantity >= {sec.min_quantity:g}"]
            reason += "; needs " + ", ".join(x for x in floors if x)
        return SectionResult("items_sold", ok, reason)

    def contracts(self, sec: ContractsSection, f: CustomerFacts, why: bool) -> SectionResult:
        key = id(sec)
        count, rate, codes = 0, 0.0, []
        if sec.statuses:
            contracts = ((code, bill, fact) for (code, bill, status), fact
                         in f.contracts_by_status.items()
                         if self._match(key + 1, status, sec.statuses))
        else:
            contracts = ((code, bill, fact) for (code, bill), fact in f.contracts.items())
        for code, bill, fact in contracts:
            if (self._match(key, code, sec.contract_codes)
                    and self._match(-key, bill, sec.bill_codes)):
                count += fact.count
                rate += fact.base_rate
                codes.append(code)
        ok = count >= sec.min_count and (sec.min_base_rate is None or rate >= sec.min_base_rate)
        reason = ""
        if why:
            wanted = ", ".join(sec.contract_codes + [f"bill {b}" for b in sec.bill_codes]
                               + [f"status {st}" for st in sec.statuses])
            reason = (f"{count} active contract(s) matching {wanted}"
                      f"{' (' + ', '.join(sorted(set(codes))) + ')' if codes else ''}; "
                      f"needs {sec.min_count}")
            if sec.min_base_rate is not None:
                reason += f" with base rate >= {sec.min_base_rate:g} (has {rate:,.2f})"
        return SectionResult("contracts", ok, reason)

    def gl(self, sec: GlSection, f: CustomerFacts, why: bool) -> SectionResult:
        key = id(sec)
        if sec.transaction_types:
            revenue = sum(v for (acct, kind, w), v in f.gl_typed.items()
                          if w == sec.window_days and self._match(key, acct, sec.accounts)
                          and self._match(-key, kind, sec.transaction_types))
        else:
            revenue = sum(v for (acct, w), v in f.gl.items()
                          if w == sec.window_days and self._match(key, acct, sec.accounts))
        ok = revenue >= sec.min_revenue
        types = f" ({', '.join(sec.transaction_types)})" if sec.transaction_types else ""
        reason = (f"{revenue:,.2f} revenue on {', '.join(sec.accounts)}{types} in the last "
                  f"{sec.window_days} days; needs {sec.min_revenue:,.2f}") if why else ""
        return SectionResult("gl", ok, reason)

    # -- one service ------------------------------------------------------------------------------
    def _sections(self, holder: Service | Exclude, f: CustomerFacts,
                  why: bool) -> tuple[bool, list[SectionResult]]:
        results = []
        sections = holder.sections()
        for name, sec in sections:
            res = getattr(self, name)(sec, f, why)
            results.append(res)
            if not why and (res.matched if holder.match == "any" else not res.matched):
                break  # short-circuit: the outcome is decided
        matched = (any(r.matched for r in results) if holder.match == "any"
                   else len(results) == len(sections) and all(r.matched for r in results))
        return matched, results

    def evaluate(self, svc: Service, f: CustomerFacts, why: bool = False) -> Verdict:
        has, results = self._sections(svc, f, why)
        if svc.exclude is not None and (has or why):
            excluded, ex_results = self._sections(svc.exclude, f, why)
            for r in ex_results:
                results.append(SectionResult(f"exclude.{r.section}", r.matched, r.reason))
            has = has and not excluded
        return Verdict(svc.code, svc.name, has, results)

    def services_of(self, f: CustomerFacts) -> frozenset[str]:
        return frozenset(s.code for s in self.rules.services if self.evaluate(s, f).has)


def merge_facts(parts: list[CustomerFacts]) -> CustomerFacts:
    """The facts of several records added together (a parent and its locations)."""
    out = CustomerFacts()
    for f in parts:
        for cat, n in f.equipment.items():
            out.equipment[cat] = out.equipment.get(cat, 0) + n
        for ckey, c in f.contracts.items():
            have = out.contracts.get(ckey)
            out.contracts[ckey] = (ContractFact(c.count, c.base_rate) if have is None else
                                  ContractFact(have.count + c.count, have.base_rate + c.base_rate))
        for key, v in f.gl.items():
            out.gl[key] = out.gl.get(key, 0.0) + v
        for typed_key, v in f.gl_typed.items():
            out.gl_typed[typed_key] = out.gl_typed.get(typed_key, 0.0) + v
        for cat, n in f.equipment_all.items():
            out.equipment_all[cat] = out.equipment_all.get(cat, 0) + n
        for covered, into in ((f.equipment_covered, out.equipment_covered),
                              (f.equipment_covered_all, out.equipment_covered_all)):
            for cat, n in covered.items():
                into[cat] = into.get(cat, 0) + n
        for skey, c in f.contracts_by_status.items():
            have_c = out.contracts_by_status.get(skey)
            out.contracts_by_status[skey] = (ContractFact(c.count, c.base_rate) if have_c is None
                                             else ContractFact(have_c.count + c.count,
                                                               have_c.base_rate + c.base_rate))
        for ikey, i in f.items_by_item_category.items():
            have_s = out.items_by_item_category.get(ikey)
            out.items_by_item_category[ikey] = i if have_s is None else add_sold(have_s, i)
        for key, i in f.items_sold.items():
            have_i = out.items_sold.get(key)
            out.items_sold[key] = i if have_i is None else add_sold(have_i, i)
    return out


def scope(facts: Facts, rules: RuleSet) -> tuple[dict[int, list[int]], int, int, int]:
    """The records written (active, not prospects) and, per record, the rows whose facts count.

    Returns (members by written customer, inactive, prospects, locations rolled up).
    """
    customers = facts.customers
    members: dict[int, list[int]] = {}
    inactive = prospects = rolled = 0
    for cid, c in customers.items():
        if not c.active:
            inactive += 1
            continue
        if c.prospect:
            prospects += 1
            continue
        parent = (customers.get(c.parent_id) if c.parent_id is not None and c.is_location
                  else None)
        if rules.level == "location" or parent is None:
            members.setdefault(cid, []).insert(0, cid)  # a parent, or an orphaned location
        elif parent.active and not parent.prospect:
            members.setdefault(parent.id, []).append(cid)
            rolled += 1
    return members, inactive, prospects, rolled


def facts_for(facts: Facts, rows: list[int]) -> CustomerFacts:
    parts = [facts.facts[r] for r in rows if r in facts.facts]
    if not parts:
        return CustomerFacts()
    return parts[0] if len(parts) == 1 else merge_facts(parts)


def classify(facts: Facts, rules: RuleSet) -> Classification:
    """Services for every customer in scope: active, not a prospect, at the rule set's level."""
    if facts.metrics is not None:
        return _classify_arrays(facts, rules)
    clf = Classifier(rules, list(facts.categories))
    members, inactive, prospects, rolled = scope(facts, rules)
    no_facts = clf.services_of(CustomerFacts())  # customers with no facts share one evaluation
    services: dict[int, frozenset[str]] = {}
    for cid, rows in members.items():
        has_facts = any(r in facts.facts for r in rows)
        services[cid] = clf.services_of(facts_for(facts, rows)) if has_facts else no_facts
    return Classification(services=services, inactive=inactive, prospects=prospects,
                          locations_rolled_up=rolled)


def _classify_arrays(facts: Facts, rules: RuleSet) -> Classification:
    """The same scope and roll-up as ``scope`` + ``merge_facts``, as array operations."""
    table = facts.metrics
    ids = table.ids
    n = len(ids)
    if facts.customer_arrays is not None:  # built while reading, in the same (id) order
        active = facts.customer_arrays["active"]
        prospect = facts.customer_arrays["prospect"]
        parent = facts.customer_arrays["parent"]
    else:
        records = [facts.customers[i] for i in ids.tolist()]
        active = np.fromiter((c.active for c in records), dtype=bool, count=n)
        prospect = np.fromiter((c.prospect for c in records), dtype=bool, count=n)
        parent = np.fromiter((-1 if c.parent_id is None else c.parent_id for c in records),
                             dtype=np.int64, count=n)
    rows = np.arange(n)
    in_scope = active & ~prospect
    target = np.where(in_scope, rows, -1)
    rolled_count = 0
    if rules.level == "parent" and n:
        pos = np.searchsorted(ids, parent)
        pos[pos >= n] = 0
        located = (parent >= 0) & (parent != ids) & (ids[pos] == parent)  # parent on record
        into = in_scope & located & in_scope[pos]
        target[in_scope & located & ~in_scope[pos]] = -1  # parent inactive: counts nowhere
        target[into] = pos[into]
        rolled_count = int(into.sum())
    written = np.nonzero(target == rows)[0]
    values = rolled_up(table, target, written)  # only the written rows: no full-size copy
    has = evaluate(table.compiled, values)
    codes = [s.code for s in rules.services]
    masks = has.astype(np.int64) @ (np.int64(1) << np.arange(len(codes), dtype=np.int64))
    sets: dict[int, frozenset[str]] = {}
    for mask in np.unique(masks).tolist():
        sets[mask] = frozenset(c for b, c in enumerate(codes) if mask >> b & 1)
    services = dict(zip(ids[written].tolist(), map(sets.__getitem__, masks.tolist())))
    return Classification(services=services, inactive=int((~active).sum()),
                          prospects=int((active & prospect).sum()),
                          locations_rolled_up=rolled_count, rolled=values)


def explain(facts: Facts, rules: RuleSet, rows: list[int]) -> list[Verdict]:
    """Each service's verdict, with the reason for every section, on the facts of ``rows`` added
    together (one record, or a parent with its active locations)."""
    clf = Classifier(rules, list(facts.categories))
    f = facts_for(facts, rows)
    return [clf.evaluate(s, f, why=True) for s in rules.services]


def _max(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


def _describe(classes: list[str], globs: list[str]) -> str:
    return ", ".join([*classes, *globs])
