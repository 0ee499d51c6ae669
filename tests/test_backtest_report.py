"""The backtest's chart in ``report`` (#24): ``backtest --save`` and a live run that learns its
rates keep the backtest's scores in the state store; ``report`` draws them (learned against
static against random, and calibration by tenth) and gives the same numbers in ``--json``;
without a saved backtest the page says so in one line, with the command that saves one."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

import keyservices
from keyservices.cli import cli
from keyservices.commands.backtest import backtest
from keyservices.commands.report import report
from keyservices.demodb import build_demo_db
from keyservices.outputs.backtest_chart import backtest_view
from keyservices.outputs.group_report import CompanyReport, write_group_report
from keyservices.outputs.report import DIMENSIONS, penetration_matrix
from keyservices.state import StateStore
from keyservices.state.backtests import load_backtest, save_backtest

from .conftest import AS_OF, write_config
from .test_group_report import NORTH

HINT = "No backtest saved yet: run <code>keyservices backtest --save</code>"


@pytest.fixture(scope="module")
def dealer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo dealer with two years of dated adoption (built once)."""
    folder = tmp_path_factory.mktemp("dealer")
    build_demo_db(folder / "erp.sqlite", customers=1500, as_of=AS_OF)
    return folder / "erp.sqlite"


def _config(tmp_path: Path, db: Path) -> keyservices.Config:
    shutil.copy(db, tmp_path / "erp.sqlite")
    path = write_config(tmp_path, f"sqlite:///{(tmp_path / 'erp.sqlite').as_posix()}")
    rules = tmp_path / "rules" / "cross-sell.yaml"  # a rule name the page must escape
    rules.write_text(rules.read_text(encoding="utf-8").replace(
        "name: Copier customers without Managed IT",
        "name: 'Copier <b>customers</b> & no IT'"), encoding="utf-8")
    return keyservices.load_config(path)


def _page(tmp_path: Path, config: keyservices.Config) -> tuple[str, dict]:
    result = report(config, out=tmp_path / "out", as_of=AS_OF)
    return result.files.html.read_text(encoding="utf-8"), result.to_dict()


def test_a_saved_backtest_is_charted_in_the_report_and_its_json(dealer: Path,
                                                                tmp_path: Path) -> None:
    config = _config(tmp_path, dealer)
    html, data = _page(tmp_path, config)
    # none saved: one line with the command, nothing charted, the same said in --json
    assert html.count(HINT) == 1 and "Who to call first" not in html
    assert data["backtest"] is None
    assert any("keyservices backtest --save" in n for n in data["notes"])

    done = backtest(config, as_of=AS_OF, save=True)
    html, data = _page(tmp_path, config)
    saved = done.result.summary(AS_OF, done.months)
    assert HINT not in html and "Who to call first: would the list have been right?" in html
    got = data["backtest"]
    assert got is not None and got["made_at"]
    assert {k: got[k] for k in saved} == json.loads(json.dumps(saved))  # the same numbers
    o = saved["overall"]
    for value in (o["precision_at_25"], o["precision_at_100"], o["static_at_25"],
                  o["static_at_100"], o["random"]):
        assert f"{value * 100:.1f}%" in html
    assert html.count('class="bt-fill bt-learned"') == 2 * (1 + len(saved["plays"]))
    assert html.count("bt-fill bt-observed") == len(saved["calibration"]) == 10
    assert "Cross-sell: Copier &lt;b&gt;customers&lt;/b&gt; &amp; no IT" in html
    assert "<b>customers</b>" not in html
    assert "<script" not in html and "http" not in re.sub(r'xmlns="[^"]*"', "", html)
    # the text output says it too
    out = CliRunner().invoke(cli, ["report", "-c", str(tmp_path / "config.yaml"), "--as-of",
                                   AS_OF.isoformat(), "--out", str(tmp_path / "out")])
    assert out.exit_code == 0, out.output
    assert f"the top 100 calls won {o['precision_at_100']:.1%}" in out.output


