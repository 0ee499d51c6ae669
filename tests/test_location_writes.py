"""Location records at parent level (``write.locations``): a location follows its parent's value,
guarded, audited and rolled back like every other write, on SQLite and PostgreSQL."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

import pytest
from click.testing import CliRunner

import keyservices
from keyservices.cli import cli
from keyservices.errors import ConfigError, GuardTripped
from keyservices.state import StateStore

from .conftest import AS_OF, ErpBuilder, write_config

LOCATIONS_ON = "write:\n  locations: true\n"


@pytest.fixture
def erp(any_erp: ErpBuilder) -> ErpBuilder:
    return any_erp


def company(erp: ErpBuilder, number: str = "P001", *, value: str | None = None
            ) -> dict[str, int]:
    """A parent with a copier at one of its sites, two more active sites, an inactive site
    and a prospect site."""
    parent = erp.customer(number, f"Parent {number}", value=value)
    ids = {"parent": parent}
    for key, kwargs in (("L1", {}), ("L2", {}), ("OLD", {"active": False}),
                        ("PROS", {"prospect": True})):
        ids[key] = erp.customer(f"{number}-{key}", f"Site {key} of {number}", parent=parent,
                                **kwargs)
    erp.equipment(parent, "MFP-A3-CO-03", location=ids["L1"])
    return ids


def text_of(result: keyservices.RunResult) -> str:
    msg = email.message_from_bytes(result.digest_eml.read_bytes(), policy=email.policy.default)
    return msg.get_body(preferencelist=("plain",)).get_content()


# -- the locations get their parent's value -------------------------------------------------------
def test_without_the_setting_locations_are_left_empty(erp: ErpBuilder, config_for) -> None:
    ids = company(erp)
    result = keyservices.run(config_for(erp), as_of=AS_OF)
    assert erp.value(ids["parent"]) == "CPY"
    assert [erp.value(ids[k]) for k in ("L1", "L2")] == [None, None]
    assert result.counts.locations_changed == 0 and result.location_changes == []


def test_active_locations_follow_their_parents_value(erp: ErpBuilder, config_for) -> None:
    ids = company(erp)
    result = keyservices.run(config_for(erp, LOCATIONS_ON), as_of=AS_OF)
    assert erp.value(ids["parent"]) == "CPY"
    assert [erp.value(ids[k]) for k in ("L1", "L2")] == ["CPY", "CPY"]
    assert erp.value(ids["OLD"]) is None  # inactive locations are not written
    assert erp.value(ids["PROS"]) is None  # nor prospects (they do not count for the parent)
    c = result.counts
    assert (c.changed, c.written, c.locations_changed, c.locations_written) == (1, 1, 2, 2)
    assert [ch.number for ch in result.changes] == ["P001"]  # not N more customer changes
    assert {(ch.number, ch.follows) for ch in result.location_changes} == {
        ("P001-L1", "P001"), ("P001-L2", "P001")}


def test_a_location_follows_when_the_parent_changes(erp: ErpBuilder, config_for) -> None:
    ids = company(erp)
    config = config_for(erp, LOCATIONS_ON)
    keyservices.run(config, as_of=AS_OF)
    erp.contract(ids["parent"], "IT-MANAGED")
    second = keyservices.run(config, as_of=AS_OF)
    assert [erp.value(ids[k]) for k in ("parent", "L1", "L2")] == ["CPY;MIT"] * 3
    assert second.counts.locations_written == 2
    third = keyservices.run(config, as_of=AS_OF)  # converged: nothing more to write
    assert third.counts.changed == third.counts.locations_changed == 0


def test_write_locations_with_level_location_is_refused(erp: ErpBuilder, tmp_path: Path,
                                                        runner: CliRunner) -> None:
    company(erp)
    path = write_config(tmp_path, erp.url, LOCATIONS_ON, schema=erp.schema)
    rules = tmp_path / "rules" / "model-classes.yaml"
    rules.write_text(rules.read_text(encoding="utf-8").replace("level: parent",
                                                               "level: location"),
                     encoding="utf-8")
    config = keyservices.load_config(path)
    before = erp.dump()
    with pytest.raises(ConfigError, match=r"write\.locations: true .*config\.yaml:\d+.*"
                                          r"level: location") as err:
        keyservices.run(config, as_of=AS_OF)
    assert err.value.exit_code == 2
    assert erp.dump() == before
    result = runner.invoke(cli, ["check", "-c", str(path)])
    assert result.exit_code == 2 and "write.locations" in result.output
    assert "Traceback" not in result.output


# -- guarded --------------------------------------------------------------------------------------
def test_on_a_baseline_filling_locations_is_free(erp: ErpBuilder, config_for) -> None:
    ids = company(erp)
    result = keyservices.run(config_for(erp, LOCATIONS_ON + "  max_changes: 0\n"), as_of=AS_OF)
    assert result.baseline and [erp.value(ids[k]) for k in ("L1", "L2")] == ["CPY", "CPY"]


def test_turning_locations_on_later_counts_against_the_guard(erp: ErpBuilder,
                                                             config_for) -> None:
    ids = company(erp)
    keyservices.run(config_for(erp, "write:\n  max_changes: 1\n"), as_of=AS_OF)  # baseline
    config = config_for(erp, LOCATIONS_ON + "  max_changes: 1\n")
    before = erp.dump()
    with pytest.raises(GuardTripped, match="2 changes exceed write.max_changes = 1"):
        keyservices.run(config, as_of=AS_OF)
    assert erp.dump() == before
    keyservices.run(config, as_of=AS_OF, force=True)
    assert [erp.value(ids[k]) for k in ("L1", "L2")] == ["CPY", "CPY"]


def test_overwriting_a_locations_value_counts_even_on_a_baseline(erp: ErpBuilder,
                                                                 config_for) -> None:
    ids = company(erp)
    erp.set_value(ids["L2"], "CPY;MPS")  # an old value of ours, no longer right
    before = erp.dump()
    with pytest.raises(GuardTripped, match="1 existing values overwritten or cleared"):
        keyservices.run(config_for(erp, LOCATIONS_ON + "  max_changes: 0\n"), as_of=AS_OF)
    assert erp.dump() == before


# -- audited and rolled back ----------------------------------------------------------------------
def test_each_location_write_is_audited_as_following_its_parent(erp: ErpBuilder,
                                                                config_for) -> None:
    company(erp)
    config = config_for(erp, LOCATIONS_ON)
    result = keyservices.run(config, as_of=AS_OF)
    rows = keyservices.history(config, run_id=result.run_id)["changes"]
    got = {(r["customer_number"], r["customer_name"], r["follows"], r["status"]) for r in rows}
    assert got == {("P001", "Parent P001", None, "applied"),
                   ("P001-L1", "Site L1 of P001", "P001", "applied"),
                   ("P001-L2", "Site L2 of P001", "P001", "applied")}
    store = StateStore(config.state_url)
    try:  # won and lost counts the customer once, not once per location
        won = store.won_lost(None, AS_OF, include_baseline=True)
    finally:
        store.close()
    assert [r["customer_number"] for r in won] == ["P001"]


def test_rollback_restores_location_values(erp: ErpBuilder, config_for) -> None:
    ids = company(erp)
    config = config_for(erp, LOCATIONS_ON)
    keyservices.run(config, as_of=AS_OF)
    erp.contract(ids["parent"], "IT-MANAGED")
    second = keyservices.run(config, as_of=AS_OF)
    erp.set_value(ids["L2"], "edited by hand")
    plan = keyservices.rollback(config, second.run_id, dry_run=True)
    assert sorted(plan.restored) == ["P001", "P001-L1"]
    assert [s["customer"] for s in plan.skipped] == ["P001-L2"]
    report = keyservices.rollback(config, second.run_id)
    assert sorted(report.restored) == ["P001", "P001-L1"]
    assert [erp.value(ids[k]) for k in ("parent", "L1", "L2")] == ["CPY", "CPY", "edited by hand"]
    rows = keyservices.history(config, run_id=report.run_id)["changes"]
    assert {r["customer_number"]: r["follows"] for r in rows} == {"P001": None, "P001-L1": "P001"}
    again = keyservices.rollback(config, second.run_id)
    assert again.restored == [] and sorted(again.already) == ["P001", "P001-L1"]


# -- ownership and unwritable locations -----------------------------------------------------------
def test_a_value_keyservices_does_not_own_on_a_location_is_left_alone(erp: ErpBuilder,
                                                                     config_for) -> None:
    ids = company(erp)
    for i in range(40):  # enough of our own values that one foreign value is an odd edit
        erp.customer(f"C{i:03d}", value="CPY")
    erp.set_value(ids["L2"], "review 2027-01")
    result = keyservices.run(config_for(erp, LOCATIONS_ON), as_of=AS_OF)
    assert erp.value(ids["L2"]) == "review 2027-01" and erp.value(ids["L1"]) == "CPY"
    assert any("P001-L2 ('review 2027-01')" in n for n in result.notes)


def test_unwritable_locations_are_counted_in_one_line(erp: ErpBuilder, config_for) -> None:
    parent = erp.customer("P001", "Parent")
    erp.equipment(parent, "MFP-A3-CO-03")
    erp.customer("P001-NC", "No configuration", parent=parent, config=None)
    erp.customer("P001-NA", "No attribute", parent=parent, attribute=False)
    result = keyservices.run(config_for(erp, LOCATIONS_ON), as_of=AS_OF)
    c = result.counts
    assert (c.locations_no_configuration, c.locations_no_attribute) == (1, 1)
    assert (c.no_configuration, c.no_attribute) == (0, 0)  # not in the customers' lists
    assert [r.number for r in result.location_no_configuration] == ["P001-NC"]
    assert [r.number for r in result.location_no_attribute] == ["P001-NA"]
    text = text_of(result)
    line = ("2 location records cannot follow their parent: 1 without a custom-property "
            "configuration, 1 whose configuration lacks ZCJKeyServices (P001-NC, P001-NA)")
    assert line in " ".join(text.split())
    assert "P001-NC  No configuration" not in text  # not listed like a customer


# -- the digest and explain -----------------------------------------------------------------------
def test_the_digest_counts_location_writes_on_one_line(erp: ErpBuilder, config_for) -> None:
    ids = company(erp)
    config = config_for(erp, LOCATIONS_ON)
    keyservices.run(config, as_of=AS_OF)
    erp.contract(ids["parent"], "IT-MANAGED")
    result = keyservices.run(config, as_of=AS_OF)
    text = text_of(result)
    assert "2 location records follow their parent" in text
    assert "P001-L1" not in text and "P001-L2" not in text  # not rows of the change list
    html = result.digest_html.read_text(encoding="utf-8")
    assert "2 location records follow their parent" in html and "P001-L1" not in html
    dry = keyservices.run(config, as_of=AS_OF, dry_run=True)
    assert dry.counts.locations_changed == 0


def test_a_dry_run_says_the_locations_would_follow(erp: ErpBuilder, config_for) -> None:
    company(erp)
    config = config_for(erp, LOCATIONS_ON.replace("write:", "mode: test\nwrite:"))
    result = keyservices.run(config, as_of=AS_OF)
    assert result.counts.locations_changed == 2 and result.counts.locations_written == 0
    assert "2 location records would follow their parent" in text_of(result)


def test_explain_on_a_location_says_it_follows_its_parent(erp: ErpBuilder, config_for,
                                                          runner: CliRunner) -> None:
    company(erp)
    config = config_for(erp, LOCATIONS_ON)
    keyservices.run(config, as_of=AS_OF)
    e = keyservices.explain(config, "P001-L2", as_of=AS_OF)
    assert e.customer["number"] == "P001"
    assert e.location == {"number": "P001-L2", "name": "Site L2 of P001", "parent": "P001",
                          "value_now": "CPY", "follows": True,
                          "why": "follows its parent's value (write.locations)"}
    out = runner.invoke(cli, ["explain", "P001-L2", "-c", str(config.config_path),
                              "--as-of", AS_OF.isoformat()])
    assert out.exit_code == 0, out.output
    assert "location P001-L2 (Site L2 of P001) follows its parent's value" in out.output
    old = keyservices.explain(config, "P001-OLD", as_of=AS_OF)
    assert old.location["follows"] is False and "inactive" in old.location["why"]
    off = keyservices.explain(config_for(erp), "P001-L1", as_of=AS_OF)
    assert off.location["follows"] is False and "write.locations" in off.location["why"]


def test_the_run_command_counts_location_writes_apart(erp: ErpBuilder, config_for,
                                                      runner: CliRunner) -> None:
    company(erp)
    config = config_for(erp, LOCATIONS_ON)
    out = runner.invoke(cli, ["run", "-c", str(config.config_path)])
    assert out.exit_code == 0, out.output
    assert ("1 values written and 2 location records following their parent" in out.output)
    assert "locations following their parent: changed 2; written 2; unchanged 0" in out.output
