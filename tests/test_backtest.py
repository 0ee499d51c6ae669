"""Who to call first, proven (#24): one ranking by expected value, win rates learned from the
dealer's own history, the backtest, and lists as of a past date that read nothing after it.

The demo's two years of adoption follow a documented model (``demodb.adoption``): industry,
size, services held and uncovered machines drive who takes up a service. The learned ranking
must find those customers better than the static priority order does.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

import keyservices
from keyservices import night
from keyservices.calls.frame import Offer, OpportunityFrame
from keyservices.calls.ranking import ranked, scored
from keyservices.calls.rates import ROOT_RATE, Rates
from keyservices.cli import cli
from keyservices.commands.backtest import backtest
from keyservices.commands.export import export_opportunities
from keyservices.demodb import build_demo_db
from keyservices.demodb.schema import build_metadata
from keyservices.model import Customer
from keyservices.progress import Timings
from keyservices.state import StateStore
from keyservices.state.rates import load_rates

from .conftest import AS_OF, write_config

PAST = AS_OF - dt.timedelta(days=120)


@pytest.fixture(scope="module")
def dealer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo dealer of 3,000 customers with two years of dated adoption (built once)."""
    folder = tmp_path_factory.mktemp("dealer")
    build_demo_db(folder / "erp.sqlite", customers=3000, as_of=AS_OF)
    return folder / "erp.sqlite"


def _config(tmp_path: Path, db: Path) -> keyservices.Config:
    copy = tmp_path / "erp.sqlite"
    shutil.copy(db, copy)
    return keyservices.load_config(write_config(tmp_path, f"sqlite:///{copy.as_posix()}"))


# -- the rates ----------------------------------------------------------------------------------
CELL = ("industry_gap", "MIT", "Legal", "A", "3-9 machines", "CPY")


def test_a_thin_group_leans_on_the_wider_groups_rate() -> None:
    other = CELL[:2] + ("Retail", "C", "no machines", "")
    rates = Rates.learn([(CELL, 3, 3), (other, 297, 3)], strength=20)
    # each offer counts once, in its own group; a group's prior is the rate of the wider
    # group's other offers: Legal's prior is the 297 other Managed IT gap offers (3 won),
    # themselves leaning on the 5 % assumed before any history
    others = (3 + 20 * ROOT_RATE) / (297 + 20)
    assert rates.p(CELL) == pytest.approx((3 + 20 * others) / (3 + 20))
    assert others < rates.p(CELL) < 0.5  # 3 of 3 won says "likelier", not "certain"
    unseen = CELL[:2] + ("Healthcare", "B", "no machines", "")
    assert rates.p(unseen) == pytest.approx((6 + 20 * ROOT_RATE) / (300 + 20))
    assert rates.evidence(CELL, {"MIT": "Managed IT"}).startswith(
        "won 6 of 300 Managed IT offers (industry gap)")  # 3 offers are too few to quote
    assert "no history yet" in Rates().evidence(CELL)


# -- one ranking --------------------------------------------------------------------------------
def _people(n: int) -> dict[int, Customer]:
    return {i: Customer(id=i, number=f"C{i:03d}", name=f"Firm {i}", parent_id=None, active=True,
                        prospect=False, industry="Legal", branch="North", sales_rep="Dana",
                        config_id=1, has_value_row=True) for i in range(n)}


