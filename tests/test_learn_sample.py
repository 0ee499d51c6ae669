"""The win rates of a large dealer learned from a sample of its customers (#24, #26).

At a million customers the learning took 349 s of a 398 s night and set its peak memory; rates per
cell are well served by a few hundred thousand customers. Above ``ranking.learn_customers`` the
history is read for every k-th customer group (a parent with its locations) only. These tests pin
that the sample is deterministic, keeps each parent with its locations, changes the rates only
by sampling (the full history restricted to the same customers learns exactly the same), says so
in the backtest's output, and is off below the limit.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import keyservices
from keyservices import night
from keyservices.calls import extras
from keyservices.calls.backtest import as_of_dates, run_backtest
from keyservices.calls.monitors import MonitorColumns
from keyservices.cli import cli
from keyservices.demodb import build_demo_db
from keyservices.engine.metrics import MetricTable
from keyservices.erp.history import read_history, restrict, sample_groups
from keyservices.model import CustomerTable, Facts
from keyservices.progress import Timings

from .conftest import AS_OF, write_config

MONTHS = 6


@pytest.fixture(scope="module")
def dealer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo dealer of 2,000 customers with dated adoption and parents with locations."""
    folder = tmp_path_factory.mktemp("sample-dealer")
    build_demo_db(folder / "erp.sqlite", customers=2000, as_of=AS_OF)
    return folder / "erp.sqlite"


def _config(tmp_path: Path, db: Path, ranking: str = "") -> keyservices.Config:
    tmp_path.mkdir(parents=True, exist_ok=True)
    copy = tmp_path / "erp.sqlite"
    shutil.copy(db, copy)
    return keyservices.load_config(write_config(tmp_path, f"sqlite:///{copy.as_posix()}",
                                                f"ranking:\n{ranking}" if ranking else ""))


def _table(parents: list[int]) -> CustomerTable:
    """Customers 1..n; ``parents[i]`` is customer i+1's parent id (-1: none)."""
    n = len(parents)
    columns = {name: np.array([None] * n, dtype=object) for name in CustomerTable.FIELDS}
    columns["parent_id"] = np.array(parents, dtype=np.int64)
    columns["active"] = np.ones(n, dtype=bool)
    return CustomerTable(np.arange(1, n + 1), columns)


# -- the rule -------------------------------------------------------------------------------------
def test_the_sample_is_every_kth_group_in_id_order_with_its_locations() -> None:
    # parents 1, 5, 9; 2-4 are locations of 1, 6-7 of 5; 8 and 10-12 stand alone
    parents = [-1, 1, 1, 1, -1, 5, 5, -1, -1, 9, -1, -1]
    table = _table(parents)
    assert sample_groups(table, 0) is None and sample_groups(table, 12) is None
    keep = sample_groups(table, 6)  # k = 2: groups 1, 5, 8, 9, 11, 12 -> keep 1st, 3rd, 5th
    assert keep is not None
    assert table.ids[keep].tolist() == [1, 2, 3, 4, 8, 11]
    again = sample_groups(_table(parents), 6)
    assert again is not None and np.array_equal(keep, again)  # deterministic
    kept = restrict(table, keep)
    assert kept.ids.tolist() == [1, 2, 3, 4, 8, 11]
    assert kept.columns["parent_id"].tolist() == [-1, 1, 1, 1, -1, -1]


def test_a_demo_dealers_sample_keeps_every_parent_with_its_locations(dealer: Path,
                                                                    tmp_path: Path) -> None:
    from keyservices.erp.facts import read_customers

    config = _config(tmp_path, dealer)
    with night.open_erp(config) as erp, erp.engine.connect() as conn:
        table = read_customers(conn, erp.tables, erp.rules, erp.attribute_id(), AS_OF)
    parent = table.columns["parent_id"]
    assert (parent >= 0).sum() > 50  # the demo has locations
    keep = sample_groups(table, 500)  # 2,000+ customers: every 5th group or so
    assert keep is not None and 0 < keep.sum() < len(table)
    group = np.where(parent >= 0, parent, table.ids)
    kept_groups = set(group[keep].tolist())
    assert not kept_groups & set(group[~keep].tolist())  # a group is kept whole or not at all
    assert 0.5 * len(table) / 5 < keep.sum() < 2 * len(table) / 5


