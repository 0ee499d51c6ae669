"""``keyservices report`` end to end: penetration from the ERP, won/lost from the audit of runs."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

import keyservices
from keyservices.cli import cli
from keyservices.commands.report import report

from .conftest import AS_OF, ErpBuilder


def day(days_ago: int) -> dt.date:
    return AS_OF - dt.timedelta(days=days_ago)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture
def dealer(erp: ErpBuilder) -> dict[str, int]:
    """Five customers in two industries, two branches and two reps (one customer has none).

    C1 Legal/Main/Dana    copiers; an IT contract from 70 days ago (MIT won on night 2)
    C2 Legal/Main/Dana    a DM contract (600/month) that ended 40 days ago (DM lost on night 3)
    C3 Health/South/Lee   an IT contract from 20 days ago, 250/month (MIT won on night 3)
    C4 Health/South/-     copiers
    C5 Health/South/Lee   copiers and a DM contract
    """
    erp.insert("ARCustomerTypes", CustomerTypeID=2, CustomerType="Health")
    erp.insert("GLBranches", BranchID=2, BranchNumber="02", Description="South")
    erp.insert("SHAgents", AgentID=2, PrefFullName="Lee Rep")
    ids = {f"C{i}": erp.customer(f"C{i}", f"Customer {i}") for i in range(1, 6)}
    t = erp.t["ARCustomers"]
    with erp.engine.begin() as conn:
        for name in ("C3", "C4", "C5"):
            conn.execute(t.update().where(t.c.CustomerID == ids[name]).values(
                CustomerTypeID=2, BranchID=2, SalesRepID=None if name == "C4" else 2))
    erp.equipment(ids["C1"], "MFP-A3-CO-03")
    erp.contract(ids["C1"], "IT-MANAGED", start=day(70), rate=500.0)
    erp.contract(ids["C2"], "DM-SUB", start=day(400), end=day(40), rate=600.0)
    erp.contract(ids["C3"], "IT-MANAGED", start=day(20), rate=250.0)
    erp.equipment(ids["C4"], "MFP-A4-BW-01")
    erp.equipment(ids["C5"], "MFP-A3-CO-03")
    erp.contract(ids["C5"], "DM-SUB", start=day(400), rate=100.0)
    return ids


def three_nights(config) -> None:
    """A baseline 100 days ago, then nights 60 and 10 days ago: two live runs with changes."""
    for days_ago in (100, 60, 10):
        result = keyservices.run(config, as_of=day(days_ago), send=False)
        assert result.exit_code == 0 and result.baseline == (days_ago == 100)


def test_report_after_live_runs(erp: ErpBuilder, dealer: dict[str, int], config_for) -> None:
    config = config_for(erp)
    three_nights(config)
    result = report(config, as_of=AS_OF)
    assert result.out == config.state.dir / "report"
    assert result.files.html.exists() and result.files.csv.exists()
    # today: C1 CPY+MIT, C2 nothing, C3 MIT, C4 CPY, C5 CPY+DM
    assert result.customers == 5
    assert [(s["code"], s["users"], s["share"]) for s in result.services] == [
        ("CPY", 3, 0.6), ("MPS", 0, 0.0), ("DM", 1, 0.2), ("MIT", 2, 0.4)]
    # annual contract value of today's users: C5's DM 100 x 12; C1 500 + C3 250 for MIT
    assert [s["annual_value"] for s in result.services] == [0.0, 0.0, 1200.0, 9000.0]
    assert result.groups == {"industry": 2, "branch": 2, "sales_rep": 3}
    pen = {(r["dimension"], r["group"], r["service_code"]): (r["customers"], r["users"],
                                                             r["share"])
           for r in read_csv(result.files.csv)}
    assert pen[("industry", "Health", "CPY")] == ("3", "2", "0.6667")
    assert pen[("industry", "Health", "MIT")] == ("3", "1", "0.3333")
    assert pen[("industry", "Legal", "CPY")] == ("2", "1", "0.5000")
    assert pen[("industry", "Legal", "DM")] == ("2", "0", "0.0000")
    assert pen[("branch", "South", "DM")] == ("3", "1", "0.3333")
    assert pen[("sales_rep", "(none)", "CPY")] == ("1", "1", "1.0000")
    assert pen[("sales_rep", "Lee Rep", "MIT")] == ("2", "1", "0.5000")
    assert pen[("industry", "(all)", "CPY")] == ("5", "3", "0.6000")
    assert len(pen) == (2 + 1 + 2 + 1 + 3 + 1) * 4  # groups + a total per dimension, 4 services
    # won/lost: night 3 (10 days ago) is in both windows, night 2 (60 days ago) only in 90 days
    wl = {(r["window"], r["kind"], r["group"], r["service_code"]): (r["won"], r["lost"])
          for r in read_csv(result.files.won_lost_csv)}
    assert wl == {
        ("last 30 days", "branch", "Main", "DM"): ("0", "1"),
        ("last 30 days", "branch", "South", "MIT"): ("1", "0"),
        ("last 30 days", "sales_rep", "Dana Rep", "DM"): ("0", "1"),
        ("last 30 days", "sales_rep", "Lee Rep", "MIT"): ("1", "0"),
        ("last 90 days", "branch", "Main", "DM"): ("0", "1"),
        ("last 90 days", "branch", "Main", "MIT"): ("1", "0"),
        ("last 90 days", "branch", "South", "MIT"): ("1", "0"),
        ("last 90 days", "sales_rep", "Dana Rep", "DM"): ("0", "1"),
        ("last 90 days", "sales_rep", "Dana Rep", "MIT"): ("1", "0"),
        ("last 90 days", "sales_rep", "Lee Rep", "MIT"): ("1", "0"),
    }
    assert {k: (v["won"], v["lost"]) for k, v in result.won_lost.items()} == {
        "last 30 days": (1, 1), "last 90 days": (2, 1)}
    html = result.files.html.read_text(encoding="utf-8")
    lowered = html.lower()
    for external in ("http", "<link", "<script", "<img", "src=", "@import", "url("):
        assert external not in lowered, external
    assert "Test Dealer" in html and "Managed IT" in html and "last 90 days" in html
    assert result.notes == []


def test_report_values_once_the_run_records_them(erp: ErpBuilder, dealer: dict[str, int],
                                                 config_for) -> None:
    """Won and lost values come from the audit's annual values: C3's MIT at 250 x 12, and C2's
    DM at the 600 x 12 recorded when the baseline added it (its contract is gone by the loss)."""
    config = config_for(erp)
    three_nights(config)
    rows = {(r["window"], r["kind"], r["group"], r["service_code"]): r
            for r in read_csv(report(config, as_of=AS_OF).files.won_lost_csv)}
    won = rows[("last 30 days", "branch", "South", "MIT")]["won_value"]
    lost = rows[("last 30 days", "branch", "Main", "DM")]["lost_value"]
    assert (won, lost) == ("3000.00", "7200.00")


def test_report_before_any_run_has_no_won_lost(erp: ErpBuilder, dealer: dict[str, int],
                                               config_for, tmp_path: Path) -> None:
    config = config_for(erp)
    result = report(config, out=tmp_path / "out", as_of=day(100))
    assert result.files.won_lost_csv is None and result.won_lost is None
    assert not (tmp_path / "out" / "won-lost.csv").exists()
    assert not (config.state.dir / "state.sqlite").exists()  # reading made no state store
    assert result.notes[0].startswith("no state store yet")
    # 100 days ago: C1 CPY, C2 DM, C3 nothing, C4 CPY, C5 CPY+DM
    assert [(s["code"], s["users"]) for s in result.services] == [
        ("CPY", 3), ("MPS", 0), ("DM", 2), ("MIT", 0)]
    assert erp.value(dealer["C1"]) is None  # nothing written to the ERP


def test_report_command(erp: ErpBuilder, dealer: dict[str, int], config_for, tmp_path: Path,
                        runner: CliRunner) -> None:
    config = config_for(erp)
    three_nights(config)
    out_dir = tmp_path / "shared"
    args = ["report", "-c", str(config.config_path), "--out", str(out_dir), "--as-of",
            AS_OF.isoformat()]
    result = runner.invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Penetration on 2026-11-24: 5 customers (2 industries, 2 branches, 3 sales reps)." \
        in result.output
    assert "Won/lost, last 90 days: 2 won" in result.output
    assert f"Next: open {out_dir / 'report.html'}" in result.output
    # the nights tracked calls: their outcomes beside won/lost
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "opportunity-outcomes.csv", "penetration.csv", "report.html", "won-lost.csv"]
    data = json.loads(runner.invoke(cli, [*args, "--json"], catch_exceptions=False).output)
    assert data["files"]["html"] == str(out_dir / "report.html")
    assert data["customers"] == 5 and data["won_lost"]["last 30 days"]["lost"] == 1


def test_report_with_a_missing_table_is_a_setup_error(erp: ErpBuilder, dealer: dict[str, int],
                                                      config_for, runner: CliRunner) -> None:
    config = config_for(erp)
    with erp.engine.begin() as conn:
        conn.execute(sa.text('DROP TABLE "SCContracts"'))
    result = runner.invoke(cli, ["report", "-c", str(config.config_path)])
    assert result.exit_code == 2
    assert "table SCContracts (contracts) not found" in result.output


def test_the_digest_shows_won_and_lost_per_sales_rep(erp: ErpBuilder, dealer: dict[str, int],
                                                     config_for) -> None:
    """Night 60: C1 wins MIT (500/month). Night 10: C2 loses DM (600/month, recorded by the
    baseline) and C3 wins MIT (250/month). Worked out per rep and window."""
    config = config_for(erp)
    for days_ago in (100, 60):
        keyservices.run(config, as_of=day(days_ago), send=False)
    result = keyservices.run(config, as_of=day(10), send=False)
    # this week's (the 7 nights up to the run) for the first screen, per branch and rep (#24)
    assert result.won_lost.pop("week") == {
        "since": day(16).isoformat(), "until": day(10).isoformat(),
        "all": [1, 1, 3000.0, 7200.0],
        "branch": {"Main": [0, 1, 0.0, 7200.0], "South": [1, 0, 3000.0, 0.0]},
        "sales_rep": {"Dana Rep": [0, 1, 0.0, 7200.0], "Lee Rep": [1, 0, 3000.0, 0.0]}}
    assert result.won_lost == {
        "windows": ["tonight", "last 30 days", "last 90 days"],
        "rows": [{"group": "Dana Rep", "cells": [[0, 1, 0.0, 7200.0], [0, 1, 0.0, 7200.0],
                                                 [1, 1, 6000.0, 7200.0]]},
                 {"group": "Lee Rep", "cells": [[1, 0, 3000.0, 0.0], [1, 0, 3000.0, 0.0],
                                                [1, 0, 3000.0, 0.0]]}]}
    text = result.digest_eml.read_text(encoding="utf-8", errors="replace")
    html = result.digest_html.read_text(encoding="utf-8")
    assert "WON AND LOST" in text and "Won and lost" in html
    assert "Dana Rep: tonight +0/-1 (0/7,200)" in text.replace("=\n", "")