def test_every_play_is_ranked_on_one_scale() -> None:
    """A cross-sell call with a better chance x value outranks an industry gap most peers
    share (the static order listed every gap first); ties go to value, then number."""
    offers = [Offer("DM", "Document Management", "High", "95% of Legal use it", 95.0, 1000.0),
              Offer("MIT", "Managed IT", "Medium", "copier users without Managed IT", 0.0,
                    2000.0, play="cross_sell:Copiers without IT", typical=False),
              Offer("MPS", "Managed Print", "Medium", "same chance, same value", 0.0, 2000.0,
                    play="cross_sell:Copiers without IT", typical=False)]
    frame = OpportunityFrame(np.array([0, 1, 2]), np.array([0, 1, 2]), offers, _people(3))
    rates = Rates.learn([(("industry_gap", "DM", "Legal", "", "", ""), 100, 10),
                         (("cross_sell:Copiers without IT", "MIT", "Legal", "", "", ""), 100, 30),
                         (("cross_sell:Copiers without IT", "MPS", "Legal", "", "", ""), 100, 30)])
    out = ranked(scored(frame, rates, {i: frozenset() for i in range(3)}, {}))
    assert [(o.number, o.service_code) for o in out] == [("C001", "MIT"), ("C002", "MPS"),
                                                         ("C000", "DM")]
    assert out[0].p_win == pytest.approx(rates.p(("cross_sell:Copiers without IT", "MIT",
                                                   "Legal", "", "", "")), abs=1e-4)
    assert out[0].expected_value == pytest.approx(out[0].p_win * 2000, abs=0.01)
    assert out[0].play == "cross_sell:Copiers without IT" and "won 30 of 100" in out[0].evidence


# -- the backtest on the demo -------------------------------------------------------------------
def test_the_learned_ranking_beats_the_static_order_on_the_demo(dealer: Path,
                                                                tmp_path: Path) -> None:
    report = backtest(_config(tmp_path, dealer), as_of=AS_OF)
    b = report.result
    assert len(b.dates) == 9  # 12 as-of dates, the first 3 have no 90 days behind them to learn
    assert b.overall.offers > 1000 and 0 < b.overall.won < b.overall.offers
    learned, static = b.overall.precision[100], b.overall.static[100]
    assert learned > 1.2 * static and learned > 1.5 * b.overall.base_rate, (learned, static)
    assert {s.play for s in b.plays} >= {"industry_gap", "uncovered_machines",
                                        "cross_sell:Copier customers without Managed IT"}
    predicted, observed, _ = b.calibration[-1]
    assert predicted > b.calibration[0][0] and observed > b.calibration[0][1]
    assert report.statements <= 13  # one per kind of fact for all dates, not a night per date
    assert any("industries, branches and sales reps are today's" in x for x in b.limits)


def test_backtest_prints_a_table_json_and_saves_the_rates(dealer: Path, tmp_path: Path) -> None:
    config = _config(tmp_path, dealer)
    path = str(tmp_path / "config.yaml")
    runner = CliRunner()
    text = runner.invoke(cli, ["backtest", "-c", path, "--as-of", AS_OF.isoformat()])
    assert text.exit_code == 0, text.output
    assert "all plays" in text.output and "uncovered_machines" in text.output
    assert "not saved (add --save" in text.output
    got = runner.invoke(cli, ["backtest", "-c", path, "--as-of", AS_OF.isoformat(), "--json",
                              "--save"])
    assert got.exit_code == 0, got.output
    data = json.loads(got.output)
    assert data["rates"]["saved"] and data["overall"]["precision_at_100"] > data["overall"][
        "random"]
    store = StateStore(config.state_url)
    try:
        with night.open_erp(config) as erp:
            stored = load_rates(store.engine, erp.identity())
    finally:
        store.close()
    assert stored is not None and stored.offered == data["rates"]["offers"]
    # the night as of that date ranks with the stored rates: nothing learned again
    with night.open_erp(config) as erp:
        rates, learned = night.rates_for(config, erp, AS_OF)
    assert not learned and rates.offered == stored.offered
    with night.open_erp(config) as erp:  # a date before them cannot use them (they know after)
        assert night.rates_for(config, erp, PAST)[1]


# -- the export ---------------------------------------------------------------------------------
def test_the_export_lists_every_play_in_rank_order_with_its_chance(dealer: Path,
                                                                   tmp_path: Path) -> None:
    config = _config(tmp_path, dealer)
    text, count = export_opportunities(config, as_of=AS_OF)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert count == len(rows) > 100
    assert [int(r["rank"]) for r in rows] == sorted(int(r["rank"]) for r in rows)
    ev = [float(r["expected_value"]) for r in rows]
    assert ev == sorted(ev, reverse=True)  # no pins in the shipped rules
    plays = {r["play"] for r in rows[:200]}
    assert len(plays) >= 2, plays  # one scale: more than one play reaches the top
    assert all(0 < float(r["p_win"]) < 1 and r["evidence"] for r in rows)
    hub = list(csv.DictReader(io.StringIO(export_opportunities(config, fmt="hubspot",
                                                               as_of=AS_OF).text)))
    assert hub[0]["Play"] == rows[0]["play"] and hub[0]["Expected Value"]


