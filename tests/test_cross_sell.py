"""Cross-sell rules, peers by size tier, money at stake, machines on contract.

The issue ("The manager's morning"): the seed's own example list, copier customers without
Managed IT, was empty because opportunities came only from industry typicality; no opportunity
carried a value; equipment could not be counted by whether a contract covers it.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import shutil
from pathlib import Path

import numpy as np
import pytest

import keyservices
from keyservices.calls.opportunities import find
from keyservices.calls.priority import apply
from keyservices.commands.export import export_opportunities
from keyservices.engine.classify import classify
from keyservices.errors import RulesError
from keyservices.model import ContractFact, Customer, CustomerFacts, Facts
from keyservices.resources import example_rules_dir
from keyservices.rules import load_rules

from .conftest import AS_OF, ErpBuilder, write_config

COPIER = CustomerFacts(equipment={"MFP-A3-CO-03": 2})
COPIER_AND_IT = CustomerFacts(equipment={"MFP-A3-CO-03": 1},
                              contracts={("IT-MANAGED", "MONTHLY"): ContractFact(1, 200.0)})
CATEGORIES = {"MFP-A3-CO-03": "A3 colour copier"}


def rules_dir(tmp_path: Path, cross_sell: str = "", extra: str = "") -> Path:
    """The example rules with this cross-sell block instead of the shipped one."""
    folder = tmp_path / "rules"
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(example_rules_dir(), folder)
    (folder / "cross-sell.yaml").write_text(cross_sell + extra, encoding="utf-8")
    return folder


def customers(n: int, industry: str = "Legal", start: int = 0) -> list[Customer]:
    return [Customer(id=i, number=f"C{i:03d}", name=f"Firm {i}", parent_id=None, active=True,
                     prospect=False, industry=industry, branch="North", sales_rep="Dana",
                     config_id=1, has_value_row=True, created=dt.datetime(2020, 1, 1))
            for i in range(start, start + n)]


def found(rules, people, facts, **kw):
    all_facts = Facts(as_of=AS_OF, customers={c.id: c for c in people}, facts=facts,
                      categories=CATEGORIES)
    return find(all_facts, classify(all_facts, rules), rules, **kw)


# -- 1. cross-sell rules ----------------------------------------------------------------------------
SEED = """cross_sell:
  - name: Copier customers without Managed IT
    has: [CPY]
    lacks: [MIT]
    priority: High
"""


def test_copier_customers_without_managed_it_are_offered_it(tmp_path: Path) -> None:
    rules = load_rules(rules_dir(tmp_path, SEED))
    people = customers(6)
    facts = {0: COPIER, 1: COPIER, 2: COPIER_AND_IT, 3: CustomerFacts()}  # 4, 5: nothing
    out = found(rules, people, facts)
    # 1 of 6 peers uses MIT: no industry gap, so only the rule finds them
    assert [(o.number, o.service_code, o.priority) for o in out] == [
        ("C000", "MIT", "High"), ("C001", "MIT", "High")]
    assert out[0].reason == ("Copier customers without Managed IT (uses Copiers; lacks "
                             "Managed IT)")
    assert out[0].cross_sell == ("Copier customers without Managed IT",)
    assert not out[0].typical


def test_industries_tiers_and_units_narrow_a_rule(tmp_path: Path) -> None:
    rules = load_rules(rules_dir(tmp_path, """cross_sell:
  - name: Big legal copier fleets
    has: [CPY]
    lacks: [MIT]
    industries: [legal]
    tiers: [A]
    equipment: {model_classes: [COPIER], min_count: 2}
    value: 2400
    reason: Five copiers and no IT partner
