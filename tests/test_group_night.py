"""A dealer group's night (#25): several company databases, one lock, one exit code; a company
that fails fails alone, and each company keeps its own audit and rollback."""

from __future__ import annotations

import email
import email.policy
import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from click.testing import CliRunner

import keyservices
from keyservices.cli import cli
from keyservices.commands.group import run_group
from keyservices.config import company_configs, load_config
from keyservices.demodb import ATTRIBUTE_ID, build_demo_db

from .conftest import AS_OF, write_config

CUSTOMERS = 120


def _values(db: Path) -> dict[int, str | None]:
    """The attribute's values in a demo ERP, by customer."""
    with closing(sqlite3.connect(db)) as conn:
        return dict(conn.execute("SELECT CustomerID, TextVal FROM ARCustomerCustomProperties "
                                 "WHERE ShAttributeID = ?", (ATTRIBUTE_ID,)).fetchall())


@pytest.fixture
def group(tmp_path: Path) -> Path:
    """North and East are fine, South's database is missing, Central holds an amount the
    rules cannot read (the data-shape check refuses it), West's change guard trips."""
    for name, seed in (("north", 11), ("east", 12), ("central", 14), ("west", 13)):
        build_demo_db(tmp_path / f"{name}.sqlite", customers=CUSTOMERS, seed=seed, as_of=AS_OF)
    with closing(sqlite3.connect(tmp_path / "central.sqlite")) as db, db:
        db.execute("UPDATE GLDetail SET Amount = 'twelve' WHERE GLDetailID = "
                   "(SELECT min(GLDetailID) FROM GLDetail)")
    companies = "".join(
        f"  - name: {name.title()}\n    erp: {{url: 'sqlite:///{name}.sqlite'}}\n"
        for name in ("north", "south", "east", "central", "west"))
    companies += "    write: {max_changes: 1, max_changes_percent: 'off'}\n"
    return write_config(tmp_path, "sqlite:///north.sqlite",
                        f"parallel: 2\ncompanies:\n{companies}")


def test_one_night_for_every_company_and_each_failure_is_its_own(
        group: Path, runner: CliRunner) -> None:
    folder = group.parent
    before = {name: _values(folder / f"{name}.sqlite")
              for name in ("north", "east", "central", "west")}
    config = load_config(group)
    data = json.loads(json.dumps(run_group(config, as_of=AS_OF).to_dict(), default=str))
    # the worst exit: South's missing database (1) over West's guard (3)
    assert data["exit_code"] == 1
    nights = {c["company"]: c for c in data["companies"]}
    assert list(nights) == ["North", "South", "East", "Central", "West"]
    assert data["failed"] == ["South", "Central", "West"]
    assert nights["Central"]["exit_code"] == 2 and nights["Central"]["result"] is None
    assert nights["Central"]["error"]["type"] == "SchemaError"
    assert "GLDetail.Amount" in nights["Central"]["error"]["message"]
    assert _values(folder / "central.sqlite") == before["central"]
    assert nights["South"]["exit_code"] == 1 and nights["South"]["result"] is None
    assert "does not exist" in nights["South"]["error"]["message"]
    assert nights["West"]["exit_code"] == 3 and nights["West"]["error"]["type"] == "GuardTripped"
    assert nights["West"]["result"]["guard_message"]
    # the others were written and audited, each in its own database and state store
    for name in ("North", "East"):
        assert nights[name]["exit_code"] == 0 and nights[name]["error"] is None
        written = nights[name]["result"]["counts"]["written"]
        assert written > 0
        after = _values(folder / f"{name.lower()}.sqlite")
        assert sum(1 for k, v in after.items() if before[name.lower()].get(k) != v) == written
    assert _values(folder / "west.sqlite") == before["west"]  # the guard: nothing written
    north, south, east, _, west = company_configs(config)
    for company in (north, east):
        runs = keyservices.history(company)["runs"]
        assert [r["status"] for r in runs] == ["done"]
        with closing(sqlite3.connect(company.state.dir / "state.sqlite")) as db:
            assert {r[0] for r in db.execute("SELECT company FROM runs")} == \
                {company.company_name}
            assert {r[0] for r in db.execute("SELECT company FROM changes")} == \
                {company.company_name}
    assert [r["status"] for r in keyservices.history(west)["runs"]] == ["guard"]
    assert keyservices.history(south)["runs"] == []
    # one message for the group's recipients: no company has recipients of its own, so none
    # gets a message of its own; each company that ran is a section of the group's
    assert sorted(p.name for p in config.digest.outbox.glob("*-digest.eml")) == \
        [Path(data["digest_eml"]).name]
    # the group's table: every company, what it did or why it failed, for digest.to
    with Path(data["digest_eml"]).open("rb") as eml:
        table = email.message_from_binary_file(eml, policy=email.policy.default)
    assert "5 companies, 3 not written (South, Central, West)" in table["Subject"]
    assert table["To"] == "managers@example.com"
    text = Path(data["digest_eml"]).with_suffix(".html").read_text(encoding="utf-8")
    body = table.get_body(preferencelist=("html",)).get_content()
    assert body.rstrip() == text and len(text.encode("utf-8")) <= 100_000
    # after the table, the digests of North, East and West (its guard's banner), in order
    sections = [body.index(f"{name} &middot; property") for name in ("North", "East", "West")]
    assert sections == sorted(sections) and sections[0] > body.index("Group total")
    assert "Change guard tripped." in body[sections[2]:]
    assert "South &middot; property" not in body and "Central &middot; property" not in body
    plain = table.get_body(preferencelist=("plain",)).get_content()
    assert plain.index("== North ==") < plain.index("== East ==") < plain.index("== West ==")
    # the commands a section suggests act on its own company
    assert "--company North" in body[sections[0]:sections[1]]
    north_row = "".join(text.split("<b>North</b>")[1].split("</tr>")[:2])
    assert ">written<" in north_row and f">{nights['North']['result']['counts']['classified']}<" \
        in north_row
    assert "does not exist" in text and "GLDetail.Amount" in text
    # the text summary names every company and which failed
    again = runner.invoke(cli, ["run", "-c", str(group), "--as-of", AS_OF.isoformat(),
                                "--dry-run", "--company", "south", "--company", "North"])
    assert again.exit_code == 1
    assert "== North ==" in again.output and "== South ==" in again.output
    assert "== East ==" not in again.output
    assert "2 companies: 1 done; failed: South (exit 1)." in again.output

    # rollback by company: North's run is undone in North only
    north_run = nights["North"]["result"]["run_id"]
    undo = runner.invoke(cli, ["rollback", str(north_run), "--company", "North", "--force", "-c",
                               str(group), "--json"])
    assert undo.exit_code == 0, undo.output
    assert _values(folder / "north.sqlite") == before["north"]
    assert _values(folder / "east.sqlite") != before["east"]
    refused = runner.invoke(cli, ["rollback", str(north_run), "-c", str(group)])
    assert refused.exit_code == 2 and "--company" in refused.output
    # history and status by company
    listed = runner.invoke(cli, ["history", "--company", "north", "-c", str(group), "--json"])
    assert [(r["company"], r["mode"]) for r in json.loads(listed.stdout)["runs"]] == \
        [("North", "rollback"), ("North", "live")]
    every = runner.invoke(cli, ["history", "-c", str(group), "--json"])
    assert {(r["company"], r["status"]) for r in json.loads(every.stdout)["runs"]} == {
        ("North", "done"), ("North", "done"), ("East", "done"), ("Central", "failed"),
        ("West", "guard")}
    status = runner.invoke(cli, ["status", "--company", "West", "-c", str(group), "--json"])
    assert [(r["company"], r["status"]) for r in json.loads(status.stdout)["runs"]] == \
        [("West", "guard")]


