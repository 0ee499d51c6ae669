"""The lean path (rules compiled to per-customer numbers, evaluated over arrays) against the
dict-based reference path, and its array operations on hand-worked numbers."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import numpy as np
import pytest

from keyservices.demodb import build_demo_db
from keyservices.engine.classify import classify
from keyservices.engine.metrics import (
    NONE,
    Check,
    Codes,
    Column,
    Compiled,
    CompiledService,
    Extra,
    Filter,
    MetricTable,
    contracts_matching,
    evaluate,
    gl_revenue,
    invoices_within,
    rolled_up,
)
from keyservices.erp import ErpTables, attribute_id, connect
from keyservices.erp.facts import read_facts
from keyservices.resources import example_rules_dir
from keyservices.rules import load_rules
from tests.conftest import ErpBuilder

AS_OF = dt.date(2026, 11, 24)

# every kind of filter and threshold the rule language has, on the demo dealer's codes
VARIETY = """
services:
  - code: BIG
    name: Big copier fleet on monthly billing
    match: all
    equipment: {model_classes: [COPIER], min_count: 2}
    contracts: {contract_codes: ["COPY-*", "RENT-*"], bill_codes: [MONTHLY, "QUART*"],
                min_base_rate: 150}
  - code: ANYCOPY
    name: Copiers ever placed
    equipment: {categories: ["MFP-*"], active_only: false, min_count: 3}
  - code: SW
    name: Software bought at a price
    match: all
    items_sold: {model_classes: [DOC_SOFTWARE, PRINT_SOFTWARE], item_categories: ["SOFT*"],
                 min_unit_cost: 5, min_amount: 300, window_days: 365}
    gl: {accounts: ["41*", "4200"], min_revenue: 250, window_days: 90}
  - code: NOTIT
    name: Copier service but no IT
    contracts: {contract_codes: ["COPY-*"]}
    exclude:
      match: any
      gl: {accounts: ["43*"], min_revenue: 1, window_days: 30}
      equipment: {model_classes: [IT_HARDWARE, NETWORK], min_count: 2}