"""))
    people = customers(3) + customers(2, industry="Retail", start=10)
    facts = {i: COPIER for i in (0, 1, 2, 10, 11)}
    tiers = {0: "A", 1: "A", 2: "B", 10: "A", 11: "A"}
    # units in classification order (ids 0, 1, 2, 10, 11): customer 1 has a single copier
    units = {0: np.array([2.0, 1.0, 2.0, 2.0, 2.0])}
    out = found(rules, people, facts, tiers=tiers, units=units)
    assert [o.number for o in out] == ["C000"]  # 1: one unit; 2: tier B; 10, 11: Retail
    assert out[0].reason == "Five copiers and no IT partner"
    assert (out[0].estimated_annual_value, out[0].value_basis) == (2400,
                                                                   "set by a cross-sell rule")
    # without the counts (the detail path) a rule with an equipment condition finds nobody
    assert found(rules, people, facts, tiers=tiers) == []


def test_a_pair_found_twice_is_listed_once_with_both_reasons(tmp_path: Path) -> None:
    rules = load_rules(rules_dir(tmp_path, SEED.replace("High", "Critical")))
    people = customers(10)
    facts = {i: COPIER_AND_IT for i in range(8)} | {8: COPIER, 9: COPIER}  # 80 % use MIT
    out = found(rules, people, facts)
    assert [(o.number, o.priority) for o in out] == [("C008", "Critical"), ("C009", "Critical")]
    assert out[0].reason == ("80% of 10 Legal customers use Managed IT; Copier customers "
                             "without Managed IT (uses Copiers; lacks Managed IT)")
    assert out[0].typical and out[0].cross_sell


@pytest.mark.parametrize("block, message", [
    ("cross_sell:\n  - {name: X, has: [CPX], lacks: [MIT]}\n",
     "cross-sell.yaml:2:21: cross_sell[0].has[0]: unknown service 'CPX' (did you mean 'CPY'?)"),
    ("cross_sell:\n  - {name: X, has: [CPY], lacks: [MIT], offer: [DM]}\n",
     ("cross_sell[0]: cross-sell rule 'X' needs either lacks: (services offered to customers "
      "without them) or offer: (offered anyway), not both")),
    ("cross_sell:\n  - {name: X, has: [CPY]}\n",
     "cross_sell[0]: cross-sell rule 'X' needs either lacks:"),
    ("cross_sell:\n  - {name: X, lacks: [MIT], tiers: [Z]}\n",
     "cross_sell[0].tiers[0]: unknown tier 'Z' (tiers: A, B, C)"),
    ("cross_sell:\n  - {name: X, lacks: [MIT], equipment: {model_classes: [COPPIER]}}\n",
     ("cross_sell[0].equipment.model_classes[0]: model class 'COPPIER' is mapped from no "
      "category")),
    ("cross_sell:\n  - {name: X, lacks: [MIT], equipment: {min_count: 3}}\n",
     "cross_sell[0].equipment: name at least one of model_classes or categories"),
    ("cross_sell:\n  - {name: X, lacks: [MIT]}\n  - {name: X, lacks: [DM]}\n",
     "cross_sell[1].name: duplicate cross-sell rule name 'X'"),
    ("cross_sell:\n  - {name: X, lack: [MIT]}\n",
     "cross_sell[0].lack: unknown key (did you mean 'lacks'?)"),
])
def test_cross_sell_errors_name_file_line_and_key(tmp_path: Path, block: str,
                                                  message: str) -> None:
    with pytest.raises(RulesError) as err:
        load_rules(rules_dir(tmp_path, block))
    assert message in str(err.value), str(err.value)


def test_cross_sell_needs_an_opportunities_block_and_tier_peers_need_tiers(
        tmp_path: Path) -> None:
    folder = rules_dir(tmp_path, SEED)
    classes = folder / "model-classes.yaml"
    text = classes.read_text(encoding="utf-8")
    start = text.index("opportunities:")
    classes.write_text(text[:start] + text[text.index("model_classes:"):], encoding="utf-8")
    with pytest.raises(RulesError, match=r"cross-sell.yaml:1:1: cross_sell: cross-sell rules "
                                         r"need an opportunities: block"):
        load_rules(folder)
    folder = rules_dir(tmp_path, "")
    classes.write_text(text.replace("peers: industry ", "peers: industry_and_tier "),
                       encoding="utf-8")
    (folder / "priority.yaml").write_text(
        "priority:\n  rules:\n    - {name: Any, points: 1}\n", encoding="utf-8")
    with pytest.raises(RulesError, match="opportunities.peers: industry_and_tier needs size "
                                         "tiers: add priority.tiers"):
        load_rules(folder)


# -- 1b. peers by industry and size tier ----------------------------------------------------------
def test_peers_by_industry_and_tier_compare_like_with_like(tmp_path: Path) -> None:
    folder = rules_dir(tmp_path, "")
    classes = folder / "model-classes.yaml"
    classes.write_text(classes.read_text(encoding="utf-8").replace("min_peers: 10",
                                                                   "min_peers: 4"),
                       encoding="utf-8")
    by_industry = load_rules(folder)
    classes.write_text(classes.read_text(encoding="utf-8").replace(
        "peers: industry ", "peers: industry_and_tier "), encoding="utf-8")
    by_tier = load_rules(folder)
    # 10 Legal firms: the 5 big ones (tier A) all use MIT but one; the small ones (C) none
    people = customers(10)
    facts = {i: COPIER_AND_IT for i in range(4)} | {i: COPIER for i in range(4, 10)}
    tiers = {i: "A" if i < 5 else "C" for i in range(10)}
    assert found(by_industry, people, facts, tiers=tiers) == []  # 40 % of Legal: not typical
    out = found(by_tier, people, facts, tiers=tiers)
    assert [(o.number, o.service_code) for o in out] == [("C004", "MIT")]
    assert out[0].reason == "80% of 5 Legal tier A customers use Managed IT"


# -- 2. money at stake ------------------------------------------------------------------------------
def test_the_value_is_the_median_contract_value_of_peers_using_the_service(
        tmp_path: Path) -> None:
    rules = load_rules(rules_dir(tmp_path, ""))
    people = customers(10) + customers(10, industry="Retail", start=100)
    facts = {i: COPIER_AND_IT for i in list(range(8)) + list(range(100, 108))}
    facts |= {8: COPIER, 9: COPIER, 108: COPIER, 109: COPIER}
    # annual MIT contract value per customer (classification order: Legal 0-9, Retail 100-109):
    # Legal users 1,200 .. 8,400 (median of 8: 5,400); C007 uses MIT through GL only (0: not
    # priced); Retail has only two priced users, so it borrows the dealer-wide median
    legal = [1200.0 * (k + 1) for k in range(7)] + [0.0, 0.0, 0.0]
    retail = [999.0, 1001.0] + [0.0] * 8
    out = found(rules, people, facts, values={"MIT": np.array(legal + retail)})
    by_number = {o.number: o for o in out}
    assert by_number["C008"].estimated_annual_value == 4800.0  # median of 1,200 .. 8,400
    assert by_number["C008"].value_basis == "median of 7 Legal peers' contracts"
    assert by_number["C108"].estimated_annual_value == 3600.0  # median of all 9 priced
    assert by_number["C108"].value_basis == "median of all 9 customers' contracts"
    # no value columns (or none priced): no estimate, never a made-up zero
    assert found(rules, people, facts)[0].estimated_annual_value is None


def test_priority_rules_can_use_the_money_and_the_source(tmp_path: Path) -> None:
    folder = rules_dir(tmp_path, SEED, extra="""
