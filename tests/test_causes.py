"""Why each service was added or removed, and the risk flags (takeout, churn).

Two nights on a hand-built ERP: night 1 keeps the facts, the day changes them, night 2 must name
the fact behind every change, flag the customers who may be leaving and not offer them as
opportunities.
"""

from __future__ import annotations

import datetime as dt
import email
import json
import logging
from pathlib import Path

import pytest

import keyservices
from keyservices import night
from keyservices.commands.audit import history
from keyservices.commands.explain import explain
from keyservices.state import snapshot

from .conftest import AS_OF, ErpBuilder

NIGHT2 = AS_OF + dt.timedelta(days=5)


@pytest.fixture
def dealer(erp: ErpBuilder) -> dict[str, int]:
    """Ten copier customers (so Copiers is typical for the industry) and the cases."""
    ids = {}
    for i in range(10):
        cid = erp.customer(f"PEER{i:02d}")
        erp.equipment(cid, "MFP-A3-CO-03")
    # the takeout: copiers and printers under an MPS contract and a copier rental
    ids["takeout"] = take = erp.customer("TAKE01", "Evergreen Fabrication")
    ids["take_eq"] = [erp.equipment(take, "MFP-A3-CO-03") for _ in range(4)]
    ids["take_eq"] += [erp.equipment(take, "PRN-A4-BW") for _ in range(3)]
    erp.contract(take, "MPS-FLEET")
    erp.contract(take, "RENT-COPY")
    # its only service ends: a managed-IT contract that expires between the nights
    ids["ends"] = erp.customer("END001", "Contract Ends")
    erp.contract(ids["ends"], "IT-MANAGED", end=AS_OF + dt.timedelta(days=2))
    # managed-IT revenue falls out of the 365-day window (it keeps its copier)
    ids["gl"] = erp.customer("GLIT01", "Revenue Lapses")
    erp.equipment(ids["gl"], "MFP-A4-BW-01")
    erp.gl(ids["gl"], "4300", 1200.0, days_ago=362)
    # a first document-management sale on the day
    ids["dm"] = erp.customer("DMNEW1", "First DM Sale")
    erp.equipment(ids["dm"], "MFP-A4-BW-01")
    return ids


def the_day(erp: ErpBuilder, dealer: dict[str, int]) -> None:
    """What happens in the ERP between the nights."""
    e = erp.t["SCEquipments"]
    with erp.engine.begin() as conn:
        conn.execute(e.update().where(e.c.EquipmentID.in_(dealer["take_eq"])).values(Active=False))
    erp.sale(dealer["dm"], "SW-DM-CAPTURE", 900.0, days_ago=-3)


def two_nights(erp: ErpBuilder, dealer: dict[str, int], config_for, extra: str = ""):
    config = config_for(erp, extra)
    first = keyservices.run(config, as_of=AS_OF)
    the_day(erp, dealer)
    return config, first, keyservices.run(config, as_of=NIGHT2)


def by_number(result) -> dict:
    return {c.number: c for c in result.changes}


def test_each_change_names_the_facts_that_flipped_it(erp: ErpBuilder, dealer: dict[str, int],
                                                     config_for) -> None:
    _, _, second = two_nights(erp, dealer, config_for)
    changes = by_number(second)
    assert set(changes) == {"TAKE01", "END001", "GLIT01", "DMNEW1"}
    assert changes["TAKE01"].causes == (
        "Copiers: 4 units deactivated or moved (COPIER), 0 left",
        "Managed Print: 7 units deactivated or moved (PRINTER, COPIER), 0 left; needs 3")
    assert changes["END001"].causes == ("Managed IT: no active IT-* contract any more",)
    assert changes["GLIT01"].causes == (
        "Managed IT: GL 4300* revenue 0 < 1,000 over 365 days (was 1,200)",)
    assert changes["DMNEW1"].causes == (
        "Document Management: first DOC_SOFTWARE sale at 900 in the last 730 days",)


