"""Dynamic priority (Amity): tiers by thresholds and quantiles, renewal windows, rules firing in
order with their why, and rule errors that name file, line and key. Numbers are worked out here."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from keyservices.calls.monitors import MonitorColumns
from keyservices.calls.priority import (
    PriorityColumns,
    apply,
    assign_tiers,
    renewal_key,
    renewals,
    tiers,
)
from keyservices.engine.classify import classify
from keyservices.engine.metrics import Codes, Column, compile_rules, contracts_matching, gl_revenue
from keyservices.erp import ErpTables, attribute_id
from keyservices.erp.facts import read_facts
from keyservices.errors import RulesError
from keyservices.model import Opportunity
from keyservices.resources import example_rules_dir
from keyservices.rules import RuleSet, Tiers, load_rules

from .conftest import AS_OF, ErpBuilder

SERVICES = """\
model_classes: {'MFP-*': COPIER}
services:
  - {code: CPY, name: Copiers, contracts: {contract_codes: ['COPY-*', 'RENT-COPY']}}
  - {code: DM, name: Document Management, gl: {accounts: ['4150*']}}
  - {code: MIT, name: Managed IT, gl: {accounts: ['4300*']}}
monitors:
  - code: DM-LAPSING
    name: DM lapsing
    all: [{counter: revenue, service: DM, period: 90}]
    text: lapsing
"""

PRIORITY = """\
priority:
  tiers:
    accounts: ['4*']
    thresholds: {A: 50000, B: 10000, C: 0}
  rules:
    - name: Key account renewing
      when: {tiers: [A], renewal: {within_days: 90, contract_codes: ['COPY-*']}}
      priority: Critical
      points: 30
    - name: Lapsing
      when: {monitors: [DM-LAPSING]}
      priority: High
      points: 20
    - name: Key account
      when: {tiers: [A]}
      priority: High
      points: 10
    - name: Typical gap
      when: {min_share: 0.75}
      points: 5
    - name: Small
      when: {tiers: [C]}
      priority: Low
