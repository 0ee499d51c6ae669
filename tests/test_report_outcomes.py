"""``report``'s "Opportunities: outcomes" (#24): what became of each play's calls in the last 30
and 90 days, by the life cycle's own rule. Won only by a named sale; withdrawn calls and the
wins an earlier version recorded without one (not verified) are shown apart and left out of the
win share; a call still open 90 days after it was found is expired. The page (escaped, 375 px),
``--json`` and opportunity-outcomes.csv give the same figures; without a store or calls, one
line says why."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

import keyservices
from keyservices.calls.lifecycle import REASON_UNVERIFIED, OpportunityRecord
from keyservices.calls.outcomes import ALL_PLAYS, NO_PLAY, OutcomeRow, outcomes
from keyservices.calls.wonlost import windows_ending
from keyservices.cli import cli
from keyservices.commands.report import report
from keyservices.state import StateStore

from .conftest import AS_OF, ErpBuilder, write_config

ROOT = Path(__file__).resolve().parent.parent
BAD = "cross_sell:<b>Copier</b> & no IT"  # a rule name the page must escape
FORMULA = "=HYPERLINK(\"x\")"  # a stored play a spreadsheet must not run


def ago(days: int) -> dt.date:
    return AS_OF - dt.timedelta(days=days)


def record(cid: int, play: str | None, status: str, first: int, closed: int | None = None,
           why: str | None = None, p_win: float | None = None,
           value: float | None = None) -> OpportunityRecord:
    return OpportunityRecord(
        customer_id=cid, service_code="MIT", customer_number=f"C{cid:03d}",
        customer_name=f"Customer {cid}", branch="Main", owner="Dana Rep", status=status,
        priority="High", score=1.0, reason="peers use it", first_seen=ago(first),
        last_seen=ago(closed if closed is not None else 0),
        closed_on=ago(closed) if closed is not None else None, close_reason=why, play=play,
        p_win=p_win, expected_value=value)


RECORDS = [
    # won by a named sale 5 days ago: worth 400 / 0.2 = 2,000 a year
    record(1, "industry_gap", "won", 20, 5, "service appeared: new contract MIT", 0.2, 400.0),
    record(2, BAD, "withdrawn", 50, 3, "condition cleared"),  # its reason went
    record(3, "uncovered_machines", "open", 100),  # its 90th day 10 days ago: expired
    record(4, "industry_gap", "won", 40, 2, REASON_UNVERIFIED, 0.5, 100.0),  # an old win
    record(5, BAD, "won", 200, 60, "service appeared: item sold"),  # no value stored
    record(6, "industry_gap", "new", 0),
    record(7, FORMULA, "new", 1),
    # won 120 days after it was found: expired on day 90 (20 days before the 90-day window's
    # last 30), then won inside it: counted once, won
    record(8, "industry_gap", "won", 150, 30, "service appeared: GL revenue", 0.1, 50.0),
    record(9, None, "closed", 70, 4, "condition cleared"),  # an earlier version's close
]


def by_play(rows: list[OutcomeRow]) -> dict[str, OutcomeRow]:
    return {r.play: r for r in rows}


def test_outcomes_count_each_call_once_by_the_life_cycles_rule() -> None:
    got = outcomes([(r.play, r.status, r.first_seen, r.closed_on, r.close_reason, r.p_win,
                     r.expected_value) for r in RECORDS], windows_ending(AS_OF))
    month, quarter = (by_play(got[k]) for k in ("last 30 days", "last 90 days"))
    assert [r.play for r in got["last 30 days"]] == [
        "industry_gap", BAD, "uncovered_machines", FORMULA, NO_PLAY, ALL_PLAYS]
    t = month[ALL_PLAYS]
    assert (t.opened, t.won, t.not_verified, t.withdrawn, t.closed, t.expired) == \
        (3, 1, 1, 1, 1, 1)
    assert t.win_share == pytest.approx(0.5)  # won / (won + expired); the rest left out
    assert t.value_won == 2000.0 and t.unvalued == 0
    assert month["industry_gap"].not_verified == 1 and month["industry_gap"].won == 1
    q = quarter[ALL_PLAYS]
    assert (q.opened, q.won, q.not_verified, q.withdrawn, q.closed, q.expired) == \
        (6, 3, 1, 1, 1, 1)  # call 8 once, as won; call 5 won 60 days ago
    assert q.win_share == pytest.approx(3 / 4)
    assert q.value_won == 2500.0 and q.unvalued == 1  # 2,000 + 500; call 5 has no value
    assert quarter[BAD].won == 1 and quarter[BAD].win_share == 1.0
    assert month[FORMULA].win_share is None  # nothing decided: no share
    assert outcomes([], windows_ending(AS_OF))["last 30 days"] == [OutcomeRow(ALL_PLAYS)]


@pytest.fixture
def dealer(tmp_path: Path) -> keyservices.Config:
    erp = ErpBuilder(tmp_path / "erp.sqlite")
    for n in range(1, 4):
        erp.equipment(erp.customer(f"COP{n:03d}"), "MFP-A3-CO-03")
    erp.engine.dispose()
    return keyservices.load_config(write_config(tmp_path, erp.url))


def _store(config: keyservices.Config, records: list[OpportunityRecord]) -> None:
    store = StateStore(config.state_url)
    try:
        store.save_opportunities(records)
    finally:
        store.close()


def test_the_report_shows_outcomes_in_the_page_json_and_csv(dealer: keyservices.Config,
                                                            tmp_path: Path) -> None:
    _store(dealer, RECORDS)
    result = report(dealer, out=tmp_path / "out", as_of=AS_OF)
    html = result.files.html.read_text(encoding="utf-8")
    assert "<h2>Opportunities: outcomes</h2>" in html
    assert "<b>Copier</b>" not in html and "cross_sell:&lt;b&gt;Copier&lt;/b&gt; &amp; no IT" in html
    assert "recorded by an earlier version (not verified: no sale named)" in html
    assert "won / (won + expired)" in html and "left out of the win share" in html
    assert "50% <small>of 2</small>" in html and "75% <small>of 4</small>" in html
    data = result.to_dict()
    assert data["outcomes_note"] is None
    month = {r["play"]: r for r in data["outcomes"]["last 30 days"]}
    assert month[ALL_PLAYS] | {"win_share": 0.5, "won": 1, "not_verified": 1,
                               "value_won": 2000.0} == month[ALL_PLAYS]
    assert data["files"]["outcomes_csv"] == str(tmp_path / "out" / "opportunity-outcomes.csv")
    rows = list(csv.DictReader(io.StringIO(
        result.files.outcomes_csv.read_text(encoding="utf-8-sig"))))  # type: ignore[union-attr]
    assert [r["play"] for r in rows if r["window"] == "last 90 days"] == [
        "industry_gap", BAD, "uncovered_machines", "'" + FORMULA, NO_PLAY, ALL_PLAYS]
    total = next(r for r in rows if r["window"] == "last 90 days" and r["play"] == ALL_PLAYS)
    assert total == {"window": "last 90 days", "play": ALL_PLAYS, "opened": "6", "won": "3",
                     "win_share": "0.7500", "withdrawn": "1", "expired": "1",
                     "won_not_verified": "1", "closed_earlier": "1", "value_won": "2500.00",
                     "won_without_value": "1"}

    shown = CliRunner().invoke(cli, ["report", "-c", str(dealer.config_path), "--as-of",
                                     AS_OF.isoformat(), "--out", str(tmp_path / "cli")])
    assert shown.exit_code == 0, shown.output
    assert ("Calls, last 30 days: 3 opened, 1 won (2,000 a year), 1 withdrawn, 1 expired "
            "(win share 50% of 2 decided), 1 won not verified.") in shown.output
    assert "opportunity-outcomes.csv" in shown.output
    as_json = CliRunner().invoke(cli, ["report", "-c", str(dealer.config_path), "--as-of",
                                       AS_OF.isoformat(), "--out", str(tmp_path / "j"), "--json"])
    assert json.loads(as_json.output)["outcomes"] == data["outcomes"]


def test_wins_of_a_store_made_before_are_shown_not_verified(dealer: keyservices.Config,
                                                            tmp_path: Path) -> None:
    StateStore(dealer.state_url).close()
    engine = sa.create_engine(dealer.state_url)
    with engine.begin() as conn:  # as an earlier version made it, with a win it credited
        for column in ("play", "p_win", "expected_value"):
            conn.exec_driver_sql(f'ALTER TABLE opportunities DROP COLUMN "{column}"')
        conn.exec_driver_sql(
            "INSERT INTO opportunities (customer_id, service_code, customer_number, "
            "customer_name, status, priority, score, reason, first_seen, last_seen, closed_on, "
            "close_reason, dismissed, reopened) VALUES (1, 'MIT', 'C1', 'X', 'won', 'High', 1, "
            "'r', ?, ?, ?, 'service appeared', 0, 0)",
            (ago(10).isoformat(), ago(2).isoformat(), ago(2).isoformat()))
    engine.dispose()
    result = report(dealer, out=tmp_path / "out", as_of=AS_OF)
    month = {r["play"]: r for r in result.to_dict()["outcomes"]["last 30 days"]}
    assert month[NO_PLAY]["won"] == 0 and month[NO_PLAY]["not_verified"] == 1
    assert month[ALL_PLAYS]["win_share"] is None and month[ALL_PLAYS]["value_won"] == 0
    html = result.files.html.read_text(encoding="utf-8")
    assert "1 win recorded by an earlier version (not verified: no sale named) is shown" in html


def test_without_a_store_or_calls_one_line_says_why(dealer: keyservices.Config,
                                                    tmp_path: Path) -> None:
    result = report(dealer, out=tmp_path / "out", as_of=AS_OF)
    html = result.files.html.read_text(encoding="utf-8")
    line = "No opportunity outcomes: no state store yet (no live run)"
    assert html.count(line) == 1 and "Outcomes &middot;" not in html
    assert result.outcomes is None and result.outcomes_note.startswith(line)  # type: ignore[union-attr]
    assert result.files.outcomes_csv is None
    assert not (tmp_path / "out" / "opportunity-outcomes.csv").exists()

    _store(dealer, [])
    StateStore(dealer.state_url).close()
    again = report(dealer, out=tmp_path / "again", as_of=AS_OF)
    assert again.outcomes is None
    assert again.outcomes_note == "No opportunity outcomes: no live run has tracked a call yet"
    assert again.outcomes_note in again.files.html.read_text(encoding="utf-8")


def test_a_live_nights_closings_reach_the_report(dealer: keyservices.Config,
                                                 tmp_path: Path) -> None:
    keyservices.run(dealer, as_of=ago(1), force=True, send=False)
    store = StateStore(dealer.state_url)
    try:
        found = store.list_opportunities()
    finally:
        store.close()
    assert found
    result = report(dealer, out=tmp_path / "out", as_of=AS_OF)
    total = result.to_dict()["outcomes"]["last 30 days"][-1]
    assert total["play"] == ALL_PLAYS and total["opened"] == len(found)
    assert {r.play for r in found} <= {r["play"] for r in result.to_dict()["outcomes"][
        "last 30 days"]}


@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")),
                    reason="chromium is not installed (apt-get install chromium)")
def test_the_outcomes_lay_out_within_375px(dealer: keyservices.Config, tmp_path: Path) -> None:
    _store(dealer, RECORDS)
    html = report(dealer, out=tmp_path / "out", as_of=AS_OF).files.html.read_text(
        encoding="utf-8")
    # the section alone (the heat tables above it are wider than a phone by design)
    start, end = html.index("<main>") + len("<main>"), html.index("</main>")
    section = html[html.index("<h2>Opportunities: outcomes"):end]
    page = tmp_path / "outcomes.html"
    page.write_text(html[:start] + section + html[end:], encoding="utf-8")
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "screenshot_digest.py"),
                          str(page), "--measure", "--width", "375"], capture_output=True,
                         text=True, timeout=180, check=True)
    width, _ = map(int, out.stdout.split()[-1].split("x"))
    assert width <= 375


def test_a_groups_page_and_csv_add_up_each_companys_outcomes(tmp_path: Path) -> None:
    from keyservices.outputs.group_report import GROUP_COMPANY, write_group_report

    from .test_group_report import EAST, NORTH, SOUTH

    windows = windows_ending(AS_OF)
    rows = [(r.play, r.status, r.first_seen, r.closed_on, r.close_reason, r.p_win,
             r.expected_value) for r in RECORDS]
    north = dataclasses.replace(NORTH, outcomes=outcomes(rows, windows))
    east = dataclasses.replace(EAST, outcomes=outcomes(rows[:1], windows))
    files = write_group_report(tmp_path, dealer="Group", as_of=AS_OF,
                               reports=[north, SOUTH, east])
    assert files.outcomes_csv is not None
    got = list(csv.DictReader(io.StringIO(files.outcomes_csv.read_text(encoding="utf-8-sig"))))
    group = {r["play"]: r for r in got
             if r["company"] == GROUP_COMPANY and r["window"] == "last 30 days"}
    assert list(group)[-1] == ALL_PLAYS
    assert (group[ALL_PLAYS]["won"], group[ALL_PLAYS]["value_won"],
            group[ALL_PLAYS]["win_share"]) == ("2", "4000.00", "0.6667")  # 2 / (2 + 1)
    assert {r["company"] for r in got} == {"North", "East <b>&amp;</b>", GROUP_COMPANY}
    html = files.html.read_text(encoding="utf-8")
    assert html.count("Opportunities: outcomes") == 3  # the group's, North's, East's
    assert "East <b>" not in html and "cross_sell:&lt;b&gt;Copier&lt;/b&gt;" in html
    assert "opportunity-outcomes.csv, with a company column" in html
