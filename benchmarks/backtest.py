"""The backtest: its cost against one dry run, and its ranking against the true chances.

Builds the demo ERP (its two years of adoption follow a documented model,
``keyservices.demodb.adoption``), then, in one invocation:

* **cost**: ``keyservices backtest --save`` against ``keyservices run --dry-run`` (which then
  ranks with the saved rates), each in a subprocess with its peak RSS, alternating over
  ``--rounds``; the target is backtest <= 3x one dry run and peak RSS <= 1 GB;
* **quality**: on every scored as-of date, the precision of the top 100 of the learned
  ranking (by expected value, as the digest lists, and by p_win alone) against a ranking by
  the true chances (the generating model's own 90-day chance for each call: what no dealer
  knows), the static priority order and a random order. The target is learned >= 0.8x true.
  Renewal and monitor calls are left out of this comparison: the demo draws their outcomes as
  contract revisions (``keyservices.demodb.revisions``) and as its GL and invoices, not as a
  chance per call; the backtest's own table shows how their ranking does.

Usage: python benchmarks/backtest.py [--customers 100000] [--rounds 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nightly import RSS, write_config

import keyservices
from keyservices import night
from keyservices.calls.monitor_calls import is_monitor_play
from keyservices.calls.renewal import RENEWAL
from keyservices.demodb import build_demo_db
from keyservices.demodb.adoption import chance, cover_chance
from keyservices.progress import Timings

AS_OF = dt.date(2026, 11, 24)


def cli(config: Path, *args: str) -> dict[str, Any]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", RSS, *args, "-c", str(config), "--as-of",
                           AS_OF.isoformat()], capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{args} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    rss = int(next(line.split()[1] for line in proc.stderr.splitlines()
                   if line.startswith("RSS_KB")))
    return {"seconds": elapsed, "rss_mb": rss // 1024, "stdout": proc.stdout}


def sites_of(db: Path) -> dict[int, int]:
    """Parent customer id -> its sites (itself and its locations)."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute('SELECT COALESCE("LocationID", "CustomerID"), COUNT(*) FROM '
                            '"ARCustomers" GROUP BY 1').fetchall()
    return {int(c): int(n) for c, n in rows}


def true_chance(cell: tuple[str, ...], sites: int) -> float:
    """The generating model's chance that this call is won within 90 days (3 periods)."""
    play, service, industry, _tier, _fleet, held = cell
    per_period = (cover_chance(sites) if play == "uncovered_machines"
                  else chance(service, industry, sites, held.split("+")))
    return 1 - (1 - per_period) ** 3


def quality(config_path: Path, db: Path) -> dict[str, Any]:
    config = keyservices.load_config(config_path)
    sites = sites_of(db)
    rng = np.random.default_rng(7)
    with night.open_erp(config) as erp:
        result, _ = night.learn(erp, AS_OF, 12, None, Timings(), keep=True)
    tops: dict[str, list[float]] = {"expected_value": [], "p_win": [], "true": [],
                                    "static": [], "random": []}
    for tr, p, ev in result.scored:
        # the adoption model's plays: a renewal's outcome is drawn by the contract revisions
        # (demodb.revisions), a monitor's by the demo's GL and invoices, neither by a chance
        # per call to rank by
        drawn = np.array([tr.cells[a][0] != RENEWAL and not is_monitor_play(tr.cells[a][0])
                          for a in tr.at.tolist()], dtype=bool)
        rows = np.flatnonzero(drawn)
        truth = np.array([true_chance(tr.cells[a], sites.get(int(c), 1))
                          for a, c in zip(tr.at[rows].tolist(), tr.customer[rows].tolist())])
        place = np.full(len(drawn), -1, dtype=np.int64)
        place[rows] = np.arange(len(rows))
        static = place[tr.static]
        orders = {"expected_value": np.lexsort((-tr.value[rows], -ev[rows])),
                  "p_win": np.lexsort((-tr.value[rows], -p[rows])),
                  "true": np.argsort(-truth, kind="stable"),
                  "static": static[static >= 0],
                  "random": rng.permutation(len(rows))}
        won = tr.won[rows]
        for name, order in orders.items():
            tops[name].append(float(won[order[:100]].mean()))
    out = {name: round(float(np.mean(v)), 4) for name, v in tops.items()}
    out["dates"] = len(result.scored)
    out["ratio_ev_to_true"] = round(out["expected_value"] / out["true"], 3)
    out["ratio_p_to_true"] = round(out["p_win"] / out["true"], 3)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--keep", type=Path, default=None, help="folder to keep (not deleted)")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="ks-backtest-"))
    root.mkdir(parents=True, exist_ok=True)
    db = root / "erp.sqlite"
    try:
        if not db.exists():
            build_demo_db(db, customers=args.customers, as_of=AS_OF)
        config = write_config(root, "sqlite:///erp.sqlite")
        runs: dict[str, list[dict[str, Any]]] = {"backtest": [], "dry_run": []}
        for r in range(args.rounds):
            order = ["backtest", "dry_run"] if r % 2 == 0 else ["dry_run", "backtest"]
            if r == 0:
                order = ["backtest", "dry_run"]  # the dry run ranks with the saved rates
            for name in order:
                argv = ["backtest", "--save", "--json"] if name == "backtest" else \
                    ["run", "--dry-run"]
                runs[name].append(cli(config, *argv))
        backtest = min(x["seconds"] for x in runs["backtest"])
        dry = min(x["seconds"] for x in runs["dry_run"])
        # each round's pair too: this machine's speed wanders (its memory is handed back and
        # forth with the host), so the best of each and the median pair are both shown
        pairs = [b["seconds"] / d["seconds"] for b, d in zip(runs["backtest"], runs["dry_run"])]
        cost = {"customers": args.customers, "backtest_s": round(backtest, 2),
                "dry_run_s": round(dry, 2), "ratio": round(backtest / dry, 2),
                "median_pair_ratio": round(float(np.median(pairs)), 2),
                "rounds": {k: [round(x["seconds"], 2) for x in v] for k, v in runs.items()},
                "peak_rss_mb": max(x["rss_mb"] for v in runs.values() for x in v),
                "statements": json.loads(runs["backtest"][-1]["stdout"])["statements"]}
        print(json.dumps({"cost": cost, "quality": quality(config, db)}, indent=2))
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