def test_the_export_runs_without_a_contacts_table(dealer: Path, tmp_path: Path) -> None:
    config = _config(tmp_path, dealer)
    # no monitor text names a contact, no rep copies: nothing else needs the table
    for name in ("monitors.yaml", "priority.yaml"):
        (tmp_path / "rules" / name).unlink()
    with sa.create_engine(f"sqlite:///{(tmp_path / 'erp.sqlite').as_posix()}").begin() as conn:
        conn.exec_driver_sql('DROP TABLE "CMContacts"')
    result = export_opportunities(config, as_of=AS_OF)
    assert result.count > 0 and "CMContacts" in result.warnings[0]
    rows = list(csv.DictReader(io.StringIO(result.text)))
    assert not any(r["contact_email"] for r in rows)
    got = CliRunner().invoke(cli, ["export", "opportunities", "-c", str(tmp_path / "config.yaml"),
                                   "--as-of", AS_OF.isoformat(), "--json"])
    assert got.exit_code == 0 and "Warning: the contacts table" in got.output


def test_hidden_opportunities_come_back_marked_with_include_hidden(dealer: Path,
                                                                   tmp_path: Path) -> None:
    config = _config(tmp_path, dealer)
    keyservices.run(config, as_of=AS_OF, force=True, send=False)  # the life cycle knows them
    first = next(csv.DictReader(io.StringIO(export_opportunities(config, as_of=AS_OF).text)))
    from keyservices.commands.opportunity import dismiss

    dismiss(config, first["customer_number"], _code(config, first["service"]),
            until=AS_OF + dt.timedelta(days=30), reason="test")
    plain = list(csv.DictReader(io.StringIO(export_opportunities(config, as_of=AS_OF).text)))
    assert (first["customer_number"], first["service"]) not in {
        (r["customer_number"], r["service"]) for r in plain}
    every = list(csv.DictReader(io.StringIO(export_opportunities(
        config, as_of=AS_OF, include_hidden=True).text)))
    back = [r for r in every if (r["customer_number"], r["service"])
            == (first["customer_number"], first["service"])]
    assert back and back[0]["hidden"] == "yes"


def _code(config: keyservices.Config, name: str) -> str:
    rules = night.rules_for(config)
    return next(s.code for s in rules.services if s.name == name)


# -- no leakage ---------------------------------------------------------------------------------
def test_a_list_as_of_a_past_date_reads_nothing_after_it(dealer: Path, tmp_path: Path) -> None:
    """Rows dated after the as-of date (contracts, lines, machines, GL, invoices, customers)
    leave its list byte-identical, its learned rates included."""
    config = _config(tmp_path, dealer)
    before = export_opportunities(config, as_of=PAST).text
    _append_after(tmp_path / "erp.sqlite", PAST)
    assert export_opportunities(config, as_of=PAST).text == before
    assert export_opportunities(config, as_of=AS_OF).text != export_opportunities(
        keyservices.load_config(write_config(tmp_path / "other", _copy_url(dealer, tmp_path))),
        as_of=AS_OF).text  # the rows do change the list after them


def _copy_url(db: Path, tmp_path: Path) -> str:
    (tmp_path / "other").mkdir(exist_ok=True)
    shutil.copy(db, tmp_path / "other" / "erp.sqlite")
    return f"sqlite:///{(tmp_path / 'other' / 'erp.sqlite').as_posix()}"


