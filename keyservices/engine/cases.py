"""Admin-written rule tests: facts in, expected services out (``keyservices test-rules``).

Cases live in ``rules/tests/*.yaml`` beside the rules they test, so a change to a rule that breaks
what the dealer agreed a service means fails before it reaches the ERP. Pure: no database.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import RulesError
from ..model import ContractFact, Customer, CustomerFacts, Facts, ItemsSold, add_sold
from ..rules import RuleSet
from ..yamlfile import Problem, YamlProblems, load_yaml, position, problems_from_validation
from .classify import classify, explain, scope


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ContractIn(_Strict):
    code: str
    bill: str = ""
    status: str = ""
    count: int = Field(1, ge=0)
    base_rate: float = 0.0


class GlIn(_Strict):
    account: str
    amount: float
    window_days: int = 365
    transaction_type: str = ""


class SaleIn(_Strict):
    category: str
    item_category: str = ""
    amount: float
    quantity: float = 1
    window_days: int = 730
    unit_cost: float | None = None


class FactsIn(_Strict):
    """One customer record's facts, as a case states them."""

    active: bool = True
    equipment: dict[str, int] = {}
    inactive_equipment: dict[str, int] = {}
    on_contract: dict[str, int] = {}  # of the active equipment, units on an active contract
    contracts: list[ContractIn] = []
    gl: list[GlIn] = []
    items_sold: list[SaleIn] = []

    def to_facts(self) -> CustomerFacts:
        f = CustomerFacts(equipment=dict(self.equipment))
        for cat, n in {**self.equipment}.items():
            f.equipment_all[cat] = n
        for cat, n in self.inactive_equipment.items():
            f.equipment_all[cat] = f.equipment_all.get(cat, 0) + n
        for cat, n in self.on_contract.items():
            f.equipment_covered[cat] = f.equipment_covered_all[cat] = n
        for c in self.contracts:
            have = f.contracts.get((c.code, c.bill), ContractFact())
            f.contracts[(c.code, c.bill)] = ContractFact(have.count + c.count,
                                                         have.base_rate + c.base_rate)
            have = f.contracts_by_status.get((c.code, c.bill, c.status), ContractFact())
            f.contracts_by_status[(c.code, c.bill, c.status)] = ContractFact(
                have.count + c.count, have.base_rate + c.base_rate)
        for g in self.gl:
            f.gl[(g.account, g.window_days)] = f.gl.get((g.account, g.window_days), 0) + g.amount
            tkey = (g.account, g.transaction_type, g.window_days)
            f.gl_typed[tkey] = f.gl_typed.get(tkey, 0) + g.amount
        for s in self.items_sold:
            unit = s.amount / s.quantity if s.quantity else None
            cost = s.unit_cost
            sold = ItemsSold(1, s.quantity, s.amount, unit, cost)
            key = (s.category, s.window_days)
            f.items_sold[key] = add_sold(f.items_sold[key], sold) if key in f.items_sold else sold
            ikey = (s.category, s.item_category, s.window_days)
            f.items_by_item_category[ikey] = (add_sold(f.items_by_item_category[ikey], sold)
                                              if ikey in f.items_by_item_category else sold)
        return f

    def categories(self) -> set[str]:
        return {*self.equipment, *self.inactive_equipment, *(s.category for s in self.items_sold)}


class Case(_Strict):
    name: str = Field(min_length=1)
    customer: FactsIn = FactsIn()
    locations: list[FactsIn] = []
    expect: list[str]


class CaseFile(_Strict):
    cases: list[Case] = Field(min_length=1)


@dataclass
class CaseResult:
    file: Path
    line: int | None
    name: str
    expected: list[str]
    got: list[str]
    reasons: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.expected == self.got


def case_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.y*ml") if p.is_file()) if folder.is_dir() else []


def run_cases(rules: RuleSet, folder: Path) -> list[CaseResult]:
    """Evaluate every case in ``folder``; invalid case files raise RulesError (exit 2)."""
    files = case_files(folder)
    if not files:
        raise RulesError(f"no rule tests in {folder}: add *.yaml files with 'cases:' "
                         "(see the examples shipped in rules/tests/)")
    problems: list[Problem] = []
    loaded: list[tuple[Path, Any, CaseFile]] = []
    for path in files:
        try:
            data = load_yaml(path)
            loaded.append((path, data, CaseFile.model_validate(dict(data))))
        except YamlProblems as exc:
            problems.extend(exc.problems)
        except ValidationError as exc:
            problems.extend(problems_from_validation(exc, data, path, CaseFile))
        except (TypeError, ValueError):
            problems.append(Problem(path, 1, 1, "", "must be a mapping with a 'cases:' list"))
    if problems:
        raise RulesError("\n".join([f"{len(problems)} problem(s) in the rule tests:",
                                    *(f"  {p}" for p in problems)]))
    order = [s.code for s in rules.services]
    results = []
    for path, data, case_file in loaded:
        for i, case in enumerate(case_file.cases):
            got, reasons = _evaluate(rules, case)
            line, _ = position(data, ("cases", i))
            expected = sorted(case.expect, key=lambda c: (order.index(c) if c in order else 99, c))
            results.append(CaseResult(path, line, case.name, expected,
                                      sorted(got, key=order.index), reasons))
    return results


def _evaluate(rules: RuleSet, case: Case) -> tuple[set[str], list[str]]:
    records = [case.customer, *case.locations]
    customers = {}
    facts = {}
    for i, rec in enumerate(records, start=1):
        customers[i] = Customer(id=i, number=f"CASE{i}", name=case.name, parent_id=None if i == 1
                                else 1, active=rec.active, prospect=False, config_id=1,
                                has_value_row=True)
        facts[i] = rec.to_facts()
    categories = {c: "" for rec in records for c in rec.categories()}
    all_facts = Facts(as_of=dt.date.today(), customers=customers, facts=facts,
                      categories=categories)
    services = set(classify(all_facts, rules).services.get(1, frozenset()))
    members = scope(all_facts, rules)[0].get(1, [1])
    reasons = [f"{'YES' if v.has else 'no '} {v.code}: " + "; ".join(
        f"{'+' if s.matched else '-'} {s.section}: {s.reason}" for s in v.sections)
        for v in explain(all_facts, rules, members)]
    return services, reasons
