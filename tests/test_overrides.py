"""Opportunities in the state store, snooze and dismiss, won/lost, and the opportunity commands."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from keyservices.calls.lifecycle import OpportunityRecord, advance
from keyservices.cli import KeyservicesGroup
from keyservices.cli.opportunity import opportunity
from keyservices.commands import opportunity as overrides
from keyservices.config import Config, load_config
from keyservices.errors import ConfigError
from keyservices.model import Change, Opportunity
from keyservices.state import StateStore
from keyservices.state import opportunities as state_mod

from .conftest import write_config

DAY1 = dt.date(2026, 11, 24)
TODAY = dt.date(2026, 11, 25)


def record(cid: int, code: str, *, number: str | None = None, status: str = "new",
           owner: str | None = "Dana Rep", priority: str = "High", score: float = 80.0,
           **more: object) -> OpportunityRecord:
    number = number or f"C{cid:03d}"
    return OpportunityRecord(customer_id=cid, service_code=code, customer_number=number,
                             customer_name=f"Name {number}", branch="Main", owner=owner,
                             status=status, priority=priority, score=score, reason="typical",
                             first_seen=DAY1, last_seen=DAY1, **more)  # type: ignore[arg-type]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    s = StateStore(f"sqlite:///{(tmp_path / 'state.sqlite').as_posix()}")
    yield s
    s.close()


@pytest.fixture
def config(tmp_path: Path) -> Config:
    """A config whose state store holds three opportunities (the ERP is never touched here)."""
    cfg = load_config(write_config(tmp_path, f"sqlite:///{(tmp_path / 'erp.sqlite').as_posix()}"))
    s = StateStore(cfg.state_url)
    s.save_opportunities([record(1, "MIT", number="COP001"),
                          record(2, "DM", number="COP002", owner="Lee Rep", priority="Medium",
                                 score=60.0),
                          record(3, "MIT", number="COP003", status="won", closed_on=TODAY,
                                 close_reason="service appeared")])
    s.close()
    return cfg


def count(s: StateStore, table: str) -> int:
    with s.engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one()


# -- the state store ------------------------------------------------------------------------------
def test_opportunities_round_trip(store: StateStore) -> None:
    records = [record(1, "MIT"), record(2, "DM", status="closed", closed_on=TODAY,
                                        close_reason="condition cleared", reopened=2,
                                        snoozed_until=TODAY, snooze_reason="r", dismissed=True)]
    store.save_opportunities(records)
    assert store.load_opportunities() == {(1, "MIT"): records[0], (2, "DM"): records[1]}


@pytest.mark.parametrize("on_conflict", [True, False], ids=["on-conflict", "update-then-insert"])
def test_saving_twice_updates_the_rows_instead_of_adding(store: StateStore, on_conflict: bool,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    if not on_conflict:  # the path for a state store on a database without ON CONFLICT
        monkeypatch.setattr(state_mod, "_ON_CONFLICT", {})
    store.save_opportunities([record(1, "MIT"), record(2, "DM")])
    store.save_opportunities([record(1, "MIT", status="open", score=95.0), record(3, "MIT")])
    assert count(store, "opportunities") == 3  # 2 inserted, then 1 updated and 1 inserted
    loaded = store.load_opportunities()
    assert (loaded[(1, "MIT")].status, loaded[(1, "MIT")].score) == ("open", 95.0)
    assert loaded[(2, "DM")].status == "new"


def test_the_nightly_save_keeps_an_override_set_while_the_run_worked(store: StateStore) -> None:
    store.save_opportunities([record(1, "MIT")])
    tonight = store.load_opportunities()  # the run reads ...
    store.set_override("C001", "MIT", TODAY + dt.timedelta(days=5), "call in Dec", "Pat", False)
    result = advance(tonight, [Opportunity("C001", "Name C001", "Main", "Dana Rep", "MIT", "Low",
                                           "typical", customer_id=1, service_code="MIT")],
                     {1: frozenset()}, TODAY)
    store.save_opportunities(result.records)  # ... and saves what it read, without the snooze
    saved = store.load_opportunities()[(1, "MIT")]
    assert (saved.status, saved.priority) == ("open", "Low")
    assert (saved.snoozed_until, saved.snooze_reason) == (TODAY + dt.timedelta(days=5),
                                                          "call in Dec")


def test_list_filters_ignore_case_and_sort_active_first(store: StateStore) -> None:
    store.save_opportunities([
        record(1, "MIT", status="closed", priority="Critical"), record(2, "DM", priority="Low"),
        record(3, "MIT", status="open", priority="Critical"), record(4, "MIT", owner="Lee Rep"),
        record(5, "MIT", priority="Critical", score=90.0)])
    assert [r.customer_id for r in store.list_opportunities()] == [5, 4, 2, 3, 1]
    assert [r.customer_id for r in store.list_opportunities(service="mit")] == [5, 4, 3, 1]
    assert [r.customer_id for r in store.list_opportunities(owner="lee rep")] == [4]
    assert [r.customer_id for r in store.list_opportunities(status="open")] == [3]
    assert [r.customer_id for r in store.list_opportunities(customer_number="c002")] == [2]


def test_an_old_changes_table_gets_branch_and_sales_rep(tmp_path: Path) -> None:
    """A state store made by the previous version: its audit survives, the columns are added."""
    path = tmp_path / "state.sqlite"
    old = sa.create_engine(f"sqlite:///{path.as_posix()}")
    with old.begin() as conn:
        conn.execute(sa.text(
            "CREATE TABLE runs (id INTEGER PRIMARY KEY, started_at DATETIME NOT NULL, "
            "finished_at DATETIME, as_of DATE NOT NULL, erp VARCHAR(512) NOT NULL, "
            "property VARCHAR(64) NOT NULL, mode VARCHAR(8) NOT NULL, baseline BOOLEAN NOT NULL, "
            "status VARCHAR(16) NOT NULL, exit_code INTEGER, message TEXT, counts TEXT, "
            "timings TEXT, statements INTEGER, pid INTEGER, host VARCHAR(255))"))
        conn.execute(sa.text(
            "CREATE TABLE changes (id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL "
            "REFERENCES runs (id), customer_id INTEGER NOT NULL, customer_number VARCHAR(32) "
            "NOT NULL, customer_name VARCHAR(128) NOT NULL, before VARCHAR(1024), after "
            "VARCHAR(1024), added VARCHAR(1024) NOT NULL, removed VARCHAR(1024) NOT NULL, "
            "status VARCHAR(16) NOT NULL, at DATETIME NOT NULL)"))
        conn.execute(sa.text(
            "INSERT INTO runs VALUES (1, '2026-11-20 02:30:00', '2026-11-20 02:31:00', "
            "'2026-11-20', 'sqlite:///erp', 'ZCJKeyServices', 'live', 0, 'done', 0, NULL, "
            "'{}', '{}', 5, 1, 'host')"))
        conn.execute(sa.text(
            "INSERT INTO changes VALUES (1, 1, 7, 'COP007', 'Old Co', NULL, 'CPY', 'CPY', '', "
            "'applied', '2026-11-20 02:30:30')"))
    old.dispose()
    store = StateStore(f"sqlite:///{path.as_posix()}")
    try:
        columns = {c["name"] for c in sa.inspect(store.engine).get_columns("changes")}
        assert {"branch", "sales_rep"} <= columns
        (kept,) = store.history(run_id=1)
        assert (kept["customer_number"], kept["branch"], kept["sales_rep"]) == ("COP007", None,
                                                                                None)
        run = store.begin_run(as_of=TODAY, erp="x", prop="ZCJKeyServices", mode="live",
                              baseline=False)
        store.record_pending(run, [Change(8, "COP008", "New Co", "North", "Dana Rep", None,
                                          "MIT", ("MIT",), ())])
        (new,) = store.history(run_id=run)
        assert (new["branch"], new["sales_rep"]) == ("North", "Dana Rep")
    finally:
        store.close()
    StateStore(f"sqlite:///{path.as_posix()}").close()  # opening it again changes nothing


def test_won_lost_lists_the_applied_changes_of_live_runs_in_the_period(store: StateStore) -> None:
    def night(as_of: dt.date, mode: str = "live", baseline: bool = False,
              status: str = "applied") -> None:
        run = store.begin_run(as_of=as_of, erp="x", prop="ZCJKeyServices", mode=mode,
                              baseline=baseline)
        store.record_pending(run, [
            Change(1, "COP001", "A", "North", "Dana Rep", "CPY", "CPY;MIT", ("MIT",), ()),
            Change(2, "COP002", "B", None, None, "CPY;DM", None, (), ("CPY", "DM"))])
        store.settle(run, [1, 2] if status == "conflict" else [])

    night(DAY1 - dt.timedelta(days=1), baseline=True)  # the starting point, not news
    night(DAY1)
    night(DAY1 + dt.timedelta(days=1), mode="test")
    night(DAY1 + dt.timedelta(days=2), status="conflict")  # nothing was written
    night(DAY1 + dt.timedelta(days=3))  # after the period
    rows = store.won_lost(DAY1 - dt.timedelta(days=1), DAY1 + dt.timedelta(days=2))
    assert rows == [
        {"as_of": DAY1, "customer_id": 1, "customer_number": "COP001", "branch": "North",
         "sales_rep": "Dana Rep", "added": ("MIT",), "removed": ()},
        {"as_of": DAY1, "customer_id": 2, "customer_number": "COP002", "branch": None,
         "sales_rep": None, "added": (), "removed": ("CPY", "DM")}]
    with_baseline = store.won_lost(DAY1 - dt.timedelta(days=1), DAY1, include_baseline=True)
    assert [r["as_of"] for r in with_baseline] == [DAY1 - dt.timedelta(days=1)] * 2 + [DAY1] * 2


# -- the override functions -----------------------------------------------------------------------
def test_snooze_hides_it_until_the_date_and_the_run_keeps_tracking_it(config: Config) -> None:
    until = TODAY + dt.timedelta(days=20)
    snoozed = overrides.snooze(config, "cop001", "mit", until=until, reason=" tender ",
                               by="Pat", today=TODAY)
    assert (snoozed.customer_number, snoozed.service_code, snoozed.snoozed_until,
            snoozed.snooze_reason, snoozed.snoozed_by, snoozed.dismissed) == (
        "COP001", "MIT", until, "tender", "Pat", False)
    s = StateStore(config.state_url)
    try:
        found = [Opportunity("COP001", "Name COP001", "Main", "Dana Rep", "MIT", "High", "typical",
                             customer_id=1, service_code="MIT")]
        result = advance(s.load_opportunities(), found, {1: frozenset(), 2: frozenset()}, TODAY)
        s.save_opportunities(result.records)
    finally:
        s.close()
    assert result.visible == [] and result.counts["hidden"] == 1
    listed = {r.customer_number: r for r in overrides.list_opportunities(config)}
    assert (listed["COP001"].status, listed["COP001"].snoozed_until) == ("open", until)
    assert (listed["COP002"].status, listed["COP002"].close_reason) == ("withdrawn",
                                                                        "condition cleared")


def test_dismiss_and_unsnooze(config: Config) -> None:
    until = TODAY + dt.timedelta(days=1)
    dismissed = overrides.dismiss(config, "COP002", "DM", until=until, reason="said no",
                                  today=TODAY)
    assert (dismissed.dismissed, dismissed.snoozed_until, dismissed.snoozed_by) == (True, until,
                                                                                    None)
    cleared = overrides.unsnooze(config, "COP002", "dm")
    assert (cleared.dismissed, cleared.snoozed_until, cleared.snooze_reason) == (False, None, None)


def test_a_won_opportunity_can_be_snoozed_for_when_it_comes_back(config: Config) -> None:
    record_ = overrides.snooze(config, "COP003", "MIT", until=TODAY + dt.timedelta(days=3),
                               reason="just bought", today=TODAY)
    assert record_.status == "won"


@pytest.mark.parametrize(("customer", "service", "until", "reason", "message"), [
    ("COP009", "MIT", TODAY + dt.timedelta(days=1), "x",
     (r"^no MIT opportunity for customer COP009 in the state store; 'keyservices opportunity "
     r"list' shows them \(a run must have found it first\)$")),
    ("COP001", "CPY", TODAY + dt.timedelta(days=1), "x", "^no CPY opportunity for customer"),
    ("COP001", "MIT", TODAY, "x",
     (r"^until 2026-11-25 is not in the future; give a date after 2026-11-25 \(the opportunity "
     r"comes back after that date\)$")),
    ("COP001", "MIT", TODAY - dt.timedelta(days=1), "x", "^until 2026-11-24 is not in the"),
    ("COP001", "MIT", TODAY + dt.timedelta(days=1), "  ",
     "^a reason is required, so the next person knows why the opportunity is hidden$"),
    (" ", "MIT", TODAY + dt.timedelta(days=1), "x", "^give a customer number and a service code"),
], ids=["unknown-customer", "unknown-service", "today", "past", "empty-reason", "no-customer"])
def test_override_errors(config: Config, customer: str, service: str, until: dt.date,
                         reason: str, message: str) -> None:
    for override in (overrides.snooze, overrides.dismiss):
        with pytest.raises(ConfigError, match=message):
            override(config, customer, service, until=until, reason=reason, today=TODAY)
    assert all(r.snoozed_until is None for r in overrides.list_opportunities(config))


def test_unsnooze_and_list_errors(config: Config) -> None:
    with pytest.raises(ConfigError, match="^no DM opportunity for customer COP001"):
        overrides.unsnooze(config, "COP001", "DM")
    with pytest.raises(ConfigError, match=r"^unknown status 'gone'; use one of new, open, won, "
                                          r"closed, withdrawn, lost$"):
        overrides.list_opportunities(config, status="gone")


def test_list_filters(config: Config) -> None:
    assert [r.customer_number for r in overrides.list_opportunities(config)] == [
        "COP001", "COP002", "COP003"]
    assert [r.customer_number for r in overrides.list_opportunities(config, owner="LEE REP")] == [
        "COP002"]
    assert [r.customer_number for r in overrides.list_opportunities(config, service="mit",
                                                                    status="won")] == ["COP003"]
    assert [r.customer_number for r in overrides.list_opportunities(config,
                                                                    customer="cop002")] == [
        "COP002"]


# -- the commands ---------------------------------------------------------------------------------
@pytest.fixture
def root() -> KeyservicesGroup:
    """The group under the real error handler, as cli.py registers it."""
    # the program's help options: click keeps a command's first help option, which the
    # generated docs (tests/test_docs.py, run later in the same session) would then show
    return KeyservicesGroup(commands={"opportunity": opportunity},
                            context_settings={"help_option_names": ["-h", "--help"]})


def test_list_command_prints_a_table(config: Config, runner: CliRunner,
                                     root: KeyservicesGroup) -> None:
    until = dt.date.today() + dt.timedelta(days=10)
    overrides.dismiss(config, "COP002", "DM", until=until, reason="said no")
    out = runner.invoke(root, ["opportunity", "list", "-c", str(config.config_path)],
                        catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert out.output.splitlines() == [
        "STATUS  CUSTOMER            SERVICE  OWNER     CHANCE  AGE  HIDDEN UNTIL",
        "new     COP001 Name COP001  MIT      Dana Rep  -       0d   -",
        f"new     COP002 Name COP002  DM       Lee Rep   -       0d   {until} (dismissed)",
        "won     COP003 Name COP003  MIT      Dana Rep  -       1d   -",
        "3 opportunities"]


def test_list_command_json_and_filters(config: Config, runner: CliRunner,
                                       root: KeyservicesGroup) -> None:
    out = runner.invoke(root, ["opportunity", "list", "-c", str(config.config_path), "--status",
                               "won", "--json"], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    (row,) = json.loads(out.output)
    assert (row["customer_number"], row["status"], row["closed_on"]) == ("COP003", "won",
                                                                         TODAY.isoformat())
    out = runner.invoke(root, ["opportunity", "list", "-c", str(config.config_path), "--owner",
                               "Nobody"], catch_exceptions=False)
    assert out.output == "No opportunity matches.\n"


def test_list_command_before_any_run(tmp_path: Path, runner: CliRunner,
                                     root: KeyservicesGroup) -> None:
    path = write_config(tmp_path, "sqlite:///erp.sqlite")
    out = runner.invoke(root, ["opportunity", "list", "-c", str(path)], catch_exceptions=False)
    assert out.output == f"No opportunities yet; a run records them: keyservices run -c {path}\n"


def test_snooze_dismiss_unsnooze_commands(config: Config, runner: CliRunner,
                                          root: KeyservicesGroup) -> None:
    until = (dt.date.today() + dt.timedelta(days=30)).isoformat()
    cfg = ["-c", str(config.config_path)]
    out = runner.invoke(root, ["opportunity", "snooze", "COP001", "mit", "--until", until,
                               "--reason", "tender until Jan", "--by", "Pat", *cfg],
                        catch_exceptions=False)
    assert out.output == (f"Snoozed COP001 MIT until {until}: tender until Jan. It comes back "
                          "after that date if it still holds.\n")
    out = runner.invoke(root, ["opportunity", "dismiss", "COP002", "DM", "--until", until,
                               "--reason", "said no", "--json", *cfg], catch_exceptions=False)
    assert json.loads(out.output)["dismissed"] is True
    out = runner.invoke(root, ["opportunity", "unsnooze", "COP001", "MIT", *cfg],
                        catch_exceptions=False)
    assert out.output == ("COP001 MIT: no longer hidden; it shows from the next run while it "
                          "is new.\n")
    listed = {r.customer_number: r for r in overrides.list_opportunities(config)}
    assert listed["COP001"].snoozed_until is None and listed["COP002"].dismissed


def test_command_errors_exit_2_with_one_line(config: Config, runner: CliRunner,
                                             root: KeyservicesGroup) -> None:
    out = runner.invoke(root, ["opportunity", "snooze", "COP009", "MIT", "--until", "2099-01-01",
                               "--reason", "x", "-c", str(config.config_path)])
    assert out.exit_code == 2
    assert out.output == ("Error: no MIT opportunity for customer COP009 in the state store; "
                          "'keyservices opportunity list' shows them (a run must have found it "
                          "first)\n")
    out = runner.invoke(root, ["opportunity", "dismiss", "COP001", "MIT", "--until",
                               "2001-01-01", "--reason", "x", "-c", str(config.config_path)])
    assert out.exit_code == 2 and out.output.startswith("Error: until 2001-01-01 is not in the")
    out = runner.invoke(root, ["opportunity", "snooze", "COP001", "MIT", "--until", "2099-01-01",
                               "-c", str(config.config_path)])
    assert out.exit_code == 2 and "Missing option '--reason'" in out.output


def test_every_opportunity_command_has_help_with_an_example(runner: CliRunner) -> None:
    from keyservices.cli import cli

    # through the program, as a user does: invoked on its own, a command keeps click's default
    # help option (--help only), which the generated docs would then show
    for name in ["", *opportunity.commands]:
        out = runner.invoke(cli, ["opportunity", *([name] if name else []), "--help"])
        assert out.exit_code == 0 and "Example" in out.output, name
