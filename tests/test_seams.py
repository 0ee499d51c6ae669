"""Trust at the seams (issue #23): the defaults the docs show, overrides that cannot switch the
guard off, every write tied to the ERP and the attribute it belongs to, a store that is not
repaired behind the admin's back, and dates that cannot run backwards. Each ordinary mistake
ends as a refusal with the documented exit code, nothing written, and a message that says why."""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from ruamel.yaml import YAML

import keyservices
from keyservices.cli import cli
from keyservices.config import Config, load_config, setting_keys
from keyservices.errors import ConfigError, GuardTripped
from keyservices.model import Change
from keyservices.resources import example_rules_dir
from keyservices.state import StateStore

from .conftest import AS_OF, ErpBuilder

DOCS = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


def copiers(erp: ErpBuilder, n: int, *, prefix: str = "COP") -> list[int]:
    ids = []
    for i in range(n):
        cid = erp.customer(f"{prefix}{i:03d}", f"Copier {i}")
        erp.equipment(cid, "MFP-A3-CO-03")
        ids.append(cid)
    return ids


def plain_config(folder: Path, erp_url: str, body: str = "") -> Path:
    """A config as an admin writes it: only what they set (no test-suite defaults)."""
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "rules").exists():
        shutil.copytree(example_rules_dir(), folder / "rules")
    path = folder / "config.yaml"
    path.write_text(f"dealer: Seams\nerp:\n  url: '{erp_url}'\n{body}", encoding="utf-8")
    return path


def drop_copiers(erp: ErpBuilder) -> None:
    """A rules edit or a data accident: no copier counts any more."""
    with erp.engine.begin() as conn:
        conn.execute(erp.t["SCEquipments"].update().values(Active=False))


# -- the defaults are what the docs say ----------------------------------------------------------
def _documented() -> dict[str, Any]:
    """Every setting docs/configuration.md shows set (commented lines are 'not set')."""
    block = DOCS.read_text(encoding="utf-8").split("```yaml", 1)[1].split("```", 1)[0]
    data = YAML(typ="safe").load(block)
    out: dict[str, Any] = {}

    def walk(node: Any, prefix: tuple[str, ...]) -> None:
        for key, value in node.items():
            if isinstance(value, dict) and prefix + (key,) not in {("erp", "profile")}:
                walk(value, prefix + (key,))
            else:
                out[".".join(prefix + (key,))] = value
    walk(data, ())
    # the optional smtp: section is shown commented out, with the defaults it has when set
    smtp = re.search(r"^# smtp:.*\n((?:#   .*\n)+)", block, re.MULTILINE)
    assert smtp, "docs/configuration.md no longer shows the smtp: section"
    lines = "".join(line[4:] + "\n" for line in smtp.group(1).splitlines())
    walk({"smtp": YAML(typ="safe").load(lines)}, ())
    return out


def _default(model: Any, key: tuple[str, ...]) -> Any:
    for part in key[:-1]:
        model = model.model_fields[part].annotation
        model = next((a for a in getattr(model, "__args__", ()) if hasattr(a, "model_fields")),
                     model)
    fields = {f.alias or name: f for name, f in model.model_fields.items()}
    return fields[key[-1]]


def test_every_default_in_the_docs_is_the_models_default() -> None:
    documented = _documented()
    checked = 0
    for key, _ in setting_keys():
        dotted = ".".join(key)
        field = _default(Config, key)
        if field.is_required():
            continue
        default = field.get_default(call_default_factory=True)
        if hasattr(default, "model_dump"):
            continue
        if key[0] == "smtp" and default is None:
            continue  # an example (username, ca_file), not a default
        if dotted in documented:
            shown = documented[dotted]
            value = default.as_posix() if isinstance(default, Path) else default
            assert shown == value or (isinstance(value, float) and shown == value), \
                f"docs/configuration.md shows {dotted}: {shown!r}, the model's default is {value!r}"
            checked += 1
        else:  # shown commented out: not set by default
            assert default in (None, {}, []), f"{dotted} is set by default ({default!r}) " \
                "but docs/configuration.md shows it commented out"
    assert checked >= 15 and documented["mode"] == "test"
    assert documented["write.max_changes_percent"] == 10