def _append_after(db: Path, day: dt.date) -> None:
    """For many customers, the evidence of every service dated after ``day``."""
    after = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(9))
    t = build_metadata().tables
    engine = sa.create_engine(f"sqlite:///{db.as_posix()}")
    with engine.begin() as conn:
        x = conn.exec_driver_sql
        parents = [r[0] for r in x('SELECT "CustomerID" FROM "ARCustomers" WHERE "LocationID" '
                                   'IS NULL ORDER BY "CustomerID" LIMIT 400')]
        codes = [r[0] for r in x('SELECT "ContractCodeID" FROM "SCContractCodes"')]
        model = x('SELECT "ModelID" FROM "ICModels" LIMIT 1').scalar()
        item = x('SELECT "ItemID" FROM "ICItems" ORDER BY "ItemID" DESC LIMIT 1').scalar()
        accounts = [r[0] for r in x('SELECT "GLID" FROM "GLAccounts"')]
        top = {name: x(f'SELECT MAX("{key}") FROM "{name}"').scalar() for name, key in (
            ("SCContracts", "ContractID"), ("SCEquipments", "EquipmentID"),
            ("ARInvoices", "InvoiceID"), ("ARCustomers", "CustomerID"))}
        for n, cid in enumerate(parents, 1):
            kid, eid, inv = (top["SCContracts"] + n, top["SCEquipments"] + n,
                             top["ARInvoices"] + n)
            conn.execute(t["SCContracts"].insert().values(
                ContractID=kid, CustomerID=cid, BillToID=cid, ContractCodeID=codes[n % len(codes)],
                BillCodeID=1, StartDate=after, Active=True, BaseRate=500,
                ContractNumber=f"LATE{n}"))
            conn.execute(t["SCEquipments"].insert().values(
                EquipmentID=eid, EquipmentNumber=f"LATE{n}", CustomerID=cid, LocationID=cid,
                ModelID=model, InstallDate=after, Active=True))
            conn.execute(t["SCContractDetails"].insert().values(ContractID=kid, EquipmentID=eid,
                                                                StartDate=after))
            for account in accounts:
                conn.execute(t["GLDetail"].insert().values(GLID=account, CustomerID=cid,
                                                           TransactionDate=after, Amount=5000))
            conn.execute(t["ARInvoices"].insert().values(
                InvoiceID=inv, InvoiceNumber=f"LATE{n}", CustomerID=cid, InvoiceDate=after,
                IsVoid=False))
            conn.execute(t["ARInvoiceDetails"].insert().values(
                InvoiceID=inv, ItemID=item, Quantity=1, Amount=900, Cost=0))
        for n in range(1, 60):  # new customers, created after the date
            cid = top["ARCustomers"] + n
            conn.execute(t["ARCustomers"].insert().values(
                CustomerID=cid, CustomerNumber=f"NEW{n:05d}", CustomerName=f"Late Co {n}",
                CustomerTypeID=1, BranchID=1, SalesRepID=1, Active=True, Prospect=False,
                CreateDate=after,
                ShTrackingConfigID=101))
    engine.dispose()


def test_night_learn_keeps_the_scored_dates_for_the_benchmark(dealer: Path,
                                                              tmp_path: Path) -> None:
    config = _config(tmp_path, dealer)
    with night.open_erp(config) as erp:
        result, statements = night.learn(erp, AS_OF, 6, None, Timings(), keep=True)
    assert len(result.scored) == len(result.dates) == 3 and statements > 0
    trials, p, ev = result.scored[0]
    assert len(p) == len(ev) == len(trials.won) == len(trials.customer)


