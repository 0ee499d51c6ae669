"""From nothing to a scheduled job: init, schedule, status."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

import keyservices
from keyservices.cli import cli
from keyservices.state import run_lock

from .conftest import AS_OF, ErpBuilder


def test_init_writes_a_commented_config_in_test_mode_and_never_overwrites(
        tmp_path: Path, runner: CliRunner) -> None:
    target = tmp_path / "ks"
    result = runner.invoke(cli, ["init", str(target)])
    assert result.exit_code == 0, result.output
    assert "Next: set erp.url" in result.output
    config = keyservices.load_config(target / "config.yaml")
    assert config.mode == "test" and config.write.max_changes_percent == 10
    assert (target / "rules" / "services.yaml").exists()
    assert (target / "rules" / "tests" / "id789.yaml").exists()
    assert all(r.passed for r in keyservices.test_rules(config))
    (target / "config.yaml").write_text("# mine\n", encoding="utf-8")
    again = runner.invoke(cli, ["init", str(target)])
    assert again.exit_code == 2 and "never overwrites your files" in again.output
    assert (target / "config.yaml").read_text(encoding="utf-8") == "# mine\n"
    assert runner.invoke(cli, ["init", str(target), "--force"]).exit_code == 0


def test_schedule_prints_cron_and_schtasks(erp: ErpBuilder, config_for,
                                           runner: CliRunner) -> None:
    config = config_for(erp)
    result = runner.invoke(cli, ["schedule", "-c", str(config.config_path), "--at", "03:15"])
    assert result.exit_code == 0, result.output
    lines = [line.strip() for line in result.output.splitlines()]
    (cron,) = [line for line in lines if line.startswith("15 3 * * * ")]
    assert f"-q run -c {config.config_path}" in cron
    (schtasks,) = [line for line in lines if line.startswith("schtasks ")]
    assert schtasks.startswith("schtasks /Create /XML ") and "/TR" not in schtasks
    assert "/RU SYSTEM" not in schtasks  # the task file: tests/test_schedule.py
    bad = runner.invoke(cli, ["schedule", "-c", str(config.config_path), "--at", "25:00"])
    assert bad.exit_code == 2 and "use HH:MM" in bad.output


def test_status_shows_runs_queue_and_lock(erp: ErpBuilder, config_for,
                                          runner: CliRunner) -> None:
    cid = erp.customer("COP001")
    erp.equipment(cid, "MFP-A3-CO-03")
    config = config_for(erp)
    empty = runner.invoke(cli, ["status", "-c", str(config.config_path)])
    assert "No run yet." in empty.output
    keyservices.run(config, as_of=AS_OF)
    out = runner.invoke(cli, ["status", "-c", str(config.config_path)])
    assert out.exit_code == 0, out.output
    assert "run    1" in out.output and "done" in out.output and "written 1" in out.output
    assert "Digests in the outbox (no smtp: configured" in out.output
    assert "No run in progress." in out.output
    with run_lock(config.state.dir):
        held = runner.invoke(cli, ["status", "-c", str(config.config_path), "--json"])
    data = json.loads(held.output)
    assert data["lock_holder"]["pid"] and len(data["queued"]) == 1