def test_a_config_without_write_has_the_change_guard(tmp_path: Path) -> None:
    """A rules edit that dropped Copiers rewrote 744 of 1,195 values with no write: section."""
    erp = ErpBuilder(tmp_path / "erp.sqlite")
    ids = copiers(erp, 20)
    config = load_config(plain_config(tmp_path, erp.url, "mode: live\n"))
    assert config.write.max_changes_percent == 10
    keyservices.run(config, as_of=AS_OF)
    drop_copiers(erp)
    before = erp.dump()
    with pytest.raises(GuardTripped, match="max_changes_percent = 10"):
        keyservices.run(config, as_of=AS_OF)
    assert erp.dump() == before and {erp.value(i) for i in ids} == {"CPY"}


def test_a_config_without_mode_writes_nothing_and_says_why(tmp_path: Path,
                                                           runner: CliRunner) -> None:
    erp = ErpBuilder(tmp_path / "erp.sqlite")
    ids = copiers(erp, 3)
    path = plain_config(tmp_path, erp.url)
    result = keyservices.run(load_config(path), as_of=AS_OF)
    assert result.mode == "test" and result.mode_default and result.counts.written == 0
    assert [erp.value(i) for i in ids] == [None] * 3
    assert any("does not set 'mode:'" in n for n in result.notes)
    assert "does not set" in result.digest_html.read_text(encoding="utf-8")
    out = runner.invoke(cli, ["run", "-c", str(path)])
    assert out.exit_code == 0 and "test mode (the config does not set mode:)" in out.output
    assert [erp.value(i) for i in ids] == [None] * 3


