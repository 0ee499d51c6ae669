"""Classification and diff over hand-built facts: pure logic, no database."""

from __future__ import annotations

import dataclasses
import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from keyservices.engine.classify import classify, explain
from keyservices.engine.diff import guard_message, plan_changes
from keyservices.model import ContractFact, Customer, CustomerFacts, Facts, ItemsSold
from keyservices.resources import example_rules_dir
from keyservices.rules import load_rules

RULES = load_rules(example_rules_dir())
CATEGORIES = {c: "" for c in ["MFP-A3-CO-03", "PRN-A4-BW", "SW-DM-ECOPY", "SW-DM-CAPTURE",
                              "PC-DESKTOP", "WTR-COOLER"]}


def customer(cid: int, parent: int | None = None, **kw: object) -> Customer:
    base = {"id": cid, "number": f"C{cid:04d}", "name": f"Customer {cid}", "parent_id": parent,
                "active": True, "prospect": False, "config_id": 101, "has_value_row": True}
    base.update(kw)
    return Customer(**base)  # type: ignore[arg-type]


def facts_of(customers: list[Customer], facts: dict[int, CustomerFacts]) -> Facts:
    return Facts(as_of=dt.date(2026, 11, 24), customers={c.id: c for c in customers},
                 facts=facts, categories=CATEGORIES)


def services(customers: list[Customer], facts: dict[int, CustomerFacts], rules=RULES):
    return classify(facts_of(customers, facts), rules).services


def test_copier_in_field_or_copier_contract_makes_cpy() -> None:
    got = services([customer(1), customer(2), customer(3)], {
        1: CustomerFacts(equipment={"MFP-A3-CO-03": 1}),
        2: CustomerFacts(contracts={("COPY-MAINT", "MONTHLY"): ContractFact(1, 120.0)}),
        3: CustomerFacts(equipment={"PC-DESKTOP": 12, "WTR-COOLER": 2}),
    })
    assert got == {1: {"CPY"}, 2: {"CPY"}, 3: frozenset()}


def test_managed_print_needs_all_sections() -> None:
    contract = {("MPS-FLEET", "MONTHLY"): ContractFact(1, 300.0)}
    got = services([customer(1), customer(2), customer(3)], {
        1: CustomerFacts(contracts=contract, equipment={"PRN-A4-BW": 2, "MFP-A3-CO-03": 1}),
        2: CustomerFacts(contracts=contract, equipment={"PRN-A4-BW": 2}),  # fleet too small
        3: CustomerFacts(equipment={"PRN-A4-BW": 9}),  # no MPS contract
    })
    assert "MPS" in got[1] and "MPS" not in got[2] and "MPS" not in got[3]


def test_zero_cost_licence_does_not_make_a_dm_customer() -> None:
    free = ItemsSold(lines=1, quantity=1, amount=0.0, max_unit_price=0.0)
    paid = ItemsSold(lines=1, quantity=1, amount=1450.0, max_unit_price=1450.0)
    got = services([customer(1), customer(2)], {
        1: CustomerFacts(items_sold={("SW-DM-ECOPY", 730): free}),
        2: CustomerFacts(items_sold={("SW-DM-CAPTURE", 730): paid}),
    })
    assert got == {1: frozenset(), 2: {"DM"}}
    reasons = explain(facts_of([customer(1)], {1: CustomerFacts(
        items_sold={("SW-DM-ECOPY", 730): free})}), RULES, [1])
    dm = next(v for v in reasons if v.code == "DM")
    assert not dm.has
    assert "highest unit price 0.00" in dm.sections[0].reason


def test_gl_revenue_threshold_and_window() -> None:
    got = services([customer(1), customer(2)], {
        1: CustomerFacts(gl={("4300", 365): 1500.0}),
        2: CustomerFacts(gl={("4300", 365): 999.99, ("4310", 365): 5000.0}),  # 4310 is projects
    })
    assert got == {1: {"MIT"}, 2: frozenset()}


def test_contract_on_parent_and_fleet_at_locations_make_one_mps_customer() -> None:
    """e-automate dealers keep contracts on the parent and machines at the locations."""
    cs = [customer(1), customer(2, parent=1), customer(3, parent=1)]
    got = services(cs, {
        1: CustomerFacts(contracts={("MPS-CLICK", "MONTHLY"): ContractFact(1, 250.0)}),
        2: CustomerFacts(equipment={"PRN-A4-BW": 2}),
        3: CustomerFacts(equipment={"MFP-A3-CO-03": 1}),
    })
    assert got == {1: {"CPY", "MPS"}}


