"""The nightly run end to end on a hand-built ERP, through the library API."""

from __future__ import annotations

import email
import email.policy
import re
from pathlib import Path

import pytest

import keyservices
from keyservices.errors import GuardTripped, LockHeld, SchemaError, SourceUnavailable
from keyservices.state import StateStore, run_lock

from .conftest import AS_OF, ErpBuilder


@pytest.fixture
def erp(any_erp: ErpBuilder) -> ErpBuilder:
    """Every test here runs on SQLite and on PostgreSQL."""
    return any_erp


@pytest.fixture
def dealer(erp: ErpBuilder) -> dict[str, int]:
    """A few customers whose services are known by construction."""
    ids = {}
    ids["copier"] = erp.customer("COP001", "Copier & Co <Legal>")
    erp.equipment(ids["copier"], "MFP-A3-CO-03")
    ids["parent"] = erp.customer("PAR001", "Parent Holdings")
    ids["location"] = erp.customer("PAR001-L1", "Parent – Site 1", parent=ids["parent"])
    erp.equipment(ids["parent"], "MFP-A4-BW-01", location=ids["location"])
    erp.contract(ids["location"], "IT-MANAGED")
    ids["free_licence"] = erp.customer("FREE01", "Zero Cost Licence Ltd")
    erp.sale(ids["free_licence"], "SW-DM-ECOPY", 0.0)
    ids["paid_dm"] = erp.customer("DM0001", "Café Müller GmbH")
    erp.sale(ids["paid_dm"], "SW-DM-CAPTURE", 1450.0)
    ids["mps"] = erp.customer("MPS001", "O'Brien Print")
    erp.contract(ids["mps"], "MPS-FLEET")
    for _ in range(3):
        erp.equipment(ids["mps"], "PRN-A4-BW")
    ids["expired"] = erp.customer("EXP001", "Expired IT", value="MIT")
    erp.contract(ids["expired"], "IT-MANAGED", end=AS_OF.replace(day=1))
    ids["no_config"] = erp.customer("NOCFG1", "No Config Inc", config=None)
    erp.equipment(ids["no_config"], "MFP-A3-CO-03")
    ids["no_attr"] = erp.customer("NOATT1", "Legacy Config", attribute=False)
    ids["inactive"] = erp.customer("GONE01", "Closed Down", active=False)
    erp.equipment(ids["inactive"], "MFP-A3-CO-03")
    ids["prospect"] = erp.customer("PROS01", "Maybe Later", prospect=True)
    ids["gl_it"] = erp.customer("GLIT01", "Revenue Only")
    erp.gl(ids["gl_it"], "4300", 1200.0)
    erp.gl(ids["gl_it"], "4300", 5000.0, days_ago=400)  # outside the 365-day window
    return ids


def test_run_classifies_and_writes_only_the_property(erp: ErpBuilder, dealer: dict[str, int],
                                                     config_for) -> None:
    config = config_for(erp)
    before = erp.dump()
    result = keyservices.run(config, as_of=AS_OF)
    assert result.exit_code == 0 and result.baseline
    assert erp.value(dealer["copier"]) == "CPY"
    assert erp.value(dealer["parent"]) == "CPY;MIT"  # rolled up from its location
    assert erp.value(dealer["location"]) is None  # level: parent writes parents only
    assert erp.value(dealer["free_licence"]) is None  # zero-cost licence: not DM
    assert erp.value(dealer["paid_dm"]) == "DM"
    assert erp.value(dealer["mps"]) == "MPS"  # contract AND fleet (3 printers, not copiers)
    assert erp.value(dealer["expired"]) is None  # contract ended before the run date
    assert erp.value(dealer["gl_it"]) == "MIT"
    assert erp.value(dealer["inactive"]) is None
    c = result.counts
    assert (c.no_configuration, c.no_attribute, c.inactive, c.prospects) == (1, 1, 1, 1)
    assert [r.number for r in result.no_configuration] == ["NOCFG1"]
    assert [r.number for r in result.no_attribute] == ["NOATT1"]
    assert c.written == c.changed == 6
    # nothing but TextVal of the configured attribute changed anywhere in the ERP
    after = erp.dump()
    for table in before:
        if table != "ARCustomerCustomProperties":
            assert before[table] == after[table], table
    changed = set(after["ARCustomerCustomProperties"]) - set(before["ARCustomerCustomProperties"])
    assert len(changed) == 6
    assert len(after["ARCustomerCustomProperties"]) == len(before["ARCustomerCustomProperties"])


