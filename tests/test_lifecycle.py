"""The opportunity life cycle across nights, on hand-built opportunities (no database)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path

from keyservices.calls.lifecycle import (
    REASON_KEPT,
    REASON_RENEWED,
    Key,
    LifecycleResult,
    OpportunityRecord,
    advance,
)
from keyservices.model import Opportunity

DAY1 = dt.date(2026, 11, 24)
ACME, BOLT = 1, 2  # customer ids


def opp(cid: int, code: str, *, priority: str = "High", score: float = 80.0,
        rep: str | None = "Dana Rep", reason: str = "80% of 5 Legal customers use it",
        ) -> Opportunity:
    number = {ACME: "ACME01", BOLT: "BOLT01"}.get(cid, f"C{cid}")
    return Opportunity(number=number, name=f"Name of {number}", branch="Main", sales_rep=rep,
                       service=code, priority=priority, reason=reason, customer_id=cid,
                       service_code=code, score=score)


class Nights:
    """The state store in miniature: records saved between nights, by key."""

    def __init__(self) -> None:
        self.stored: dict[Key, OpportunityRecord] = {}

    def run(self, day: dt.date, found: Sequence[Opportunity],
            services: Mapping[int, frozenset[str]]) -> LifecycleResult:
        result = advance(self.stored, found, services, day)
        for record in result.records:
            self.stored[record.key] = record
        return result


def test_first_night_every_opportunity_is_new() -> None:
    nights = Nights()
    result = nights.run(DAY1, [opp(ACME, "MIT"), opp(BOLT, "DM")],
                        {ACME: frozenset({"CPY"}), BOLT: frozenset()})
    assert [(r.key, r.status, r.first_seen, r.last_seen) for r in result.records] == [
        ((ACME, "MIT"), "new", DAY1, DAY1), ((BOLT, "DM"), "new", DAY1, DAY1)]
    assert [(o.number, o.status, o.age_days) for o in result.visible] == [
        ("ACME01", "new", 0), ("BOLT01", "new", 0)]
    assert result.counts == {"new": 2, "open": 0, "won": 0, "closed": 0, "withdrawn": 0, "lost": 0,
                             "reopened": 0,
                             "hidden": 0}
    assert nights.stored[(ACME, "MIT")].owner == "Dana Rep"


def test_seen_again_it_is_open_refreshed_and_aged() -> None:
    nights = Nights()
    nights.run(DAY1, [opp(ACME, "MIT")], {ACME: frozenset()})
    day4 = DAY1 + dt.timedelta(days=3)
    result = nights.run(day4, [opp(ACME, "MIT", priority="Critical", score=95.0,
                                   rep="Lee New", reason="contract renewal in 30 days")],
                        {ACME: frozenset()})
    (record,) = result.records
    assert (record.status, record.first_seen, record.last_seen) == ("open", DAY1, day4)
    assert (record.priority, record.score, record.owner, record.reason) == (
        "Critical", 95.0, "Lee New", "contract renewal in 30 days")
    assert [(o.status, o.age_days) for o in result.visible] == [("open", 3)]  # day4 - DAY1
    assert result.counts["open"] == 1 and result.counts["new"] == 0


def test_new_then_open_then_won_when_the_service_appears() -> None:
    nights = Nights()
    nights.run(DAY1, [opp(ACME, "MIT")], {ACME: frozenset({"CPY"})})
    nights.run(DAY1 + dt.timedelta(days=1), [opp(ACME, "MIT")], {ACME: frozenset({"CPY"})})
    day3 = DAY1 + dt.timedelta(days=2)
    result = nights.run(day3, [], {ACME: frozenset({"CPY", "MIT"})})  # the customer bought MIT
    (record,) = result.records
    assert (record.status, record.closed_on, record.close_reason) == ("won", day3,
                                                                      "service appeared")
    assert record.last_seen == DAY1 + dt.timedelta(days=1) and record.age_days() == 2
    assert result.visible == [] and result.counts["won"] == 1


def test_open_closes_when_the_customer_leaves_the_scope() -> None:
    nights = Nights()
    nights.run(DAY1, [opp(ACME, "MIT"), opp(BOLT, "MIT")], {ACME: frozenset(), BOLT: frozenset()})
    day2 = DAY1 + dt.timedelta(days=1)
    result = nights.run(day2, [opp(BOLT, "MIT")], {BOLT: frozenset()})  # ACME went inactive
    assert nights.stored[(ACME, "MIT")].status == "withdrawn"  # its reason went: never won
    assert nights.stored[(ACME, "MIT")].close_reason == "customer inactive or out of scope"
    assert nights.stored[(ACME, "MIT")].closed_on == day2
    assert nights.stored[(BOLT, "MIT")].status == "open"
    assert result.counts == {"new": 0, "open": 1, "won": 0, "closed": 0, "withdrawn": 1, "lost": 0,
                             "reopened": 0, "hidden": 0}


def test_open_closes_when_the_condition_clears() -> None:
    nights = Nights()
    nights.run(DAY1, [opp(ACME, "MIT")], {ACME: frozenset()})
    # still in scope and still without MIT, but no longer an opportunity (its peers changed)
    result = nights.run(DAY1 + dt.timedelta(days=1), [], {ACME: frozenset({"CPY"})})
    (record,) = result.records
    assert (record.status, record.close_reason) == ("withdrawn", "condition cleared")


def test_a_closed_opportunity_that_comes_back_reopens_the_same_record() -> None:
    nights = Nights()
    nights.run(DAY1, [opp(ACME, "MIT")], {ACME: frozenset()})
    nights.run(DAY1 + dt.timedelta(days=1), [], {ACME: frozenset()})  # closed: cleared
    day9 = DAY1 + dt.timedelta(days=8)
    result = nights.run(day9, [opp(ACME, "MIT", priority="Medium")], {ACME: frozenset()})
    assert len(nights.stored) == 1
    record = nights.stored[(ACME, "MIT")]
    assert (record.status, record.first_seen, record.last_seen, record.reopened) == (
        "new", day9, day9, 1)
    assert (record.closed_on, record.close_reason, record.priority) == (None, None, "Medium")
    assert [(o.status, o.age_days) for o in result.visible] == [("new", 0)]
    assert result.counts["reopened"] == 1 and result.counts["new"] == 0


def test_a_won_opportunity_that_comes_back_counts_a_second_reopen() -> None:
    nights = Nights()
    nights.run(DAY1, [opp(ACME, "MIT")], {ACME: frozenset()})
    nights.stored[(ACME, "MIT")].reopened = 1  # it had come back once before
    nights.run(DAY1 + dt.timedelta(days=1), [], {ACME: frozenset({"MIT"})})
    assert nights.stored[(ACME, "MIT")].status == "won"
    nights.run(DAY1 + dt.timedelta(days=2), [opp(ACME, "MIT")], {ACME: frozenset()})
    assert nights.stored[(ACME, "MIT")].reopened == 2


def test_won_and_closed_records_not_found_again_are_left_alone() -> None:
    nights = Nights()
    nights.run(DAY1, [opp(ACME, "MIT")], {ACME: frozenset()})
    nights.run(DAY1 + dt.timedelta(days=1), [], {ACME: frozenset({"MIT"})})
    before = nights.stored[(ACME, "MIT")]
    result = nights.run(DAY1 + dt.timedelta(days=2), [], {})
    assert result.records == [] and nights.stored[(ACME, "MIT")] is before
    assert before.close_reason == "service appeared"  # not overwritten by "out of scope"


def test_a_snoozed_opportunity_is_tracked_but_hidden_until_the_date_then_shows() -> None:
    nights = Nights()
    nights.run(DAY1, [opp(ACME, "MIT"), opp(BOLT, "MIT")], {ACME: frozenset(), BOLT: frozenset()})
    until = DAY1 + dt.timedelta(days=7)
    nights.stored[(ACME, "MIT")] = dataclasses.replace(
        nights.stored[(ACME, "MIT")], snoozed_until=until, snooze_reason="tender until Dec",
        snoozed_by="Pat")
    services = {ACME: frozenset(), BOLT: frozenset()}
    found = [opp(ACME, "MIT"), opp(BOLT, "MIT")]
    on_the_date = nights.run(until, found, services)  # the date itself is still hidden
    assert [o.number for o in on_the_date.visible] == ["BOLT01"]
    assert on_the_date.counts["hidden"] == 1 and on_the_date.counts["open"] == 2
    assert nights.stored[(ACME, "MIT")].last_seen == until  # tracked while hidden
    after = nights.run(until + dt.timedelta(days=1), found, services)
    assert [(o.number, o.status, o.age_days) for o in after.visible] == [
        ("ACME01", "open", 8), ("BOLT01", "open", 8)]
    record = nights.stored[(ACME, "MIT")]
    assert (record.snoozed_until, record.snooze_reason, record.snoozed_by) == (
        until, "tender until Dec", "Pat")  # kept, as history
    assert after.counts["hidden"] == 0


def test_a_dismissed_opportunity_is_hidden_until_its_date_and_can_still_be_won() -> None:
    nights = Nights()
    nights.run(DAY1, [opp(ACME, "MIT")], {ACME: frozenset()})
    until = DAY1 + dt.timedelta(days=30)
    nights.stored[(ACME, "MIT")] = dataclasses.replace(
        nights.stored[(ACME, "MIT")], snoozed_until=until, snooze_reason="said no",
        dismissed=True)
    result = nights.run(DAY1 + dt.timedelta(days=1), [opp(ACME, "MIT")], {ACME: frozenset()})
    assert result.visible == [] and result.counts["hidden"] == 1
    won = nights.run(DAY1 + dt.timedelta(days=2), [], {ACME: frozenset({"MIT"})})
    assert [(r.status, r.dismissed) for r in won.records] == [("won", True)]


def test_no_duplicates_after_three_nights() -> None:
    nights = Nights()
    found = [opp(ACME, "MIT"), opp(ACME, "DM"), opp(BOLT, "MIT"),
             opp(ACME, "MIT", priority="Low")]  # the same pair twice: the first one counts
    services = {ACME: frozenset(), BOLT: frozenset()}
    results = [nights.run(DAY1 + dt.timedelta(days=n), found, services) for n in range(3)]
    assert sorted(nights.stored) == [(ACME, "DM"), (ACME, "MIT"), (BOLT, "MIT")]
    for result in results:
        assert len(result.records) == len({r.key for r in result.records}) == 3
        assert [(o.number, o.service_code) for o in result.visible] == [
            ("ACME01", "MIT"), ("ACME01", "DM"), ("BOLT01", "MIT")]
    assert nights.stored[(ACME, "MIT")].priority == "High"
    assert [r.counts["new"] for r in results] == [3, 0, 0]
    assert [r.counts["open"] for r in results] == [0, 3, 3]


def test_advance_leaves_its_inputs_alone() -> None:
    found = [opp(ACME, "MIT")]
    stored = {(ACME, "MIT"): OpportunityRecord(
        customer_id=ACME, service_code="MIT", customer_number="ACME01", customer_name="Old",
        branch=None, owner=None, status="open", priority="Low", score=1.0, reason="old",
        first_seen=DAY1, last_seen=DAY1)}
    snapshot = dataclasses.replace(stored[(ACME, "MIT")])
    result = advance(stored, found, {ACME: frozenset()}, DAY1 + dt.timedelta(days=5))
    assert stored[(ACME, "MIT")] == snapshot
    assert (found[0].status, found[0].age_days) == ("new", 0)
    assert (result.visible[0].status, result.visible[0].age_days) == ("open", 5)
    assert result.visible[0] is not found[0]


def test_a_win_needs_the_service_to_appear_not_only_to_be_held() -> None:
    """Demo night 2 credited 7 'won CPY' to uncovered-machine offers whose copier was
    deactivated: the customers had Copiers all along (#24)."""
    nights = Nights()
    nights.run(DAY1, [opp(ACME, "CPY"), opp(BOLT, "CPY")],
               {ACME: frozenset({"CPY"}), BOLT: frozenset()})
    tonight = advance(nights.stored, [], {ACME: frozenset({"CPY"}), BOLT: frozenset({"CPY"})},
                      DAY1 + dt.timedelta(days=1), appeared={BOLT: {"CPY"}})
    outcome = {c.customer_id: (c.status, c.close_reason) for c in tonight.closings}
    assert outcome == {ACME: ("withdrawn",
                              "the offer's reason is gone (machines covered or pulled)"),
                       BOLT: ("won", "service appeared")}


def test_a_win_needs_a_sale_the_causes_engine_names() -> None:
    """Outcomes credited by cause (#24): a service that appeared with a named sale is won,
    with that sale; one the causes cannot explain is withdrawn, never won."""
    nights = Nights()
    nights.run(DAY1, [opp(ACME, "MIT"), opp(BOLT, "MIT")],
               {ACME: frozenset(), BOLT: frozenset()})
    tonight = advance(nights.stored, [], {ACME: frozenset({"MIT"}), BOLT: frozenset({"MIT"})},
                      DAY1 + dt.timedelta(days=1), appeared={ACME: {"MIT"}, BOLT: {"MIT"}},
                      causes={(ACME, "MIT"): "Managed IT: new active IT-* contract",
                              (BOLT, "MIT"): "Managed IT: its facts changed"})
    outcome = {c.customer_id: (c.status, c.close_reason) for c in tonight.closings}
    assert outcome == {
        ACME: ("won", "service appeared: Managed IT: new active IT-* contract"),
        BOLT: ("withdrawn", "service appeared with no sale named: Managed IT: its facts changed")}
    assert tonight.counts["won"] == 1 and tonight.counts["withdrawn"] == 1


def test_on_the_demo_every_win_is_a_service_its_night_added(tmp_path: Path) -> None:
    import sqlalchemy as sa

    from keyservices.commands.demo import demo

    result = demo(tmp_path / "demo", customers=800)
    state = tmp_path / "demo" / ".keyservices" / "state.sqlite"
    engine = sa.create_engine(f"sqlite:///{state.as_posix()}")
    with engine.connect() as conn:
        won = conn.execute(sa.text("SELECT customer_id, service_code, closed_on FROM "
                                   "opportunities WHERE status = 'won' AND play <> 'renewal' "
                                   "AND play NOT LIKE 'monitor:%'")).all()
        # the calls that keep a customer are won by what they watch, not by a service added
        kept = conn.execute(sa.text("SELECT DISTINCT play, close_reason FROM opportunities "
                                    "WHERE status = 'won' AND (play = 'renewal' OR play LIKE "
                                    "'monitor:%')")).all()
        added = {(cid, code) for cid, codes in conn.execute(sa.text(
            "SELECT c.customer_id, c.added FROM changes c JOIN runs r ON r.id = c.run_id "
            "WHERE r.baseline = 0")) for code in (codes or "").split(";") if code}
    engine.dispose()
    assert result is not None
    assert all((cid, code) in added for cid, code, _ in won), won
    assert {reason for play, reason in kept} <= {REASON_RENEWED, REASON_KEPT}, kept
