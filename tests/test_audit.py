"""Audit, rollback and recovery from a run that died mid-write."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy.engine import make_url

import keyservices
from keyservices.cli import cli
from keyservices.erp import display_url
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
    dead = store.begin_run(as_of=AS_OF, erp=display_url(config.erp.url), prop="ZCJKeyServices", mode="live",
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


# The state store as the first version made it: no ERP identity on runs, no branch, sales rep,
# annual values, location or causes on the audit (``state.schema.MIGRATIONS`` adds them).
FIRST_VERSION_STORE = """
CREATE TABLE runs (id INTEGER NOT NULL PRIMARY KEY, started_at DATETIME NOT NULL,
    finished_at DATETIME, as_of DATE NOT NULL, erp VARCHAR(512) NOT NULL,
    property VARCHAR(64) NOT NULL, mode VARCHAR(8) NOT NULL, baseline BOOLEAN NOT NULL,
    status VARCHAR(16) NOT NULL, exit_code INTEGER, message TEXT, counts TEXT, timings TEXT,
    statements INTEGER, pid INTEGER, host VARCHAR(255));
CREATE TABLE changes (id INTEGER NOT NULL PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs (id), customer_id INTEGER NOT NULL,
    customer_number VARCHAR(32) NOT NULL, customer_name VARCHAR(128) NOT NULL,
    "before" VARCHAR(1024), "after" VARCHAR(1024), added VARCHAR(1024) NOT NULL,
    removed VARCHAR(1024) NOT NULL, status VARCHAR(16) NOT NULL, at DATETIME NOT NULL);
CREATE INDEX ix_changes_run_id ON changes (run_id);
CREATE INDEX ix_changes_customer ON changes (customer_number);
"""


def test_a_state_store_made_by_the_first_version_keeps_its_audit_and_takes_new_writes(
        erp: ErpBuilder, copiers: list[int], config_for) -> None:
    """The write path stores its audit rows into a migrated store (columns added at the end);
    the old run's rows still read, and both runs roll back."""
    from keyservices.erp import display_url

    config = config_for(erp)
    path = Path(make_url(config.state_url).database or "")
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.executescript(FIRST_VERSION_STORE)
        db.execute("INSERT INTO runs (started_at, finished_at, as_of, erp, property, mode, "
                   "baseline, status, exit_code) VALUES ('2026-11-23 02:00:00', "
                   "'2026-11-23 02:01:00', '2026-11-23', ?, 'ZCJKeyServices', 'live', 1, "
                   "'done', 0)", (display_url(config.erp.url),))
        db.execute("INSERT INTO changes (run_id, customer_id, customer_number, customer_name, "
                   "\"before\", \"after\", added, removed, status, at) VALUES "
                   "(1, ?, 'COP000', 'Copier 0', NULL, 'DM', 'DM', '', 'applied', "
                   "'2026-11-23 02:00:30')", (copiers[0],))
    old = keyservices.history(config, run_id=1)["changes"]
    assert [(r["customer_number"], r["after"], r["status"], r["causes"], r["branch"])
            for r in old] == [("COP000", "DM", "applied", [], None)]

    result = keyservices.run(config, as_of=AS_OF, force=True)  # not a baseline: the guard
    assert result.exit_code == 0
    assert [erp.value(c) for c in copiers] == ["CPY"] * 4
    new = keyservices.history(config, run_id=result.run_id)["changes"]
    assert sorted((r["customer_number"], r["before"], r["after"], r["added"], r["status"])
                  for r in new) == [("COP000", "DM", "CPY", "CPY", "applied")] + [
        (f"COP00{i}", None, "CPY", "CPY", "applied") for i in (1, 2, 3)]
    assert all(r["customer_name"].startswith("Copier") and r["causes"] for r in new)

    undo = keyservices.rollback(config, result.run_id)
    assert sorted(undo.restored) == ["COP000", "COP001", "COP002", "COP003"]
    assert [erp.value(c) for c in copiers] == ["DM", None, None, None]
    first = keyservices.rollback(config, 1, force=True)  # later runs wrote COP000 since
    assert first.restored == ["COP000"] and erp.value(copiers[0]) is None
    # every run and audit row names its company (#25): the first version's rows too, named
    # after the dealer of the config that first recorded one
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert {r[0] for r in db.execute("SELECT company FROM runs")} == {"Test Dealer"}
        assert {r[0] for r in db.execute("SELECT company FROM changes")} == {"Test Dealer"}
        assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == 4


def test_a_missing_column_during_a_run_is_a_setup_error(erp: ErpBuilder, copiers: list[int],
                                                        config_for) -> None:
    from keyservices.settings.sections import TableOverride

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