def test_second_run_on_unchanged_data_writes_nothing(erp: ErpBuilder, dealer: dict[str, int],
                                                     config_for) -> None:
    config = config_for(erp)
    keyservices.run(config, as_of=AS_OF)
    before = erp.dump()
    second = keyservices.run(config, as_of=AS_OF)
    assert not second.baseline
    assert second.counts.changed == second.counts.written == 0
    assert second.changes == []
    assert erp.dump() == before


def test_dry_run_writes_nothing_anywhere(erp: ErpBuilder, dealer: dict[str, int],
                                         config_for) -> None:
    config = config_for(erp)
    before = erp.dump()
    result = keyservices.run(config, as_of=AS_OF, dry_run=True)
    assert result.dry_run and result.counts.changed == 6 and result.counts.written == 0
    assert {ch.number for ch in result.changes} >= {"COP001", "PAR001", "DM0001"}
    assert erp.dump() == before
    assert not config.state.dir.exists()
    assert not config.digest.outbox.exists()


def test_test_mode_reports_but_does_not_write(erp: ErpBuilder, dealer: dict[str, int],
                                              config_for) -> None:
    config = config_for(erp, "mode: test\n")
    before = erp.dump()
    result = keyservices.run(config, as_of=AS_OF)
    assert result.counts.changed == 6 and result.counts.written == 0
    assert erp.dump() == before
    msg = email.message_from_bytes(result.digest_eml.read_bytes(), policy=email.policy.default)
    assert "TEST" in msg["Subject"]


def test_changes_are_audited_with_before_values(erp: ErpBuilder, dealer: dict[str, int],
                                                config_for) -> None:
    config = config_for(erp)
    erp.set_value(dealer["copier"], "DM")
    result = keyservices.run(config, as_of=AS_OF)
    store = StateStore(config.state_url)
    try:
        rows = store.history(run_id=result.run_id, customer="COP001")
        (row,) = rows
        assert (row["before"], row["after"], row["status"]) == ("DM", "CPY", "applied")
        assert (row["added"], row["removed"]) == ("CPY", "DM")
        (run,) = store.runs()
        assert run.status == "done" and run.exit_code == 0 and run.counts["written"] == 6
    finally:
        store.close()


def test_digest_lists_added_removed_and_unwritable(erp: ErpBuilder, dealer: dict[str, int],
                                                   config_for) -> None:
    config = config_for(erp)
    first = keyservices.run(config, as_of=AS_OF)
    msg = email.message_from_bytes(first.digest_eml.read_bytes(),  # type: ignore[union-attr]
                                   policy=email.policy.default)
    text = msg.get_body(preferencelist=("plain",)).get_content()
    assert "NOCFG1" in text and "NOATT1" in text  # the first digest names them
    erp.contract(dealer["copier"], "DM-SUB")
    erp.set_value(dealer["paid_dm"], "DM;MIT")  # MIT will be removed
    result = keyservices.run(config, as_of=AS_OF)
    assert {(ch.number, ch.added, ch.removed) for ch in result.changes} == {
        ("COP001", ("DM",), ()), ("DM0001", (), ("MIT",))}
    msg = email.message_from_bytes(result.digest_eml.read_bytes(), policy=email.policy.default)
    text = msg.get_body(preferencelist=("plain",)).get_content()
    html = msg.get_body(preferencelist=("html",)).get_content()
    assert "COP001" in text and "DM0001" in text
    # the next counts them in one line each, unchanged since the first night
    assert re.search(r"WITHOUT A CUSTOM-PROPERTY CONFIGURATION: 1 customer, unchanged since", text)
    assert re.search(r"CONFIGURATION WITHOUT ZCJKeyServices: 1 customer, unchanged since", text)
    assert "Copier &amp; Co &lt;Legal&gt;" in html and "<Legal>" not in html
    assert result.digest_html.exists()