def test_causes_reach_the_digest_the_json_and_the_audit(erp: ErpBuilder, dealer: dict[str, int],
                                                        config_for) -> None:
    config, _, second = two_nights(erp, dealer, config_for)
    message = email.message_from_bytes(second.digest_eml.read_bytes(),
                                       policy=email.policy.default)
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    for body in (text, html):
        assert "no active IT-* contract any more" in body
        assert "GL 4300* revenue 0 &lt; 1,000" in body or "GL 4300* revenue 0 < 1,000" in body
    data = json.loads(json.dumps(second.to_dict(), default=str))
    row = next(c for c in data["changes"] if c["number"] == "END001")
    assert row["causes"] == ["Managed IT: no active IT-* contract any more"]
    assert {(r["number"], r["kind"]) for r in data["risks"]} >= {("TAKE01", "takeout"),
                                                                ("END001", "churn")}
    audit = history(config, run_id=second.run_id)["changes"]
    stored = next(r for r in audit if r["customer_number"] == "GLIT01")
    assert stored["causes"] == ["Managed IT: GL 4300* revenue 0 < 1,000 over 365 days (was 1,200)"]


def test_takeout_and_churn_are_flagged_first_and_not_offered(erp: ErpBuilder,
                                                             dealer: dict[str, int],
                                                             config_for) -> None:
    config, _, second = two_nights(erp, dealer, config_for)
    flags = {(f.number, f.kind): f.text for f in second.risks}
    assert set(flags) == {("TAKE01", "takeout"), ("TAKE01", "churn"), ("END001", "churn")}
    assert flags[("TAKE01", "takeout")] == (
        "7 machines (PRINTER, COPIER) gone since 2026-11-24, 7 -> 0, while 1 MPS-* contract is "
        "still active")
    assert flags[("END001", "churn")] == "last service(s) removed: Managed IT"
    # the night itself finds TAKE01 lacking Copiers, typical for its industry ...
    with night.open_erp(config) as erp_db:
        tonight = night.compute(config, NIGHT2, erp=erp_db)
    assert any(o.number == "TAKE01" and o.service_code == "CPY"
               for o in tonight.calls.opportunities)
    # ... but a customer at risk is not offered that night
    assert not [o for o in second.opportunities if o.number in ("TAKE01", "END001")]
    text = email.message_from_bytes(second.digest_eml.read_bytes(), policy=email.policy.default
                                    ).get_body(("plain",)).get_content()
    at_risk = text.index("AT RISK")
    assert at_risk < text.index("SERVICES ADDED AND REMOVED")
    assert "TAKE01" in text[at_risk:text.index("SERVICES ADDED AND REMOVED")]


def test_without_kept_facts_the_cause_says_so(erp: ErpBuilder, dealer: dict[str, int],
                                              config_for) -> None:
    config = config_for(erp, "mode: test\n")
    first = keyservices.run(config, as_of=AS_OF)
    assert first.changes and {c.causes for c in first.changes} == {
        ("not compared: no facts kept from an earlier live run (first night)",)}
    the_day(erp, dealer)
    second = keyservices.run(config, as_of=NIGHT2)  # test mode keeps no facts
    assert {c.causes for c in second.changes} == {
        ("not compared: no facts kept from an earlier live run (first night)",)}
    assert not second.risks
    assert not snapshot.folder(config.state.dir).exists()


def test_a_changed_rule_is_not_compared_with_other_numbers(erp: ErpBuilder,
                                                           dealer: dict[str, int],
                                                           config_for) -> None:
    config = config_for(erp)
    keyservices.run(config, as_of=AS_OF)
    services = config.rules / "services.yaml"
    text = services.read_text(encoding="utf-8")
    services.write_text(text.replace("min_revenue: 1000", "min_revenue: 5000"), encoding="utf-8")
    erp.gl(dealer["ends"], "4300", 2000.0)  # not enough under the new rule
    the_day(erp, dealer)
    second = keyservices.run(config, as_of=NIGHT2, force=True)
    changes = by_number(second)
    assert changes["END001"].causes == (
        "Managed IT: its rule changed since 2026-11-24; not compared",)
    # the other services are still compared
    assert changes["TAKE01"].causes[0].startswith("Copiers: 4 units deactivated")