def test_the_dates_read_a_chunk_at_a_time_give_the_same_rates(dealer: Path,
                                                              tmp_path: Path) -> None:
    """Memory holds a chunk of dates' numbers, not the whole history: one date per chunk (a
    million customers) learns exactly what all dates at once (a small dealer) learn."""
    from keyservices.calls import extras
    from keyservices.calls.backtest import as_of_dates, run_backtest
    from keyservices.calls.monitors import MonitorColumns
    from keyservices.erp.history import read_history

    config = _config(tmp_path, dealer)
    got = []
    with night.open_erp(config) as erp:
        extra = [e for e in extras(erp.rules) if not isinstance(e, MonitorColumns)]
        for chunk in (1, 1 << 40):
            with erp.engine.connect() as conn:
                erp.note_dated(conn)
                before = erp.counter.count
                rebuilt = read_history(conn, erp.tables, erp.rules, erp.attribute_id(),
                                       as_of_dates(AS_OF, 6), extra, chunk_bytes=chunk)
                result = run_backtest(rebuilt.facts, erp.rules)
                got.append((result.rates.rows(), erp.counter.count - before))
    (one_each, sent_small), (all_at_once, sent_big) = got
    assert one_each == all_at_once and one_each
    assert sent_small > sent_big  # 9 dates: 9 rounds of statements against 1


def test_the_opportunity_list_keeps_the_play_chance_and_value_in_rank_order(
        dealer: Path, tmp_path: Path) -> None:
    config = _config(tmp_path, dealer)
    keyservices.run(config, as_of=AS_OF, force=True, send=False)
    got = CliRunner().invoke(cli, ["opportunity", "list", "--json", "-c",
                                   str(tmp_path / "config.yaml")])
    assert got.exit_code == 0, got.output
    rows = [r for r in json.loads(got.output) if r["status"] in ("new", "open")]
    assert rows and all(r["play"] and 0 < r["p_win"] < 1 for r in rows)
    values = [r["expected_value"] for r in rows]
    assert values == sorted(values, reverse=True)
    text, _ = export_opportunities(config, as_of=AS_OF)
    first = next(csv.DictReader(io.StringIO(text)))
    top = next(r for r in rows if (r["customer_number"], r["service_code"]) ==
               (first["customer_number"], _code(config, first["service"])))
    assert top["p_win"] == pytest.approx(float(first["p_win"]))


def test_a_store_made_before_the_ranking_gains_its_columns(tmp_path: Path) -> None:
    from keyservices.state.schema import opportunities

    url = f"sqlite:///{(tmp_path / 'state.sqlite').as_posix()}"
    StateStore(url).close()
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # as an earlier version made it, with a win it credited
        for column in ("play", "p_win", "expected_value"):
            conn.exec_driver_sql(f'ALTER TABLE opportunities DROP COLUMN "{column}"')
        old = [(1, "won", "service appeared"), (2, "closed", "condition cleared")]
        for cid, status, why in old:
            conn.exec_driver_sql(
                "INSERT INTO opportunities (customer_id, service_code, customer_number, "
                "customer_name, status, priority, score, reason, first_seen, last_seen, "
                "closed_on, close_reason, dismissed, reopened) VALUES (?, 'CPY', ?, 'X', ?, "
                "'High', 1, 'r', '2026-11-01', '2026-11-02', '2026-11-02', ?, 0, 0)",
                (cid, f"C{cid}", status, why))
    engine.dispose()
    store = StateStore(url)
    try:
        names = {c["name"] for c in sa.inspect(store.engine).get_columns(opportunities.name)}
        reasons = {r.customer_number: (r.status, r.close_reason)
                   for r in store.list_opportunities()}
    finally:
        store.close()
    assert {"play", "p_win", "expected_value"} <= names
    from keyservices.calls.lifecycle import REASON_UNVERIFIED

    assert reasons == {"C1": ("won", REASON_UNVERIFIED), "C2": ("closed", "condition cleared")}
    assert REASON_UNVERIFIED.startswith("service appeared (not verified")


def test_runs_learn_the_rates_again_once_they_are_older_than_the_setting(
        dealer: Path, tmp_path: Path) -> None:
    config = _config(tmp_path, dealer)
    backtest(config, as_of=AS_OF, save=True)
    later = AS_OF + dt.timedelta(days=8)
    with night.open_erp(config) as erp:
        assert not night.rates_for(config, erp, AS_OF + dt.timedelta(days=7))[1]
        assert night.rates_for(config, erp, later)[1]  # 8 days old: learned again
    (tmp_path / "config.yaml").write_text(
        (tmp_path / "config.yaml").read_text(encoding="utf-8")
        + "ranking:\n  learn_every_days: 0\n", encoding="utf-8")
    never = keyservices.load_config(tmp_path / "config.yaml")
    with night.open_erp(never) as erp:
        assert not night.rates_for(never, erp, later)[1]  # 0: the stored ones, however old