def test_optimistic_guard_skips_values_edited_since_the_read(erp: ErpBuilder,
                                                             dealer: dict[str, int],
                                                             config_for) -> None:
    from keyservices.erp import ErpTables
    from keyservices.erp.writeback import apply_changes
    from keyservices.model import Change

    config = config_for(erp)
    erp.set_value(dealer["copier"], "EDITED-IN-ERP")
    stale = [Change(dealer["copier"], "COP001", "x", None, None, None, "CPY", ("CPY",), ()),
             Change(dealer["paid_dm"], "DM0001", "y", None, None, None, "DM", ("DM",), ())]
    store = StateStore(config.state_url)
    try:
        run_id = store.begin_run(as_of=AS_OF, erp="t", prop="ZCJKeyServices", mode="live",
                                 baseline=False)
        report = apply_changes(erp.engine, ErpTables(schema=erp.schema), 2044, stale, state=store,
                               run_id=run_id,
                               chunk_size=1)
        assert report.applied == [dealer["paid_dm"]]
        assert report.conflicts == [dealer["copier"]]
        assert erp.value(dealer["copier"]) == "EDITED-IN-ERP"
        statuses = {r["customer_number"]: r["status"] for r in store.history(run_id=run_id)}
        assert statuses == {"COP001": "conflict", "DM0001": "applied"}
    finally:
        store.close()


def test_change_guard_stops_a_run_that_would_rewrite_too_much(erp: ErpBuilder,
                                                              dealer: dict[str, int],
                                                              config_for) -> None:
    config = config_for(erp, "write:\n  max_changes: 1\n")
    keyservices.run(config, as_of=AS_OF)  # the baseline is exempt
    for key in ("copier", "paid_dm", "mps"):
        erp.set_value(dealer[key], None)
    before = erp.dump()
    with pytest.raises(GuardTripped, match="3 changes exceed write.max_changes = 1") as err:
        keyservices.run(config, as_of=AS_OF)
    assert err.value.exit_code == 3
    assert erp.dump() == before
    forced = keyservices.run(config, as_of=AS_OF, force=True)
    assert forced.counts.written == 3


def test_second_run_while_one_holds_the_lock_exits_4(erp: ErpBuilder, dealer: dict[str, int],
                                                     config_for) -> None:
    config = config_for(erp)
    with run_lock(config.state.dir), \
            pytest.raises(LockHeld, match="another keyservices run holds the lock") as err:
        keyservices.run(config, as_of=AS_OF)
    assert err.value.exit_code == 4
    assert keyservices.run(config, as_of=AS_OF).exit_code == 0  # released afterwards


def test_statement_count_does_not_grow_with_customers(tmp_path: Path, config_for) -> None:
    counts = []
    for n in (5, 60):
        builder = ErpBuilder(tmp_path / f"erp{n}.sqlite")
        for i in range(n):
            cid = builder.customer(f"C{i:05d}")
            builder.equipment(cid, "MFP-A3-CO-03")
            builder.gl(cid, "4300", 2000.0)
            builder.sale(cid, "SW-DM-CAPTURE", 99.0)
            builder.contract(cid, "MPS-FLEET")
        cfg = config_for(builder)
        counts.append(keyservices.run(cfg, as_of=AS_OF, dry_run=True).statements)
        builder.engine.dispose()
    # attribute, which enrichment tables exist, model categories, 2 code lists (contract
    # codes, GL accounts), customers, one aggregate per kind of fact (equipment, contracts,
    # GL, items sold, invoices for the status monitors), the contacts the monitors' texts name
    # and the scan of the values the rules interpret (on its own connection, while Python works),
    # and which optional dated columns the equipment and contract line tables have
    assert counts[0] == counts[1] == 14


def test_missing_attribute_is_a_setup_error(erp: ErpBuilder, config_for) -> None:
    with erp.engine.begin() as conn:  # a database where the attribute was never created
        conn.execute(erp.t["ARCustomerCustomProperties"].delete())
        attrs = erp.t["ShAttributes"]
        conn.execute(attrs.delete().where(attrs.c.ShAttributeID == 2044))
    with pytest.raises(SchemaError, match="Tools / Lists & Codes / Attributes") as err:
        keyservices.run(config_for(erp), as_of=AS_OF)
    assert err.value.exit_code == 2


def test_missing_database_file_is_a_clean_failure(tmp_path: Path) -> None:
    from .conftest import write_config

    config = keyservices.load_config(write_config(tmp_path, "sqlite:///missing.sqlite"))
    with pytest.raises(SourceUnavailable, match="does not exist") as err:
        keyservices.run(config, as_of=AS_OF)
    assert err.value.exit_code == 1


