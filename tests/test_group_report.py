"""``keyservices report`` for a dealer group (#25): penetration and won/lost per company and for
the group, a first ``company`` column in both CSVs (the group's own rows under ``(group)``),
report.html with the group's summary and a section per company; a company that fails fails
alone; ``--company X`` is that company's report exactly as before."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from keyservices.calls.wonlost import WonLostRow
from keyservices.cli import cli
from keyservices.commands.report import report
from keyservices.config import company_configs, load_config
from keyservices.demodb import build_demo_db
from keyservices.model import Customer
from keyservices.outputs.group_report import (
    GROUP_COMPANY,
    CompanyReport,
    group_won_lost,
    merged,
    summary,
    write_group_report,
)
from keyservices.outputs.report import DIMENSIONS, TOTAL_GROUP, penetration_matrix

from .conftest import AS_OF, write_config

NAMES = {"CPY": "Copiers", "MPS": "Managed Print"}


def _customer(cid: int, industry: str, branch: str) -> Customer:
    return Customer(cid, f"C{cid:04d}", f"Customer {cid}", None, True, False, industry=industry,
                    branch=branch, sales_rep="Dana")


def _company(name: str, customers: dict[int, tuple[str, str, frozenset[str]]],
             names: dict[str, str] = NAMES,
             won_lost: dict[str, list[WonLostRow]] | None = None) -> CompanyReport:
    table = {cid: _customer(cid, ind, br) for cid, (ind, br, _) in customers.items()}
    services = {cid: codes for cid, (_, _, codes) in customers.items()}
    return CompanyReport(name, tuple(penetration_matrix(table, services, names, by)
                                     for by in DIMENSIONS), won_lost)


NORTH = _company("North", {1: ("Legal", "Main", frozenset({"CPY"})),
                           2: ("Legal", "Main", frozenset({"CPY", "MPS"})),
                           3: ("Health", "Main", frozenset())},
                 won_lost={"last 30 days": [WonLostRow("branch", "Main", "CPY", 2, 1, 1200.0, 300.0),
                                            WonLostRow("sales_rep", "Dana", "CPY", 2, 1, 1200.0,
                                                       300.0)]})
# East's rules have no MPS: its customers are left out of the group's MPS share
EAST = _company("East <b>&amp;</b>", {1: ("Legal", "Harbor", frozenset({"CPY"}))},
                names={"CPY": "Copiers"},
                won_lost={"last 30 days": [WonLostRow("branch", "Harbor", "CPY", 1, 0, 600.0,
                                                      0.0)]})
SOUTH = CompanyReport("South", error="the ERP database file does not exist: south.sqlite",
                      exit_code=1)


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline="")))


def test_the_group_adds_up_each_service_over_the_companies_that_have_it() -> None:
    rows, total = summary([NORTH, SOUTH, EAST]) or ([], None)
    assert [r.group for r in rows] == ["North", "East <b>&amp;</b>"]
    assert total is not None and total.customers == 4
    assert (total.cell("CPY").users, total.cell("CPY").share) == (3, 0.75)
    assert (total.cell("MPS").users, total.cell("MPS").share) == (1, 1 / 3)  # North's three
    industry = merged([NORTH.matrices[0], EAST.matrices[0]])
    assert [(r.group, r.customers, r.cell("CPY").users) for r in industry.rows] == \
        [("Legal", 3, 3), ("Health", 1, 0)]
    assert summary([SOUTH]) is None


def test_won_and_lost_per_company_count_each_change_once() -> None:
    group = group_won_lost([NORTH, SOUTH, EAST])
    assert group is not None
    rows = [(r.kind, r.group, r.service, r.won, r.lost, r.won_value)
            for r in group["last 30 days"]]
    assert rows == [("company", "North", "CPY", 2, 1, 1200.0),
                    ("company", "North", "MPS", 0, 0, 0.0),
                    ("company", "East <b>&amp;</b>", "CPY", 1, 0, 600.0),
                    ("company", TOTAL_GROUP, "CPY", 3, 1, 1800.0),
                    ("company", TOTAL_GROUP, "MPS", 0, 0, 0.0)]
    assert group_won_lost([SOUTH, CompanyReport("West", NORTH.matrices)]) is None


def test_the_files_have_a_company_column_and_the_groups_rows(tmp_path: Path) -> None:
    files = write_group_report(tmp_path, dealer="Acme Group", as_of=AS_OF,
                               reports=[NORTH, SOUTH, EAST])
    pen = _rows(files.csv.read_text(encoding="utf-8"))
    assert list(pen[0])[:3] == ["company", "dimension", "group"]
    assert [r["company"] for r in pen if r["company"] != GROUP_COMPANY][:1] == ["North"]
    assert {r["company"] for r in pen} == {"North", "East <b>&amp;</b>", GROUP_COMPANY}
    group = [r for r in pen if r["company"] == GROUP_COMPANY]
    assert {r["dimension"] for r in group} == {"company", "industry"}
    all_cpy = next(r for r in group if r["dimension"] == "company" and r["group"] == TOTAL_GROUP
                   and r["service_code"] == "CPY")
    assert (all_cpy["customers"], all_cpy["users"], all_cpy["share"]) == ("4", "3", "0.7500")
    assert files.won_lost_csv is not None
    won = _rows(files.won_lost_csv.read_text(encoding="utf-8"))
    assert list(won[0])[:2] == ["company", "window"]
    assert [(r["company"], r["kind"], r["group"]) for r in won if r["service_code"] == "CPY"] == [
        ("North", "branch", "Main"), ("North", "sales_rep", "Dana"),
        ("East <b>&amp;</b>", "branch", "Harbor"), (GROUP_COMPANY, "company", "North"),
        (GROUP_COMPANY, "company", "East <b>&amp;</b>"), (GROUP_COMPANY, "company", TOTAL_GROUP)]
    page = files.html.read_text(encoding="utf-8")
    assert "<b>&amp;</b>" not in page and "East &lt;b&gt;&amp;amp;&lt;/b&gt;" in page
    assert page.index("The group") < page.index(">North</h2>") < page.index(">South</h2>")
    assert "All companies" in page and "Won and lost per company" in page
    assert "South (exit 1): the ERP database file does not exist" in page
    # the same input, the same bytes
    again = write_group_report(tmp_path / "again", dealer="Acme Group", as_of=AS_OF,
                               reports=[NORTH, SOUTH, EAST])
    for name in ("csv", "html", "won_lost_csv"):
        assert getattr(again, name).read_bytes() == getattr(files, name).read_bytes()


def test_no_won_lost_file_before_any_company_has_a_store(tmp_path: Path) -> None:
    bare = CompanyReport("North", NORTH.matrices)
    files = write_group_report(tmp_path, dealer="Acme", as_of=AS_OF, reports=[bare])
    assert files.won_lost_csv is None and not (tmp_path / "won-lost.csv").exists()
    assert "No won/lost figures yet" in files.html.read_text(encoding="utf-8")


@pytest.fixture
def group(tmp_path: Path) -> Path:
    """North and East are demo dealers; South's database is missing."""
    for name, seed in (("north", 41), ("east", 42)):
        build_demo_db(tmp_path / f"{name}.sqlite", customers=150, seed=seed, as_of=AS_OF)
    companies = "".join(f"  - name: {name.title()}\n    erp: {{url: 'sqlite:///{name}.sqlite'}}\n"
                        for name in ("north", "south", "east"))
    return write_config(tmp_path, "sqlite:///north.sqlite", f"companies:\n{companies}")