"""

CODES = Codes(categories={}, accounts={1: "4000", 2: "4150", 3: "4300"},
              contract_codes={10: "COPY-MAINT", 11: "RENT-COPY", 12: "DM-SUB"})


def rules_with(tmp_path: Path, priority: str) -> RuleSet:
    folder = tmp_path / "rules"
    folder.mkdir(exist_ok=True)
    (folder / "services.yaml").write_text(SERVICES, encoding="utf-8")
    (folder / "priority.yaml").write_text(priority, encoding="utf-8")
    return load_rules(folder)


def problems(tmp_path: Path, priority: str) -> str:
    with pytest.raises(RulesError) as err:
        rules_with(tmp_path, priority)
    return str(err.value)


def opp(cid: int, service: str, share: float, priority: str, number: str | None = None
        ) -> Opportunity:
    return Opportunity(number=number or f"C{cid:03d}", name=f"Customer {cid}", branch="North",
                       sales_rep="Dana", service=service, priority=priority,
                       reason=f"{share:.0%} of 20 Legal customers use {service}",
                       customer_id=cid, service_code=service, score=round(share * 100, 1))


# -- tiers ----------------------------------------------------------------------------------------
def test_tiers_by_thresholds_take_the_first_tier_reached() -> None:
    spec = Tiers(accounts=["4*"], thresholds={"B": 10000, "A": 50000, "C": 100})
    revenue = np.array([0, 99.99, 100, 9999.99, 10000, 49999.99, 49999.9999999, 50000, 120000])
    names = [t for t, _ in spec.ordered()]
    assert names == ["A", "B", "C"]  # highest minimum first, whatever the YAML order
    got = [names[k] if k >= 0 else None for k in assign_tiers(spec, revenue).tolist()]
    # below every minimum: no tier; a minimum met to a millionth of a cent of float noise counts
    assert got == [None, None, "C", "C", "B", "B", "A", "A", "A"]


def test_tiers_by_quantiles_rank_customers_exactly() -> None:
    spec = Tiers(accounts=["4*"], quantiles={"A": 0.9, "B": 0.6, "C": 0})
    revenue = np.array([3, 10, 1, 7, 5, 9, 2, 8, 6, 4], dtype=float)  # 1..10, shuffled
    names = ["A", "B", "C"]
    got = {int(r): names[k] for r, k in zip(revenue, assign_tiers(spec, revenue).tolist())}
    # rank = share of the 10 with less revenue: 10 has 9/10 below (A: the top 10%), 7..9 have
    # 6/10 to 8/10 (B), 1..6 have 0 to 5/10 (C)
    assert got == {10: "A", 9: "B", 8: "B", 7: "B", 6: "C", 5: "C", 4: "C", 3: "C", 2: "C",
                   1: "C"}


def test_tied_customers_share_a_quantile_tier() -> None:
    spec = Tiers(accounts=["4*"], quantiles={"A": 0.8, "B": 0.3, "C": 0})
    revenue = np.array([1, 1, 2, 2, 2, 3], dtype=float)
    # fewer than: 1 -> 0 of 6, 2 -> 2 of 6 (>= 0.3 x 6 = 1.8), 3 -> 5 of 6 (>= 4.8)
    assert assign_tiers(spec, revenue).tolist() == [2, 2, 1, 1, 1, 0]
    assert assign_tiers(spec, np.array([])).tolist() == []


class Night:
    def __init__(self, rules: RuleSet, ids: list[int]) -> None:
        self.rules = rules
        self.extra = PriorityColumns(rules)
        self.compiled = compile_rules(rules, CODES, self.extra.columns(CODES))
        self.services = {cid: frozenset[str]() for cid in ids}
        self.rolled = np.zeros((len(ids), len(self.compiled.columns)))
        self.row = {cid: i for i, cid in enumerate(ids)}

    def put(self, col: Column, values: dict[int, float]) -> None:
        for cid, v in values.items():
            self.rolled[self.row[cid], self.compiled.index_of(col)] = v


def test_priority_columns_tiers_and_renewals_from_the_rolled_array(tmp_path: Path) -> None:
    rules = rules_with(tmp_path, PRIORITY.replace(
        "    - name: Small\n", "    - name: Any renewal\n      when: {renewal: {within_days: 30}}\n"
        "      points: 1\n    - name: Copier renewal\n"
        "      when: {renewal: {within_days: 90, service: CPY}}\n      points: 1\n"
        "    - name: Small\n"))
    extra = PriorityColumns(rules)
    assert extra.codes_needed == {"accounts", "contract_codes"}
    copy90 = contracts_matching(CODES, ["COPY-*"], expires_within=90)
    any30 = contracts_matching(CODES, ["*"], expires_within=30)
    cpy90 = contracts_matching(CODES, ["COPY-*", "RENT-COPY"], expires_within=90)
    assert extra.columns(CODES) == [gl_revenue(CODES, ["4*"], 365), copy90, any30, cpy90]
    night = Night(rules, [1, 2, 3, 4])
    night.put(gl_revenue(CODES, ["4*"], 365), {1: 75000, 2: 12000, 3: 400, 4: 0})
    night.put(copy90, {1: 1})
    night.put(any30, {1: 1, 3: 2})
    night.put(cpy90, {1: 1, 2: 1})
    assert tiers(rules, night.compiled.index_of, CODES, night.services, night.rolled) == {
        1: "A", 2: "B", 3: "C", 4: "C"}
    assert renewals(rules, night.compiled.index_of, CODES, night.services, night.rolled) == {
        1: {"90d:COPY-*", "30d:*", "90d:COPY-*,RENT-COPY"}, 2: {"90d:COPY-*,RENT-COPY"},
        3: {"30d:*"}}
    with pytest.raises(ValueError, match=r"pass PriorityColumns\(rules\) to read_facts"):
        tiers(rules, {}, CODES, night.services, night.rolled)


def test_quantile_tiers_rank_every_in_scope_customer(tmp_path: Path) -> None:
    rules = rules_with(tmp_path, PRIORITY.replace(
        "thresholds: {A: 50000, B: 10000, C: 0}", "quantiles: {A: 0.9, B: 0.6}").replace(
        "    - name: Small\n      when: {tiers: [C]}\n      priority: Low\n", ""))
    night = Night(rules, list(range(1, 11)))
    night.put(gl_revenue(CODES, ["4*"], 365), {cid: cid * 1000.0 for cid in range(1, 11)})
    # no tier from 0: the six customers below the 0.6 quantile have none
    assert tiers(rules, night.compiled.index_of, CODES, night.services, night.rolled) == {
        10: "A", 9: "B", 8: "B", 7: "B"}


# -- the rules ------------------------------------------------------------------------------------
def test_rules_fire_in_order_first_priority_wins_points_add(tmp_path: Path) -> None:
    rules = rules_with(tmp_path, PRIORITY)
    found = [opp(1, "DM", 0.8, "High"), opp(2, "MIT", 0.6, "Medium"), opp(3, "DM", 0.9, "High"),
             opp(4, "DM", 0.6, "Medium"), opp(1, "MIT", 0.5, "Low")]
    tier = {1: "A", 2: "B", 3: "C"}  # 4: no tier
    renewing = {1: frozenset({"90d:COPY-*"}), 3: frozenset({"30d:*"})}
    hits = {2: ("DM-LAPSING",), 3: ("OTHER",)}
    out = apply(rules, found, tier, renewing, hits)
    assert [(o.number, o.service_code, o.priority, o.score) for o in out] == [
        ("C001", "DM", "Critical", 125.0),  # 80 + 30 + 10 + 5
        ("C001", "MIT", "Critical", 90.0),  # 50 + 30 + 10
        ("C002", "MIT", "High", 80.0),  # 60 + 20
        ("C004", "DM", "Medium", 60.0),  # nothing matched: the industry share's priority
        ("C003", "DM", "Low", 95.0),  # 90 + 5, then Small: Low
    ]
    assert out[0].why == (
        ("Key account renewing (tier A; a COPY-* contract expires within 90 days): Critical, "
        "+30 points"),
        "Key account (tier A): +10 points",  # its High comes too late: the priority is set
        "Typical gap (80% of industry peers use it): +5 points")
    assert out[2].why == ("Lapsing (status DM-LAPSING): High, +20 points",)
    assert out[3].why == ("Medium from the industry share (no priority rule matched)",)
    assert out[4].why == ("Typical gap (90% of industry peers use it): +5 points",
                          "Small (tier C): Low")
    # copies: what find() returned is untouched
    assert found[0].priority == "High" and found[0].score == 80.0 and found[0].why == ()


def test_services_any_monitor_and_any_contract_conditions(tmp_path: Path) -> None:
    rules = rules_with(tmp_path, (
        "priority:\n  rules:\n"
        "    - name: DM for a lapsing customer\n"
        "      when: {services: [DM], monitors: any}\n      priority: Critical\n"
        "    - name: Anything renewing\n"
        "      when: {renewal: {within_days: 60}}\n      priority: High\n      points: 2.5\n"
        "    - name: Everyone\n      points: 1\n"))
    assert renewal_key(rules, rules.priority.rules[1].when.renewal) == "60d:*"
    out = apply(rules, [opp(1, "DM", 0.5, "Low"), opp(1, "MIT", 0.5, "Low"),
                        opp(2, "DM", 0.5, "Low")],
                {}, {2: frozenset({"60d:*"})}, {1: ("X", "Y")})
    assert [(o.number, o.service_code, o.priority, o.score) for o in out] == [
        ("C001", "DM", "Critical", 51.0), ("C002", "DM", "High", 53.5),
        ("C001", "MIT", "Low", 51.0)]
    assert out[0].why == ("DM for a lapsing customer (DM opportunity; status X, Y): Critical",
                          "Everyone (every opportunity): +1 points")
    assert out[1].why[0] == ("Anything renewing (a contract expires within 60 days): High, "
                             "+2.5 points")


def test_sorted_critical_to_low_then_score_then_number(tmp_path: Path) -> None:
    rules = rules_with(tmp_path, "priority:\n  rules:\n    - {name: Bump, points: 0.5}\n")
    out = apply(rules, [opp(3, "DM", 0.5, "Low"), opp(2, "DM", 0.7, "Medium"),
                        opp(1, "DM", 0.7, "Medium", number="B1"),
                        opp(9, "DM", 0.8, "Critical"), opp(5, "DM", 0.9, "High")], {}, {}, {})
    assert [o.number for o in out] == ["C009", "C005", "B1", "C002", "C003"]


def test_without_a_priority_block_opportunities_keep_todays_priorities(tmp_path: Path) -> None:
    rules = rules_with(tmp_path, "")
    found = [opp(2, "DM", 0.6, "Medium"), opp(1, "DM", 0.8, "High")]
    out = apply(rules, found, {1: "A"}, {}, {1: ("DM-LAPSING",)})
    assert out == found and out[0] is not found[0]
    assert PriorityColumns(rules).columns(CODES) == [] and not PriorityColumns(rules).codes_needed
    assert tiers(rules, {}, CODES, {1: frozenset()}, np.zeros((1, 0))) == {}


# -- rule errors ----------------------------------------------------------------------------------
@pytest.mark.parametrize("block, message", [
    ("  rules:\n    - {name: X, when: {tiers: [A]}, priority: High}\n",
     "priority.yaml:3:32: priority.rules[0].when.tiers[0]: tier 'A' needs priority.tiers"),
    (("  tiers: {accounts: ['4*'], thresholds: {A: 10}}\n"
     "  rules:\n    - {name: X, when: {tiers: [Z]}, priority: High}\n"),
     "priority.rules[0].when.tiers[0]: unknown tier 'Z' (tiers: A)"),
    ("  rules:\n    - {name: X, when: {monitors: [DM-LAPSNG]}, priority: High}\n",
     "priority.rules[0].when.monitors[0]: unknown monitor 'DM-LAPSNG' (known: DM-LAPSING)"),
    ("  rules:\n    - {name: X, when: {services: [CPX]}, priority: High}\n",
     "priority.rules[0].when.services[0]: unknown service 'CPX' (did you mean 'CPY'?)"),
    ("  rules:\n    - {name: X, when: {renewal: {within_days: 30, service: DM}}, points: 1}\n",
     "priority.rules[0].when.renewal.service: service DM has no contracts section"),
    ("  rules:\n    - {name: X, when: {tiers: [A]}}\n",
     "priority.rules[0]: rule 'X' sets no priority, adds no points and pins, boosts or hides nothing"),
    ("  rules:\n    - {name: X, priority: Urgent}\n",
     "priority.rules[0].priority: Input should be 'Critical', 'High', 'Medium' or 'Low'"),
    ("  rules:\n    - {name: X, when: {tier: [A]}, points: 1}\n",
     "priority.rules[0].when.tier: unknown key (did you mean 'tiers'?)"),
    ("  rules:\n    - {name: X, when: {min_share: 75}, points: 1}\n",
     "priority.rules[0].when.min_share: Input should be less than or equal to 1"),
    ("  rules: []\n", "priority.rules: List should have at least 1 item"),
    (("  tiers: {accounts: ['4*'], thresholds: {A: 1}, quantiles: {A: 0.5}}\n"
     "  rules:\n    - {name: X, points: 1}\n"),
     "priority.tiers: name either thresholds or quantiles"),
    (("  tiers: {accounts: ['4*'], quantiles: {A: 1.0, B: 0}}\n"
     "  rules:\n    - {name: X, points: 1}\n"),
     "priority.tiers: tier A: 1 must be from 0 up to (not including) 1"),
    (("  tiers: {accounts: ['4*'], thresholds: {A: 5, B: 5}}\n"
     "  rules:\n    - {name: X, points: 1}\n"),
     "priority.tiers: two tiers have the same minimum"),
    ("  tiers: {thresholds: {A: 5}}\n  rules:\n    - {name: X, points: 1}\n",
     "priority.tiers.accounts: required key is missing"),
])
def test_priority_errors_name_file_line_and_key(tmp_path: Path, block: str, message: str) -> None:
    out = problems(tmp_path, "priority:\n" + block)
    assert "priority.yaml:" in out and message in out, out


def test_monitors_any_needs_a_monitor_and_two_priority_blocks_must_agree(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "services.yaml").write_text(SERVICES.split("monitors:")[0], encoding="utf-8")
    (folder / "a.yaml").write_text(
        "priority:\n  rules:\n    - {name: X, when: {monitors: any}, points: 1}\n",
        encoding="utf-8")
    (folder / "b.yaml").write_text("priority:\n  rules:\n    - {name: Y, points: 1}\n",
                                   encoding="utf-8")
    with pytest.raises(RulesError) as err:
        load_rules(folder)
    out = str(err.value)
    assert "a.yaml:3:24: priority.rules[0].when.monitors: no status monitors are defined" in out
    assert "b.yaml:1:1: priority: already set differently in" in out


# -- the shipped examples and a real database -----------------------------------------------------
def test_the_example_rules_folder_validates_with_its_priority_rules() -> None:
    rules = load_rules(example_rules_dir())
    assert rules.priority is not None and rules.priority.tiers is not None
    assert [t for t, _ in rules.priority.tiers.ordered()] == ["A", "B", "C"]
    assert rules.priority.rules[0].priority == "Critical"
    assert PriorityColumns(rules).columns(CODES)


def test_priority_over_facts_read_from_the_database(erp: ErpBuilder) -> None:
    big = erp.customer("BIG", "Big Law")  # A: 60,000 this year, a copier contract renewing
    erp.gl(big, "4000", 60000.0, days_ago=100)
    erp.contract(big, "COPY-MAINT", end=AS_OF + dt.timedelta(days=45))
    mid = erp.customer("MID", "Mid Law")  # B: 12,000, DM lapsing
    erp.gl(mid, "4000", 11700.0, days_ago=200)
    erp.gl(mid, "4150", 300.0, days_ago=80)
    small = erp.customer("SML", "Small Law")  # C: 400
    erp.gl(small, "4000", 400.0, days_ago=20)
    old = erp.customer("OLD", "Old Law")  # revenue before the trailing year does not count
    erp.gl(old, "4000", 90000.0, days_ago=400)
    rules = load_rules(example_rules_dir())
    from keyservices.calls.monitors import evaluate

    with erp.engine.connect() as conn:
        attr = attribute_id(conn, ErpTables(), rules.property)
        facts = read_facts(conn, ErpTables(), rules, attr, AS_OF,
                           extra=[MonitorColumns(rules), PriorityColumns(rules)])
    cls = classify(facts, rules)
    index = facts.metrics.compiled.index_of
    monitored = evaluate(rules, index, facts.codes, cls.services, cls.rolled, facts.customers, {})
    tier = tiers(rules, index, facts.codes, cls.services, cls.rolled)
    renewing = renewals(rules, index, facts.codes, cls.services, cls.rolled)
    assert tier == {big: "A", mid: "B", small: "C", old: "C"}
    assert renewing == {big: {"90d:COPY-*,RENT-COPY", "90d:*"}}
    assert monitored.hits[mid][0] == "DM-LAPSING"
    out = apply(rules, [opp(small, "MIT", 0.8, "High", "SML"), opp(mid, "MIT", 0.6, "Medium",
                                                                   "MID"),
                        opp(big, "DM", 0.5, "Low", "BIG")], tier, renewing, monitored.hits)
    # BIG: A, renewing, status alerts (Critical, 50 + 30 + 20 + 15 + 10); MID: B,
    # 60% share, DM lapsing (+10) and Mid-size (Medium, +5); SML: C (Small account: Low)
    assert monitored.hits[big] == ("COPY-RENEWAL", "NO-SALE-90")
    assert [(o.number, o.priority, o.score) for o in out] == [
        ("BIG", "Critical", 125.0), ("MID", "Medium", 75.0), ("SML", "Low", 80.0)]
    assert out[0].why[0].startswith("Key account renewing a copier contract (tier A; a COPY-*, "
                                    "RENT-COPY contract expires within 90 days): Critical")


def test_monitors_and_priority_are_pure() -> None:
    import subprocess
    import sys

    code = ("import sys, keyservices.calls, keyservices.calls.monitors, keyservices.calls.priority, keyservices.calls.lifecycle, keyservices.calls.wonlost; "
            "bad = [m for m in ('sqlalchemy', 'smtplib') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_explain_shows_the_priority_and_why(tmp_path: Path) -> None:
    """On the demo dealer, explain lists a customer's opportunities with the rules that fired,
    exactly as the run ranked them."""
    import keyservices
    from keyservices.commands.demo import demo as run_demo

    demo = run_demo(tmp_path / "demo", customers=600, seed=42, as_of=dt.date(2026, 11, 24))
    config = keyservices.load_config(demo.config)
    night = keyservices.run(config, dry_run=True, as_of=demo.nights[-1].as_of)
    first = night.opportunities[0]
    explained = keyservices.explain(config, first.number, as_of=demo.nights[-1].as_of)
    mine = [o for o in explained.opportunities if o["service"] == first.service]
    assert mine == [{"service": first.service, "priority": first.priority, "score": first.score,
                     "reason": first.reason, "why": list(first.why),
                     "estimated_annual_value": first.estimated_annual_value,
                     "value_basis": first.value_basis, "play": first.play,
                     "p_win": first.p_win, "expected_value": first.expected_value,
                     "evidence": first.evidence, "rank": 1}]
    assert first.why  # the example priority rules always say which rule decided


def test_the_shipped_rules_never_rank_a_bigger_account_lower_for_the_same_play() -> None:
    """The uncovered-machine play became Medium for tier B (the 'Mid-size account' rule set a
    priority first) and stayed High for tier C (#24)."""
    import dataclasses

    rules = load_rules(example_rules_dir())
    ranks = {"Critical": 4, "High": 3, "Medium": 2, "Low": 1}
    tier = {1: "A", 2: "B", 3: "C"}
    play = ("Machines in the field without a service contract",)
    for typical, own in ((False, "High"), (False, "Medium"), (True, "High"), (True, "Low")):
        found = [dataclasses.replace(opp(cid, "CPY", 0.5, own), typical=typical,
                                     cross_sell=() if typical else play)
                 for cid in tier]
        out = {o.customer_id: ranks[o.priority] for o in apply(rules, found, tier, {}, {})}
        assert out[1] >= out[2] >= out[3], (typical, own, out)