priority:
  rules:
    - {name: Big money, when: {min_value: 5000}, priority: Critical}
    - {name: Cross-sell, when: {source: cross_sell}, points: 7}
    - {name: Typical only, when: {source: typical}, priority: Low}
""")
    (folder / "priority.yaml").unlink()
    rules = load_rules(folder)
    people = customers(3)
    facts = {0: COPIER, 1: COPIER, 2: COPIER_AND_IT}
    out = found(rules, people, facts, values={"MIT": np.array([0.0, 0.0, 6000.0])})
    out[1].estimated_annual_value = None  # one of them unpriced
    ranked = apply(rules, out, {}, {}, {})
    # score: 1 of 3 peers uses MIT (33.3) + 7 points; the typical-only rule matched neither
    assert [(o.number, o.priority, o.score) for o in ranked] == [
        ("C000", "Critical", 40.3), ("C001", "High", 40.3)]
    assert ranked[1].why[-1] == ("High from cross-sell rule Copier customers without Managed IT "
                                 "(no priority rule matched)")


# -- 3. machines on contract (SCContractDetails), on SQLite and PostgreSQL -------------------------
ON_CONTRACT = """cross_sell:
  - name: Machines without a service contract
    offer: [CPY]
    equipment: {model_classes: [COPIER], on_contract: false}
  - name: Covered fleets
    has: [CPY]
    lacks: [MIT]
    equipment: {model_classes: [COPIER], on_contract: true, min_count: 2}
