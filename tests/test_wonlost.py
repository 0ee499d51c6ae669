"""Won and lost per branch and sales rep with annual values: aggregation, storage, values."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa

from keyservices.calls.wonlost import (
    ValueColumns,
    annual_values,
    fill_annual_values,
    totals,
    windows_ending,
    won_lost,
)
from keyservices.engine.classify import classify
from keyservices.engine.diff import plan_changes
from keyservices.erp import attribute_id
from keyservices.erp.facts import read_facts
from keyservices.model import Change
from keyservices.night import rules_for as _rules_for
from keyservices.night import tables_for as _tables_for
from keyservices.outputs.report import NO_GROUP, WonLostRow
from keyservices.state import StateStore

from .conftest import AS_OF, ErpBuilder

NAMES = {"CPY": "Copiers", "MPS": "Managed Print", "DM": "Document Management",
         "MIT": "Managed IT"}


def day(days_ago: int) -> dt.date:
    return AS_OF - dt.timedelta(days=days_ago)


def row(days_ago: int, cid: int, branch: str | None, rep: str | None, added=(), removed=(),
        values: dict[str, float] | None = None, baseline: bool = False) -> dict:
    """An audit row as StateStore.won_lost(..., with_values=True) returns it."""
    return {"as_of": day(days_ago), "baseline": baseline, "customer_id": cid,
            "customer_number": f"C{cid:03d}", "branch": branch, "sales_rep": rep,
            "added": tuple(added), "removed": tuple(removed), "annual_values": values or {}}


# Customer 1 (North, Dana) got MPS in the baseline at 2,400 a year, lost it 50 days ago, got it
# back 20 days ago at 3,000 and lost it again 5 days ago: each loss is worth the last addition.
# Customer 2 (North, Dana) won MIT 40 days ago (1,800) and lost DM 10 days ago; its DM was added
# 200 days ago (before both windows) at 1,200. Customer 3 (South, no rep) won CPY and DM 3 days
# ago (DM 600, CPY without a contract value). Customer 4 lost MIT 100 days ago (outside both).
HISTORY = [
    row(300, 1, "North", "Dana", added=["CPY", "MPS"], values={"MPS": 2400.0}, baseline=True),
    row(300, 2, "North", "Dana", added=["CPY"], baseline=True),
    row(300, 4, "South", "Lee", added=["MIT"], values={"MIT": 999.0}, baseline=True),
    row(200, 2, "North", "Dana", added=["DM"], values={"DM": 1200.0}),
    row(100, 4, "South", "Lee", removed=["MIT"]),
    row(50, 1, "North", "Dana", removed=["MPS"]),
    row(40, 2, "North", "Dana", added=["MIT"], values={"MIT": 1800.0}),
    row(20, 1, "North", "Dana", added=["MPS"], values={"MPS": 3000.0}),
    row(10, 2, "North", "Dana", removed=["DM"]),
    row(5, 1, "North", "Dana", removed=["MPS"]),
    row(3, 3, "South", None, added=["CPY", "DM"], values={"DM": 600.0}),
]


def test_won_lost_per_branch_and_rep_with_values_from_the_last_addition() -> None:
    figures = won_lost(HISTORY, NAMES, windows_ending(AS_OF))
    assert list(figures) == ["last 30 days", "last 90 days"]
    # last 30 days (the nights of day(29) .. AS_OF): C1 +MPS 3000 and -MPS (worth its last
    # addition, 3000); C2 -DM (worth 1200, added 200 days ago); C3 +CPY (0) +DM 600
    assert figures["last 30 days"] == [
        WonLostRow("branch", "North", "MPS", 1, 1, 3000.0, 3000.0),
        WonLostRow("branch", "North", "DM", 0, 1, 0.0, 1200.0),
        WonLostRow("branch", "South", "CPY", 1, 0, 0.0, 0.0),
        WonLostRow("branch", "South", "DM", 1, 0, 600.0, 0.0),
        WonLostRow("sales_rep", NO_GROUP, "CPY", 1, 0, 0.0, 0.0),
        WonLostRow("sales_rep", NO_GROUP, "DM", 1, 0, 600.0, 0.0),
        WonLostRow("sales_rep", "Dana", "MPS", 1, 1, 3000.0, 3000.0),
        WonLostRow("sales_rep", "Dana", "DM", 0, 1, 0.0, 1200.0),
    ]
    # last 90 days adds C1 -MPS 50 days ago (worth the baseline's 2400) and C2 +MIT 1800;
    # C4's loss 100 days ago is outside, and no baseline row counts as won
    north = {r.service: r for r in figures["last 90 days"]
             if (r.kind, r.group) == ("branch", "North")}
    assert north == {
        "MPS": WonLostRow("branch", "North", "MPS", 1, 2, 3000.0, 5400.0),
        "DM": WonLostRow("branch", "North", "DM", 0, 1, 0.0, 1200.0),
        "MIT": WonLostRow("branch", "North", "MIT", 1, 0, 1800.0, 0.0),
    }
    assert totals(figures["last 90 days"]) == {"won": 4, "lost": 3, "won_value": 5400.0,
                                               "lost_value": 6600.0}
    assert totals(figures["last 30 days"]) == {"won": 3, "lost": 2, "won_value": 3600.0,
                                               "lost_value": 4200.0}


def test_windows_are_the_last_n_nights_up_to_the_day() -> None:
    assert windows_ending(AS_OF, (1, 30)) == {"last 1 days": (AS_OF, AS_OF),
                                              "last 30 days": (day(29), AS_OF)}
    edge = [row(29, 1, "North", "Dana", added=["CPY"]), row(30, 2, "North", "Dana",
                                                               added=["CPY"])]
    figures = won_lost(edge, NAMES, windows_ending(AS_OF))
    assert [(r.group, r.won) for r in figures["last 30 days"] if r.kind == "branch"] == [
        ("North", 1)]
    assert [(r.group, r.won) for r in figures["last 90 days"] if r.kind == "branch"] == [
        ("North", 2)]


def test_a_loss_with_no_recorded_addition_is_worth_nothing_and_rows_come_in_any_order() -> None:
    rows = [row(2, 7, "East", "Kim", removed=["MIT"]),  # added before values were kept
            row(1, 8, "", "  ", added=["MIT"], values={"MIT": 1200.0})]  # blank groups
    figures = won_lost(list(reversed(rows)), NAMES, {"all": (day(10), AS_OF)})
    assert figures["all"] == [
        WonLostRow("branch", NO_GROUP, "MIT", 1, 0, 1200.0, 0.0),
        WonLostRow("branch", "East", "MIT", 0, 1, 0.0, 0.0),
        WonLostRow("sales_rep", NO_GROUP, "MIT", 1, 0, 1200.0, 0.0),
        WonLostRow("sales_rep", "Kim", "MIT", 0, 1, 0.0, 0.0),
    ]
    assert won_lost([], NAMES, {"all": (day(10), AS_OF)}) == {"all": []}


# -- the state store keeps the values -------------------------------------------------------------
def test_the_state_store_keeps_annual_values_with_each_change(tmp_path: Path) -> None:
    store = StateStore(f"sqlite:///{(tmp_path / 'state.sqlite').as_posix()}")
    try:
        base = store.begin_run(as_of=day(100), erp="x", prop="ZCJKeyServices", mode="live",
                               baseline=True)
        store.record_pending(base, [
            Change(1, "C001", "One", "North", "Dana", None, "MPS", ("MPS",), (),
                   annual_values=(("MPS", 2400.0),))])
        store.settle(base, [])
        night = store.begin_run(as_of=day(5), erp="x", prop="ZCJKeyServices", mode="live",
                                baseline=False)
        store.record_pending(night, [
            Change(1, "C001", "One", "North", "Dana", "MPS", None, (), ("MPS",)),
            Change(2, "C002", "Two", "South", "Lee", None, "DM;MIT", ("DM", "MIT"), (),
                   annual_values=(("DM", 600.0), ("MIT", 1800.5)))])
        store.settle(night, [])
        rows = store.won_lost(None, AS_OF, include_baseline=True, with_values=True)
        assert [(r["customer_number"], r["baseline"], r["annual_values"]) for r in rows] == [
            ("C001", True, {"MPS": 2400.0}), ("C001", False, {}),
            ("C002", False, {"DM": 600.0, "MIT": 1800.5})]
        assert "annual_values" not in store.won_lost(day(30), AS_OF)[0]  # the short form
        figures = won_lost(rows, NAMES, windows_ending(AS_OF))
        assert totals(figures["last 30 days"]) == {"won": 2, "lost": 1, "won_value": 2400.5,
                                                   "lost_value": 2400.0}
        (stored,) = store.history(run_id=base)
        assert stored["annual_values"] == '{"MPS":2400.0}'
    finally:
        store.close()


def test_an_older_state_store_gains_the_annual_values_column(tmp_path: Path) -> None:
    url = f"sqlite:///{(tmp_path / 'state.sqlite').as_posix()}"
    StateStore(url).close()
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # as a state store made before values were kept
        conn.execute(sa.text("ALTER TABLE changes DROP COLUMN annual_values"))
        conn.execute(sa.text(
            "INSERT INTO runs (id, started_at, as_of, erp, property, mode, baseline, status) "
            "VALUES (1, '2026-11-01 02:30:00', '2026-11-01', 'x', 'ZCJKeyServices', 'live', 0, "
            "'done')"))
        conn.execute(sa.text(
            "INSERT INTO changes (id, run_id, customer_id, customer_number, customer_name, "
            "\"after\", added, removed, status, at) VALUES (1, 1, 7, 'C007', 'Old', 'MIT', 'MIT', "
            "'', 'applied', '2026-11-01 02:30:30')"))
    engine.dispose()
    store = StateStore(url)
    try:
        (old,) = store.won_lost(None, AS_OF, with_values=True)
        assert (old["customer_number"], old["annual_values"]) == ("C007", {})
    finally:
        store.close()


# -- contract values computed with the facts, filled into the changes -----------------------------
@pytest.fixture
def parent_with_a_location(erp: ErpBuilder) -> dict[str, int]:
    """A parent with an MPS contract (150/month) and its location with another (50/month) and the
    fleet; a copier customer without any contract; a DM customer whose contract has no rate."""
    parent = erp.customer("PAR001", "Parent")
    site = erp.customer("PAR001-01", "Parent, site 1", parent=parent)
    erp.contract(parent, "MPS-FLEET", rate=150.0)
    erp.contract(site, "MPS-FLEET", rate=50.0)
    erp.contract(site, "COPY-MAINT", rate=80.0)
    for _ in range(3):
        erp.equipment(site, "PRN-A4-BW")
    copier = erp.customer("COP001", "Copier only")
    erp.equipment(copier, "MFP-A3-CO-03")
    dm = erp.customer("DMS001", "DM at no charge")
    erp.contract(dm, "DM-SUB", rate=0.0)
    return {"parent": parent, "site": site, "copier": copier, "dm": dm}


def test_value_columns_give_each_added_service_its_contracts_rate_a_year(
        erp: ErpBuilder, parent_with_a_location: dict[str, int], config_for) -> None:
    config = config_for(erp)
    rules = _rules_for(config)
    tables = _tables_for(config, rules)
    values = ValueColumns(rules)
    assert [code for code, _ in values.sections] == ["CPY", "MPS", "DM", "MIT"]
    with erp.engine.connect() as conn:
        attr = attribute_id(conn, tables, rules.property)
        facts = read_facts(conn, tables, rules, attr, AS_OF, extra=[values])
        plain = read_facts(conn, tables, rules, attr, AS_OF)
    classification = classify(facts, rules)
    assert classification.services == classify(plain, rules).services  # values change nothing
    plan = plan_changes(facts, classification, rules)
    assert fill_annual_values(plan.changes, classification, facts, values) == 1
    ids = parent_with_a_location
    got = {c.number: (c.added, c.annual_values) for c in plan.changes}
    # the parent: MPS (150 + 50 rolled up from its site) and CPY (80 at the site), 12 months
    assert got == {
        "COP001": (("CPY",), ()),  # copiers in the field, no contract: no value
        "DMS001": (("DM",), ()),  # a contract at rate 0: no value
        "PAR001": (("CPY", "MPS"), (("CPY", 960.0), ("MPS", 2400.0))),
    }
    everyone = annual_values(classification, facts, values)
    assert everyone[ids["parent"]] == {"CPY": 960.0, "MPS": 2400.0, "DM": 0.0, "MIT": 0.0}
    assert set(everyone) == set(classification.services)  # the site counts for its parent


def test_without_value_columns_nothing_is_filled(erp: ErpBuilder,
                                                 parent_with_a_location: dict[str, int],
                                                 config_for) -> None:
    config = config_for(erp)
    rules = _rules_for(config)
    tables = _tables_for(config, rules)
    with erp.engine.connect() as conn:
        attr = attribute_id(conn, tables, rules.property)
        detail = read_facts(conn, tables, rules, attr, AS_OF, detail=True)  # the dict path
    classification = classify(detail, rules)
    plan = plan_changes(detail, classification, rules)
    assert fill_annual_values(plan.changes, classification, detail, ValueColumns(rules)) == 0
    assert all(c.annual_values == () for c in plan.changes)
    assert annual_values(classification, detail, ValueColumns(rules)) == {}
    # a change whose customer the classification does not know is skipped
    stray = [dataclasses.replace(plan.changes[0], customer_id=999_999)]
    with erp.engine.connect() as conn:
        lean = read_facts(conn, tables, rules, attr, AS_OF, extra=[ValueColumns(rules)])
    assert fill_annual_values(stray, classify(lean, rules), lean, ValueColumns(rules)) == 0


def _oldest_first_reference(rows: list[dict], windows: dict) -> dict:
    """The rule as it reads, oldest first with every add remembered (the previous way)."""
    added_value: dict = {}
    acc: dict = {label: {} for label in windows}
    for r in sorted(rows, key=lambda r: r["as_of"]):
        events = [(c, False, added_value.get((r["customer_id"], c), 0.0)) for c in r["removed"]]
        for c in r["added"]:
            added_value[(r["customer_id"], c)] = float(r["annual_values"].get(c, 0.0))
            events.append((c, True, added_value[(r["customer_id"], c)]))
        if r["baseline"] or not events:
            continue
        for label, (since, until) in windows.items():
            if since <= r["as_of"] <= until:
                for kind in ("branch", "sales_rep"):
                    group = (r.get(kind) or "").strip() or NO_GROUP
                    for c, won, v in events:
                        cell = acc[label].setdefault((kind, group, c), [0, 0, 0.0, 0.0])
                        cell[0 if won else 1] += 1
                        cell[2 if won else 3] += v
    return {label: sorted((k, v[0], v[1], round(v[2], 2), round(v[3], 2))
                          for k, v in cells.items()) for label, cells in acc.items()}


def test_newest_first_and_streamed_gives_the_same_figures_as_oldest_first() -> None:
    import random

    rnd = random.Random(11)
    rows, have = [], {}
    for days_ago in range(400, -1, -1):
        for _ in range(rnd.randrange(0, 6)):
            cid = rnd.randrange(1, 30)
            mine = have.setdefault(cid, set())
            code = rnd.choice(list(NAMES))
            gain = code not in mine
            (mine.add if gain else mine.discard)(code)
            rows.append(row(days_ago, cid, rnd.choice(["North", None]), rnd.choice(["Dana", "Lee"]),
                            added=[code] if gain else [], removed=[] if gain else [code],
                            values={code: float(rnd.randrange(100, 900))},
                            baseline=days_ago == 400))
    windows = windows_ending(AS_OF)
    want = _oldest_first_reference(rows, windows)
    for got in (won_lost(rows, NAMES, windows),
                won_lost(iter(list(reversed(rows))), NAMES, windows, newest_first=True)):
        assert {label: sorted(((r.kind, r.group, r.service), r.won, r.lost, r.won_value,
                               r.lost_value) for r in got[label])
                for label in windows} == want


def test_streamed_won_lost_stops_reading_once_every_loss_has_its_value() -> None:
    read = []

    def stream():
        for r in [row(1, 1, "N", "Dana", removed=["MPS"]), row(30, 1, "N", "Dana", added=["MPS"],
                                                               values={"MPS": 1200.0}),
                  *[row(200 + i, 2, "N", "Dana", added=["CPY"]) for i in range(50)]]:
            read.append(r)
            yield r

    got = won_lost(stream(), NAMES, windows_ending(AS_OF, [7]), newest_first=True)
    assert [(r.lost, r.lost_value) for r in got["last 7 days"] if r.kind == "branch"] == [
        (1, 1200.0)]
    assert len(read) == 3  # the add 30 days back valued the loss; one row more shows the end


def test_a_rows_stored_values_are_decoded_only_where_they_count(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A baseline night's rows (every value written, all within tonight's window) are read only
    to be skipped: their JSON is not decoded; an add that values a loss and a win are."""
    from keyservices.state import audit

    decoded: list[str] = []
    real = audit.values_of

    def counting(text: str | None) -> dict[str, float]:
        decoded.append(text or "")
        return real(text)

    monkeypatch.setattr(audit, "values_of", counting)

    def stored(r: dict, text: str | None) -> dict:
        return {**r, "annual_values": audit.StoredValues(text)}

    rows = [  # newest first
        stored(row(0, 1, "N", "Dana", removed=["MPS"]), None),
        stored(row(0, 2, "N", "Dana", added=["DM"]), '{"DM":600.0}'),
        *[stored(row(0, 10 + i, "N", "Dana", added=["CPY"], baseline=True), '{"CPY":1.0}')
          for i in range(20)],
        stored(row(30, 1, "N", "Dana", added=["MPS"]), '{"MPS":1200.0}'),
    ]
    got = won_lost(iter(rows), NAMES, windows_ending(AS_OF, [7]), newest_first=True)
    branch = {r.service: r for r in got["last 7 days"] if r.kind == "branch"}
    assert (branch["MPS"].lost, branch["MPS"].lost_value) == (1, 1200.0)
    assert (branch["DM"].won, branch["DM"].won_value) == (1, 600.0)
    assert "CPY" not in branch
    assert sorted(decoded) == ['{"DM":600.0}', '{"MPS":1200.0}'], decoded


