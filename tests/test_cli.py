"""The command line: help on every command, errors as one line with the documented exit code."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from keyservices.cli import cli

from .conftest import AS_OF, ErpBuilder, write_config

COMMANDS = sorted(cli.commands)


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_help_with_an_example(runner: CliRunner, name: str) -> None:
    command = cli.commands[name]
    assert command.help and len(command.help.strip()) > 40, f"{name} lacks help"
    result = runner.invoke(cli, [name, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.output, f"{name} --help shows no example"
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help, f"{name} {param.opts} lacks help"


def test_top_level_help_documents_exit_codes(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0
    for code in range(6):
        assert f"  {code}  " in result.output


def test_missing_config_is_exit_2_without_traceback(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(cli, ["run", "-c", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert result.output.startswith("Error: config file not found:")
    assert "Traceback" not in result.output


def test_broken_rules_yaml_is_exit_2_naming_file_and_line(runner: CliRunner, erp: ErpBuilder,
                                                         tmp_path: Path) -> None:
    path = write_config(tmp_path, erp.url)
    (tmp_path / "rules" / "services.yaml").write_text("services:\n  - code: [CPY\n",
                                                      encoding="utf-8")
    before = erp.dump()
    result = runner.invoke(cli, ["run", "-c", str(path)])
    assert result.exit_code == 2
    assert "services.yaml:3:1: YAML syntax error" in result.output
    assert "Traceback" not in result.output
    assert erp.dump() == before


def test_run_dry_run_json(runner: CliRunner, erp: ErpBuilder, tmp_path: Path) -> None:
    cid = erp.customer("COP001", "Copier & Co")
    erp.equipment(cid, "MFP-A3-CO-03")
    path = write_config(tmp_path, erp.url)
    result = runner.invoke(cli, ["run", "-c", str(path), "--dry-run", "--json",
                                 "--as-of", AS_OF.isoformat()])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["dry_run"] is True and data["counts"]["changed"] == 1
    assert data["changes"][0]["after"] == "CPY"
    assert erp.value(cid) is None


def test_run_prints_a_summary_and_the_digest_path(runner: CliRunner, erp: ErpBuilder,
                                                  tmp_path: Path) -> None:
    cid = erp.customer("COP001", "Copier & Co")
    erp.equipment(cid, "MFP-A3-CO-03")
    path = write_config(tmp_path, erp.url)
    result = runner.invoke(cli, ["run", "-c", str(path)])
    assert result.exit_code == 0, result.output
    assert "baseline: 1 values written" in result.output
    assert "digest:" in result.output and ".html" in result.output
    assert erp.value(cid) == "CPY"


def test_unreachable_database_is_exit_1(runner: CliRunner, tmp_path: Path) -> None:
    path = write_config(tmp_path, "sqlite:///does-not-exist.sqlite")
    result = runner.invoke(cli, ["run", "-c", str(path)])
    assert result.exit_code == 1
    assert result.output.startswith("Error: the ERP database file does not exist")


def test_sql_server_url_without_pyodbc_gives_an_install_hint(runner: CliRunner,
                                                             tmp_path: Path) -> None:
    pytest.importorskip("sqlalchemy")
    import importlib.util

    if importlib.util.find_spec("pyodbc") is not None:
        pytest.skip("pyodbc is installed here")
    path = write_config(tmp_path, "mssql+pyodbc://keyservices@erpserver/coDemo?driver=X")
    result = runner.invoke(cli, ["check", "-c", str(path)])
    assert result.exit_code == 1
    assert "pip install pyodbc" in result.output and "docs/installation.md" in result.output


def test_check_command(runner: CliRunner, erp: ErpBuilder, tmp_path: Path) -> None:
    erp.customer("COP001")
    path = write_config(tmp_path, erp.url)
    result = runner.invoke(cli, ["check", "-c", str(path)])
    assert result.exit_code == 0, result.output
    assert "schema OK" in result.output and "4 services" in result.output
