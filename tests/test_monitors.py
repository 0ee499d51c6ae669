"""Status monitors (SuperOffice SAINT): counters over periods, any/all, texts in a sandbox, and
rule errors that name file, line and key. The numbers are hand-built arrays worked out here."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import numpy as np
import pytest

from keyservices.calls.monitors import Contact, MonitorColumns, evaluate, matches
from keyservices.engine.classify import classify
from keyservices.engine.metrics import (
    Codes,
    Column,
    compile_rules,
    contracts_matching,
    gl_revenue,
    invoices_within,
)
from keyservices.erp import ErpTables, attribute_id
from keyservices.erp.facts import read_facts
from keyservices.errors import RulesError
from keyservices.model import Counts, Customer, DigestData, StatusAlert
from keyservices.outputs.digest import find_templates_dir, render
from keyservices.resources import example_rules_dir
from keyservices.rules import Monitor, RuleSet, load_rules

from .conftest import AS_OF, ErpBuilder

SERVICES = """\
model_classes: {'MFP-*': COPIER}
services:
  - code: CPY
    name: Copiers
    equipment: {model_classes: [COPIER]}
    contracts: {contract_codes: ['COPY-*', 'RENT-COPY']}
  - code: DM
    name: Document Management
    contracts: {contract_codes: ['DM-*']}
    gl: {accounts: ['4150*'], min_revenue: 500}
  - code: MPS
    name: Managed Print
    equipment: {model_classes: [COPIER], min_count: 3}
"""

MONITORS = """\
monitors:
  - code: DM-LAPSING
    name: Document management lapsing
    all:
      - {counter: revenue, service: DM, period: 90, op: ">", value: 0}
      - {counter: revenue, service: DM, period: 30, op: "==", value: 0}
    text: >-
      {{ name }} paid for DM in the last 90 days but nothing in the last 30.
      Call {{ contact }} ({{ phone }}, {{ email }}).
  - code: RENEWING
    name: Copier contract renewing
    any:
      - {counter: contracts_expiring, service: CPY, period: 60, op: ge, value: 1}
    text: "{{ values[0] | int }} copier contract(s) of {{ number }} expire within 60 days"
  - code: QUIET
    name: No sale for 90 days
    all:
      - {counter: invoices, period: 90, op: eq, value: 0}
    text: "{{ name }}: nothing invoiced in 90 days ({{ branch }}, {{ sales_rep }}, {{ monitor }})"
