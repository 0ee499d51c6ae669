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

from .model import ContractFact, CustomerFacts, Facts, ItemsSold
from .rules import (ContractsSection, EquipmentSection, GlSection, ItemsSoldSection, RuleSet,
                    Service, glob_match)


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


class Classifier:
    """Rules compiled against the dealer's categories: glob matching happens once per code."""

    def __init__(self, rules: RuleSet, categories: list[str]) -> None:
        self.rules = rules
        self._cats: dict[int, set[str]] = {}
        for svc in rules.services:
            for sec in (svc.equipment, svc.items_sold):
                if sec is not None:
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
        units = sum(n for cat, n in f.equipment.items() if cat in cats)
        ok = units >= sec.min_count
        reason = (f"{units} active unit(s) in {_describe(sec.model_classes, sec.categories)}; "
                  f"needs {sec.min_count}") if why else ""
        return SectionResult("equipment", ok, reason)

    def items_sold(self, sec: ItemsSoldSection, f: CustomerFacts, why: bool) -> SectionResult:
        cats = self._cats[id(sec)]
        qty = amount = 0.0
        top: float | None = None
        for (cat, window), agg in f.items_sold.items():
            if window == sec.window_days and cat in cats:
                qty += agg.quantity
                amount += agg.amount
                if agg.max_unit_price is not None:
                    top = agg.max_unit_price if top is None else max(top, agg.max_unit_price)
        ok = qty >= sec.min_quantity
        if sec.min_unit_price is not None:
            ok = ok and top is not None and top >= sec.min_unit_price
        if sec.min_amount is not None:
            ok = ok and amount >= sec.min_amount
        reason = ""
        if why:
            reason = (f"{qty:g} sold in {_describe(sec.model_classes, sec.categories)} in the last "
                      f"{sec.window_days} days, {amount:,.2f} in all, highest unit price "
                      f"{'none' if top is None else f'{top:,.2f}'}")
            floors = [f"unit price >= {sec.min_unit_price:g}" if sec.min_unit_price is not None
                      else "", f"amount >= {sec.min_amount:g}" if sec.min_amount is not None else "",
                      f"quantity >= {sec.min_quantity:g}"]
            reason += "; needs " + ", ".join(x for x in floors if x)
        return SectionResult("items_sold", ok, reason)

    def contracts(self, sec: ContractsSection, f: CustomerFacts, why: bool) -> SectionResult:
        key = id(sec)
        count, rate, codes = 0, 0.0, []
        for (code, bill), fact in f.contracts.items():
            if (self._match(key, code, sec.contract_codes)
                    and self._match(-key, bill, sec.bill_codes)):
                count += fact.count
                rate += fact.base_rate
                codes.append(code)
        ok = count >= sec.min_count and (sec.min_base_rate is None or rate >= sec.min_base_rate)
        reason = ""
        if why:
            wanted = ", ".join(sec.contract_codes + [f"bill {b}" for b in sec.bill_codes])
            reason = (f"{count} active contract(s) matching {wanted}"
                      f"{' (' + ', '.join(sorted(set(codes))) + ')' if codes else ''}; "
                      f"needs {sec.min_count}")
            if sec.min_base_rate is not None:
                reason += f" with base rate >= {sec.min_base_rate:g} (has {rate:,.2f})"
        return SectionResult("contracts", ok, reason)

    def gl(self, sec: GlSection, f: CustomerFacts, why: bool) -> SectionResult:
        key = id(sec)
        revenue = sum(v for (acct, w), v in f.gl.items()
                      if w == sec.window_days and self._match(key, acct, sec.accounts))
        ok = revenue >= sec.min_revenue
        reason = (f"{revenue:,.2f} revenue on {', '.join(sec.accounts)} in the last "
                  f"{sec.window_days} days; needs {sec.min_revenue:,.2f}") if why else ""
        return SectionResult("gl", ok, reason)

    # -- one service ------------------------------------------------------------------------------
    def evaluate(self, svc: Service, f: CustomerFacts, why: bool = False) -> Verdict:
        results = []
        for name, sec in svc.sections():
            res = getattr(self, name)(sec, f, why)
            results.append(res)
            if not why and (res.matched if svc.match == "any" else not res.matched):
                break  # short-circuit: the outcome is decided
        has = (any(r.matched for r in results) if svc.match == "any"
               else all(r.matched for r in results) and len(results) == len(svc.sections()))
        return Verdict(svc.code, svc.name, has, results)

    def services_of(self, f: CustomerFacts) -> frozenset[str]:
        return frozenset(s.code for s in self.rules.services if self.evaluate(s, f).has)


def merge_facts(parts: list[CustomerFacts]) -> CustomerFacts:
    """The facts of several records added together (a parent and its locations)."""
    out = CustomerFacts()
    for f in parts:
        for cat, n in f.equipment.items():
            out.equipment[cat] = out.equipment.get(cat, 0) + n
        for key, c in f.contracts.items():
            have = out.contracts.get(key)
            out.contracts[key] = (ContractFact(c.count, c.base_rate) if have is None else
                                  ContractFact(have.count + c.count, have.base_rate + c.base_rate))
        for key, v in f.gl.items():
            out.gl[key] = out.gl.get(key, 0.0) + v
        for key, i in f.items_sold.items():
            have_i = out.items_sold.get(key)
            if have_i is None:
                out.items_sold[key] = ItemsSold(i.lines, i.quantity, i.amount, i.max_unit_price)
                continue
            top = [x for x in (have_i.max_unit_price, i.max_unit_price) if x is not None]
            out.items_sold[key] = ItemsSold(have_i.lines + i.lines, have_i.quantity + i.quantity,
                                            have_i.amount + i.amount, max(top) if top else None)
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
        parent = customers.get(c.parent_id) if c.is_location else None  # type: ignore[arg-type]
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
    clf = Classifier(rules, list(facts.categories))
    members, inactive, prospects, rolled = scope(facts, rules)
    no_facts = clf.services_of(CustomerFacts())  # customers with no facts share one evaluation
    services: dict[int, frozenset[str]] = {}
    for cid, rows in members.items():
        has_facts = any(r in facts.facts for r in rows)
        services[cid] = clf.services_of(facts_for(facts, rows)) if has_facts else no_facts
    return Classification(services=services, inactive=inactive, prospects=prospects,
                          locations_rolled_up=rolled)


def explain(facts: Facts, rules: RuleSet, rows: list[int]) -> list[Verdict]:
    """Each service's verdict, with the reason for every section, on the facts of ``rows`` added
    together (one record, or a parent with its active locations)."""
    clf = Classifier(rules, list(facts.categories))
    f = facts_for(facts, rows)
    return [clf.evaluate(s, f, why=True) for s in rules.services]


def _describe(classes: list[str], globs: list[str]) -> str:
    return ", ".join([*classes, *globs])