# -- overrides cannot switch the guard off -------------------------------------------------------
@pytest.mark.parametrize("text", ["null", "~", "true", "", "ten"])
def test_an_env_override_of_the_guard_must_be_a_number(tmp_path: Path, text: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    path = plain_config(tmp_path, "sqlite:///erp.sqlite",
                        "mode: live\nwrite:\n  max_changes_percent: 25\n")
    monkeypatch.setenv("KEYSERVICES_WRITE_MAX_CHANGES_PERCENT", text)
    if text == "":  # an empty variable is no override
        assert load_config(path).write.max_changes_percent == 25
        return
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.exit_code == 2
    assert "env KEYSERVICES_WRITE_MAX_CHANGES_PERCENT: write.max_changes_percent" in str(err.value)
    monkeypatch.setenv("KEYSERVICES_WRITE_MAX_CHANGES_PERCENT", "off")  # a word: the file's
    with pytest.raises(ConfigError, match="must be a number"):
        load_config(path)


def test_an_env_override_can_never_unset_a_setting(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    path = plain_config(tmp_path, "sqlite:///erp.sqlite", "write:\n  max_changes: 50\n")
    monkeypatch.setenv("KEYSERVICES_WRITE_MAX_CHANGES", "null")
    monkeypatch.setenv("KEYSERVICES_DIGEST_TO", "~")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "2 problems" in str(err.value) and "would unset the setting" in str(err.value)
    monkeypatch.setenv("KEYSERVICES_WRITE_MAX_CHANGES", "80")
    monkeypatch.delenv("KEYSERVICES_DIGEST_TO")
    assert load_config(path).write.max_changes == 80


@pytest.mark.parametrize("value", ["", "null", "true", "-1", "101"])
def test_an_empty_or_wrong_guard_in_the_file_is_refused(tmp_path: Path, value: str) -> None:
    path = plain_config(tmp_path, "sqlite:///erp.sqlite",
                        f"write:\n  max_changes_percent: {value}\n")
    with pytest.raises(ConfigError, match=r"config.yaml:\d+.*write.max_changes_percent"):
        load_config(path)


def test_the_guard_is_off_only_when_the_file_says_off_and_the_summary_says_so(
        tmp_path: Path, runner: CliRunner) -> None:
    erp = ErpBuilder(tmp_path / "erp.sqlite")
    ids = copiers(erp, 10)
    path = plain_config(tmp_path, erp.url, "mode: live\nwrite:\n  max_changes_percent: off\n")
    config = load_config(path)
    keyservices.run(config, as_of=AS_OF)
    drop_copiers(erp)
    out = runner.invoke(cli, ["run", "-c", str(path)])
    assert out.exit_code == 0, out.output
    assert "change guard: off" in out.output
    assert [erp.value(i) for i in ids] == [""] * 10 or [erp.value(i) for i in ids] == [None] * 10


# -- --new-erp on a known ERP ---------------------------------------------------------------------
def test_new_erp_on_a_known_erp_is_refused_and_the_dry_run_says_the_same(
        tmp_path: Path, runner: CliRunner) -> None:
    erp = ErpBuilder(tmp_path / "erp.sqlite")
    ids = copiers(erp, 10)
    path = plain_config(tmp_path, erp.url, "mode: live\nwrite:\n  max_changes_percent: 25\n")
    keyservices.run(load_config(path), as_of=AS_OF)
    drop_copiers(erp)
    before = erp.dump()
    for extra in ([], ["--dry-run"]):
        out = runner.invoke(cli, ["run", "-c", str(path), "--new-erp", *extra])
        assert out.exit_code == 2, out.output
        assert "already known as" in out.output and "Traceback" not in out.output
    assert erp.dump() == before and {erp.value(i) for i in ids} == {"CPY"}


# -- the property as the ERP compares it -------------------------------------------------------
def case_insensitive_attributes(erp: ErpBuilder) -> None:
    """ShAttributes.AttributeName compared as SQL Server's default collation does (NOCASE)."""
    with erp.engine.begin() as conn:
        rows = conn.execute(sa.text("SELECT * FROM ShAttributes")).mappings().all()
        conn.execute(sa.text("DROP TABLE ShAttributes"))
        conn.execute(sa.text("CREATE TABLE ShAttributes (ShAttributeID INTEGER PRIMARY KEY, "
                             "AttributeName VARCHAR(64) COLLATE NOCASE NOT NULL, "
                             "Description VARCHAR(128), DataType VARCHAR(32))"))
        for r in rows:
            conn.execute(sa.text("INSERT INTO ShAttributes VALUES (:ShAttributeID, "
                                 ":AttributeName, :Description, :DataType)"), dict(r))


def test_the_property_in_another_case_is_the_same_attribute_not_a_new_baseline(
        tmp_path: Path) -> None:
    erp = ErpBuilder(tmp_path / "erp.sqlite")
    case_insensitive_attributes(erp)
    ids = copiers(erp, 10)
    path = plain_config(tmp_path, erp.url, "mode: live\nwrite:\n  max_changes_percent: 25\n")
    keyservices.run(load_config(path), as_of=AS_OF)
    rules = tmp_path / "rules" / "model-classes.yaml"
    rules.write_text(rules.read_text(encoding="utf-8").replace(
        "property: ZCJKeyServices", "property: zcjkeyservices"), encoding="utf-8")
    drop_copiers(erp)
    before = erp.dump()
    with pytest.raises(GuardTripped, match="Change guard"):  # not a baseline: guarded
        keyservices.run(load_config(path), as_of=AS_OF)
    assert erp.dump() == before and {erp.value(i) for i in ids} == {"CPY"}
    store = StateStore(load_config(path).state_url)
    try:
        with store.engine.connect() as conn:
            names = set(conn.execute(sa.text("SELECT property, attr_id FROM runs")).all())
    finally:
        store.close()
    assert names == {("ZCJKeyServices", 2044)}  # as the ERP spells it, with its id


# -- every audit row belongs to one ERP and one attribute -----------------------------------------
def two_configs(tmp_path: Path, erp: ErpBuilder) -> tuple[Path, Path, ErpBuilder]:
    """config1 on the ERP; config2 on a copy of it, sharing config1's state store."""
    erp.engine.dispose()
    shutil.copy(tmp_path / "erp.sqlite", tmp_path / "copy.sqlite")
    shared = (f"state:\n  dir: {(tmp_path / 'one' / '.keyservices').as_posix()}\n"
              "write:\n  max_changes_percent: off\n")  # a handful of customers
    one = plain_config(tmp_path / "one", erp.url, "mode: live\n" + shared)
    copy = ErpBuilder.__new__(ErpBuilder)
    copy.url, copy.schema = f"sqlite:///{(tmp_path / 'copy.sqlite').as_posix()}", None
    copy.engine = sa.create_engine(copy.url)
    copy.metadata, copy.t = erp.metadata, erp.t
    two = plain_config(tmp_path / "two", copy.url, "mode: live\n" + shared)
    return one, two, copy


def test_rollback_through_a_config_that_points_elsewhere_is_refused(tmp_path: Path,
                                                                    runner: CliRunner) -> None:
    erp = ErpBuilder(tmp_path / "erp.sqlite")
    ids = copiers(erp, 4)
    keyservices.run(load_config(plain_config(tmp_path / "one", erp.url, "mode: live\n")),
                    as_of=AS_OF)  # run 1: a baseline, on the ERP
    one, two, copy = two_configs(tmp_path, erp)
    before = copy.dump()
    out = runner.invoke(cli, ["rollback", "1", "-c", str(two)])
    assert out.exit_code == 3, out.output
    assert "run 1 wrote sqlite:" in out.output and "copy.sqlite" in out.output
    assert copy.dump() == before
    out = runner.invoke(cli, ["rollback", "1", "-c", str(one)])  # where it wrote: fine
    assert out.exit_code == 0, out.output
    assert [erp.value(i) for i in ids] == [None] * 4
    assert {copy.value(i) for i in ids} == {"CPY"}


def test_rollback_after_the_property_changed_is_refused(tmp_path: Path) -> None:
    erp = ErpBuilder(tmp_path / "erp.sqlite")
    ids = copiers(erp, 3)
    path = plain_config(tmp_path, erp.url, "mode: live\n")
    first = keyservices.run(load_config(path), as_of=AS_OF)
    rules = tmp_path / "rules" / "model-classes.yaml"
    rules.write_text(rules.read_text(encoding="utf-8").replace(
        "property: ZCJKeyServices", "property: ZCJNextReviewDue"), encoding="utf-8")
    with pytest.raises(GuardTripped, match="wrote the attribute ZCJKeyServices"):
        keyservices.rollback(load_config(path), first.run_id)
    assert {erp.value(i) for i in ids} == {"CPY"}


def dead_write(config: Config, erp: ErpBuilder, ids: list[int], *, reached: bool) -> int:
    """A run killed mid-write on this config's ERP: its audit rows stored, pending."""
    from keyservices import night

    with night.open_erp(config) as opened:
        attr, name = opened.attribute()
        identity = opened.identity()
    store = StateStore(config.state_url)
    try:
        dead = store.begin_run(as_of=AS_OF, erp=keyservices.erp.display_url(config.erp.url),
                               prop=name, mode="live", baseline=False, erp_id=identity,
                               attr_id=attr)
        planned = [Change(c, f"COP{i:03d}", f"Copier {i}", None, None, erp.value(c), "CPY;MPS",
                          ("MPS",), ()) for i, c in enumerate(ids)]
        store.record_pending(dead, planned)
    finally:
        store.close()
    if reached:
        for c in ids:
            erp.set_value(c, "CPY;MPS")
    return dead


def test_another_erps_unsettled_write_is_not_settled_against_this_one(tmp_path: Path) -> None:
    """A run on ERP2 marked ERP1's written values not_applied, and rollback then said 'wrote
    no value'."""
    erp = ErpBuilder(tmp_path / "erp.sqlite")
    ids = copiers(erp, 4)
    first = plain_config(tmp_path / "one", erp.url, "mode: live\n")
    keyservices.run(load_config(first), as_of=AS_OF)
    one, two, copy = two_configs(tmp_path, erp)
    dead = dead_write(load_config(one), erp, ids, reached=True)  # ERP1 holds the new values
    before = copy.dump()
    with pytest.raises(GuardTripped, match=f"run {dead} stopped while writing"):
        keyservices.run(load_config(two), as_of=AS_OF, new_erp=True)
    assert copy.dump() == before
    store = StateStore(load_config(one).state_url)
    try:
        assert {r["status"] for r in store.history(run_id=dead)} == {"pending"}
    finally:
        store.close()
    undo = keyservices.rollback(load_config(one), dead)  # settled against ERP1, then undone
    assert sorted(undo.restored) == [f"COP{i:03d}" for i in range(4)]
    assert {erp.value(i) for i in ids} == {"CPY"}


def test_a_killed_run_rolled_back_before_the_next_run_is_settled_first(tmp_path: Path) -> None:
    erp = ErpBuilder(tmp_path / "erp.sqlite")
    ids = copiers(erp, 4)
    path = plain_config(tmp_path, erp.url, "mode: live\nwrite:\n  max_changes_percent: off\n")
    keyservices.run(load_config(path), as_of=AS_OF)
    dead = dead_write(load_config(path), erp, ids[:2], reached=True)
    plan = keyservices.rollback(load_config(path), dead, dry_run=True)
    assert sorted(plan.restored) == ["COP000", "COP001"]
    undo = keyservices.rollback(load_config(path), dead)
    assert sorted(undo.restored) == ["COP000", "COP001"]
    assert [erp.value(i) for i in ids] == ["CPY"] * 4


def test_a_second_install_records_what_the_first_wrote_as_already_held(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two installs on one ERP both printed '283 values written' for the same 283 changes."""
    import keyservices.commands.run as run_module

    erp = ErpBuilder(tmp_path / "erp.sqlite")
    ids = copiers(erp, 6)
    first = load_config(plain_config(tmp_path / "a", erp.url, "mode: live\n"))
    second = load_config(plain_config(tmp_path / "b", erp.url, "mode: live\n"))
    real = run_module.apply_changes
    calls: list[int] = []

    def meanwhile(*args: Any, **kwargs: Any) -> Any:
        if not calls:  # install B planned; install A writes the same values before B does
            calls.append(1)
            monkeypatch.setattr(run_module, "apply_changes", real)
            assert keyservices.run(first, as_of=AS_OF).counts.written == 6
        return real(*args, **kwargs)

    monkeypatch.setattr(run_module, "apply_changes", meanwhile)
    result = keyservices.run(second, as_of=AS_OF)
    assert result.counts.written == 0 and result.counts.already == 6
    assert any("already held" in n for n in result.notes)
    assert "already held" in result.digest_html.read_text(encoding="utf-8")
    store = StateStore(second.state_url)
    try:
        assert {r["status"] for r in store.history(run_id=result.run_id)} == {"already"}
        assert store.written_values("ZCJKeyServices") == set()  # B wrote nothing
    finally:
        store.close()
    assert {erp.value(i) for i in ids} == {"CPY"}


# -- a damaged state store is refused, not repaired ---------------------------------------------
@pytest.mark.parametrize("damage", ["DROP TABLE runs", "DELETE FROM runs"])
def test_a_store_whose_runs_are_gone_is_refused_not_recreated(tmp_path: Path,
                                                             damage: str) -> None:
    erp = ErpBuilder(tmp_path / "erp.sqlite")
    copiers(erp, 3)
    path = plain_config(tmp_path, erp.url, "mode: live\n")
    keyservices.run(load_config(path), as_of=AS_OF)
    state = tmp_path / ".keyservices" / "state.sqlite"
    engine = sa.create_engine(f"sqlite:///{state.as_posix()}")
    with engine.begin() as conn:
        conn.execute(sa.text(damage))
    engine.dispose()
    before = erp.dump()
    with pytest.raises(ConfigError, match="not repaired|damaged") as err:
        keyservices.run(load_config(path), as_of=AS_OF)
    assert err.value.exit_code == 2 and erp.dump() == before
    engine = sa.create_engine(f"sqlite:///{state.as_posix()}")
    with engine.connect() as conn:  # the store was left as it was: no new run 1
        tables = set(sa.inspect(conn).get_table_names())
        assert ("runs" in tables) == (damage.startswith("DELETE"))
        assert conn.execute(sa.text("SELECT count(*) FROM changes")).scalar() == 3
    engine.dispose()


# -- time ----------------------------------------------------------------------------------------
def test_a_clock_set_back_stops_the_night_naming_both_dates(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import keyservices.commands.run as run_module

    erp = ErpBuilder(tmp_path / "erp.sqlite")
    ids = copiers(erp, 5)
    path = plain_config(tmp_path, erp.url, "mode: live\n")
    keyservices.run(load_config(path), as_of=AS_OF)

    class Backwards(dt.date):
        @classmethod
        def today(cls) -> dt.date:  # type: ignore[override]
            return dt.date(2024, 12, 6)

    monkeypatch.setattr(run_module, "dt", type("dt", (), {"date": Backwards,
                                                          "timedelta": dt.timedelta}))
    drop_copiers(erp)
    before = erp.dump()
    for dry_run in (False, True):
        with pytest.raises(GuardTripped, match="2024-12-06.*2026-11-24") as err:
            keyservices.run(load_config(path), dry_run=dry_run)
        assert err.value.exit_code == 3
    assert erp.dump() == before and {erp.value(i) for i in ids} == {"CPY"}
    with pytest.raises(GuardTripped, match="--as-of 2026-11-01 is before"):
        keyservices.run(load_config(path), as_of=dt.date(2026, 11, 1))
    assert erp.dump() == before


def test_as_of_in_the_past_on_a_live_run_needs_force(tmp_path: Path, runner: CliRunner) -> None:
    erp = ErpBuilder(tmp_path / "erp.sqlite")
    ids = copiers(erp, 2)
    path = plain_config(tmp_path, erp.url, "mode: live\n")
    past = (dt.date.today() - dt.timedelta(days=3)).isoformat()
    out = runner.invoke(cli, ["run", "-c", str(path), "--as-of", past])
    assert out.exit_code == 2 and "--as-of" in out.output and "--force" in out.output
    assert [erp.value(i) for i in ids] == [None, None]
    assert runner.invoke(cli, ["run", "-c", str(path), "--as-of", past, "--dry-run"]).exit_code == 0
    out = runner.invoke(cli, ["run", "-c", str(path), "--as-of", past, "--force"])
    assert out.exit_code == 0, out.output


@pytest.mark.parametrize("args", [["run", "--dry-run", "--as-of", "0001-01-01"],
                                  ["run", "--dry-run", "--as-of", "9999-12-31"],
                                  ["history", "--run", str(10**23)],
                                  ["rollback", str(10**23)],
                                  ["rollback", "0"]])
def test_out_of_range_dates_and_run_numbers_are_usage_errors(tmp_path: Path, runner: CliRunner,
                                                             args: list[str]) -> None:
    erp = ErpBuilder(tmp_path / "erp.sqlite")
    path = plain_config(tmp_path, erp.url)
    out = runner.invoke(cli, [*args, "-c", str(path)])
    assert out.exit_code == 2, out.output
    option = "--as-of" if "--as-of" in args else "--run" if "--run" in args else "RUN_ID"
    assert option in out.output and "Overflow" not in out.output


# -- values made only of separators --------------------------------------------------------------
def test_a_value_of_separators_only_is_not_the_tools_own(tmp_path: Path) -> None:
    erp = ErpBuilder(tmp_path / "erp.sqlite")
    ids = copiers(erp, 400)  # three odd values among many: a person's marks, not another
    marked = {ids[0]: "/", ids[1]: ";;", ids[2]: " ; / "}  # process's attribute
    path = plain_config(tmp_path, erp.url, "mode: live\n")
    keyservices.run(load_config(path), as_of=AS_OF)
    for cid, text in marked.items():  # a person's marks since
        erp.set_value(cid, text)
    result = keyservices.run(load_config(path), as_of=AS_OF)
    assert [erp.value(c) for c in marked] == list(marked.values())
    assert any("were not written by keyservices" in n for n in result.notes)
    assert {erp.value(c) for c in ids[3:]} == {"CPY"}


# -- the state folder ----------------------------------------------------------------------------
def test_a_state_dir_that_is_a_file_is_named(tmp_path: Path, runner: CliRunner) -> None:
    erp = ErpBuilder(tmp_path / "erp.sqlite")
    (tmp_path / "state-file").write_text("not a folder", encoding="utf-8")
    path = plain_config(tmp_path, erp.url, "mode: live\nstate:\n  dir: state-file\n")
    out = runner.invoke(cli, ["run", "-c", str(path)])
    assert out.exit_code == 2 and "is a file" in out.output and "state.dir" in out.output
    assert "FileExistsError" not in out.output


def test_a_read_only_state_folder_serves_readers_and_stops_writers(
        tmp_path: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    """Root can write anywhere, so the folder's permission is what the tool is told."""
    from keyservices.state import lock

    erp = ErpBuilder(tmp_path / "erp.sqlite")
    ids = copiers(erp, 3)
    path = plain_config(tmp_path, erp.url, "mode: live\n")
    keyservices.run(load_config(path), as_of=AS_OF)
    state = (tmp_path / ".keyservices").resolve()
    real = lock.os.access
    monkeypatch.setattr(lock.os, "access", lambda p, mode: False if Path(p).resolve() == state
                        else real(p, mode))
    for args in (["status"], ["history"], ["history", "--run", "1"], ["run", "--dry-run"]):
        out = runner.invoke(cli, [*args, "-c", str(path)])
        assert out.exit_code == 0, (args, out.output)
    drop_copiers(erp)
    for args in (["run"], ["rollback", "1"]):
        out = runner.invoke(cli, [*args, "-c", str(path)])
        assert out.exit_code == 2 and "read-only" in out.output, (args, out.output)
        assert "Traceback" not in out.output and "OSError" not in out.output
    assert {erp.value(i) for i in ids} == {"CPY"}


def test_a_full_state_disk_is_blamed_on_the_state_store(tmp_path: Path,
                                                        runner: CliRunner) -> None:
    erp = ErpBuilder(tmp_path / "erp.sqlite")
    copiers(erp, 400)
    path = plain_config(tmp_path, erp.url, "mode: live\n")
    store = StateStore(load_config(path).state_url)
    store.close()

    def full(dbapi_connection: Any, _record: Any) -> None:
        pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
        dbapi_connection.execute(f"PRAGMA max_page_count={pages + 2}")

    real_init = StateStore.__init__

    def small(self: StateStore, url: str) -> None:
        real_init(self, url)
        sa.event.listen(self.engine, "connect", full)
        self.engine.dispose()

    import unittest.mock

    with unittest.mock.patch.object(StateStore, "__init__", small):
        out = runner.invoke(cli, ["run", "-c", str(path)])
    assert out.exit_code == 1, out.output
    assert "the state store" in out.output and "is full" in out.output
    assert "erp.sqlite" not in out.output.split("Error:", 1)[1]


def test_corrupt_counts_do_not_stop_status_or_history(tmp_path: Path, runner: CliRunner) -> None:
    erp = ErpBuilder(tmp_path / "erp.sqlite")
    copiers(erp, 2)
    path = plain_config(tmp_path, erp.url, "mode: live\n")
    keyservices.run(load_config(path), as_of=AS_OF)
    engine = sa.create_engine(f"sqlite:///{(tmp_path / '.keyservices' / 'state.sqlite').as_posix()}")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE runs SET counts = '{\"written\": 2'"))
    engine.dispose()
    for args in (["status"], ["history"], ["status", "--json"]):
        out = runner.invoke(cli, [*args, "-c", str(path)])
        assert out.exit_code == 0 and "JSONDecodeError" not in out.output, out.output
    assert re.search(r"unreadable", runner.invoke(cli, ["status", "--json", "-c",
                                                        str(path)]).output)


def test_a_store_a_first_run_stopped_making_is_still_new(tmp_path: Path) -> None:
    """SQLite makes each table on its own: a first run killed between two CREATE TABLEs leaves
    an empty runs table and no audit table. That store is new, not damaged."""
    from keyservices.state.schema import runs

    url = f"sqlite:///{(tmp_path / 'state.sqlite').as_posix()}"
    engine = sa.create_engine(url)
    runs.create(engine)
    engine.dispose()
    assert StateStore.reader(url) is None
    store = StateStore(url)  # the rest is made
    try:
        assert "changes" in sa.inspect(store.engine).get_table_names()
    finally:
        store.close()