"""

CODES = Codes(categories={}, accounts={1: "4150", 2: "4150-01", 3: "4300", 4: "4100"},
              contract_codes={10: "COPY-MAINT", 11: "RENT-COPY", 12: "DM-SUB", 13: "IT-MANAGED"})


def rules_with(tmp_path: Path, monitors: str, extra: str = "") -> RuleSet:
    folder = tmp_path / "rules"
    folder.mkdir(exist_ok=True)
    (folder / "services.yaml").write_text(SERVICES, encoding="utf-8")
    (folder / "monitors.yaml").write_text(extra + monitors, encoding="utf-8")
    return load_rules(folder)


def problems(tmp_path: Path, monitors: str, extra: str = "") -> str:
    with pytest.raises(RulesError) as err:
        rules_with(tmp_path, monitors, extra)
    return str(err.value)


def customer(cid: int, name: str | None = None, **kw: object) -> Customer:
    base = {"id": cid, "number": f"C{cid:03d}", "name": name or f"Customer {cid}", "parent_id": None,
                "active": True, "prospect": False, "branch": "North", "sales_rep": "Dana"}
    base.update(kw)
    return Customer(**base)  # type: ignore[arg-type]


class Night:
    """A compiled rule set and a ``rolled`` array filled by hand, column by column."""

    def __init__(self, rules: RuleSet, ids: list[int]) -> None:
        self.rules = rules
        self.extra = MonitorColumns(rules)
        self.compiled = compile_rules(rules, CODES, self.extra.columns(CODES))
        self.services = {cid: frozenset[str]() for cid in ids}
        self.rolled = np.zeros((len(ids), len(self.compiled.columns)))
        self.row = {cid: i for i, cid in enumerate(ids)}

    def put(self, col: Column, values: dict[int, float]) -> None:
        j = self.compiled.index_of(col)
        for cid, v in values.items():
            self.rolled[self.row[cid], j] = v

    def evaluate(self, customers: dict[int, Customer] | None = None,
                 contacts: dict[int, Contact] | None = None):
        customers = customers or {cid: customer(cid) for cid in self.services}
        return evaluate(self.rules, self.compiled.index_of, CODES, self.services, self.rolled,
                        customers, contacts or {})


# -- columns --------------------------------------------------------------------------------------
def test_monitor_columns_ask_for_each_counter_once(tmp_path: Path) -> None:
    rules = rules_with(tmp_path, MONITORS)
    extra = MonitorColumns(rules)
    assert extra.codes_needed == {"accounts", "contract_codes"}
    # service DM: its gl accounts 4150* (ids 1 and 2); service CPY: COPY-* and RENT-COPY (10, 11)
    assert extra.columns(CODES) == [gl_revenue(CODES, ["4150*"], 90),
                                    gl_revenue(CODES, ["4150*"], 30),
                                    contracts_matching(CODES, ["COPY-*", "RENT-COPY"],
                                                       expires_within=60),
                                    invoices_within(90)]
    assert extra.columns(CODES)[0].filters[0].ids == (1, 2)
    assert extra.columns(CODES)[2].filters[0].ids == (10, 11)
    # a fourth monitor counting DM revenue in 90 days again shares that column
    again = MONITORS + ("  - code: DM-BIG\n    name: Big DM\n"
                        "    any: [{counter: revenue, accounts: ['4150*'], period: 90, "
                        "op: '>=', value: 5000}]\n    text: big\n")
    assert len(MonitorColumns(rules_with(tmp_path, again)).columns(CODES)) == 4


def test_accounts_and_contract_code_globs_instead_of_a_service(tmp_path: Path) -> None:
    rules = rules_with(tmp_path, (
        "monitors:\n  - code: X\n    name: X\n    any:\n"
        "      - {counter: revenue, accounts: ['43*', '4100'], period: 30}\n"
        "      - {counter: contracts_expiring, period: 90}\n"
        "    text: x\n"))
    assert MonitorColumns(rules).columns(CODES) == [
        gl_revenue(CODES, ["43*", "4100"], 30), contracts_matching(CODES, ["*"], expires_within=90)]
    assert MonitorColumns(rules).columns(CODES)[1].filters[0].ids == (10, 11, 12, 13)


# -- counters, operators, any / all ---------------------------------------------------------------
OPS = {  # counter values 0, 1e-9, 4.99, 5, 5 + 1e-9, 7 compared with 5
    ">": [False, False, False, False, False, True],
    ">=": [False, False, False, True, True, True],
    "<": [True, True, True, False, False, False],
    "<=": [True, True, True, True, True, False],
    "==": [False, False, False, True, True, False],
    "!=": [True, True, True, False, False, True],
}
WORDS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<=", "eq": "==", "ne": "!="}


@pytest.mark.parametrize("op", [*OPS, *WORDS])
def test_each_operator_with_a_cent_of_float_noise(op: str) -> None:
    mon = Monitor.model_validate({"code": "M", "name": "M", "text": "t", "all": [
        {"counter": "invoices", "period": 30, "op": op, "value": 5}]})
    values = np.array([[0.0], [1e-9], [4.99], [5.0], [5.0 + 1e-9], [7.0]])
    assert matches(mon, values).tolist() == OPS[WORDS.get(op, op)]


def test_all_needs_every_criterion_and_any_one() -> None:
    crits = [{"counter": "invoices", "period": 30, "op": ">", "value": 0},
             {"counter": "invoices", "period": 90, "op": ">=", "value": 3}]
    values = np.array([[0, 0], [1, 0], [0, 3], [1, 3]], dtype=float)
    both = Monitor.model_validate({"code": "A", "name": "A", "text": "t", "all": crits})
    either = Monitor.model_validate({"code": "B", "name": "B", "text": "t", "any": crits})
    assert matches(both, values).tolist() == [False, False, False, True]
    assert matches(either, values).tolist() == [False, True, True, True]


def test_lapsing_renewing_and_quiet_customers(tmp_path: Path) -> None:
    night = Night(rules_with(tmp_path, MONITORS), [1, 2, 3, 4])
    # 1: DM revenue 80 days ago only (lapsing); 2: DM revenue this month too (steady)
    night.put(gl_revenue(CODES, ["4150*"], 90), {1: 300.0, 2: 150.0})
    night.put(gl_revenue(CODES, ["4150*"], 30), {1: 0.0, 2: 100.0})
    # 3: two copier contracts expiring within 60 days; 4 has one more than 60 days out (0 here)
    night.put(contracts_matching(CODES, ["COPY-*", "RENT-COPY"], expires_within=60), {3: 2})
    # invoices in 90 days: 1, 2 and 3 bought something, 4 did not
    night.put(invoices_within(90), {1: 1, 2: 4, 3: 2, 4: 0})
    result = night.evaluate()
    assert result.hits == {1: ("DM-LAPSING",), 3: ("RENEWING",), 4: ("QUIET",)}
    assert result.counts == {"DM-LAPSING": 1, "RENEWING": 1, "QUIET": 1}
    assert [(a.number, a.code, a.monitor) for a in result.alerts] == [
        ("C001", "DM-LAPSING", "Document management lapsing"),
        ("C003", "RENEWING", "Copier contract renewing"),
        ("C004", "QUIET", "No sale for 90 days")]
    assert result.alerts[1].text == "2 copier contract(s) of C003 expire within 60 days"
    assert result.alerts[2].text == ("Customer 4: nothing invoiced in 90 days (North, Dana, No "
                                     "sale for 90 days)")
    assert (result.alerts[0].customer_id, result.alerts[0].sales_rep) == (1, "Dana")


def test_periods_are_configurable_and_criteria_must_use_one(tmp_path: Path) -> None:
    text = ("monitors:\n  - code: WEEK\n    name: Quiet week\n    all:\n"
            "      - {counter: invoices, period: 7, op: '==', value: 0}\n"
            "      - {counter: invoices, period: 30, op: '>', value: 0}\n"
            "    text: quiet\n")
    rules = rules_with(tmp_path, text, "monitor_periods: [7, 14, 30]\n")
    assert rules.monitor_periods == (7, 14, 30)
    night = Night(rules, [1, 2])
    night.put(invoices_within(7), {1: 0, 2: 1})
    night.put(invoices_within(30), {1: 3, 2: 3})
    assert night.evaluate().hits == {1: ("WEEK",)}
    out = problems(tmp_path, text, "monitor_periods: [14, 30]\n")
    assert "monitors.yaml:6:29: monitors[0].all[0].period: 7 is not one of monitor_periods " \
           "(14, 30)" in out
    assert "at most 3 items" in problems(tmp_path, text, "monitor_periods: [7, 14, 30, 60]\n")
    assert "monitor_periods: periods must differ" in problems(
        tmp_path, text, "monitor_periods: [7, 7]\n")
    # the default periods are 30, 60 and 90
    assert "7 is not one of monitor_periods (30, 60, 90)" in problems(tmp_path, text)


# -- texts ----------------------------------------------------------------------------------------
AWKWARD = "O'Brien & <Sons> {{ not a template }}"


def test_texts_use_the_customer_and_contact_and_stay_plain_text(tmp_path: Path) -> None:
    night = Night(rules_with(tmp_path, MONITORS), [1, 2])
    night.put(gl_revenue(CODES, ["4150*"], 90), {1: 300.0, 2: 300.0})
    night.put(invoices_within(90), {1: 1, 2: 1})
    customers = {1: customer(1, AWKWARD), 2: customer(2, "Plain Ltd", branch=None)}
    result = night.evaluate(customers, {1: Contact("Séan O'Brien", "+353 1 555 0100",
                                                   "sean@obrien.ie")})
    texts = {a.number: a.text for a in result.alerts}
    assert texts["C001"] == (f"{AWKWARD} paid for DM in the last 90 days but nothing in the "
                             "last 30. Call Séan O'Brien (+353 1 555 0100, sean@obrien.ie).")
    # no contact on record: empty strings, never "None" (and runs of spaces become one)
    assert texts["C002"] == ("Plain Ltd paid for DM in the last 90 days but nothing in the last "
                             "30. Call (, ).")


def test_the_html_digest_escapes_alert_names_and_texts() -> None:
    alert = StatusAlert("C001", AWKWARD, "North", "Lapsing <DM>", f"Call {AWKWARD} & co",
                        customer_id=1, code="DM-LAPSING", sales_rep="Dana")
    d = DigestData(run_id=1, as_of=dt.date(2026, 11, 24), generated_at=dt.datetime(2026, 11, 24),
                   dealer="Demo", property_name="ZCJKeyServices", mode="live", dry_run=False,
                   baseline=False, counts=Counts(), changes=[], no_configuration=[],
                   no_attribute=[], services=[], service_names={}, alerts=[alert])
    rendered = render(d, find_templates_dir())
    assert "O&#39;Brien &amp; &lt;Sons&gt;" in rendered.html and "<Sons>" not in rendered.html
    assert "Lapsing &lt;DM&gt;" in rendered.html and "North &middot; Dana" in rendered.html
    assert f"C001  {AWKWARD} - Lapsing <DM> (North, Dana)\n      Call {AWKWARD} & co" \
        in rendered.text


@pytest.mark.parametrize("text, message", [
    ("{{ ''.__class__.__mro__ }}", ("not allowed in a monitor text: access to attribute "
                                   "'__class__' of 'str' object is unsafe")),
    ("{{ name.__class__ }}", "not allowed in a monitor text"),
    ("{{ name * 1000000000 }}", "repeating a text more than 100 times is not allowed"),
    ("{{ nme }} lapsed", "unknown variable nme in the text"),
    ("Call {{ name }", "template syntax error on line 1 of the text"),
    ("{{ name | shout }}", "No filter named 'shout'"),
    ("{{ values[3] | money }}", "the text cannot be rendered"),
])
def test_a_bad_or_unsafe_text_is_a_rules_error_naming_the_monitor(tmp_path: Path, text: str,
                                                                  message: str) -> None:
    out = problems(tmp_path, "monitors:\n  - code: BAD\n    name: Bad\n"
                             "    any: [{counter: invoices, period: 30}]\n"
                             f"    text: \"{text}\"\n")
    assert "monitors.yaml:5:5: monitors[0].text: monitor BAD: " in out
    assert message in out


def test_a_text_failing_on_tonights_numbers_names_monitor_and_customer(tmp_path: Path) -> None:
    night = Night(rules_with(tmp_path, (
        "monitors:\n  - code: SHARE\n    name: Share\n"
        "    any: [{counter: invoices, period: 30, op: '>=', value: 0}]\n"
        "    text: '{{ 100 / values[0] }} per invoice'\n")), [1])
    with pytest.raises(RulesError, match="monitor SHARE: its text could not be rendered for "
                                         "customer C001: float division by zero"):
        night.evaluate()


# -- rule errors ----------------------------------------------------------------------------------
@pytest.mark.parametrize("criterion, message", [
    ("{counter: visits, period: 30}",
     "monitors[0].any[0].counter: Input should be 'revenue', 'contracts_expiring' or 'invoices'"),
    ("{counter: revenue, service: DN, period: 30}",
     "monitors[0].any[0].service: unknown service 'DN' (did you mean 'DM'?)"),
    ("{counter: revenue, service: MPS, period: 30}",
     "monitors[0].any[0].service: service MPS has no gl section; name accounts instead"),
    ("{counter: contracts_expiring, service: MPS, period: 30}",
     "service MPS has no contracts section with contract codes"),
    ("{counter: invoices, period: 30, op: '=>'}",
     "monitors[0].any[0].op: Input should be '>', '>=', '<', '<=', '==' or '!='"),
    ("{counter: invoices, period: 30, accounts: ['4*']}",
     "monitors[0].any[0]: invoices counts every invoice"),
    ("{counter: revenue, period: 30}", "revenue needs either service or accounts"),
    ("{counter: revenue, service: DM, accounts: ['4*'], period: 30}",
     "revenue needs either service or accounts"),
    ("{counter: contracts_expiring, accounts: ['4*'], period: 30}",
     "accounts is for revenue"),
    ("{counter: invoices, period: 0}", "monitors[0].any[0].period: Input should be greater"),
    ("{counter: invoices, periode: 30}", ("monitors[0].any[0].periode: unknown key (did you "
                                         "mean 'period'?)")),
])
def test_criterion_errors_name_file_line_and_key(tmp_path: Path, criterion: str,
                                                 message: str) -> None:
    out = problems(tmp_path, "monitors:\n  - code: M\n    name: M\n"
                             f"    any:\n      - {criterion}\n    text: hello\n")
    assert "monitors.yaml:" in out and message in out, out


def test_monitor_errors_name_file_line_and_key(tmp_path: Path) -> None:
    crit = "[{counter: invoices, period: 30}]"
    out = problems(tmp_path, (
        f"monitors:\n  - {{code: A, name: A, text: t, all: {crit}, any: {crit}}}\n"
        f"  - {{code: B, name: B, text: t}}\n"
        f"  - {{code: 'C D', name: C, text: t, any: {crit}}}\n"))
    assert "monitors.yaml:2:5: monitors[0]: monitor A needs either all: or any:" in out
    assert "monitors.yaml:3:5: monitors[1]: monitor B needs either all: or any:" in out
    assert "monitors[2].code: String should match pattern" in out
    out = problems(tmp_path, f"monitors:\n  - {{code: A, name: A, text: t, any: {crit}}}\n"
                             f"  - {{code: A, name: Again, text: t, any: {crit}}}\n")
    assert "monitors.yaml:3:6: monitors[1].code: duplicate monitor code 'A'" in out


def test_no_monitors_no_columns_no_alerts(tmp_path: Path) -> None:
    rules = rules_with(tmp_path, "")
    assert rules.monitors == () and MonitorColumns(rules).columns(CODES) == []
    assert MonitorColumns(rules).codes_needed == frozenset()
    assert evaluate(rules, {}, CODES, {1: frozenset()}, None, {}, {}).alerts == []


def test_without_the_lean_path_or_the_columns_it_says_so(tmp_path: Path) -> None:
    night = Night(rules_with(tmp_path, MONITORS), [1])
    skipped = evaluate(night.rules, night.compiled.index_of, CODES, night.services, None, {}, {})
    assert skipped.alerts == [] and "not evaluated" in (skipped.note or "")
    with pytest.raises(ValueError, match=r"pass MonitorColumns\(rules\) to read_facts"):
        evaluate(night.rules, {}, CODES, night.services, night.rolled, {}, {})


def test_a_million_customers_in_well_under_a_second(tmp_path: Path) -> None:
    n = 1_000_000
    rules = rules_with(tmp_path, MONITORS)
    extra = MonitorColumns(rules)
    compiled = compile_rules(rules, CODES, extra.columns(CODES))
    rng = np.random.default_rng(7)
    rolled = np.zeros((n, len(compiled.columns)))
    lapsing, renewing = compiled.index_of(gl_revenue(CODES, ["4150*"], 90)), \
        compiled.index_of(contracts_matching(CODES, ["COPY-*", "RENT-COPY"], expires_within=60))
    rolled[:, compiled.index_of(invoices_within(90))] = rng.integers(1, 5, n)
    rolled[rng.choice(n, 2000, replace=False), lapsing] = 250.0
    rolled[rng.choice(n, 2000, replace=False), renewing] = 1
    services = dict.fromkeys(range(1, n + 1), frozenset[str]())
    hit = {i + 1 for i in np.nonzero((rolled[:, lapsing] > 0) | (rolled[:, renewing] > 0))[0]}
    customers = {cid: customer(cid) for cid in hit}
    start = time.perf_counter()
    result = evaluate(rules, compiled.index_of, CODES, services, rolled, customers, {})
    elapsed = time.perf_counter() - start
    assert len(result.alerts) == 4000 and set(result.hits) == hit
    assert elapsed < 1.0, elapsed


# -- the shipped examples and a real database -----------------------------------------------------
def test_the_example_rules_folder_validates_with_its_monitors() -> None:
    rules = load_rules(example_rules_dir())
    assert rules.monitor_periods == (30, 90, 365)
    assert [m.code for m in rules.monitors] == ["DM-LAPSING", "MIT-LAPSING", "COPY-RENEWAL",
                                                "NO-SALE-90"]
    assert rules.priority is not None and MonitorColumns(rules).columns(CODES)


def test_monitors_over_facts_read_from_the_database(erp: ErpBuilder) -> None:
    lapsing = erp.customer("LAPS", "O'Brien & <Sons>")  # DM revenue 80 days ago, none lately
    erp.gl(lapsing, "4150", 300.0, days_ago=80)
    erp.sale(lapsing, "MFP-A3-CO-03", 1000.0, days_ago=100)
    site = erp.customer("LAPS-2", "O'Brien site", parent=lapsing)  # rolled up into LAPS
    erp.contract(site, "COPY-MAINT", end=AS_OF + dt.timedelta(days=45))
    quiet = erp.customer("QUIET", "Quiet")  # bought 200 days ago, revenue 120 days ago
    erp.sale(quiet, "PC-DESKTOP", 800.0, days_ago=200)
    erp.gl(quiet, "4000", 800.0, days_ago=120)
    steady = erp.customer("STDY", "Steady")
    erp.gl(steady, "4150", 100.0, days_ago=10)
    erp.sale(steady, "SW-DM-CAPTURE", 10.0, days_ago=20)
    erp.contract(steady, "COPY-MAINT", end=AS_OF + dt.timedelta(days=400))
    rules = load_rules(example_rules_dir())
    extra = MonitorColumns(rules)
    with erp.engine.connect() as conn:
        attr = attribute_id(conn, ErpTables(), rules.property)
        facts = read_facts(conn, ErpTables(), rules, attr, AS_OF, extra=[extra])
    classification = classify(facts, rules)
    result = evaluate(rules, facts.metrics.compiled.index_of, facts.codes,
                      classification.services, classification.rolled, facts.customers,
                      {lapsing: Contact("Pat", "555-0100", "pat@obrien.example")})
    # LAPS: no invoice in 90 days either, but DM revenue 80 days ago: not "no sale"
    assert result.hits == {lapsing: ("DM-LAPSING", "COPY-RENEWAL"), quiet: ("NO-SALE-90",)}
    assert result.alerts[0].text == (
        "O'Brien & <Sons> paid 300.00 for document management in the last 90 days but nothing "
        "in the last 30. Call Pat (555-0100) or email pat@obrien.example.")
    assert result.alerts[1].text.startswith("1 copier contract(s) of O'Brien & <Sons> expire")


def test_limit_renders_the_lowest_numbers_of_each_branch_but_counts_every_hit(
        tmp_path: Path) -> None:
    night = Night(rules_with(tmp_path, MONITORS), [1, 2, 3, 4, 5])
    night.put(invoices_within(90), {1: 0, 2: 0, 3: 0, 4: 0, 5: 0})  # all quiet
    customers = {1: customer(1, number="Z1", branch="North"), 2: customer(2, number="A2"),
                 3: customer(3, number="M3", branch="South"), 4: customer(4, number="B4"),
                 5: customer(5, number="C5", branch="South")}
    result = evaluate(night.rules, night.compiled.index_of, CODES, night.services, night.rolled,
                      customers, {}, limit=1)
    # North: A2 (not B4 or Z1); South: C5 (not M3); listed in customer-number order
    assert [a.number for a in result.alerts] == ["A2", "C5"]
    assert result.counts["QUIET"] == 5 and len(result.hits) == 5


def test_a_run_alerts_with_the_decision_contact_named(erp: ErpBuilder, config_for) -> None:
    """A run: DM revenue 60 days ago and none since trips DM-LAPSING; the text names the decision
    contact (read for the alerted customers only) and the digest lists it."""
    import sqlalchemy as sa

    import keyservices

    lapsing = erp.customer("DMX001", "O'Brien & <Sons>")
    quiet = erp.customer("DMX002", "Quiet Co")
    erp.gl(lapsing, "4150", 553.63, days_ago=60)
    erp.gl(quiet, "4150", 100.0, days_ago=10)
    erp.insert("CMContacts", ContactID=700, CustomerID=lapsing, FirstName="Kai",
               LastName="Lefèvre", Email="kai@example.com", Phone1="555-0199", Active=True)
    with erp.engine.begin() as conn:
        t = erp.t["ARCustomers"]
        conn.execute(sa.update(t).where(t.c.CustomerID == lapsing).values(DecisionContactID=700))
    result = keyservices.run(config_for(erp), dry_run=True, as_of=AS_OF)
    mine = [a for a in result.alerts if a.code == "DM-LAPSING"]
    assert [a.number for a in mine] == ["DMX001"]  # DMX002 paid within the last 30 days
    assert mine[0].text == ("O'Brien & <Sons> paid 553.63 for document management in the last "
                            "90 days but nothing in the last 30. Call Kai Lefèvre (555-0199) or "
                            "email kai@example.com.")
    assert result.alert_counts["DM-LAPSING"] == 1


def test_export_alerts_lists_every_hit_with_its_text(erp: ErpBuilder, config_for, runner,
                                                     tmp_path: Path) -> None:
    import csv

    from keyservices.cli import cli

    for i in range(3):
        cid = erp.customer(f"LAP{i:03d}", f"Lapsing {i}")
        erp.gl(cid, "4150", 100.0 * (i + 1), days_ago=45)
    config = config_for(erp)
    out = tmp_path / "alerts.csv"
    result = runner.invoke(cli, ["export", "alerts", "-c", str(config.config_path), "--monitor",
                                 "dm-lapsing", "--out", str(out), "--as-of", "2026-11-24"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.read_text(encoding="utf-8-sig").splitlines()))
    assert [r["customer_number"] for r in rows] == ["LAP000", "LAP001", "LAP002"]
    assert rows[2]["monitor_code"] == "DM-LAPSING"
    assert rows[2]["text"].startswith("Lapsing 2 paid 300.00 for document management")
    bad = runner.invoke(cli, ["export", "alerts", "-c", str(config.config_path), "--monitor",
                              "NOPE"])
    assert bad.exit_code == 2 and "no monitor 'NOPE'" in bad.output


def test_a_monitor_sharing_a_service_code_is_refused_where_its_hits_are_calls(
        tmp_path: Path) -> None:
    """A monitor's hits are calls, kept per customer and code: a monitor coded like a service
    would merge its calls with the service's (the life cycle would judge one by the other's
    outcome). Without an opportunities block there are no calls, and the rules load."""
    crit = "[{counter: invoices, period: 30}]"
    monitor = f"monitors:\n  - {{code: MPS, name: Print revenue fell, text: t, any: {crit}}}\n"
    assert [m.code for m in rules_with(tmp_path, monitor).monitors] == ["MPS"]
    out = problems(tmp_path, monitor, "opportunities: {typical_share: 0.3}\n")
    assert ("monitors.yaml:3:6: monitors[0].code: monitor code 'MPS' is also a service's code"
            in out), out
    assert "Give the monitor a code of its own" in out
