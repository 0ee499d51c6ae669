"""An uncovered-machine offer is won when its machine is put on a contract line (#24): the
offer of a service contract for copiers on none closes *won*, with the line named, when a line
starting after the offer covers the machine (on a new contract or one extended to it); a
machine pulled or deactivated leaves it *withdrawn*. The backtest's label agrees: there an
offer is won when fewer of its machines are on no contract 90 days on, which the dated
history can only show through a contract line starting (it keeps no removal date)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import sqlalchemy as sa

import keyservices
from keyservices.calls.lifecycle import (
    REASON_COVERED,
    REASON_GONE,
    REASON_PULLED,
    OpportunityRecord,
    Stored,
    advance,
    closing,
    covered_since,
)
from keyservices.state import StateStore

from .conftest import AS_OF, ErpBuilder, write_config
from .test_cross_sell import ON_CONTRACT, rules_dir

OFFERED = AS_OF - dt.timedelta(days=10)  # night 1: the offers are made
LINE = AS_OF - dt.timedelta(days=3)  # between the nights: the lines start


def _when(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time())


def _outcomes(config: keyservices.Config) -> dict[str, tuple[str, str | None]]:
    store = StateStore(config.state_url)
    try:
        return {r.customer_number: (r.status, r.close_reason)
                for r in store.list_opportunities() if r.service_code == "CPY"}
    finally:
        store.close()


def test_an_uncovered_machine_put_on_a_contract_line_wins_the_offer(any_erp: ErpBuilder,
                                                                     tmp_path: Path) -> None:
    erp = any_erp
    machines, contracts = {}, {}
    for name in ("EXTENDED", "NEWDEAL", "PULLED", "WAITING"):
        cid = erp.customer(name)
        contracts[name] = erp.contract(cid, "COPY-MAINT", start=AS_OF - dt.timedelta(days=400))
        machines[name] = erp.equipment(cid, "MFP-A3-CO-03")  # on no contract line
    path = write_config(tmp_path, erp.url, schema=erp.schema)
    rules_dir(tmp_path, ON_CONTRACT)
    config = keyservices.load_config(path)
    keyservices.run(config, as_of=OFFERED, force=True, send=False)
    assert {n: s for n, (s, _) in _outcomes(config).items()} == dict.fromkeys(
        ("EXTENDED", "NEWDEAL", "PULLED", "WAITING"), "new")

    # EXTENDED: its contract gains a line for the machine; NEWDEAL: a new contract covers it
    # (an undated line: the contract's start is the line's); PULLED: the machine is deactivated
    erp.insert("SCContractDetails", ContractID=contracts["EXTENDED"],
               EquipmentID=machines["EXTENDED"], StartDate=_when(LINE))
    deal = erp.contract(erp_id(erp, "NEWDEAL"), "COPY-MAINT", start=LINE)
    erp.insert("SCContractDetails", ContractID=deal, EquipmentID=machines["NEWDEAL"])
    t = erp.t["SCEquipments"]
    with erp.engine.begin() as conn:
        conn.execute(t.update().where(t.c.EquipmentID == machines["PULLED"]).values(Active=False))
    keyservices.run(config, as_of=AS_OF, force=True, send=False)
    got = _outcomes(config)
    assert got["EXTENDED"] == ("won", f"{REASON_COVERED}: 1 machine, line from {LINE}")
    assert got["NEWDEAL"] == ("won", f"{REASON_COVERED}: 1 machine, line from {LINE}")
    assert got["PULLED"] == ("withdrawn", REASON_PULLED)
    assert got["WAITING"] == ("open", None)


def erp_id(erp: ErpBuilder, number: str) -> int:
    c = erp.t["ARCustomers"]
    with erp.engine.connect() as conn:
        return int(conn.execute(sa.select(c.c.CustomerID).where(c.c.CustomerNumber == number))
                   .scalar_one())


def _record(cid: int, first: dt.date) -> OpportunityRecord:
    return OpportunityRecord(cid, "CPY", f"C{cid}", f"Firm {cid}", None, None, "open", "High",
                             1.0, "1 COPIER unit on no active contract", first, first,
                             play="uncovered_machines")


def test_only_a_line_started_since_the_offer_on_a_machine_it_was_about_wins() -> None:
    first = dt.date(2026, 11, 1)
    stored = Stored.of({(c, "CPY"): _record(c, first) for c in (1, 2, 3, 4, 5)})
    asked = closing(stored, [], {"CPY"})
    assert asked == {(c, "CPY"): first for c in (1, 2, 3, 4, 5)}
    day = dt.date(2026, 11, 20)
    lines = [(1, None, 11, day, None),  # a line since the offer
             (2, None, 12, dt.date(2026, 10, 1), None),  # a line from before it: not a sale
             (3, None, 13, day, dt.date(2026, 11, 15)),  # a machine installed after it
             (40, 4, 14, day, dt.date(2026, 1, 1)),  # at a location of customer 4
             (40, 4, 15, first, None)]
    covered = covered_since(asked, lines)
    assert covered == {(1, "CPY"): "1 machine, line from 2026-11-20", (2, "CPY"): "",
                       (3, "CPY"): "", (4, "CPY"): "2 machines, lines from 2026-11-01 to "
                       "2026-11-20", (5, "CPY"): ""}
    have = {c: frozenset({"CPY"}) for c in (1, 2, 3, 4, 5)}
    result = advance(stored, [], have, day, appeared={}, covered=covered)
    outcome = {c.customer_id: (c.status, c.close_reason) for c in result.closings}
    assert outcome[1] == ("won", f"{REASON_COVERED}: 1 machine, line from 2026-11-20")
    assert outcome[2] == outcome[3] == outcome[5] == ("withdrawn", REASON_PULLED)
    assert outcome[4][0] == "won" and result.counts["won"] == 2
    # without the lines looked at (no such rule): as before
    before = advance(stored, [], have, day, appeared={})
    assert {c.close_reason for c in before.closings} == {REASON_GONE}
