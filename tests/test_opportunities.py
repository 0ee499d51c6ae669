"""Industry gaps: who lacks a service most of their industry peers use (pure, hand-built facts)."""

from __future__ import annotations

import dataclasses
import datetime as dt

from keyservices.classify import classify
from keyservices.model import ContractFact, Customer, CustomerFacts, Facts
from keyservices.opportunities import find
from keyservices.resources import example_rules_dir
from keyservices.rules import Opportunities, load_rules

AS_OF = dt.date(2026, 11, 24)
BASE = load_rules(example_rules_dir())
RULES = dataclasses.replace(BASE, opportunities=Opportunities(typical_share=0.5, min_peers=10,
                                                             grace_days=90))
DM = CustomerFacts(contracts={("DM-SUB", "ANNUAL"): ContractFact(1, 99.0)})


def legal_firms(with_dm: int, total: int, industry: str = "Legal", start: int = 0,
                **kw: object) -> tuple[list[Customer], dict[int, CustomerFacts]]:
    customers, facts = [], {}
    for i in range(start, start + total):
        customers.append(Customer(id=i, number=f"L{i:03d}", name=f"Firm {i}", parent_id=None,
                                  active=True, prospect=False, industry=industry,
                                  branch="North", sales_rep="Dana", config_id=1,
                                  has_value_row=True, created=dt.datetime(2020, 1, 1), **kw))
        if i - start < with_dm:
            facts[i] = DM
    return customers, facts


def run(customers: list[Customer], facts: dict[int, CustomerFacts], rules=RULES):
    all_facts = Facts(as_of=AS_OF, customers={c.id: c for c in customers}, facts=facts,
                      categories={})
    return find(all_facts, classify(all_facts, rules), rules)


def test_a_customer_lacking_what_most_peers_use_is_an_opportunity() -> None:
    customers, facts = legal_firms(with_dm=6, total=10)
    found = run(customers, facts)
    assert [o.number for o in found] == ["L006", "L007", "L008", "L009"]
    assert {o.service for o in found} == {"Document Management"}
    assert found[0].priority == "Medium"  # 60 % of peers: medium; 75 % and more: high
    assert found[0].reason == "60% of 10 Legal customers use Document Management"


def test_too_few_peers_or_too_rare_a_service_is_no_opportunity() -> None:
    few, facts = legal_firms(with_dm=8, total=9)  # 9 peers < min_peers 10
    assert run(few, facts) == []
    rare, facts = legal_firms(with_dm=4, total=10)  # 40 % < typical share 50 %
    assert run(rare, facts) == []


def test_exclusions_and_the_grace_period() -> None:
    customers, facts = legal_firms(with_dm=8, total=10)
    customers[8].created = dt.datetime(2026, 10, 1)  # a new customer: 54 days old
    rules = dataclasses.replace(RULES, opportunities=Opportunities(
        typical_share=0.5, min_peers=10, grace_days=90, exclude_customers=["l009"]))
    assert run(customers, facts, rules) == []
    other, more = legal_firms(with_dm=8, total=10, industry="Retail", start=100)
    rules = dataclasses.replace(RULES, opportunities=Opportunities(
        typical_share=0.5, min_peers=10, exclude_industries=["retail"]))
    # Retail is excluded; L008 is still inside its grace period
    assert [o.number for o in run(customers + other, {**facts, **more}, rules)] == ["L009"]


def test_high_priority_comes_first() -> None:
    legal, facts = legal_firms(with_dm=8, total=10)  # 80 %: high
    retail, more = legal_firms(with_dm=6, total=10, industry="Retail", start=100)  # 60 %
    found = run(retail + legal, {**facts, **more})
    assert [o.priority for o in found] == ["High", "High", "Medium", "Medium", "Medium",
                                           "Medium"]
    assert found[0].number == "L008"


def test_no_opportunities_block_means_none() -> None:
    customers, facts = legal_firms(with_dm=8, total=10)
    assert run(customers, facts, dataclasses.replace(RULES, opportunities=None)) == []