# -- what it learns -------------------------------------------------------------------------------
def _restricted(history: Iterator[Facts], ids: np.ndarray) -> Iterator[Facts]:
    """Each date's facts of the full history, cut to the customers ``ids``."""
    for facts in history:
        keep = np.isin(facts.customers.ids, ids)  # type: ignore[attr-defined]
        customers = restrict(facts.customers, keep)  # type: ignore[arg-type]
        m = facts.metrics
        yield Facts(facts.as_of, customers, {}, facts.categories,
                    MetricTable(m.compiled, m.ids[keep], m.values[keep]), facts.codes,
                    {"active": customers.columns["active"],
                     "prospect": customers.columns["prospect"],
                     "parent": customers.columns["parent_id"]})


def test_the_sampled_rates_are_the_full_historys_rates_of_the_sample(dealer: Path,
                                                                     tmp_path: Path) -> None:
    """Learned from the sample, exactly what the full history cut to the same customers
    learns: the rates differ from all customers' only by which customers are in it."""
    config = _config(tmp_path, dealer)
    points = as_of_dates(AS_OF, MONTHS)
    with night.open_erp(config) as erp:
        extra = [e for e in extras(erp.rules) if not isinstance(e, MonitorColumns)]
        with erp.engine.connect() as conn:
            erp.note_dated(conn)
            sampled = read_history(conn, erp.tables, erp.rules, erp.attribute_id(), points,
                                   extra, limit=700)
            assert sampled.sample is not None and sampled.sample.every == 3
            ids = None
            few = []
            for facts in sampled.facts:
                ids = facts.customers.ids  # type: ignore[attr-defined]
                few.append(facts)
            small = run_backtest(iter(few), erp.rules, limits=sampled.limits)
            full = read_history(conn, erp.tables, erp.rules, erp.attribute_id(), points, extra)
            assert full.sample is None
            assert ids is not None
            cut = run_backtest(_restricted(full.facts, ids), erp.rules)
            everyone = read_history(conn, erp.tables, erp.rules, erp.attribute_id(), points,
                                    extra)
            all_rates = run_backtest(everyone.facts, erp.rules).rates
    assert small.rates.rows() == cut.rates.rows() and small.rates.rows()
    assert small.overall.to_dict() == cut.overall.to_dict()
    assert small.rates.offered < all_rates.offered  # a third of the customers, fewer calls
    n = sampled.sample.total
    assert small.limits[0].startswith(f"learned from {len(ids):,} of {n:,} customers (every "
                                      "3rd customer group in id order")


def test_the_backtest_command_says_the_sample(dealer: Path, tmp_path: Path) -> None:
    config = _config(tmp_path, dealer, "  learn_customers: 700\n")
    path = config.config_path
    assert path is not None
    runner = CliRunner()
    got = runner.invoke(cli, ["backtest", "-c", str(path), "--months", str(MONTHS),
                              "--as-of", AS_OF.isoformat(), "--json"])
    assert got.exit_code == 0, got.output
    data = json.loads(got.output)
    assert data["limits"][0].startswith("learned from ")
    assert "every 3rd customer group" in data["limits"][0]
    text = runner.invoke(cli, ["backtest", "-c", str(path), "--months", str(MONTHS),
                               "--as-of", AS_OF.isoformat()])
    assert text.exit_code == 0, text.output
    assert "The sample, and what the ERP cannot rebuild:\n  - learned from " in text.output
    assert "ranking.learn_customers: 700" in text.output


def test_a_night_that_learns_uses_the_sample_and_below_the_limit_all(dealer: Path,
                                                                     tmp_path: Path) -> None:
    """The night learns with the same setting; the default (250,000) is far above the demo's
    customers, so it learns from all of them exactly as a limit of 0 does."""
    small = _config(tmp_path / "small", dealer, "  learn_customers: 700\n")
    with night.open_erp(small) as erp:
        learned = night.learn(erp, AS_OF, MONTHS, None, Timings())[0]
    assert learned.limits[0].startswith("learned from ")
    default = _config(tmp_path / "default", dealer)
    assert default.ranking.learn_customers == 250_000
    off = _config(tmp_path / "off", dealer, "  learn_customers: 0\n")
    got = []
    for config in (default, off):
        with night.open_erp(config) as erp:
            result = night.learn(erp, AS_OF, MONTHS, None, Timings())[0]
        assert not any(x.startswith("learned from") for x in result.limits)
        got.append(result)
    assert [(r.rates.rows(), r.overall.to_dict(), r.limits) for r in got] == \
        [(got[1].rates.rows(), got[1].overall.to_dict(), got[1].limits)] * 2
    assert learned.rates.offered < got[0].rates.offered