def test_streamed_audit_rows_read_back_what_was_stored(tmp_path: Path) -> None:
    """``won_lost_rows`` (the driver's rows, values decoded on demand) gives what ``won_lost``
    gives through SQLAlchemy, newest first."""
    store = StateStore(f"sqlite:///{(tmp_path / 'state.sqlite').as_posix()}")
    try:
        for days_ago, baseline, changes in [
                (100, True, [Change(1, "C001", "One", "North", "Dana", None, "MPS", ("MPS",), (),
                                    annual_values=(("MPS", 2400.0),))]),
                (5, False, [Change(1, "C001", "One", "North", "Dana", "MPS", None, (), ("MPS",)),
                            Change(2, "C002", "Two", "South", None, None, "DM;MIT",
                                   ("DM", "MIT"), (),
                                   annual_values=(("DM", 600.0), ("MIT", 1800.5)))])]:
            run = store.begin_run(as_of=day(days_ago), erp="x", prop="ZCJKeyServices",
                                  mode="live", baseline=baseline)
            store.record_pending(run, changes)
            store.settle(run, [])
        want = store.won_lost(None, AS_OF, include_baseline=True, with_values=True)
        got = [{**r, "annual_values": dict(r["annual_values"])}
               for r in store.won_lost_rows(AS_OF)]
        assert got == list(reversed(want))
        assert isinstance(got[0]["as_of"], dt.date) and type(got[0]["customer_id"]) is int
    finally:
        store.close()