def test_location_services_roll_up_to_an_active_parent() -> None:
    parent, loc, gone = customer(1), customer(2, parent=1), customer(3, parent=1, active=False)
    got = services([parent, loc, gone], {
        2: CustomerFacts(equipment={"MFP-A3-CO-03": 1}),
        3: CustomerFacts(contracts={("IT-MANAGED", "MONTHLY"): ContractFact(1, 900.0)}),
    })
    assert got == {1: {"CPY"}}  # locations are not written at level parent; inactive one ignored


def test_location_level_keeps_each_record() -> None:
    rules = dataclasses.replace(RULES, level="location")
    got = services([customer(1), customer(2, parent=1)],
                   {2: CustomerFacts(equipment={"MFP-A3-CO-03": 1})}, rules)
    assert got == {1: frozenset(), 2: {"CPY"}}


def test_inactive_and_prospects_are_not_classified() -> None:
    result = classify(facts_of([customer(1, active=False), customer(2, prospect=True),
                                customer(3)], {}), RULES)
    assert set(result.services) == {3}
    assert (result.inactive, result.prospects) == (1, 1)


def test_plan_lists_unwritable_customers_and_puts_values_in_rule_order() -> None:
    cs = [customer(1, config_id=None), customer(2, has_value_row=False),
          customer(3, current_value="MIT;CPY"), customer(4, current_value="CPY;DM")]
    copier_and_it = CustomerFacts(equipment={"MFP-A3-CO-03": 1},
                                  gl={("4300", 365): 5000.0})
    facts = facts_of(cs, {i: copier_and_it for i in (1, 2, 3, 4)})
    plan = plan_changes(facts, classify(facts, RULES), RULES)
    assert [r.number for r in plan.no_configuration] == ["C0001"]
    assert [r.number for r in plan.no_attribute] == ["C0002"]
    # C0003 holds the same services in another order: rewritten in rule order (the rendered text
    # is compared, so a change of value format or separator converges), nothing added or removed
    assert plan.unchanged == 0
    reordered, changed = plan.changes
    assert (reordered.number, reordered.before, reordered.after) == ("C0003", "MIT;CPY", "CPY;MIT")
    assert reordered.added == () and reordered.removed == ()
    assert (changed.number, changed.before, changed.after) == ("C0004", "CPY;DM", "CPY;MIT")
    assert changed.added == ("MIT",) and changed.removed == ("DM",)


def test_no_services_clears_the_value_to_null() -> None:
    facts = facts_of([customer(1, current_value="CPY")], {})
    (change,) = plan_changes(facts, classify(facts, RULES), RULES).changes
    assert change.after is None and change.removed == ("CPY",)


def test_change_guard_messages() -> None:
    assert guard_message(10, 100, 20, None) is None
    assert "exceed write.max_changes = 5" in guard_message(10, 100, 5, None)
    assert "10.0% of 100 customers" in guard_message(10, 100, None, 5)
    assert "--force" in guard_message(10, 100, None, 5)


section = st.sampled_from([
    CustomerFacts(),
    CustomerFacts(equipment={"MFP-A3-CO-03": 1}),
    CustomerFacts(equipment={"PRN-A4-BW": 2}),
    CustomerFacts(gl={("4300", 365): 600.0}),
    CustomerFacts(contracts={("MPS-FLEET", "ANNUAL"): ContractFact(1, 50.0)}),
    CustomerFacts(items_sold={("SW-DM-ECOPY", 730): ItemsSold(1, 1, 0.0, 0.0)}),
    CustomerFacts(items_sold={("SW-DM-CAPTURE", 730): ItemsSold(1, 1, 90.0, 90.0)}),
])


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), section, st.booleans()), min_size=1, max_size=12),
       st.lists(section, min_size=4, max_size=4))
def test_rollup_invariants(rows: list[tuple[int, CustomerFacts, bool]],
                           own: list[CustomerFacts]) -> None:
    """With level: parent, a parent has every service its own record or any active location
    has alone, and exactly the services of all those facts added together; inactive locations
    never count."""
    from keyservices.engine.classify import Classifier, merge_facts

    parents = [customer(p) for p in range(4)]
    locations = [customer(10 + i, parent=p, active=active) for i, (p, _, active) in enumerate(rows)]
    facts = {p: own[p] for p in range(4)}
    facts.update({10 + i: f for i, (_, f, _) in enumerate(rows)})
    result = classify(facts_of(parents + locations, facts), RULES)
    clf = Classifier(RULES, list(CATEGORIES))
    for p in range(4):
        counted = [own[p]] + [facts[loc.id] for loc in locations
                              if loc.parent_id == p and loc.active]
        alone = set().union(*[clf.services_of(f) for f in counted])
        assert result.services[p] >= alone
        assert result.services[p] == clf.services_of(merge_facts(counted))
    assert set(result.services) == {0, 1, 2, 3}