"""


def cover(erp: ErpBuilder, contract: int, machine: int) -> None:
    erp.insert("SCContractDetails", ContractID=contract, EquipmentID=machine)


def test_equipment_on_contract_is_counted_in_the_same_statements(any_erp: ErpBuilder,
                                                                 tmp_path: Path) -> None:
    erp = any_erp
    covered = erp.customer("COVERED")  # two copiers on a running copier contract
    k = erp.contract(covered, "COPY-MAINT")
    for _ in range(2):
        cover(erp, k, erp.equipment(covered, "MFP-A3-CO-03"))
    bare = erp.customer("BARE")  # one covered, one not, one on an expired contract, one on two
    k1 = erp.contract(bare, "COPY-MAINT")
    gone = erp.contract(bare, "RENT-COPY", end=AS_OF - dt.timedelta(days=1))
    twice = erp.equipment(bare, "MFP-A3-CO-03")
    cover(erp, k1, twice)
    cover(erp, gone, twice)
    erp.equipment(bare, "MFP-A3-CO-03")  # never on a contract
    cover(erp, gone, erp.equipment(bare, "MFP-A3-CO-03"))  # its contract ended yesterday
    parent = erp.customer("PARENT")  # the contract on the parent covers a location's machine
    site = erp.customer("SITE", parent=parent)
    kp = erp.contract(parent, "COPY-MAINT")
    cover(erp, kp, erp.equipment(parent, "MFP-A3-CO-03", location=site))
    cover(erp, kp, erp.equipment(parent, "MFP-A3-CO-03", location=site))
    off = erp.contract(parent, "MPS-FLEET", active=False)  # an inactive contract covers nothing
    cover(erp, off, erp.equipment(parent, "MFP-A4-BW-01", location=site))
    path = write_config(tmp_path, erp.url, schema=erp.schema)
    rules_dir(tmp_path, ON_CONTRACT)
    config = keyservices.load_config(path)
    text, _ = export_opportunities(config, as_of=AS_OF)
    rows = {(r["customer_number"], r["service"]): r["reason"]
            for r in csv.DictReader(io.StringIO(text))
            if not r["play"].startswith("monitor:")}  # the status monitors' calls aside
    assert rows == {
        ("BARE", "Copiers"): "Machines without a service contract (2 COPIER units on no "
                             "active contract)",
        ("PARENT", "Copiers"): "Machines without a service contract (1 COPIER unit on no "
                               "active contract)",
        ("COVERED", "Managed IT"): "Covered fleets (uses Copiers; 2 COPIER units on an active "
                                   "contract; lacks Managed IT)",
        ("PARENT", "Managed IT"): "Covered fleets (uses Copiers; 2 COPIER units on an active "
                                  "contract; lacks Managed IT)",
    }
    # the statement count does not grow: on_contract rides in the equipment statement
    plain = keyservices.run(config, as_of=AS_OF, dry_run=True).statements
    rules_dir(tmp_path, "")
    assert keyservices.run(config, as_of=AS_OF, dry_run=True).statements == plain


def test_a_service_can_count_machines_on_contract_and_explain_agrees(erp: ErpBuilder,
                                                                     tmp_path: Path) -> None:
    """A service section with on_contract: the array path (run) and the detail path (explain)
    count the same machines."""
    on = erp.customer("ON")
    k = erp.contract(on, "MPS-FLEET")
    for _ in range(3):
        cover(erp, k, erp.equipment(on, "PRN-A4-BW"))
    off = erp.customer("OFF")
    erp.contract(off, "MPS-FLEET")
    for _ in range(3):
        erp.equipment(off, "PRN-A4-BW")
    path = write_config(tmp_path, erp.url)
    services = tmp_path / "rules" / "services.yaml"
    text = services.read_text(encoding="utf-8")
    services.write_text(text.replace("      model_classes: [PRINTER, COPIER]\n      min_count: 3",
                                     "      model_classes: [PRINTER, COPIER]\n      min_count: 3"
                                     "\n      on_contract: true"), encoding="utf-8")
    config = keyservices.load_config(path)
    result = keyservices.run(config, as_of=AS_OF, dry_run=True)
    after = {c.number: c.after for c in result.changes}
    assert after == {"ON": "MPS"}
    from keyservices.commands.explain import explain

    lines = str(explain(config, "OFF", as_of=AS_OF).records)
    assert "0 active unit(s) on an active contract in PRINTER, COPIER; needs 3" in lines


# -- the demo -------------------------------------------------------------------------------------
def test_the_demo_lists_copier_customers_without_managed_it(tmp_path: Path) -> None:
    from keyservices.commands.demo import demo

    out = demo(tmp_path / "demo", customers=600, as_of=AS_OF)
    night2 = AS_OF + dt.timedelta(days=1)
    config = keyservices.load_config(out.config)
    text, count = export_opportunities(config, service="MIT", as_of=night2)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert count > 50
    seed = [r for r in rows if "Copier customers without Managed IT" in r["reason"]]
    assert len(seed) > 50 and all(r["estimated_annual_value"] for r in seed)
    hub, _ = export_opportunities(config, fmt="hubspot", service="CPY", as_of=night2)
    machines = [r for r in csv.DictReader(io.StringIO(hub))
                if "on no active contract" in r["Reason"]]
    assert machines and all(float(r["Estimated Annual Value"]) > 0 for r in machines)


def test_rule_tests_can_state_machines_on_contract(tmp_path: Path) -> None:
    from keyservices.engine.cases import FactsIn
    from keyservices.engine.classify import Classifier

    folder = rules_dir(tmp_path, "")
    services = folder / "services.yaml"
    services.write_text(services.read_text(encoding="utf-8").replace(
        "      model_classes: [COPIER]\n      min_count: 1",
        "      model_classes: [COPIER]\n      min_count: 1\n      on_contract: false"),
        encoding="utf-8")
    rules = load_rules(folder)
    clf = Classifier(rules, list(CATEGORIES))
    bare = FactsIn(equipment={"MFP-A3-CO-03": 2}, on_contract={"MFP-A3-CO-03": 1})
    covered = FactsIn(equipment={"MFP-A3-CO-03": 2}, on_contract={"MFP-A3-CO-03": 2})
    assert "CPY" in clf.services_of(bare.to_facts())
    assert "CPY" not in clf.services_of(covered.to_facts())