def test_pending_rows_of_an_earlier_version_are_settled_by_the_next_run(
        erp: ErpBuilder, copiers: list[int], config_for) -> None:
    """An earlier version kept the pending mark on each audit row: a store it left with a run
    killed mid-write still reads those rows as pending (a dry run's reader, not migrated, too),
    and the next run settles them against the ERP, an applied row of a finished run unchanged."""
    from keyservices.erp import display_url

    config = config_for(erp)
    path = Path(make_url(config.state_url).database or "")
    path.parent.mkdir(parents=True, exist_ok=True)
    erp.set_value(copiers[1], "CPY")  # the killed run's value reached the ERP for COP001 only
    StateStore(config.state_url).close()  # the tables as the version before this one made them
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("ALTER TABLE runs DROP COLUMN unsettled")
        for run, status in ((1, "done"), (2, "failed")):
            db.execute("INSERT INTO runs (started_at, as_of, erp, property, mode, baseline, "
                       "status) VALUES ('2026-11-23 02:00:00', '2026-11-23', ?, "
                       "'ZCJKeyServices', 'live', ?, ?)",
                       (display_url(config.erp.url), run == 1, status))
        rows = [(1, copiers[3], "COP003", None, "DM", "applied"),
                (2, copiers[0], "COP000", erp.value(copiers[0]), "CPY", "pending"),
                (2, copiers[1], "COP001", erp.value(copiers[0]), "CPY", "pending")]
        db.executemany("INSERT INTO changes (run_id, customer_id, customer_number, "
                       "customer_name, \"before\", \"after\", added, removed, status, at) VALUES "
                       "(?, ?, ?, 'Copier', ?, ?, ?, '', ?, '2026-11-23 02:00:30')",
                       [(r, c, n, b, a, a, s) for r, c, n, b, a, s in rows])
    reader = StateStore.reader(config.state_url)
    assert reader is not None
    try:  # read as it is, without the new column: the rows' own status says
        assert [r["status"] for r in reader.history()] == ["applied", "pending", "pending"]
        assert reader.written_values("ZCJKeyServices") == {"DM"}
    finally:
        reader.close()
    store = StateStore(config.state_url)  # migrated: run 2 is flagged, its rows pending
    try:
        assert store.has_pending()
        assert [r["customer_number"] for r in store.pending()] == ["COP000", "COP001"]
        assert [r["status"] for r in store.history()] == ["applied", "pending", "pending"]
    finally:
        store.close()
    result = keyservices.run(config, as_of=AS_OF, force=True)
    assert result.exit_code == 0
    store = StateStore(config.state_url)
    try:
        assert {r["customer_number"]: r["status"] for r in store.history(run_id=2)} == {
            "COP000": "not_applied", "COP001": "applied"}
        assert [r["status"] for r in store.history(run_id=1)] == ["applied"]
        assert not store.has_pending() and not store.pending()
    finally:
        store.close()


def test_a_run_not_settled_owns_no_value_and_counts_for_no_win(erp: ErpBuilder,
                                                              copiers: list[int],
                                                              config_for) -> None:
    """Until its run is settled, a row stored as it will read once applied is pending to every
    reader: the values the tool owns, later writers, the carried-over changes, won and lost."""
    config = config_for(erp)
    store = StateStore(config.state_url)
    try:
        first = store.begin_run(as_of=AS_OF, erp="x", prop="ZCJKeyServices", mode="live",
                                baseline=False)
        store.record_pending(first, [Change(copiers[0], "COP000", "Copier 0", None, None, None,
                                            "CPY;XYZ", ("CPY", "XYZ"), ())])
        store.finish_run(first, status="failed", exit_code=1)
        later = store.begin_run(as_of=AS_OF, erp="x", prop="ZCJKeyServices", mode="live",
                                baseline=False)
        assert [r["status"] for r in store.history(run_id=first)] == ["pending"]
        assert "CPY;XYZ" not in store.written_values("ZCJKeyServices")
        assert store.later_writers(0, [copiers[0]]) == []
        assert store.unreported("ZCJKeyServices", before_run=later) == []
        assert store.won_lost(None, AS_OF) == []
        assert list(store.won_lost_rows(AS_OF)) == []
        store.settle(first, [])
        assert [r["status"] for r in store.history(run_id=first)] == ["applied"]
        assert "CPY;XYZ" in store.written_values("ZCJKeyServices")
        assert store.later_writers(0, [copiers[0]]) == [first]
        assert [c.after for c in store.unreported("ZCJKeyServices", before_run=later)] == [
            "CPY;XYZ"]
        assert [r["added"] for r in store.won_lost(None, AS_OF)] == [("CPY", "XYZ")]
    finally:
        store.close()
