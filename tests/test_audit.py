"""Audit, rollback and recovery from a run that died mid-write."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import keyservices
from keyservices.cli import cli
from keyservices.errors import ConfigError, SchemaError
from keyservices.model import Change
from keyservices.state import StateStore

from .conftest import AS_OF, ErpBuilder


@pytest.fixture
def erp(any_erp: ErpBuilder) -> ErpBuilder:
    """Every test here runs on SQLite and on PostgreSQL."""
    return any_erp


@pytest.fixture
def copiers(erp: ErpBuilder) -> list[int]:
    ids = []
    for i in range(4):
        cid = erp.customer(f"COP{i:03d}", f"Copier {i}", value="DM" if i == 0 else None)
        erp.equipment(cid, "MFP-A3-CO-03")
        ids.append(cid)
    return ids


def test_rollback_restores_what_is_still_ours_and_reports_the_rest(erp: ErpBuilder,
                                                                   copiers: list[int],
                                                                   config_for) -> None:
    config = config_for(erp)
    before = erp.dump()
    first = keyservices.run(config, as_of=AS_OF)
    assert [erp.value(c) for c in copiers] == ["CPY"] * 4
    erp.set_value(copiers[1], "EDITED")  # someone edits one in e-automate meanwhile
    report = keyservices.rollback(config, first.run_id)
    assert sorted(report.restored) == ["COP000", "COP002", "COP003"]
    assert report.skipped == [{"customer": "COP001", "run_wrote": "CPY", "restores_to": None,
                               "now": "EDITED"}]
    assert [erp.value(c) for c in copiers] == ["DM", "EDITED", None, None]
    erp.set_value(copiers[1], None)
    assert erp.dump() == before
    # the rollback is audited as a run of its own, and can itself be rolled back
    audit = keyservices.history(config, run_id=report.run_id)["changes"]
    # planned against the values now: the edited one is left out, not attempted
    assert {(c["customer_number"], c["status"]) for c in audit} == {
        ("COP000", "applied"), ("COP002", "applied"), ("COP003", "applied")}
    again = keyservices.rollback(config, report.run_id)
    assert sorted(again.restored) == ["COP000", "COP002", "COP003"]


def test_rollback_of_an_unknown_run_or_a_run_that_wrote_nothing(erp: ErpBuilder,
                                                                copiers: list[int],
                                                                config_for) -> None:
    config = config_for(erp)
    with pytest.raises(ConfigError, match="no run 99 in the state store"):
        keyservices.rollback(config, 99)
    keyservices.run(config, as_of=AS_OF)
    quiet = keyservices.run(config, as_of=AS_OF)
    with pytest.raises(ConfigError, match=f"run {quiet.run_id} wrote no value"):
        keyservices.rollback(config, quiet.run_id)


def test_history_and_rollback_commands(erp: ErpBuilder, copiers: list[int], config_for,
                                       runner: CliRunner) -> None:
    config = config_for(erp)
    keyservices.run(config, as_of=AS_OF)
    out = runner.invoke(cli, ["history", "-c", str(config.config_path), "--json"])
    runs = json.loads(out.output)["runs"]
    assert runs[0]["status"] == "done" and runs[0]["baseline"]
    out = runner.invoke(cli, ["history", "-c", str(config.config_path), "--customer", "COP000"])
    assert out.exit_code == 0 and "COP000" in out.output and "applied" in out.output
    out = runner.invoke(cli, ["rollback", "1", "-c", str(config.config_path)])
    assert out.exit_code == 0, out.output
    assert ("Rollback of run 1 (audited as run 2): 4 value(s) restored, 0 already restored, 0 left "
            "alone.") in out.output


def test_a_run_that_died_mid_write_is_settled_by_the_next_run(erp: ErpBuilder,
                                                              copiers: list[int],
                                                              config_for) -> None:
    """Simulate a kill after the audit rows were stored but with only part of them committed."""
    config = config_for(erp)
    store = StateStore(config.state_url)
    dead = store.begin_run(as_of=AS_OF, erp="x", prop="ZCJKeyServices", mode="live",
                           baseline=True)
    planned = [Change(c, f"COP{i:03d}", f"Copier {i}", None, None, erp.value(c), "CPY",
                      ("CPY",), ()) for i, c in enumerate(copiers)]
    store.record_pending(dead, planned)
    erp.set_value(copiers[2], "CPY")  # this one reached the ERP before the kill
    erp.set_value(copiers[3], "EDITED")  # and this one was edited by a person since
    store.close()
    result = keyservices.run(config, as_of=AS_OF)
    assert result.exit_code == 0
    # the person's edit is not a value keyservices could have written: left alone, and listed
    assert [erp.value(c) for c in copiers] == ["CPY", "CPY", "CPY", "EDITED"]
    assert any("COP003 ('EDITED')" in note for note in result.notes)
    store = StateStore(config.state_url)
    try:
        statuses = {r["customer_number"]: r["status"] for r in store.history(run_id=dead)}
        assert statuses == {"COP000": "not_applied", "COP001": "not_applied",
                            "COP002": "applied", "COP003": "conflict"}
        assert store.run_record(dead).status == "failed"
        assert not store.pending()
    finally:
        store.close()


def test_a_missing_column_during_a_run_is_a_setup_error(erp: ErpBuilder, copiers: list[int],
                                                        config_for) -> None:
    from keyservices.config import TableOverride

    config = config_for(erp)
    config.erp.profile = {"equipment": TableOverride(columns={"active": "IsActive"})}
    with pytest.raises(SchemaError, match=r"column SCEquipments\.IsActive \(equipment\.active\) "
                                          r"not found; set erp\.profile\.equipment\.columns\.active"):
        keyservices.run(config, as_of=AS_OF)


def test_a_lock_left_by_a_dead_process_is_taken_over_with_a_warning(
        erp: ErpBuilder, copiers: list[int], config_for, caplog: pytest.LogCaptureFixture) -> None:
    config = config_for(erp)
    config.state.dir.mkdir(parents=True)
    (config.state.dir / "run.lock").write_text("", encoding="utf-8")
    (config.state.dir / "run.lock.json").write_text(
        json.dumps({"pid": 999999, "host": "erp-app-01", "since": "2026-11-23T02:00:00"}),
        encoding="utf-8")
    with caplog.at_level("WARNING", logger="keyservices"):
        result = keyservices.run(config, as_of=AS_OF)
    assert result.exit_code == 0
    assert "taking over the run lock left by pid 999999 on erp-app-01" in caplog.text
    assert not (config.state.dir / "run.lock.json").exists()


def test_dry_run_plan_shows_totals_per_service(erp: ErpBuilder, copiers: list[int],
                                               config_for, runner: CliRunner) -> None:
    config = config_for(erp)
    out = runner.invoke(cli, ["run", "-c", str(config.config_path), "--dry-run",
                              "--as-of", AS_OF.isoformat()])
    assert out.exit_code == 0, out.output
    assert "per service: CPY +4 -0, MPS +0 -0, DM +0 -1, MIT +0 -0" in out.output
    assert "COP000" in out.output and "dry run: nothing written" in out.output