def test_facts_are_kept_only_by_a_clean_live_run_and_a_bad_file_never_stops_one(
        erp: ErpBuilder, dealer: dict[str, int], config_for,
        caplog: pytest.LogCaptureFixture) -> None:
    config = config_for(erp)
    keyservices.run(config, as_of=AS_OF, dry_run=True)
    assert not snapshot.folder(config.state.dir).exists()
    keyservices.run(config, as_of=AS_OF)
    kept = sorted(snapshot.folder(config.state.dir).glob("*.npz"))
    assert [p.name for p in kept] == ["facts-2026-11-24.npz"]
    assert not list(snapshot.folder(config.state.dir).glob("*.tmp"))
    kept[0].write_bytes(b"not a zip file")
    the_day(erp, dealer)
    with caplog.at_level(logging.WARNING, logger="keyservices"):
        second = keyservices.run(config, as_of=NIGHT2)
    assert second.exit_code == 0
    assert by_number(second)["END001"].causes == (
        "not compared: last night's facts could not be read (facts-2026-11-24.npz)",)
    assert "could not be read" in caplog.text
    # tonight's replaced nothing but joins it; the two newest are kept
    names = [p.name for p in sorted(snapshot.folder(config.state.dir).glob("*.npz"))]
    assert names == ["facts-2026-11-24.npz", "facts-2026-11-29.npz"]


def test_facts_from_another_erp_are_not_compared(erp: ErpBuilder, dealer: dict[str, int],
                                                 config_for) -> None:
    config = config_for(erp)
    keyservices.run(config, as_of=AS_OF)
    path = next(snapshot.folder(config.state.dir).glob("*.npz"))
    kept = snapshot.load(path)
    columns = kept.columns
    snapshot.save(config.state.dir, kept.as_of, kept.ids, columns,
                  {**kept.meta, "erp_id": "sqlite:/elsewhere/erp.sqlite"})
    the_day(erp, dealer)
    second = keyservices.run(config, as_of=NIGHT2)
    assert by_number(second)["TAKE01"].causes == (
        "not compared: the facts kept are from another ERP",)
    assert not [f for f in second.risks if f.kind == "takeout"]


def test_explain_says_what_changed_since_last_night(erp: ErpBuilder, dealer: dict[str, int],
                                                    config_for) -> None:
    config, _, _ = two_nights(erp, dealer, config_for)
    e = explain(config, "GLIT01", as_of=NIGHT2)
    assert e.since == ["- Managed IT: GL 4300* revenue 0 < 1,000 over 365 days (was 1,200)"]
    e = explain(config, "TAKE01", as_of=NIGHT2)
    assert any(r.startswith("takeout risk: 7 machines") for r in e.risks)
    assert not e.opportunities
    e = explain(config, "PEER00", as_of=NIGHT2)
    assert e.since == ["no service changed since 2026-11-24"] and not e.risks


def test_demo_night_two_names_a_cause_for_every_change_and_flags_the_takeout(
        tmp_path: Path) -> None:
    result = keyservices.demo(tmp_path / "demo", customers=2000, as_of=AS_OF)
    second = result.nights[1]
    assert second.changes
    for change in second.changes:
        assert change.causes, change.number
        assert not any("not compared" in c or "did not change" in c for c in change.causes), (
            change.number, change.causes)
    takeouts = {f.number for f in second.risks if f.kind == "takeout"}
    assert takeouts  # the demo's next day pulls a fleet (which customer depends on the data)
    assert not [o for o in second.opportunities if o.number in takeouts]
    changed = by_number(second)
    taken = sorted(n for n in takeouts if n in changed)
    assert taken, takeouts
    assert any("deactivated or moved" in c for c in changed[taken[0]].causes)
    text = email.message_from_bytes(second.digest_eml.read_bytes(), policy=email.policy.default
                                    ).get_body(("plain",)).get_content()
    calls = text[text.index("WHO TO CALL FIRST"):text.index("SERVICES ADDED AND REMOVED")]
    assert not [n for n in takeouts if n in calls]


def test_the_export_does_not_offer_a_customer_at_risk(erp: ErpBuilder, dealer: dict[str, int],
                                                      config_for) -> None:
    from keyservices.commands.export import export_opportunities

    config, _, second = two_nights(erp, dealer, config_for)
    exported = export_opportunities(config, as_of=NIGHT2).text
    assert "TAKE01" not in exported and "END001" not in exported
    assert [o.number for o in second.opportunities] == [
        line.split(",")[0] for line in exported.splitlines()[1:]]


def test_a_rollback_is_audited_with_its_cause(erp: ErpBuilder, dealer: dict[str, int],
                                              config_for) -> None:
    config, _, second = two_nights(erp, dealer, config_for)
    report = keyservices.rollback(config, second.run_id, force=True)
    rows = history(config, run_id=report.run_id)["changes"]
    assert rows and {tuple(r["causes"]) for r in rows} == {(f"rollback of run {second.run_id}",)}
