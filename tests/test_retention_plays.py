"""The renewal and monitor plays (#24). The renewal play: a customer whose every contract of a service ends within
``opportunities.renewal_days`` is a call on the one expected-value scale, valued at its own
contracts' annual value; it is judged by the contracts alone, the same way by the backtest
(won when a contract of the service runs 90 days on) and by the nights (won when one runs past
the window, lost when none runs any more). A status monitor's hit is a call too, play
``monitor:<code>``, won when the customer bought what the monitor watches in the 90 days
after it."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
from pathlib import Path

import numpy as np

import keyservices
from keyservices.calls import renewal
from keyservices.calls.backtest import Pending, Trials, judge
from keyservices.calls.lifecycle import (
    REASON_KEPT,
    REASON_NOT_KEPT,
    REASON_NOT_RENEWED,
    REASON_RENEWED,
    REASON_RULE_GONE,
    OpportunityRecord,
    Stored,
    advance,
)
from keyservices.calls.outcomes import outcomes
from keyservices.commands.backtest import backtest
from keyservices.commands.export import export_opportunities
from keyservices.state import StateStore

from .conftest import AS_OF, ErpBuilder, write_config

NIGHT_1 = AS_OF - dt.timedelta(days=40)
ENDS = AS_OF - dt.timedelta(days=20)  # within 90 days of night 1, before night 2


def _calls(config: keyservices.Config, as_of: dt.date) -> dict[str, dict[str, str]]:
    text = export_opportunities(config, as_of=as_of).text
    rows = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    return {r["customer_number"]: r for r in rows if r["play"] == renewal.RENEWAL}


def _stored(config: keyservices.Config) -> dict[str, tuple[str, str | None, str | None]]:
    store = StateStore(config.state_url)
    try:
        return {r.customer_number: (r.status, r.close_reason, r.play)
                for r in store.list_opportunities() if r.service_code == "CPY"}
    finally:
        store.close()


def test_a_service_whose_every_contract_ends_soon_is_a_renewal_call(any_erp: ErpBuilder,
                                                                     tmp_path: Path) -> None:
    erp = any_erp
    start = AS_OF - dt.timedelta(days=700)
    due = erp.customer("DUE")  # two copier contracts, both ending within 90 days
    erp.contract(due, "COPY-MAINT", start=start, end=ENDS, rate=100.0)
    erp.contract(due, "COPY-MAINT", start=start, end=ENDS + dt.timedelta(days=5), rate=50.0)
    safe = erp.customer("SAFE")  # one ends soon, another runs two more years: not at risk
    erp.contract(safe, "COPY-MAINT", start=start, end=ENDS)
    erp.contract(safe, "COPY-MAINT", start=start, end=AS_OF + dt.timedelta(days=700))
    far = erp.customer("FAR")  # ends in 200 days
    erp.contract(far, "COPY-MAINT", start=start, end=NIGHT_1 + dt.timedelta(days=200))
    lapses = erp.customer("LAPSES")
    erp.contract(lapses, "COPY-MAINT", start=start, end=ENDS)
    config = keyservices.load_config(write_config(tmp_path, erp.url, schema=erp.schema))

    calls = _calls(config, NIGHT_1)
    assert set(calls) == {"DUE", "LAPSES"}
    assert calls["DUE"]["service"] == "Copiers"
    assert float(calls["DUE"]["estimated_annual_value"]) == 1800.0  # 12 x (100 + 50)
    assert calls["DUE"]["value_basis"] == renewal.VALUE_BASIS
    assert calls["DUE"]["reason"].startswith("its 2 Copiers contracts all end within 90 days")
    assert calls["LAPSES"]["reason"].startswith("its Copiers contract ends within 90 days")
    assert calls["DUE"]["p_win"] and calls["DUE"]["expected_value"]

    # night 1 opens the calls; DUE renews with a new contract, LAPSES lets its contract end
    keyservices.run(config, as_of=NIGHT_1, force=True, send=False)
    assert {n: s[0] for n, s in _stored(config).items()
            if s[2] == renewal.RENEWAL} == {"DUE": "new", "LAPSES": "new"}
    erp.contract(due, "COPY-MAINT", start=ENDS, end=ENDS + dt.timedelta(days=1095))
    keyservices.run(config, as_of=AS_OF, force=True, send=False)
    got = _stored(config)
    assert got["DUE"][:2] == ("won", REASON_RENEWED)
    assert got["LAPSES"][:2] == ("lost", REASON_NOT_RENEWED)


def test_the_backtest_learns_the_renewal_rate_from_replaced_and_lapsed_contracts(
        any_erp: ErpBuilder, tmp_path: Path) -> None:
    erp = any_erp
    ended = AS_OF - dt.timedelta(days=165)  # on no as-of date (30 days apart from AS_OF)
    for n in range(4):
        kept = erp.customer(f"KEPT{n}")  # its contract replaced by a new one the day it ended
        erp.contract(kept, "COPY-MAINT", start=AS_OF - dt.timedelta(days=900), end=ended)
        erp.contract(kept, "COPY-MAINT", start=ended, end=AS_OF + dt.timedelta(days=900))
        gone = erp.customer(f"GONE{n}")  # its contract left to lapse
        erp.contract(gone, "COPY-MAINT", start=AS_OF - dt.timedelta(days=900), end=ended)
    config = keyservices.load_config(write_config(tmp_path, erp.url, schema=erp.schema))
    result = backtest(config, as_of=AS_OF).result
    play = {s.play: s for s in result.plays}[renewal.RENEWAL]
    assert play.offers > 0 and play.won * 2 == play.offers  # every KEPT call won, no GONE call
    cells = [(cell, offered, won) for cell, offered, won in result.rates.rows()
             if cell[0] == renewal.RENEWAL]
    assert sum(o for _, o, _ in cells) == 2 * sum(w for _, _, w in cells)


def _pending(codes: list[str], customers: list[int], running: dict[str, list[int]]) -> Pending:
    n = len(codes)
    trials = Trials(AS_OF, [], np.zeros(n, np.int64), np.zeros(n), np.zeros(n, bool),
                    np.arange(n), np.asarray(customers, dtype=np.int64))
    return Pending(trials, codes, np.zeros(0, np.int64), {}, {},
                   np.arange(n), {k: np.asarray(sorted(v), dtype=np.int64)
                                  for k, v in running.items()})


def test_a_renewal_call_is_won_only_by_a_contract_running_90_days_on() -> None:
    before = _pending(["CPY", "CPY", "MIT"], [1, 2, 3], {"CPY": [1, 2], "MIT": [3]})
    later = _pending([], [], {"CPY": [2, 9], "MIT": []})
    assert judge(before, later).won.tolist() == [False, True, False]


def _record(cid: int, play: str | None) -> OpportunityRecord:
    return OpportunityRecord(cid, "CPY", f"C{cid}", f"Firm {cid}", None, None, "open", "Medium",
                             0.0, "why", AS_OF - dt.timedelta(days=30),
                             AS_OF - dt.timedelta(days=1), play=play)


def test_a_renewal_record_closes_won_or_lost_and_others_as_before() -> None:
    stored = {(r.customer_id, "CPY"): r for r in
              (_record(1, "renewal"), _record(2, "renewal"), _record(3, None),
               _record(4, "renewal"))}
    services = {1: frozenset({"CPY"}), 2: frozenset(), 3: frozenset()}
    running = {"CPY": np.array([1], dtype=np.int64)}
    closed = {c.customer_id: (c.status, c.close_reason) for c in advance(
        Stored.of(stored), [], services, AS_OF, running=running).closings}
    assert closed[1] == ("won", REASON_RENEWED)
    assert closed[2] == ("lost", REASON_NOT_RENEWED)
    assert closed[3][0] == "withdrawn"  # not a renewal call: the rules of its play
    assert closed[4][0] == "withdrawn"  # out of scope tonight
    # a store read without the play (older readers): nothing is judged as a renewal
    assert {c.status for c in advance(Stored.of(stored), [], services, AS_OF,
                                      appeared={}).closings} == {"withdrawn"}


def test_a_lost_renewal_counts_against_the_win_share() -> None:
    day = AS_OF - dt.timedelta(days=10)
    rows = outcomes([("renewal", "won", day, day, REASON_RENEWED, 0.5, 600.0),
                     ("renewal", "lost", day, day, REASON_NOT_RENEWED, 0.5, 600.0)],
                    {"last 30 days": (AS_OF - dt.timedelta(days=29), AS_OF)})["last 30 days"]
    row = next(r for r in rows if r.play == "renewal")
    assert (row.won, row.expired, row.win_share) == (1, 1, 0.5)


# -- the monitor plays ------------------------------------------------------------------------------
def test_a_status_monitors_hit_is_a_call_won_when_the_customer_buys_again(
        any_erp: ErpBuilder, tmp_path: Path) -> None:
    """DM-LAPSING (DM revenue in 90 days, none in 30): BACK pays again and its call is won;
    GONE pays nothing more, and once its last payment is 90 days old the monitor stops and
    the call is lost."""
    erp = any_erp
    back, gone = erp.customer("BACK"), erp.customer("GONE")
    for cid in (back, gone):
        erp.gl(cid, "4150", 900.0, days_ago=(AS_OF - NIGHT_1).days + 60)
    config = keyservices.load_config(write_config(tmp_path, erp.url, schema=erp.schema))
    text = export_opportunities(config, as_of=NIGHT_1).text
    calls = {(r["customer_number"], r["play"]): r
             for r in csv.DictReader(io.StringIO(text.lstrip("\ufeff")))}
    call = calls[("BACK", "monitor:DM-LAPSING")]
    assert call["service"] == "Document management lapsing"
    assert call["reason"] == "status monitor: Document management lapsing"
    assert float(call["estimated_annual_value"]) == 3600.0  # 900 x 365 / 90, to two digits
    assert ("GONE", "monitor:DM-LAPSING") in calls

    keyservices.run(config, as_of=NIGHT_1, force=True, send=False)
    erp.gl(back, "4150", 450.0, days_ago=5)
    keyservices.run(config, as_of=AS_OF, force=True, send=False)
    store = StateStore(config.state_url)
    try:
        got = {r.customer_number: (r.status, r.close_reason) for r in store.list_opportunities()
               if r.service_code == "DM-LAPSING"}
    finally:
        store.close()
    assert got == {"BACK": ("won", REASON_KEPT), "GONE": ("lost", REASON_NOT_KEPT)}


def test_a_monitor_call_is_won_by_what_the_monitor_watches_90_days_on() -> None:
    before = _pending(["DM-LAPSING", "DM-LAPSING", "CPY"], [1, 2, 2], {})
    before.monitor_rows = np.array([0, 1], dtype=np.int64)
    before.renewal_rows = np.zeros(0, dtype=np.int64)
    later = _pending([], [], {})
    later.kept = {"DM-LAPSING": np.array([2], dtype=np.int64)}
    assert judge(before, later).won.tolist() == [False, True, False]


def test_a_monitor_record_closes_by_what_it_watches() -> None:
    stored = {(r.customer_id, r.service_code): r for r in (
        dataclasses.replace(_record(1, "monitor:DM-LAPSING"), service_code="DM-LAPSING"),
        dataclasses.replace(_record(2, "monitor:DM-LAPSING"), service_code="DM-LAPSING"))}
    services = {1: frozenset(), 2: frozenset()}
    closed = {c.customer_id: (c.status, c.close_reason) for c in advance(
        Stored.of(stored), [], services, AS_OF,
        kept={"DM-LAPSING": np.array([2], dtype=np.int64)}).closings}
    assert closed == {1: ("lost", REASON_NOT_KEPT), 2: ("won", REASON_KEPT)}



def test_a_call_whose_monitor_left_the_rules_is_withdrawn_not_lost() -> None:
    stored = {(3, "OLD-MON"): dataclasses.replace(_record(3, "monitor:OLD-MON"),
                                                  service_code="OLD-MON")}
    closed = advance(Stored.of(stored), [], {3: frozenset()}, AS_OF,
                     kept={"DM-LAPSING": np.array([3], dtype=np.int64)}).closings
    assert [(c.status, c.close_reason) for c in closed] == [("withdrawn", REASON_RULE_GONE)]