def test_a_live_run_that_learns_its_rates_keeps_the_backtest_for_the_report(
        dealer: Path, tmp_path: Path) -> None:
    config = _config(tmp_path, dealer)
    keyservices.run(config, as_of=AS_OF, dry_run=True, send=False)
    assert _page(tmp_path, config)[1]["backtest"] is None  # a dry run writes nothing
    keyservices.run(config, as_of=AS_OF, force=True, send=False)
    html, data = _page(tmp_path, config)
    assert data["backtest"] is not None and data["backtest"]["as_of"] == AS_OF.isoformat()
    assert HINT not in html and "bt-fill bt-learned" in html


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A state store's URL on SQLite and on a real PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{(tmp_path / 'state.sqlite').as_posix()}"
        return
    server = request.getfixturevalue("pg_server")
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    name = f"ks_bt_state_{abs(hash(tmp_path)) % 10**8}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.engine.make_url(server).set(database=name).render_as_string(
            hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


SUMMARY = {"as_of": "2026-11-24", "months": 12, "dates": ["2026-02-27", "2026-08-26"],
           "overall": {"play": "all plays", "offers": 400, "won": 40, "random": 0.1,
                       "precision_at_25": 0.32, "precision_at_100": 0.21,
                       "static_at_25": 0.12, "static_at_100": 0.11,
                       "lift_random_at_25": 3.2, "lift_random_at_100": 2.1,
                       "lift_static_at_25": 2.67, "lift_static_at_100": 1.91,
                       "annual_value_won_top_25": 12345.0},
           "plays": [], "calibration": [{"predicted": 0.05 * i, "observed": 0.04 * i,
                                         "offers": 40} for i in range(1, 11)]}


def test_the_store_keeps_one_summary_per_erp(state_url: str) -> None:
    store = StateStore(state_url)
    try:
        assert load_backtest(store.engine, "erp-a") is None
        save_backtest(store.engine, "erp-a", {**SUMMARY, "as_of": "2026-10-01"},
                      made_at=dt.datetime(2026, 10, 1, 22, 5))
        save_backtest(store.engine, "erp-a", SUMMARY, made_at=dt.datetime(2026, 11, 24, 23, 0))
        save_backtest(store.engine, "erp-b", {**SUMMARY, "months": 24})
        got = load_backtest(store.engine, "erp-a")
        assert got == {**SUMMARY, "made_at": "2026-11-24T23:00:00"}  # the later one replaced it
        assert load_backtest(store.engine, "erp-b")["months"] == 24  # type: ignore[index]
    finally:
        store.close()


def test_a_store_made_before_the_chart_gains_its_table(state_url: str) -> None:
    StateStore(state_url).close()
    engine = sa.create_engine(state_url)
    with engine.begin() as conn:  # as an earlier version made it
        conn.exec_driver_sql("DROP TABLE backtests")
    reader = StateStore.reader(state_url)  # a reader (dry run, report) finds none, makes none
    assert reader is not None and load_backtest(reader.engine, "erp-a") is None
    reader.close()
    assert "backtests" not in sa.inspect(engine).get_table_names()
    engine.dispose()
    store = StateStore(state_url)  # opened to write: the table is made
    try:
        save_backtest(store.engine, "erp-a", SUMMARY)
        assert load_backtest(store.engine, "erp-a") is not None
    finally:
        store.close()


def test_the_chart_scales_every_bar_to_one_axis() -> None:
    view = backtest_view(SUMMARY)
    assert view is not None and view["scale"] == 0.35  # 32 % rounded up to the next 5 %
    top25 = view["plays"][0]["tops"][0]
    assert [b["w"] for b in top25["bars"]] == [round(100 * v / 0.35, 1)
                                              for v in (0.32, 0.12, 0.1)]
    assert view["calibration"][-1]["pw"] == 100.0  # the largest of predicted and observed
    assert backtest_view(None) is None


def test_the_group_page_charts_each_companys_backtest(tmp_path: Path) -> None:
    other = CompanyReport("South", tuple(penetration_matrix({}, {}, {"CPY": "Copiers"}, by)
                                         for by in DIMENSIONS),
                          backtest_hint="keyservices backtest --save --company South")
    north = CompanyReport(NORTH.company, NORTH.matrices, NORTH.won_lost, backtest=SUMMARY)
    files = write_group_report(tmp_path, dealer="Group", as_of=AS_OF, reports=[north, other])
    html = files.html.read_text(encoding="utf-8")
    assert html.count("Who to call first") == 1 and "32.0%" in html
    assert html.count("No backtest saved yet") == 1
    assert "keyservices backtest --save --company South" in html