def test_check_reports_schema_and_unmapped_categories(erp: ErpBuilder, dealer: dict[str, int],
                                                      config_for) -> None:
    erp.equipment(dealer["copier"], "SCAN-DESKTOP")
    report = keyservices.check(config_for(erp))
    assert report.attribute_id == 2044
    assert report.unmapped_categories == {"SCAN-DESKTOP": 1}
    assert any("SCAN-DESKTOP (1 active units)" in w for w in report.warnings)


def test_check_names_a_missing_table_and_the_setting(erp: ErpBuilder, config_for) -> None:
    config = config_for(erp, "")
    config.erp.profile = {}
    from keyservices.settings.sections import TableOverride

    config.erp.profile["gl_detail"] = TableOverride(table="GLTransactions")
    with pytest.raises(SchemaError, match="table GLTransactions \\(gl_detail\\) not found; .*"
                                          "erp.profile.gl_detail.table"):
        keyservices.check(config)


def test_explain_shows_facts_and_reasons_for_parent_and_locations(erp: ErpBuilder,
                                                                   dealer: dict[str, int],
                                                                   config_for) -> None:
    config = config_for(erp)
    e = keyservices.explain(config, "PAR001-L1", as_of=AS_OF)  # a location explains its parent
    assert e.customer["number"] == "PAR001" and e.value_by_rules == "CPY;MIT"
    combined, _parent, location = e.records
    assert combined["counted"] and "with 1 active location(s)" in combined["name"]
    verdicts = {v["code"]: v for v in combined["verdicts"]}
    assert verdicts["CPY"]["has"] and verdicts["MIT"]["has"] and not verdicts["DM"]["has"]
    assert "1 active contract(s) matching IT-* (IT-MANAGED)" in \
        verdicts["MIT"]["sections"][0]["reason"]
    assert location["facts"]["equipment"] == {"MFP-A4-BW-01": 1}
    free = keyservices.explain(config, "zero cost", as_of=AS_OF)
    dm = next(v for v in free.records[0]["verdicts"] if v["code"] == "DM")
    assert not dm["has"] and "highest unit price 0.00" in dm["sections"][0]["reason"]


def test_explain_unknown_or_ambiguous_customer(erp: ErpBuilder, dealer: dict[str, int],
                                               config_for) -> None:
    from keyservices.errors import ConfigError

    config = config_for(erp)
    with pytest.raises(ConfigError, match="no customer with number or name 'nobody'"):
        keyservices.explain(config, "nobody", as_of=AS_OF)
    with pytest.raises(ConfigError, match="customers match 'co'.*use the customer number"):
        keyservices.explain(config, "co", as_of=AS_OF)


def test_nothing_changed_night_still_sends_a_digest_unless_configured_off(
        erp: ErpBuilder, dealer: dict[str, int], config_for) -> None:
    config = config_for(erp)
    keyservices.run(config, as_of=AS_OF)
    quiet = keyservices.run(config, as_of=AS_OF)
    assert quiet.changes == [] and quiet.digest_eml is not None
    assert "nothing changed" in quiet.digest_eml.read_text(encoding="utf-8")
    config.digest.send_empty = False
    silent = keyservices.run(config, as_of=AS_OF)
    assert silent.digest_eml is None and silent.exit_code == 0


def test_check_warns_about_globs_that_match_nothing(erp: ErpBuilder, config_for) -> None:
    config = config_for(erp)
    services = config.rules / "services.yaml"
    services.write_text(services.read_text(encoding="utf-8").replace('"IT-*"', '"ITT-*"'),
                        encoding="utf-8")
    report = keyservices.check(config)
    assert "contracts.contract_codes: 'ITT-*' matches nothing in this database" in report.warnings
    assert "model_classes: 'SRV-*' matches nothing in this database" in report.warnings


def test_test_mode_lists_what_it_would_change_every_time(erp: ErpBuilder, dealer: dict[str, int],
                                                         config_for) -> None:
    config = config_for(erp, "mode: test\nwrite:\n  max_changes: 1\n")
    for _ in range(2):
        result = keyservices.run(config, as_of=AS_OF)
        assert not result.baseline and result.exit_code == 0  # no guard: nothing is written
        text = result.digest_eml.read_text(encoding="utf-8")
        assert "COP001" in text and "BASELINE" not in text
