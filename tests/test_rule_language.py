"""The rule language beyond the example rules: exclude, inactive equipment, cost floors,
transaction types, industry sources, and the ANY/ALL/exclude semantics as properties."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import keyservices
from keyservices.engine.classify import Classifier
from keyservices.model import ContractFact, CustomerFacts, ItemsSold
from keyservices.rules import load_rules

from .conftest import AS_OF, ErpBuilder, write_config

MAPPING = "model_classes: {'MFP-*': COPIER, 'PRN-*': PRINTER, 'SW-DM-*': DOC_SOFTWARE}\n"


def rules_from(tmp_path: Path, services: str, extra: str = "") -> Path:
    folder = tmp_path / "rules"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    (folder / "rules.yaml").write_text(MAPPING + extra + "services:\n" + services,
                                       encoding="utf-8")
    return folder


def test_exclude_withholds_a_service(tmp_path: Path) -> None:
    rules = load_rules(rules_from(tmp_path, (
        "  - code: MPS\n    name: Managed Print\n"
        "    contracts: {contract_codes: ['MPS-*', 'RENT-*']}\n"
        "    exclude:\n      match: all\n"
        "      contracts: {contract_codes: ['RENT-*']}\n"
        "      equipment: {model_classes: [COPIER], min_count: 1}\n")))
    clf = Classifier(rules, ["MFP-A3-CO-03"])
    mps = rules.services[0]
    rental_copier = CustomerFacts(contracts={("RENT-COPY", ""): ContractFact(1, 90.0)},
                                  equipment={"MFP-A3-CO-03": 1})
    managed = CustomerFacts(contracts={("MPS-FLEET", ""): ContractFact(1, 90.0)},
                            equipment={"MFP-A3-CO-03": 1})
    assert not clf.evaluate(mps, rental_copier).has
    assert clf.evaluate(mps, managed).has
    verdict = clf.evaluate(mps, rental_copier, why=True)
    assert [r.section for r in verdict.sections] == ["contracts", "exclude.equipment",
                                                     "exclude.contracts"]


def test_exclude_model_classes_must_be_mapped(tmp_path: Path) -> None:
    from keyservices.errors import RulesError

    with pytest.raises(RulesError, match=r"services\[0\]\.exclude\.equipment\.model_classes: "
                                         r"model class 'PC' is mapped from no category"):
        load_rules(rules_from(tmp_path, (
            "  - code: CPY\n    name: Copiers\n    equipment: {model_classes: [COPIER]}\n"
            "    exclude: {equipment: {model_classes: [PC]}}\n")))


def test_inactive_equipment_and_cost_floor(tmp_path: Path) -> None:
    rules = load_rules(rules_from(tmp_path, (
        "  - code: EVER\n    name: Ever had a copier\n"
        "    equipment: {model_classes: [COPIER], active_only: false}\n"
        "  - code: DM\n    name: Document Management\n"
        "    items_sold: {model_classes: [DOC_SOFTWARE], min_unit_cost: 100}\n")))
    clf = Classifier(rules, ["MFP-A3-CO-03", "SW-DM-ECOPY"])
    returned = CustomerFacts(equipment_all={"MFP-A3-CO-03": 1})
    cheap = CustomerFacts(items_sold={("SW-DM-ECOPY", 730): ItemsSold(1, 1, 500.0, 500.0, 20.0)})
    dear = CustomerFacts(items_sold={("SW-DM-ECOPY", 730): ItemsSold(1, 1, 900.0, 900.0, 400.0)})
    assert clf.services_of(returned) == {"EVER"}
    assert clf.services_of(cheap) == frozenset() and clf.services_of(dear) == {"DM"}


def test_transaction_types_and_inactive_units_read_from_the_database(erp: ErpBuilder,
                                                                     tmp_path: Path) -> None:
    import sqlalchemy as sa

    service = erp.customer("SVC001", "Service Invoices Only")
    credit = erp.customer("CRD001", "Credit Memos Only")
    gone = erp.customer("OLD001", "Returned Copier")
    erp.equipment(gone, "MFP-A3-CO-03", active=False)
    for cid, kind in ((service, "service invoice"), (credit, "service credit memo")):
        line = erp.gl(cid, "4300", 2000.0)
        with erp.engine.begin() as conn:
            t = erp.t["GLDetail"]
            conn.execute(sa.update(t).where(t.c.GLDetailID == line).values(TransactionType=kind))
    rules_from(tmp_path, (
        "  - code: MIT\n    name: Managed IT\n"
        "    gl: {accounts: ['43*'], transaction_types: ['service invoice'], min_revenue: 1000}\n"
        "  - code: EVER\n    name: Ever had a copier\n"
        "    equipment: {model_classes: [COPIER], active_only: false}\n"))
    config = keyservices.load_config(write_config(tmp_path, erp.url))
    result = keyservices.run(config, as_of=AS_OF, dry_run=True)
    assert {c.number: c.after for c in result.changes} == {"SVC001": "MIT", "OLD001": "EVER"}


@pytest.mark.parametrize("source, expected", [
    ("customer_type", "Legal"), ("custom_property:ZCJIndustry", "Dental practices"),
    ("column:City", "Springfield")])
def test_industry_sources(erp: ErpBuilder, tmp_path: Path, source: str, expected: str) -> None:
    import sqlalchemy as sa

    cid = erp.customer("IND001", "Industry Example")
    erp.insert("ShAttributes", ShAttributeID=2050, AttributeName="ZCJIndustry")
    erp.insert("ARCustomerCustomProperties", CustomerID=cid, ShAttributeID=2050,
               TextVal="Dental practices", Required=False)
    with erp.engine.begin() as conn:
        t = erp.t["ARCustomers"]
        conn.execute(sa.update(t).where(t.c.CustomerID == cid).values(City="Springfield"))
    rules_from(tmp_path, "  - {code: CPY, name: Copiers, equipment: {model_classes: [COPIER]}}\n",
               extra=f"industry: {{source: '{source}'}}\n")
    config = keyservices.load_config(write_config(tmp_path, erp.url))
    explanation = keyservices.explain(config, "IND001", as_of=AS_OF)
    assert explanation.customer["industry"] == expected


# -- semantics as properties -----------------------------------------------------------------
SECTIONS = {
    "equipment": ("equipment: {model_classes: [COPIER], min_count: 2}",
                  lambda n: CustomerFacts(equipment={"MFP-A3-CO-03": n})),
    "contracts": ("contracts: {contract_codes: ['MPS-*']}",
                  lambda n: CustomerFacts(contracts={("MPS-FLEET", ""): ContractFact(n, 1.0)}
                                          if n else {})),
    "gl": ("gl: {accounts: ['4300'], min_revenue: 100}",
           lambda n: CustomerFacts(gl={("4300", 365): 60.0 * n})),
}


@settings(max_examples=120, deadline=None)
@given(match=st.sampled_from(["any", "all"]),
       used=st.lists(st.sampled_from(list(SECTIONS)), min_size=1, max_size=3, unique=True),
       excluded=st.one_of(st.none(), st.sampled_from(list(SECTIONS))),
       amounts=st.fixed_dictionaries({k: st.integers(0, 3) for k in SECTIONS}))
def test_any_all_exclude_semantics(tmp_path_factory: pytest.TempPathFactory, match: str,
                                   used: list[str], excluded: str | None,
                                   amounts: dict[str, int]) -> None:
    """has = (ANY or ALL of the sections match) and not (the exclude section matches)."""
    body = "".join(f"    {SECTIONS[k][0]}\n" for k in used)
    if excluded:
        body += f"    exclude: {{{SECTIONS[excluded][0]}}}\n"
    folder = rules_from(tmp_path_factory.mktemp("r"),
                        f"  - code: S\n    name: Service\n    match: {match}\n" + body)
    rules = load_rules(folder)
    clf = Classifier(rules, ["MFP-A3-CO-03"])
    facts = CustomerFacts()
    for k, n in amounts.items():
        part = SECTIONS[k][1](n)
        facts.equipment.update(part.equipment)
        facts.contracts.update(part.contracts)
        facts.gl.update(part.gl)

    def alone(k: str) -> bool:  # does section k match on its own?
        rules_k = load_rules(rules_from(tmp_path_factory.mktemp("k"),
                                        f"  - code: S\n    name: Service\n    {SECTIONS[k][0]}\n"))
        return Classifier(rules_k, ["MFP-A3-CO-03"]).services_of(facts) == {"S"}

    matched = [alone(k) for k in used]
    expected = any(matched) if match == "any" else all(matched)
    if excluded:
        expected = expected and not alone(excluded)
    assert (clf.services_of(facts) == {"S"}) == expected


def test_shipped_rule_tests_pass(tmp_path: Path) -> None:
    config = keyservices.load_config(write_config(tmp_path, "sqlite:///unused.sqlite"))
    results = keyservices.test_rules(config)
    assert len(results) >= 9 and all(r.passed for r in results)


def test_a_failing_rule_test_shows_the_diff_and_exits_1(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from keyservices.cli import cli

    path = write_config(tmp_path, "sqlite:///unused.sqlite")
    (tmp_path / "rules" / "tests" / "mine.yaml").write_text(
        "cases:\n"
        "  - name: the free licence would make DM\n"
        "    customer:\n      items_sold: [{category: SW-DM-ECOPY, amount: 0}]\n"
        "    expect: [DM]\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["test-rules", "-c", str(path)])
    assert result.exit_code == 1
    out = result.output
    assert "FAIL mine.yaml:2 the free licence would make DM" in out
    assert "expected: DM" in out and "got:      (none)" in out and "missing:  DM" in out
    assert "highest unit price 0.00" in out
    assert "9 passed, 1 failed" in out and "Error: 1 rule test(s) failed" in out


def test_an_invalid_rule_test_file_is_exit_2_with_its_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from keyservices.cli import cli

    path = write_config(tmp_path, "sqlite:///unused.sqlite")
    (tmp_path / "rules" / "tests" / "bad.yaml").write_text(
        "cases:\n  - name: typo\n    expcet: [CPY]\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["test-rules", "-c", str(path)])
    assert result.exit_code == 2
    assert "bad.yaml:3:5: cases[0].expcet: unknown key (did you mean 'expect'?)" in result.output


def test_contract_statuses_and_item_categories_read_from_the_database(erp: ErpBuilder,
                                                                      tmp_path: Path) -> None:
    import sqlalchemy as sa

    erp.insert("SCContractStatuses", ContractStatusID=1, ContractStatus="ACTIVE")
    erp.insert("SCContractStatuses", ContractStatusID=3, ContractStatus="ONHOLD")
    erp.insert("ICItemCategories", ItemCategoryID=7, ItemCategory="SUBSCRIPTION")
    erp.insert("ICItemCategories", ItemCategoryID=8, ItemCategory="HARDWARE")
    active, on_hold = erp.customer("ACT001"), erp.customer("HLD001")
    for cid, status in ((active, 1), (on_hold, 3)):
        k = erp.contract(cid, "DM-SUB")
        with erp.engine.begin() as conn:
            t = erp.t["SCContracts"]
            conn.execute(sa.update(t).where(t.c.ContractID == k).values(ContractStatusID=status))
    subscriber, scanner = erp.customer("SUB001"), erp.customer("SCN001")
    erp.sale(subscriber, "SW-DM-CAPTURE", 300.0)
    erp.sale(scanner, "SW-DM-ECOPY", 300.0)
    with erp.engine.begin() as conn:
        items = erp.t["ICItems"]
        conn.execute(sa.update(items).where(items.c.ItemID == erp.item["SW-DM-CAPTURE"])
                     .values(ItemCategoryID=7))
        conn.execute(sa.update(items).where(items.c.ItemID == erp.item["SW-DM-ECOPY"])
                     .values(ItemCategoryID=8))
    rules_from(tmp_path, (
        "  - code: DMC\n    name: DM contract in force\n"
        "    contracts: {contract_codes: ['DM-*'], statuses: [ACTIVE]}\n"
        "  - code: DMS\n    name: DM subscription sold\n"
        "    items_sold: {model_classes: [DOC_SOFTWARE], item_categories: [SUBSCRIPTION]}\n"))
    config = keyservices.load_config(write_config(tmp_path, erp.url))
    result = keyservices.run(config, as_of=AS_OF, dry_run=True)
    assert {c.number: c.after for c in result.changes} == {"ACT001": "DMC", "SUB001": "DMS"}
    assert keyservices.check(config).problems == []