def test_report_of_a_group_covers_every_company_and_the_group(group: Path,
                                                              runner: CliRunner) -> None:
    out = group.parent / "out"
    shown = runner.invoke(cli, ["report", "-c", str(group), "--as-of", AS_OF.isoformat(),
                                "--out", str(out)])
    assert shown.exit_code == 1, shown.output  # South's missing database, as in the night
    assert "South: exit 1: the ERP database file does not exist" in shown.output
    assert "North: " in shown.output and "East: " in shown.output
    pen = _rows((out / "penetration.csv").read_text(encoding="utf-8"))
    assert {r["company"] for r in pen} == {"North", "East", GROUP_COMPANY}
    config = load_config(group)
    north = company_configs(config, ["North"])[0]
    alone = report(north, out=group.parent / "alone", as_of=AS_OF)
    mine = [{k: v for k, v in r.items() if k != "company"} for r in pen if r["company"] == "North"]
    assert mine == _rows(alone.files.csv.read_text(encoding="utf-8"))
    group_total = next(r for r in pen if r["company"] == GROUP_COMPANY and
                       r["dimension"] == "company" and r["group"] == TOTAL_GROUP)
    north_total = next(r for r in pen if r["company"] == GROUP_COMPANY and
                       r["dimension"] == "company" and r["group"] == "North")
    assert int(group_total["customers"]) > int(north_total["customers"]) == alone.customers
    page = (out / "report.html").read_text(encoding="utf-8")
    assert all(f">{name}</h2>" in page for name in ("North", "South", "East"))

    as_json = runner.invoke(cli, ["report", "-c", str(group), "--as-of", AS_OF.isoformat(),
                                  "--out", str(out), "--json", "--company", "north",
                                  "--company", "east"])
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.stdout)
    assert data["group"] is True and [c["company"] for c in data["companies"]] == ["North",
                                                                                   "East"]
    assert data["customers"] == sum(c["customers"] for c in data["companies"])


def test_report_with_one_company_is_that_companys_report(group: Path,
                                                         runner: CliRunner) -> None:
    config = load_config(group)
    east = company_configs(config, ["East"])[0]
    alone = report(east, out=group.parent / "alone", as_of=AS_OF)
    picked = runner.invoke(cli, ["report", "-c", str(group), "--company", "east", "--as-of",
                                 AS_OF.isoformat(), "--out", str(group.parent / "picked")])
    assert picked.exit_code == 0, picked.output
    for name in ("penetration.csv", "report.html"):
        assert (group.parent / "picked" / name).read_bytes() == \
            (alone.out / name).read_bytes(), name
    assert "Penetration on 2026-11-24: " in picked.output
    unknown = runner.invoke(cli, ["report", "-c", str(group), "--company", "nowhere"])
    assert unknown.exit_code == 2 and "no company named nowhere" in unknown.output


def test_a_single_company_config_reports_as_before(tmp_path: Path, runner: CliRunner) -> None:
    build_demo_db(tmp_path / "erp.sqlite", customers=120, seed=43, as_of=AS_OF)
    path = write_config(tmp_path, "sqlite:///erp.sqlite")
    out = runner.invoke(cli, ["report", "-c", str(path), "--as-of", AS_OF.isoformat(),
                              "--out", str(tmp_path / "r"), "--json"])
    assert out.exit_code == 0, out.output
    assert "group" not in json.loads(out.stdout)
    assert (tmp_path / "r" / "penetration.csv").read_text(encoding="utf-8-sig").startswith(
        "dimension,group,")
    assert dt.date.fromisoformat(json.loads(out.stdout)["as_of"]) == AS_OF
