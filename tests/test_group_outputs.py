"""A dealer group's outputs carry the company (#25): the exports put every company's rows in one
file with a ``company`` column (a company whose database is missing is left out, named, with its
exit code), ``history`` shows the company of each run and change."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from keyservices.cli import cli
from keyservices.commands.export import export_alerts, export_opportunities
from keyservices.commands.group import run_group
from keyservices.config import company_configs, load_config
from keyservices.demodb import build_demo_db

from .conftest import AS_OF, write_config

CUSTOMERS = 150


@pytest.fixture
def group(tmp_path: Path) -> Path:
    """North and East are demo dealers; South's database is missing."""
    for name, seed in (("north", 41), ("east", 42)):
        build_demo_db(tmp_path / f"{name}.sqlite", customers=CUSTOMERS, seed=seed, as_of=AS_OF)
    companies = "".join(f"  - name: {name.title()}\n    erp: {{url: 'sqlite:///{name}.sqlite'}}\n"
                        for name in ("north", "south", "east"))
    return write_config(tmp_path, "sqlite:///north.sqlite", f"companies:\n{companies}")


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline="")))


@pytest.mark.parametrize("what", ["opportunities", "alerts"])
def test_a_group_export_has_every_company_with_its_name(group: Path, runner: CliRunner,
                                                        what: str) -> None:
    config = load_config(group)
    north, _, east = company_configs(config)
    one = export_opportunities if what == "opportunities" else export_alerts
    alone = {c.company_name: _rows(next(iter(one(c, as_of=AS_OF)))) for c in (north, east)}
    assert alone["North"] and alone["East"]

    out = runner.invoke(cli, ["export", what, "-c", str(group), "--as-of", AS_OF.isoformat(),
                              "--out", str(group.parent / "all.csv")])
    assert out.exit_code == 1  # South's missing database, as in the night
    assert "South: left out of the export (exit 1)" in out.output
    assert "does not exist" in out.output
    rows = _rows((group.parent / "all.csv").read_text(encoding="utf-8"))
    assert next(iter(rows[0])) == "company"
    # each company's rows as its own export has them, in the config's order
    assert [r["company"] for r in rows] == ["North"] * len(alone["North"]) + \
        ["East"] * len(alone["East"])
    for name in ("North", "East"):
        assert [{k: v for k, v in r.items() if k != "company"} for r in rows
                if r["company"] == name] == alone[name]

    as_json = runner.invoke(cli, ["export", what, "-c", str(group), "--as-of", AS_OF.isoformat(),
                                  "--json"])
    assert as_json.exit_code == 1
    data = json.loads(as_json.stdout)
    assert data["count"] == len(rows) == len(data["rows"])
    assert {r["company"] for r in data["rows"]} == {"North", "East"}
    assert [(f["company"], f["exit_code"]) for f in data["failed"]] == [("South", 1)]
    assert "does not exist" in data["failed"][0]["error"]

    picked = runner.invoke(cli, ["export", what, "-c", str(group), "--as-of", AS_OF.isoformat(),
                                 "--company", "east", "--json"])
    assert picked.exit_code == 0, picked.output
    data = json.loads(picked.stdout)
    assert {r["company"] for r in data["rows"]} == {"East"} and data["failed"] == []
    assert data["count"] == len(alone["East"])


def test_hubspot_export_of_a_group_names_the_dealer_company(group: Path,
                                                            runner: CliRunner) -> None:
    out = runner.invoke(cli, ["export", "opportunities", "--format", "hubspot", "-c", str(group),
                              "--company", "North", "--as-of", AS_OF.isoformat()])
    assert out.exit_code == 0, out.output
    rows = _rows(out.stdout)
    assert list(rows[0])[:2] == ["Dealer Company", "First Name"]
    assert {r["Dealer Company"] for r in rows} == {"North"}


def test_a_single_company_export_keeps_its_columns(tmp_path: Path, runner: CliRunner) -> None:
    build_demo_db(tmp_path / "erp.sqlite", customers=CUSTOMERS, seed=43, as_of=AS_OF)
    path = write_config(tmp_path, "sqlite:///erp.sqlite")
    out = runner.invoke(cli, ["export", "opportunities", "-c", str(path), "--as-of",
                              AS_OF.isoformat(), "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert "company" not in data["rows"][0] and "failed" not in data
    named = runner.invoke(cli, ["export", "alerts", "-c", str(path), "--company", "Test Dealer",
                                "--as-of", AS_OF.isoformat(), "--json"])
    assert named.exit_code == 0, named.output
    assert "company" not in json.loads(named.stdout)["rows"][0]
    wrong = runner.invoke(cli, ["export", "alerts", "-c", str(path), "--company", "North"])
    assert wrong.exit_code == 2 and "no company named north" in wrong.output


def test_history_shows_the_company_of_a_group(group: Path, runner: CliRunner) -> None:
    config = load_config(group)
    run_group(config, as_of=AS_OF, send=False)
    out = runner.invoke(cli, ["history", "-c", str(group)])
    assert out.exit_code == 0, out.output
    titles = [line.strip() for line in out.output.splitlines() if "Runs (newest first)" in line]
    assert sorted(titles) == ["East: Runs (newest first)", "North: Runs (newest first)"]
    with_runs = runner.invoke(cli, ["history", "-c", str(group), "--json"])
    assert {r["company"] for r in json.loads(with_runs.stdout)["runs"]} == {"North", "East"}
    north_run = json.loads(runner.invoke(cli, ["history", "--company", "North", "-c",
                                               str(group), "--json"]).stdout)["runs"][0]["id"]
    changes = runner.invoke(cli, ["history", "--run", str(north_run), "--company", "North",
                                  "-c", str(group), "--json"])
    assert {c["company"] for c in json.loads(changes.stdout)["changes"]} == {"North"}
    text = runner.invoke(cli, ["history", "--run", str(north_run), "--company", "North", "-c",
                               str(group), "--limit", "3"])
    assert "North: 3 change(s)" in text.output
    status = runner.invoke(cli, ["status", "-c", str(group)])
    assert sorted(line.split()[0] for line in status.output.splitlines()
                  if line.split()[1:2] == ["run"] and " exit " in line) == ["East", "North"]