def test_a_company_run_alone_and_forced(group: Path, runner: CliRunner) -> None:
    """--company limits the night; --force passes West's guard for West only."""
    folder = group.parent
    before = _values(folder / "north.sqlite")
    plan = runner.invoke(cli, ["run", "-c", str(group), "--as-of", AS_OF.isoformat(),
                               "--dry-run", "--company", "West", "--json"])
    assert plan.exit_code == 3
    planned = json.loads(plan.stdout)
    assert planned["failed"] == ["West"] and planned["companies"][0]["error"]["type"] == \
        "GuardTripped"
    out = runner.invoke(cli, ["run", "-c", str(group), "--no-email", "--company", "West",
                              "--force", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert [c["company"] for c in data["companies"]] == ["West"]
    assert data["companies"][0]["result"]["counts"]["written"] > 1
    assert _values(folder / "north.sqlite") == before
    unknown = runner.invoke(cli, ["run", "-c", str(group), "--company", "Nowhere"])
    assert unknown.exit_code == 2 and "no company named nowhere" in unknown.output


def test_check_says_a_line_per_company(group: Path, runner: CliRunner) -> None:
    out = runner.invoke(cli, ["check", "-c", str(group)])
    assert out.exit_code == 1  # the worst: South's database is missing
    lines = [line for line in out.output.splitlines() if not line.startswith(" ")]
    assert [line.split(":")[0] for line in lines] == ["North", "South", "East", "Central",
                                                      "West"]
    assert lines[0].startswith(f"North: OK: sqlite:///{(group.parent / 'north.sqlite')}")
    assert lines[1].startswith("South: exit 1: the ERP database file does not exist")
    assert lines[3].startswith("Central: exit 2:")
    assert "GLDetail.Amount" in out.output.split("Central: ")[1].split("West: ")[0]
    one = runner.invoke(cli, ["check", "-c", str(group), "--company", "east", "--json"])
    assert one.exit_code == 0
    assert [(c["company"], c["exit_code"]) for c in json.loads(one.stdout)] == [("East", 0)]


def test_commands_on_one_company_take_company(group: Path, runner: CliRunner) -> None:
    """explain, digest and the opportunity commands act on one company's database and store: a
    group's config says which with --company (report covers the group: test_group_report)."""
    with closing(sqlite3.connect(group.parent / "east.sqlite")) as db:
        number = db.execute("SELECT CustomerNumber FROM ARCustomers ORDER BY CustomerID "
                            "LIMIT 1").fetchone()[0]
    told = runner.invoke(cli, ["explain", number, "--company", "East", "-c", str(group),
                               "--as-of", AS_OF.isoformat(), "--json"])
    assert told.exit_code == 0, told.output
    assert json.loads(told.stdout)["customer"]["number"] == number
    for args in (["explain", number], ["opportunity", "list"]):
        refused = runner.invoke(cli, [*args, "-c", str(group)])
        assert refused.exit_code == 2, (args, refused.output)
        assert "say which with --company NAME (North, South, East, Central, West)" in \
            refused.output
    listed = runner.invoke(cli, ["opportunity", "list", "--company", "east", "-c", str(group),
                                 "--json"])
    assert listed.exit_code == 0 and json.loads(listed.stdout) == []