"""


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("metrics")
    build_demo_db(folder / "erp.sqlite", customers=1500, as_of=AS_OF)
    return folder


def _both(db: Path, rules_dir: Path) -> tuple[dict, dict, dict]:
    rules = load_rules(rules_dir)
    engine = connect(f"sqlite:///{db.as_posix()}")
    try:
        with engine.connect() as conn:
            attr = attribute_id(conn, ErpTables(), rules.property)
            detail = read_facts(conn, ErpTables(), rules, attr, AS_OF, detail=True)
            lean = read_facts(conn, ErpTables(), rules, attr, AS_OF)
    finally:
        engine.dispose()
    assert lean.metrics is not None and detail.metrics is None
    a, b = classify(detail, rules), classify(lean, rules)
    assert (a.inactive, a.prospects, a.locations_rolled_up) == \
        (b.inactive, b.prospects, b.locations_rolled_up)
    return a.services, b.services, {s.code: 0 for s in rules.services}


@pytest.mark.parametrize("level", ["parent", "location"])
@pytest.mark.parametrize("variety", [False, True])
def test_lean_path_classifies_the_demo_exactly_like_the_detailed_facts(
        demo: Path, tmp_path: Path, level: str, variety: bool) -> None:
    rules_dir = tmp_path / "rules"
    shutil.copytree(example_rules_dir(), rules_dir)
    if variety:
        (rules_dir / "services.yaml").write_text(VARIETY, encoding="utf-8")
        (rules_dir / "cross-sell.yaml").unlink()  # it offers the example services
    text = (rules_dir / "model-classes.yaml").read_text(encoding="utf-8")
    (rules_dir / "model-classes.yaml").write_text(
        text.replace("level: parent", f"level: {level}"), encoding="utf-8")
    detail, lean, users = _both(demo / "erp.sqlite", rules_dir)
    assert lean == detail
    for services in lean.values():
        for code in services:
            users[code] += 1
    # the comparison means something only if every service is held by some and not by all
    assert all(0 < n < len(lean) for n in users.values()), users


def _compiled() -> Compiled:
    units = Column("equipment", "units", (Filter("category_id", (1,)),))
    rate = Column("contracts", "rate", (Filter("contract_code_id", (7,)),))
    top = Column("items_sold", "top_price", (Filter("category_id", (2,)),), 730)
    c = Compiled()
    u, r, t = c.column(units), c.column(rate), c.column(top)
    assert c.column(units) == u  # the same column twice is computed once
    c.services = [CompiledService("A", "any", [(Check(u, 3),), (Check(t, 0.01),)]),
                  CompiledService("B", "all", [(Check(u, 1),), (Check(r, 100),)],
                                  "any", [(Check(t, 500),)])]
    return c


def test_roll_up_adds_sums_and_keeps_the_largest_maximum() -> None:
    c = _compiled()
    table = MetricTable.empty(c, [10, 20, 21, 30])
    # rows: parent 10 with locations 20 and 21; 30 stands alone. Columns: units, rate, top price
    assert table.put([0, 2], np.array([[20, 1, 0.0], [21, 1, 120.0], [99, 5, 1.0]])) == 2
    assert table.put([1], np.array([[10, 60.0], [21, 50.0]])) == 2
    target = np.array([0, 0, 0, -1])  # 30 is out of scope (say, inactive)
    values = rolled_up(table, target)
    assert values[0].tolist() == [2.0, 110.0, 120.0]  # 1+1 units, 60+50 rate, max(0, 120)
    assert values[3].tolist() == [0.0, 0.0, NONE]  # nothing counts for row 3
    has = evaluate(c, values)
    # A: 2 units < 3 but a top price of 120 >= 0.01 -> yes. B: units and rate hold, but the
    # exclude (top price >= 500) does not -> yes. Row 3: nothing.
    assert has[0].tolist() == [True, True]
    assert has[3].tolist() == [False, False]
    # on its own, location 21 has 1 unit, 50 rate: A by price (120), B fails on rate (50 < 100)
    assert evaluate(c, table.values)[2].tolist() == [True, False]


def test_a_maximum_over_nothing_meets_no_price_floor() -> None:
    c = _compiled()
    table = MetricTable.empty(c, [1])
    assert evaluate(c, table.values)[0].tolist() == [False, False]
    table.put([2], np.array([[1, 0.0]]))  # a zero-cost licence: sold, at price 0
    assert evaluate(c, table.values)[0].tolist() == [False, False]


class _Monitorish(Extra):
    """What a status monitor or a tier asks for beside the rules."""

    codes_needed = frozenset({"accounts", "contract_codes"})

    def columns(self, codes: Codes) -> list[Column]:
        return [gl_revenue(codes, ["415*"], 30), gl_revenue(codes, ["415*"], 90),
                contracts_matching(codes, ["COPY-*", "RENT-*"], expires_within=60),
                contracts_matching(codes, ["COPY-*", "RENT-*"], agg="rate"),
                invoices_within(90)]


def test_extra_columns_ride_along_in_the_same_statements(erp: ErpBuilder) -> None:
    lapsing = erp.customer("LAPS", "Lapsing")  # copier revenue 80 days ago, none lately
    erp.gl(lapsing, "4150", 300.0, days_ago=80)
    erp.contract(lapsing, "COPY-MAINT", end=AS_OF + dt.timedelta(days=45), rate=120.0)
    erp.contract(lapsing, "RENT-COPY", end=AS_OF + dt.timedelta(days=400), rate=30.0)
    steady = erp.customer("STDY", "Steady")
    erp.gl(steady, "4150", 100.0, days_ago=10)
    erp.gl(steady, "4150", 50.0, days_ago=70)
    erp.sale(steady, "SW-DM-CAPTURE", 10.0, days_ago=20)
    erp.sale(steady, "SW-DM-CAPTURE", 10.0, days_ago=200)
    rules = load_rules(example_rules_dir())
    with erp.engine.connect() as conn:
        attr = attribute_id(conn, ErpTables(), rules.property)
        extra = _Monitorish()
        facts = read_facts(conn, ErpTables(), rules, attr, AS_OF, extra=[extra])
    table = facts.metrics
    cols = [table.compiled.index_of(c) for c in extra.columns(facts.codes)]
    rows = {cid: list(table.values[i, cols]) for i, cid in enumerate(table.ids.tolist())}
    # GL 415* in 30 / 90 days; COPY-* expiring within 60 days; COPY-* monthly rate; invoices 90d
    assert rows[lapsing] == [0.0, 300.0, 1.0, 150.0, 0.0]
    assert rows[steady] == [100.0, 150.0, 0.0, 0.0, 1.0]