def test_dated_rows_counted_by_bucket_give_each_dates_numbers(dealer: Path,
                                                              tmp_path: Path) -> None:
    """GL lines, invoices and items sold are counted once, in the bucket of dates they fall
    in, and machines once, by their first date and the dates a line covers them, then added
    up per date: the same numbers as the night computes on that date alone."""
    from keyservices.calls import extras
    from keyservices.calls.backtest import as_of_dates
    from keyservices.calls.monitors import MonitorColumns
    from keyservices.engine.metrics import MetricTable, compile_rules, needed_codes
    from keyservices.erp.facts import raw_batches, read_codes
    from keyservices.erp.fold import float_rows
    from keyservices.erp.history import read_history
    from keyservices.erp.queries import metric_queries

    config = _config(tmp_path, dealer)
    dates = as_of_dates(AS_OF, 4)
    with night.open_erp(config) as erp, erp.engine.connect() as conn:
        erp.note_dated(conn)
        rules = erp.rules
        extra = [e for e in extras(rules) if not isinstance(e, MonitorColumns)]
        rebuilt = read_history(conn, erp.tables, rules, erp.attribute_id(), dates, extra)
        history = {f.as_of: f.metrics.values.copy() for f in rebuilt.facts}
        codes, _ = read_codes(conn, erp.tables, needed_codes(rules).union(
            *(e.codes_needed for e in extra)))
        compiled = compile_rules(rules, codes, [c for e in extra for c in e.columns(codes)])
        ids = next(iter(read_history(conn, erp.tables, rules, erp.attribute_id(), dates[:1],
                                     extra).facts)).metrics.ids
        for day in (dates[0], dates[-1]):
            alone = MetricTable.empty(compiled, ids)
            for stmt, columns in metric_queries(erp.tables, compiled, day).values():
                for batch in raw_batches(conn, stmt):
                    alone.put(columns, float_rows(batch))
            kinds = {c.kind for c in compiled.columns}
            assert {"gl", "items_sold", "equipment"} <= kinds
            assert any(f.column == "on_contract" for c in compiled.columns for f in c.filters)
            np.testing.assert_allclose(history[day], alone.values, rtol=1e-9, atol=1e-6)


def test_priority_rules_pin_boost_and_hide_on_top_of_the_ranking() -> None:
    from keyservices.calls.priority import apply
    from keyservices.resources import example_rules_dir
    from keyservices.rules import load_rules

    folder = Path(tempfile.mkdtemp())
    shutil.copytree(example_rules_dir(), folder / "rules")
    (folder / "rules" / "priority.yaml").write_text(
        "priority:\n  rules:\n"
        "    - {name: Pin DM, when: {services: [DM]}, pin: true}\n"
        "    - {name: Boost MPS, when: {services: [MPS]}, boost: 4}\n"
        "    - {name: Hide CPY, when: {services: [CPY]}, hide: true}\n", encoding="utf-8")
    rules = load_rules(folder / "rules")
    offers = [Offer("DM", "Document Management", "Low", "r", 0.0, 100.0),
              Offer("MIT", "Managed IT", "Low", "r", 0.0, 3000.0),
              Offer("MPS", "Managed Print", "Low", "r", 0.0, 1000.0),
              Offer("CPY", "Copiers", "Low", "r", 0.0, 9000.0)]
    frame = OpportunityFrame(np.arange(4), np.arange(4), offers, _people(4))
    out = ranked(scored(apply(rules, frame, {}, {}, {}), Rates(), {}, {}))
    # same chance for all (no history): by value, but DM pinned, MPS x4, CPY hidden
    assert [o.service_code for o in out] == ["DM", "MPS", "MIT"]
    assert "pinned to the top" in out[0].why[0] and "expected value x4" in out[1].why[0]
