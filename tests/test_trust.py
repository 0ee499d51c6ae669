"""Trust in every write: the change guard on every run, the ERP known by what it says it is,
rollbacks planned against the values now, values the tool does not own left alone, formats
that converge, and state that only a clean live run moves on."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

import keyservices
from keyservices.cli import cli
from keyservices.commands.guard import UnknownErp
from keyservices.erp import display_url
from keyservices.errors import ConfigError, GuardTripped, SchemaError
from keyservices.state import StateStore

from .conftest import AS_OF, ErpBuilder, write_config


@pytest.fixture
def erp(any_erp: ErpBuilder) -> ErpBuilder:
    """Every test here runs on SQLite and on PostgreSQL unless it is about SQLite files."""
    return any_erp


def copier_customers(erp: ErpBuilder, n: int, *, value: str | None = None) -> list[int]:
    ids = []
    for i in range(n):
        cid = erp.customer(f"COP{i:03d}", f"Copier {i}", value=value)
        erp.equipment(cid, "MFP-A3-CO-03")
        ids.append(cid)
    return ids


def state_rows(config: keyservices.Config, table: str) -> list[tuple]:
    store = StateStore(config.state_url)
    try:
        with store.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(f"SELECT * FROM {table}"))]
    finally:
        store.close()


# -- the change guard on every run, the first included -------------------------------------------
def test_a_first_run_may_fill_empty_values_but_not_overwrite_them(erp: ErpBuilder,
                                                                  config_for) -> None:
    """A broken rule on a fresh install used to clear every value: the baseline was exempt."""
    for i in range(10):  # values keyservices wrote before, no longer backed by any fact
        erp.customer(f"OLD{i:03d}", value="CPY")
    config = config_for(erp, "write:\n  max_changes_percent: 10\n")
    before = erp.dump()
    with pytest.raises(GuardTripped, match="10 existing values overwritten or cleared") as err:
        keyservices.run(config, as_of=AS_OF)
    assert err.value.exit_code == 3
    assert erp.dump() == before


def test_filling_empty_values_on_a_baseline_is_free(erp: ErpBuilder, config_for) -> None:
    copiers = copier_customers(erp, 10)
    config = config_for(erp, "write:\n  max_changes_percent: 10\n")
    first = keyservices.run(config, as_of=AS_OF)
    assert first.baseline and first.counts.written == 10
    assert [erp.value(c) for c in copiers] == ["CPY"] * 10


def test_a_lost_state_store_does_not_switch_the_guard_off(erp: ErpBuilder, config_for) -> None:
    copiers = copier_customers(erp, 10)
    config = config_for(erp, "write:\n  max_changes_percent: 10\n")
    keyservices.run(config, as_of=AS_OF)
    shutil.rmtree(config.state.dir)  # the admin deletes .keyservices/
    with erp.engine.begin() as conn:  # and a broken rule: no copier counts any more
        conn.execute(erp.t["SCEquipments"].update().values(Active=False))
    before = erp.dump()
    with pytest.raises(GuardTripped):
        keyservices.run(config, as_of=AS_OF)
    assert erp.dump() == before and [erp.value(c) for c in copiers] == ["CPY"] * 10


def test_a_dry_run_before_the_first_live_run_shows_the_baseline(erp: ErpBuilder,
                                                               config_for) -> None:
    copier_customers(erp, 10)
    config = config_for(erp, "write:\n  max_changes_percent: 10\n")
    plan = keyservices.run(config, as_of=AS_OF, dry_run=True)
    assert plan.baseline and plan.exit_code == 0 and plan.guard_message is None
    assert len(plan.changes) == 10
    assert not config.state.dir.exists()  # a dry run writes nothing anywhere
    live = keyservices.run(config, as_of=AS_OF)
    assert live.baseline and live.counts.written == len(plan.changes)


def sqlite_erp(tmp_path: Path) -> ErpBuilder:
    return ErpBuilder(tmp_path / "orig" / "erp.sqlite")


@pytest.mark.parametrize("spelling", ["{dir}/./erp.sqlite", "{dir}/erp.sqlite?timeout=30",
                                      "{dir}/../orig/erp.sqlite"])
def test_a_cosmetic_url_edit_is_the_same_erp(tmp_path: Path, spelling: str) -> None:
    (tmp_path / "orig").mkdir()
    erp = sqlite_erp(tmp_path)
    copier_customers(erp, 3)
    path = write_config(tmp_path, erp.url)
    keyservices.run(keyservices.load_config(path), as_of=AS_OF)
    folder = (tmp_path / "orig").as_posix()
    write_config(tmp_path, "sqlite:///" + spelling.format(dir=folder))
    again = keyservices.run(keyservices.load_config(path), as_of=AS_OF)
    assert not again.baseline and again.counts.changed == 0


def test_a_copied_install_must_say_which_erp_it_is(tmp_path: Path) -> None:
    (tmp_path / "orig").mkdir()
    erp = sqlite_erp(tmp_path)
    copiers = copier_customers(erp, 3)
    path = write_config(tmp_path / "orig", erp.url)
    keyservices.run(keyservices.load_config(path), as_of=AS_OF)
    erp.engine.dispose()
    shutil.copytree(tmp_path / "orig", tmp_path / "copy")  # ERP file, config and state store
    copy_url = f"sqlite:///{(tmp_path / 'copy' / 'erp.sqlite').as_posix()}"
    write_config(tmp_path / "copy", copy_url)
    config = keyservices.load_config(tmp_path / "copy" / "config.yaml")
    engine = sa.create_engine(copy_url)
    with engine.begin() as conn:  # clear one value in the copy: a run would normally fill it
        conn.execute(sa.text('UPDATE "ARCustomerCustomProperties" SET "TextVal" = NULL '
                             'WHERE "CustomerID" = :c AND "ShAttributeID" = 2044'),
                     {"c": copiers[0]})
    with pytest.raises(UnknownErp, match="--new-erp") as err:
        keyservices.run(config, as_of=AS_OF)
    assert err.value.exit_code == 3
    with engine.connect() as conn:
        assert conn.execute(sa.text('SELECT "TextVal" FROM "ARCustomerCustomProperties" '
                                    'WHERE "CustomerID" = :c AND "ShAttributeID" = 2044'),
                            {"c": copiers[0]}).scalar() is None
    adopted = keyservices.run(config, as_of=AS_OF, new_erp=True)
    assert adopted.baseline and adopted.counts.written == 1
    assert not keyservices.run(config, as_of=AS_OF).baseline  # known from now on
    engine.dispose()


def test_the_run_command_takes_new_erp_and_says_what_to_do(tmp_path: Path,
                                                           runner: CliRunner) -> None:
    (tmp_path / "orig").mkdir()
    erp = sqlite_erp(tmp_path)
    copier_customers(erp, 2)
    path = write_config(tmp_path / "orig", erp.url)
    keyservices.run(keyservices.load_config(path), as_of=AS_OF)
    erp.engine.dispose()
    shutil.copytree(tmp_path / "orig", tmp_path / "copy")
    copy = write_config(tmp_path / "copy",
                        f"sqlite:///{(tmp_path / 'copy' / 'erp.sqlite').as_posix()}")
    out = runner.invoke(cli, ["run", "-c", str(copy)])  # today: after AS_OF
    assert out.exit_code == 3 and "--new-erp" in out.output and "Traceback" not in out.output
    out = runner.invoke(cli, ["run", "-c", str(copy), "--new-erp"])
    assert out.exit_code == 0, out.output


# -- rollback ------------------------------------------------------------------------------------
def test_a_repeated_rollback_restores_nothing_and_records_nothing(erp: ErpBuilder,
                                                                 config_for) -> None:
    copiers = copier_customers(erp, 4)
    config = config_for(erp)
    first = keyservices.run(config, as_of=AS_OF)
    undo = keyservices.rollback(config, first.run_id)
    assert len(undo.restored) == 4 and undo.run_id is not None
    runs_before = state_rows(config, "runs")
    again = keyservices.rollback(config, first.run_id)
    assert again.restored == [] and again.run_id is None and len(again.already) == 4
    assert state_rows(config, "runs") == runs_before  # no run, no audit row
    # undoing the (single, real) rollback puts back exactly what it changed
    redo = keyservices.rollback(config, undo.run_id)
    assert sorted(redo.restored) == [f"COP{i:03d}" for i in range(4)]
    assert [erp.value(c) for c in copiers] == ["CPY"] * 4


def test_an_audit_row_says_applied_only_for_a_value_that_changed(erp: ErpBuilder,
                                                                 config_for) -> None:
    copiers = copier_customers(erp, 2)
    config = config_for(erp)
    first = keyservices.run(config, as_of=AS_OF)
    erp.set_value(copiers[0], None)  # restored by hand before the rollback
    undo = keyservices.rollback(config, first.run_id)
    assert undo.restored == ["COP001"] and undo.already == ["COP000"]
    audit = keyservices.history(config, run_id=undo.run_id)["changes"]
    assert [(r["customer_number"], r["status"]) for r in audit] == [("COP001", "applied")]


def test_rollback_dry_run_guard_and_force(erp: ErpBuilder, config_for,
                                          runner: CliRunner) -> None:
    copiers = copier_customers(erp, 4)
    config = config_for(erp, "write:\n  max_changes: 2\n")
    first = keyservices.run(config, as_of=AS_OF)  # a baseline that only fills: free
    assert first.counts.written == 4
    before = erp.dump()
    out = runner.invoke(cli, ["rollback", str(first.run_id), "--dry-run", "-c",
                              str(config.config_path)])
    assert out.exit_code == 3 and "4 restores exceed write.max_changes = 2" in out.output
    # the dry run prints its plan, and says what to run, not to run itself again
    assert "4 value(s) would be restored" in out.output
    assert out.output.count("would be restored") == 5
    assert "keyservices rollback 1 --force" in out.output
    assert "rollback 1 --dry-run" not in out.output
    plan = keyservices.rollback(config, first.run_id, dry_run=True)
    assert len(plan.restored) == 4 and "max_changes = 2" in (plan.guard_message or "")
    with pytest.raises(GuardTripped, match="keyservices rollback 1 --dry-run"):
        keyservices.rollback(config, first.run_id)
    plan = keyservices.rollback(config, first.run_id, dry_run=True, force=True)
    assert plan.dry_run and len(plan.restored) == 4 and plan.run_id is None
    assert erp.dump() == before
    done = keyservices.rollback(config, first.run_id, force=True)
    assert len(done.restored) == 4 and [erp.value(c) for c in copiers] == [None] * 4


def test_rolling_back_an_older_run_needs_force(erp: ErpBuilder, config_for) -> None:
    """'rollback 1' typed for 'rollback 12' used to restore the baseline silently."""
    copiers = copier_customers(erp, 3)
    config = config_for(erp)
    first = keyservices.run(config, as_of=AS_OF)
    erp.contract(copiers[0], "MPS-FLEET")
    for _ in range(3):
        erp.equipment(copiers[0], "PRN-A4-BW")
    second = keyservices.run(config, as_of=AS_OF)
    assert second.counts.written == 1
    before = erp.dump()
    with pytest.raises(GuardTripped, match=f"run\\(s\\) {second.run_id} wrote some of them"):
        keyservices.rollback(config, first.run_id)
    assert erp.dump() == before
    latest = keyservices.rollback(config, second.run_id)  # the latest run: no question
    assert latest.restored == ["COP000"]


# -- never overwrite data the tool does not own ---------------------------------------------------
def rules_with(tmp_path: Path, **settings: str) -> Path:
    """The example rules with top-level settings replaced (property, value, separator)."""
    from keyservices.resources import example_rules_dir

    folder = tmp_path / "custom-rules"
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(example_rules_dir(), folder)
    head = folder / "model-classes.yaml"
    lines = head.read_text(encoding="utf-8").splitlines()
    for key, value in settings.items():
        lines = [f"{key}: {value}" if line.startswith(f"{key}:") else line for line in lines]
    head.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def test_pointing_at_another_attribute_refuses_and_names_it(erp: ErpBuilder, config_for,
                                                            tmp_path: Path,
                                                            runner: CliRunner) -> None:
    copier_customers(erp, 5)  # every configured customer has ZCJNextReviewDue = 2027-01-01
    rules = rules_with(tmp_path, property="ZCJNextReviewDue")
    config = config_for(erp, f"rules: '{rules.as_posix()}'\n")
    before = erp.dump()
    with pytest.raises(SchemaError, match=r"ZCJNextReviewDue holds 5 value\(s\) keyservices "
                                          r"could not have written \(e\.g\. '2027-01-01'\)") as err:
        keyservices.run(config, as_of=AS_OF)
    assert err.value.exit_code == 2 and erp.dump() == before
    with pytest.raises(SchemaError, match="ZCJNextReviewDue holds 5"):
        keyservices.run(config, as_of=AS_OF, dry_run=True)
    out = runner.invoke(cli, ["check", "-c", str(config.config_path)])
    assert out.exit_code == 2 and "ZCJNextReviewDue" in out.output and "2027-01-01" in out.output


def test_a_single_hand_edited_value_is_left_alone_and_listed(erp: ErpBuilder,
                                                              config_for) -> None:
    copiers = copier_customers(erp, 10)
    erp.set_value(copiers[3], "call back in May")
    result = keyservices.run(config_for(erp), as_of=AS_OF)
    assert erp.value(copiers[3]) == "call back in May"
    assert result.counts.written == 9
    assert any("COP003 ('call back in May')" in note for note in result.notes)


def test_a_property_not_starting_with_z_is_warned_about(erp: ErpBuilder, config_for,
                                                        tmp_path: Path) -> None:
    erp.insert("ShAttributes", ShAttributeID=3001, AttributeName="KeyServices")
    cid = erp.customer("C1", attribute=False)
    erp.insert("ARCustomerCustomProperties", CustomerID=cid, ShAttributeID=3001, TextVal=None,
               Required=False)
    rules = rules_with(tmp_path, property="KeyServices")
    result = keyservices.run(config_for(erp, f"rules: '{rules.as_posix()}'\n"), as_of=AS_OF,
                             dry_run=True)
    assert any("does not start with Z" in note for note in result.notes)


def test_a_change_of_value_format_or_separator_converges(erp: ErpBuilder, config_for,
                                                         tmp_path: Path) -> None:
    copiers = copier_customers(erp, 3)
    for c in copiers:
        erp.contract(c, "MPS-FLEET")
        for _ in range(3):
            erp.equipment(c, "PRN-A4-BW")
    config = config_for(erp)
    keyservices.run(config, as_of=AS_OF)
    assert erp.value(copiers[0]) == "CPY;MPS"
    names = rules_with(tmp_path, value="names")
    config = config_for(erp, f"rules: '{names.as_posix()}'\n")
    renamed = keyservices.run(config, as_of=AS_OF)
    assert renamed.counts.written == 3 and erp.value(copiers[0]) == "Copiers;Managed Print"
    assert keyservices.run(config, as_of=AS_OF).counts.changed == 0
    comma = rules_with(tmp_path, value="names", separator="', '")
    config = config_for(erp, f"rules: '{comma.as_posix()}'\nwrite:\n  max_changes: 2\n")
    with pytest.raises(GuardTripped):  # a format rewrite counts like any other change
        keyservices.run(config, as_of=AS_OF)
    assert keyservices.run(config, as_of=AS_OF, force=True).counts.written == 3
    assert erp.value(copiers[0]) == "Copiers, Managed Print"
    assert keyservices.run(config, as_of=AS_OF).counts.changed == 0


# -- validate before the first write --------------------------------------------------------------
def test_a_state_store_with_another_schema_stops_before_the_erp(erp: ErpBuilder,
                                                                config_for) -> None:
    copier_customers(erp, 2)
    config = config_for(erp)
    keyservices.run(config, as_of=AS_OF)
    store = sa.create_engine(config.state_url)
    with store.begin() as conn:  # another version renamed a column
        conn.execute(sa.text('ALTER TABLE changes RENAME COLUMN "before" TO before_value'))
    before = erp.dump()
    with pytest.raises(ConfigError, match="changes lacks column.*before"):
        keyservices.run(config, as_of=AS_OF)
    assert erp.dump() == before
    with store.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM runs WHERE status = 'running'"))\
            .scalar() == 0
    store.dispose()


def test_a_broken_digest_template_stops_before_the_erp(erp: ErpBuilder, config_for,
                                                       tmp_path: Path) -> None:
    from keyservices.resources import templates_dir

    copier_customers(erp, 2)
    templates = tmp_path / "my-templates"
    shutil.copytree(templates_dir(), templates)
    html = templates / "digest.html.j2"
    html.write_text(html.read_text(encoding="utf-8") + "{{ d.no_such_field }}", encoding="utf-8")
    config = config_for(erp)
    config.digest.templates = templates
    before = erp.dump()
    with pytest.raises(ConfigError, match="digest template error"):
        keyservices.run(config, as_of=AS_OF)
    assert erp.dump() == before


# -- state integrity ------------------------------------------------------------------------------
def industry(erp: ErpBuilder) -> list[int]:
    """Eleven legal customers, ten with copiers: the eleventh is a Copiers opportunity."""
    ids = copier_customers(erp, 10)
    ids.append(erp.customer("LAW999", "Paper Only LLP"))
    return ids


@pytest.mark.parametrize("how", ["dry_run", "test_mode", "guard", "error"])
def test_only_a_clean_live_run_moves_the_opportunity_store(erp: ErpBuilder, config_for,
                                                           how: str, monkeypatch) -> None:
    ids = industry(erp)
    config = config_for(erp, "write:\n  max_changes: 1\n")
    keyservices.run(config, as_of=AS_OF)
    saved = state_rows(config, "opportunities")
    # LAW999 lacks what its peers use (the copier customers are the example cross-sell rules')
    assert "LAW999" in [r[2] for r in saved]
    for cid in ids[:10]:  # tonight every copier customer loses its value: 10 changes
        erp.set_value(cid, None)
    erp.equipment(ids[10], "MFP-A3-CO-03")  # and the opportunity would be won
    if how == "dry_run":
        keyservices.run(config, as_of=AS_OF, dry_run=True)
    elif how == "test_mode":
        config.mode = "test"
        keyservices.run(config, as_of=AS_OF)
    elif how == "guard":
        with pytest.raises(GuardTripped):
            keyservices.run(config, as_of=AS_OF)
    else:
        import keyservices.commands.run as run_module

        def broken(*args, **kwargs):
            raise sa.exc.OperationalError("UPDATE", {}, Exception("disk I/O error"))

        monkeypatch.setattr(run_module, "apply_changes", broken)
        with pytest.raises(keyservices.KeyservicesError):
            keyservices.run(config, as_of=AS_OF, force=True)
    assert state_rows(config, "opportunities") == saved


def test_changes_of_a_run_that_died_mid_write_reach_the_next_digest(erp: ErpBuilder,
                                                                    config_for) -> None:
    from keyservices.model import Change

    copiers = copier_customers(erp, 3)
    config = config_for(erp)
    keyservices.run(config, as_of=AS_OF)
    store = StateStore(config.state_url)
    dead = store.begin_run(as_of=AS_OF, erp=display_url(config.erp.url), prop="ZCJKeyServices", mode="live",
                           baseline=False)
    wrote = Change(copiers[1], "COP001", "Copier 1", None, None, "CPY", "CPY;X", ("X",), ())
    store.record_pending(dead, [wrote])
    store.finish_run(dead, status="failed", exit_code=1, message="killed")  # not "running"
    erp.set_value(copiers[1], "CPY;X")  # the write reached the ERP before the process died
    store.close()
    result = keyservices.run(config, as_of=AS_OF)
    text = result.digest_eml.read_text(encoding="utf-8")
    assert f"written by run {dead}, carried over" in text
    assert [c.number for c in result.carried] == ["COP001"]
    store = StateStore(config.state_url)
    try:
        assert [r["status"] for r in store.history(run_id=dead)] == ["applied"]
        assert not store.pending()
    finally:
        store.close()
    later = keyservices.run(config, as_of=AS_OF)  # reported once, not every night
    assert later.carried == []


def test_history_of_a_long_run_says_how_many_more(erp: ErpBuilder, config_for,
                                                  runner: CliRunner) -> None:
    copier_customers(erp, 12)
    config = config_for(erp)
    first = keyservices.run(config, as_of=AS_OF)
    data = keyservices.history(config, run_id=first.run_id, limit=5)
    assert len(data["changes"]) == 5 and data["total"] == 12
    out = runner.invoke(cli, ["history", "--run", str(first.run_id), "--limit", "5", "-c",
                              str(config.config_path)])
    assert "Showing 5 of 12 changes; 7 more" in out.output
    out = runner.invoke(cli, ["history", "--run", str(first.run_id), "--limit", "0", "--json",
                              "-c", str(config.config_path)])
    assert '"total": 12' in out.output


def test_the_erp_is_named_by_what_the_database_says(erp: ErpBuilder) -> None:
    from keyservices.erp.identity import database_identity

    with erp.engine.connect() as conn:
        first = database_identity(conn)
    respelled = erp.engine.url.update_query_dict({"connect_timeout": "30"}) \
        if erp.engine.dialect.name == "postgresql" else erp.engine.url
    other = sa.create_engine(respelled)
    try:
        with other.connect() as conn:
            assert database_identity(conn) == first
    finally:
        other.dispose()
    assert first.startswith(f"{erp.engine.dialect.name}:")


class _FakeResult:
    def __init__(self, row: tuple) -> None:
        self.row = row

    def one(self) -> tuple:
        return self.row


class _FakeMssql:
    """What pyodbc returns for the identity query on SQL Server (no server here)."""

    class dialect:
        name = "mssql"

    def __init__(self) -> None:
        self.sql: list[str] = []

    def exec_driver_sql(self, sql: str) -> _FakeResult:
        self.sql.append(sql)
        return _FakeResult(("ERPSRV01\\ECI", "CompanyDB"))


def test_sql_server_is_named_by_server_and_database_not_by_the_driver() -> None:
    from keyservices.erp.identity import database_identity

    fake = _FakeMssql()
    assert database_identity(fake) == "mssql:erpsrv01\\eci/companydb"  # type: ignore[arg-type]
    assert "SERVERPROPERTY('ServerName')" in fake.sql[0] and "DB_NAME()" in fake.sql[0]


def test_two_value_rows_for_one_customer_hold_back_that_customer_only(
        erp: ErpBuilder, config_for, runner: CliRunner) -> None:
    """Nine duplicate rows used to stop the night for 18,000 customers, after check passed: now
    check names them, and the run writes every other customer and lists them."""
    copiers = copier_customers(erp, 3)
    for cid in copiers[1:]:  # NULL and a service code: both look like the tool's own
        erp.insert("ARCustomerCustomProperties", CustomerID=cid, ShAttributeID=2044,
                   TextVal="CPY" if cid == copiers[2] else None, Required=False)
    config = config_for(erp)
    checked = runner.invoke(cli, ["check", "-c", str(config.config_path)])
    assert checked.exit_code == 0, checked.output
    assert "2 customer(s) have two or more value rows" in checked.output
    assert "COP001, COP002" in checked.output
    result = keyservices.run(config, as_of=AS_OF)
    assert result.counts.written == 1 and erp.value(copiers[0]) == "CPY"
    cp = erp.t["ARCustomerCustomProperties"]
    with erp.engine.connect() as conn:  # both rows of each held back as they were
        rows = conn.execute(sa.select(cp.c.CustomerID, cp.c.TextVal)
                            .where(cp.c.ShAttributeID == 2044,
                                   cp.c.CustomerID.in_(copiers[1:]))).all()
    assert sorted(rows, key=repr) == sorted([(copiers[1], None), (copiers[1], None),
                                             (copiers[2], None), (copiers[2], "CPY")], key=repr)
    assert any("COP001, COP002" in n and "never written" in n for n in result.notes)
    assert all(r.number not in ("COP001", "COP002") for r in result.no_attribute)
    assert "two or more value rows" in result.digest_html.read_text(encoding="utf-8")

def _without_contacts(erp: ErpBuilder) -> None:
    with erp.engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE {erp.t['CMContacts'].fullname}"))


def test_monitors_whose_texts_name_no_contact_need_no_contacts_table(
        tmp_path: Path, runner: CliRunner) -> None:
    """Any monitor used to make CMContacts mandatory: check and run stopped on a database
    without it, though no text showed a contact."""
    erp = ErpBuilder(tmp_path / "erp.sqlite")
    copier_customers(erp, 3)
    _without_contacts(erp)
    path = write_config(tmp_path, erp.url)
    monitors = tmp_path / "rules" / "monitors.yaml"
    text = monitors.read_text(encoding="utf-8")
    from ruamel.yaml import YAML

    yaml = YAML()
    data = yaml.load(text)
    for monitor in data["monitors"]:
        monitor["text"] = "{{ name }} needs a look ({{ monitor }})."
    with monitors.open("w", encoding="utf-8") as out:
        yaml.dump(data, out)
    plain = monitors.read_text(encoding="utf-8").split("\nmonitors:", 1)[1]
    assert "{{ contact" not in plain and "{{ phone" not in plain
    out = runner.invoke(cli, ["check", "-c", str(path)])
    assert out.exit_code == 0, out.output
    out = runner.invoke(cli, ["run", "-c", str(path)])
    assert out.exit_code == 0, out.output
    monitors.write_text(text, encoding="utf-8")  # a text that shows the contact needs it
    out = runner.invoke(cli, ["check", "-c", str(path)])
    assert out.exit_code == 2 and "CMContacts" in out.output
    assert "the text of monitor(s) DM-LAPSING" in out.output


def test_check_reports_a_missing_attribute_beside_a_missing_column(tmp_path: Path,
                                                                   runner: CliRunner) -> None:
    """check hid the missing attribute behind a missing column: two passes to a clean check."""
    erp = ErpBuilder(tmp_path / "erp.sqlite")
    with erp.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM ShAttributes WHERE AttributeName = 'ZCJKeyServices'"))
        conn.execute(sa.text("ALTER TABLE SCContracts DROP COLUMN BaseRate"))
    out = runner.invoke(cli, ["check", "-c", str(write_config(tmp_path, erp.url))])
    assert out.exit_code == 2
    assert "BaseRate" in out.output and "'ZCJKeyServices' is not defined" in out.output


def test_check_warns_of_units_without_a_category_and_locations_without_a_parent(
        tmp_path: Path, runner: CliRunner) -> None:
    """2,533 units on models with no category went uncounted, silently."""
    erp = ErpBuilder(tmp_path / "erp.sqlite")
    cid = erp.customer("COP001", "Copier Co")
    model = erp.insert("ICModels", Model="Mystery box", CategoryID=None)
    for _ in range(3):
        erp.insert("SCEquipments", CustomerID=cid, ModelID=model, Active=True)
    erp.customer("LOC001", "Lost location", parent=99999)
    out = runner.invoke(cli, ["check", "-c", str(write_config(tmp_path, erp.url))])
    assert out.exit_code == 0, out.output
    assert "3 active unit(s) in SCEquipments have a model with no category" in out.output
    assert "parent record is missing from ARCustomers: LOC001" in out.output
