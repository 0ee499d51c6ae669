"""Opportunities as columns (``calls.frame``) and the life cycle on columns: objects are made only
for the rows read, and the answers are the ones a row-by-row reading gives."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from pathlib import Path

import numpy as np
import pytest

from keyservices.calls import priority
from keyservices.calls.frame import OpportunityFrame
from keyservices.calls.lifecycle import Stored, advance
from keyservices.calls.opportunities import find, sort_key
from keyservices.calls.tonight import Listing, listed_opportunities, listed_rows
from keyservices.commands.why import hold_back
from keyservices.engine.classify import classify
from keyservices.model import ContractFact, Customer, CustomerFacts, Facts, Opportunity
from keyservices.resources import example_rules_dir
from keyservices.rules import Opportunities, load_rules
from keyservices.state import StateStore

AS_OF = dt.date(2026, 11, 24)
RULES = dataclasses.replace(load_rules(example_rules_dir()), opportunities=Opportunities(
    typical_share=0.5, min_peers=5, grace_days=90))
DM = CustomerFacts(contracts={("DM-SUB", "ANNUAL"): ContractFact(1, 99.0)})


def dealer(n: int, seed: int = 7) -> Facts:
    """``n`` customers in three industries, reps and branches; about half use DM."""
    rnd = random.Random(seed)
    customers = {i: Customer(id=i, number=f"C{rnd.randrange(10**6):06d}-{i}", name=f"Firm {i}",
                             parent_id=None, active=True, prospect=False,
                             industry=rnd.choice(["Legal", "Medical", "Retail"]),
                             branch=rnd.choice(["North", "South", None]),
                             sales_rep=rnd.choice(["Dana", "Lee", "Kim", None]), config_id=1,
                             has_value_row=True, created=dt.datetime(2020, 1, 1))
                 for i in range(1, n + 1)}
    facts = {i: DM for i in customers if rnd.random() < 0.6}
    return Facts(as_of=AS_OF, customers=customers, facts=facts, categories={})


def test_a_night_of_opportunities_makes_objects_only_for_the_rows_read() -> None:
    facts = dealer(400)
    found = find(facts, classify(facts, RULES), RULES)
    assert len(found) > 100 and found.materialised == 0
    top = found[:3]
    assert found.materialised == 3 and found[0] is top[0]  # made once, kept
    copy = found.only("sales_rep", "Dana")
    assert [o.number for o in copy] == [o.number for o in found if o.sales_rep == "Dana"]


def test_the_frame_ranks_as_the_row_by_row_sort_key() -> None:
    facts = dealer(300)
    found = find(facts, classify(facts, RULES), RULES, ordered=False)
    objects = [dataclasses.replace(o) for o in found]
    assert list(found.ranked()) == sorted(objects, key=sort_key)


def test_priority_rules_on_columns_match_a_rule_by_rule_reading(tmp_path: Path) -> None:
    """Each distinct (offer, tier, renewals, alerts) is decided once; the answer per row must be
    what deciding every row on its own gives."""
    facts = dealer(300)
    rules = load_rules(example_rules_dir())
    rules = dataclasses.replace(rules, opportunities=RULES.opportunities)
    assert rules.priority is not None
    found = find(facts, classify(facts, rules), rules, ordered=False)
    rnd = random.Random(3)
    ids = sorted({o.customer_id for o in found})
    tiers = {cid: rnd.choice(["A", "B", "C"]) for cid in ids if rnd.random() < 0.7}
    hits = {cid: ("NO-SALE-90",) for cid in ids if rnd.random() < 0.3}
    renewals = {cid: frozenset({priority.renewal_key(rules, r)
                                for r in priority.renewal_conditions(rules)})
                for cid in ids if rnd.random() < 0.2}
    ranked = priority.apply(rules, found, tiers, renewals, hits)
    one_by_one = []
    for o in [dataclasses.replace(x) for x in found]:
        d = priority._decide(rules, rules.priority, o, tiers, renewals, hits)
        one_by_one.append(dataclasses.replace(o, priority=d.priority,
                                              score=round(o.score + d.points, 1), why=d.why))
    one_by_one.sort(key=sort_key)
    assert [(o.customer_id, o.service_code, o.priority, o.score, o.why) for o in ranked] == [
        (o.customer_id, o.service_code, o.priority, o.score, o.why) for o in one_by_one]


def test_listed_rows_are_each_copys_first_not_hidden() -> None:
    facts = dealer(400)
    found = find(facts, classify(facts, RULES), RULES)
    hidden = frozenset((o.customer_id, o.service_code) for o in found[:5])
    listing = Listing(sales_reps=frozenset({"Dana", "Kim"}), branches=frozenset({"North"}),
                      top=4, hidden=hidden)
    want, taken = [], {}
    for o in found:  # the rule as it reads: first ``top`` not hidden of each copy
        if (o.customer_id, o.service_code) in hidden:
            continue
        keys = ([("rep", o.sales_rep)] if o.sales_rep in listing.sales_reps else []) + (
            [("branch", o.branch)] if o.branch in listing.branches else [])
        fits = [k for k in keys if taken.get(k, 0) < listing.top]
        for k in fits:
            taken[k] = taken.get(k, 0) + 1
        if fits:
            want.append(o)
    assert listed_opportunities(found, listing) == want
    assert len(listed_rows(found, listing)) == len(want) == 12


def test_holding_back_a_customer_at_risk_keeps_what_is_already_open() -> None:
    facts = dealer(200)
    found = find(facts, classify(facts, RULES), RULES)
    risky = found[0].customer_id
    theirs = [o for o in found if o.customer_id == risky]
    kept = hold_back(found, [risky], {(risky, theirs[0].service_code)})
    assert len(kept) == len(found) - len(theirs) + 1
    assert all(o.customer_id != risky for o in hold_back(found, [risky]))


def opp(cid: int, code: str) -> Opportunity:
    return Opportunity(number=f"C{cid}", name=f"Name {cid}", branch="Main", sales_rep="Dana",
                       service=code, priority="High", reason="typical", customer_id=cid,
                       service_code=code, score=80.0)


@pytest.fixture
def store(tmp_path: Path):
    s = StateStore(f"sqlite:///{(tmp_path / 'state.sqlite').as_posix()}")
    yield s
    s.close()


def test_the_life_cycle_saved_and_read_as_columns_keeps_overrides(store: StateStore) -> None:
    """Night 1 saves three, a manager snoozes one, night 2 finds two: the snoozed one stays
    hidden with its override, the missing one closes, the other is open a day older."""
    day2 = AS_OF + dt.timedelta(days=1)
    first = advance(store.load_life(), OpportunityFrame.of(
        [opp(1, "MIT"), opp(2, "DM"), opp(3, "MIT")]), {1: frozenset(), 2: frozenset(),
                                                         3: frozenset()}, AS_OF)
    store.save_life(first)
    store.set_override("C2", "DM", day2 + dt.timedelta(days=7), "on holiday", "kim", False)
    loaded = store.load_life()
    assert isinstance(loaded, Stored) and len(loaded) == 3
    second = advance(loaded, OpportunityFrame.of([opp(1, "MIT"), opp(2, "DM")]),
                     {1: frozenset(), 2: frozenset(), 3: frozenset({"MIT"})}, day2)
    assert second.counts == {"new": 0, "open": 2, "won": 1, "closed": 0, "withdrawn": 0, "lost": 0,
                             "reopened": 0,
                             "hidden": 1}
    assert [(o.number, o.status, o.age_days) for o in second.visible] == [("C1", "open", 1)]
    store.save_life(second)
    rows = {(r.customer_id, r.service_code): r for r in store.load_opportunities().values()}
    assert (rows[(1, "MIT")].status, rows[(1, "MIT")].last_seen) == ("open", day2)
    assert (rows[(2, "DM")].snoozed_until, rows[(2, "DM")].snooze_reason) == (
        day2 + dt.timedelta(days=7), "on holiday")
    assert (rows[(3, "MIT")].status, rows[(3, "MIT")].closed_on) == ("won", day2)


def test_a_million_keys_are_matched_by_array_not_one_at_a_time() -> None:
    """The stored side can be large: matching is one sort (this would take minutes row by row
    with objects; here it is a behaviour check on 200k keys, not a timing)."""
    n = 200_000
    rows = [(i, "MIT", "open", AS_OF, None, None, 0) for i in range(n)]
    stored = Stored.from_rows(rows)
    frame = OpportunityFrame(np.arange(0, n, 2, dtype=np.int64), np.zeros(n // 2, np.int64),
                             [OpportunityFrame.of([opp(0, "MIT")]).offers[0]],
                             {i: opp(i, "MIT") for i in range(0, n, 2)})
    result = advance(stored, frame, {}, AS_OF + dt.timedelta(days=1))
    assert result.counts["open"] == n // 2 and result.counts["withdrawn"] == n // 2
    assert frame.materialised == 0


def test_the_life_cycle_is_saved_a_slice_at_a_time(store: StateStore, monkeypatch) -> None:
    from keyservices.state import opportunities as state_opportunities

    monkeypatch.setattr(state_opportunities, "SAVE_ROWS", 2)
    night = advance(store.load_life(), OpportunityFrame.of([opp(i, "MIT") for i in range(5)]),
                    {}, AS_OF)
    store.save_life(night)
    assert sorted(store.load_opportunities()) == [(i, "MIT") for i in range(5)]


def test_the_customer_table_is_a_mapping_with_objects_only_for_ids_asked_for() -> None:
    from keyservices.model import CustomerTable, customer_column, on_record

    ids = np.array([3, 5, 9], dtype=np.int64)

    def objects(*values: object) -> np.ndarray:
        out = np.empty(len(values), dtype=object)
        out[:] = list(values)
        return out

    table = CustomerTable(ids, {
        "number": objects("C3", "C5", "C9"), "name": objects("Three", "Five", "Nine"),
        "parent_id": np.array([-1, 3, -1]), "active": np.array([True, True, False]),
        "prospect": np.zeros(3, bool), "industry": objects("Legal", None, "Legal"),
        "sales_rep": objects("Dana", "Dana", None), "branch": objects(None, "North", None),
        "config_id": np.array([7, -1, 2]), "has_value_row": np.array([True, False, True]),
        "current_value": objects("CPY", None, None), "created": objects(None, None, None)})
    assert len(table) == 3 and list(table) == [3, 5, 9] and table.materialised == 0
    assert 5 in table and np.int64(5) in table and 4 not in table and "5" not in table
    five = table[5]
    assert (five.parent_id, five.config_id, five.is_location, five.branch) == (3, None, True,
                                                                              "North")
    assert table[5] is five and table.materialised == 1
    with pytest.raises(KeyError):
        table[4]
    assert customer_column(table, "number", [9, 3]).tolist() == ["C9", "C3"]
    assert on_record(table, [3, 4, 10]).tolist() == [True, False, False]
    assert table.missing("config_id", np.array([0, 1, 2])).tolist() == [False, True, False]
