"""Kill a real ``keyservices run`` at random moments and check that nothing is ever half-written.

For every kill point: a fresh copy of a demo ERP, a run in a subprocess, a hard kill after a random
delay (SIGKILL on Linux, TerminateProcess on Windows), then three checks:

  a. every customer holds either its value from before the run or the value the run would write;
  b. the audit agrees with the ERP: every value that differs from before has an audit row
     (pending or applied) with that after-value, and every row marked applied is in the ERP;
  c. the next, uninterrupted run converges to the same values as a run never interrupted, and
     leaves no pending audit row.

Usage: python benchmarks/fault_injection.py [--kill-points 20] [--customers 3000] [--seed 1]
Exit 0 when every kill point passes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

AS_OF = dt.date(2026, 11, 24)
ATTRIBUTE = "ZCJKeyServices"


def values(erp: Path) -> dict[int, str | None]:
    with sqlite3.connect(erp) as db:
        return dict(db.execute(
            'SELECT cp."CustomerID", cp."TextVal" FROM "ARCustomerCustomProperties" cp '
            'JOIN "ShAttributes" a ON a."ShAttributeID" = cp."ShAttributeID" '
            'WHERE a."AttributeName" = ?', (ATTRIBUTE,)))


def audit(state: Path) -> list[tuple[int, str | None, str | None, str]]:
    if not state.exists():
        return []
    with sqlite3.connect(state) as db:
        try:
            # a row reads as pending while its run is not settled (runs.unsettled)
            return list(db.execute(
                'SELECT c.customer_id, c."before", c."after", CASE WHEN r.unsettled THEN '
                "'pending' ELSE c.status END FROM changes c JOIN runs r ON r.id = c.run_id"))
        except sqlite3.OperationalError:  # killed before the state store made its tables
            return []


def run(folder: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "keyservices", "-q", "run", "-c",
                             str(folder / "config.yaml"), "--as-of", AS_OF.isoformat(),
                             "--force"],  # a live night as of a past date
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def prepare(base: Path, customers: int, chunk: int, seed: int) -> None:
    from keyservices.demodb import build_demo_db
    from keyservices.resources import example_rules_dir

    base.mkdir(parents=True)
    build_demo_db(base / "erp.sqlite", customers=customers, seed=seed, as_of=AS_OF)
    shutil.copytree(example_rules_dir(), base / "rules")
    (base / "config.yaml").write_text(
        "mode: live\nerp: {url: 'sqlite:///erp.sqlite'}\n"
        f"write: {{chunk_size: {chunk}}}\n"
        "digest: {send_empty: true}\n", encoding="utf-8")


def check(folder: Path, before: dict, reference: dict) -> tuple[list[str], int]:
    """Checks a and b on a killed run's folder; returns the problems and the values written."""
    problems = []
    now = values(folder / "erp.sqlite")
    rows = audit(folder / ".keyservices" / "state.sqlite")
    written = sum(1 for cid in now if now[cid] != before[cid])
    for cid, value in now.items():
        if value not in (before[cid], reference[cid]):
            problems.append(f"a: customer {cid} holds {value!r}, neither before nor after")
    covered = {(cid, after) for cid, _, after, status in rows if status in ("pending", "applied")}
    for cid, value in now.items():
        if value != before[cid] and (cid, value) not in covered:
            problems.append(f"b: customer {cid} changed to {value!r} without an audit row")
    for cid, _, after, status in rows:
        if status == "applied" and now[cid] != after:
            problems.append(f"b: audit says {cid} applied {after!r}, ERP holds {now[cid]!r}")
    return problems, written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kill-points", type=int, default=20)
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--chunk-size", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fractions", type=str, default="",
                        help="comma-separated kill moments as fractions of a full run's time "
                             "(instead of random ones)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="ks-faults-") as tmp:
        root = Path(tmp)
        prepare(root / "base", args.customers, args.chunk_size, args.seed)
        before = values(root / "base" / "erp.sqlite")
        shutil.copytree(root / "base", root / "reference")
        start = time.perf_counter()
        proc = run(root / "reference")
        _, err = proc.communicate()
        full = time.perf_counter() - start
        if proc.returncode != 0:
            print(err.decode(errors="replace"), file=sys.stderr)
            return 1
        reference = values(root / "reference" / "erp.sqlite")
        changes = sum(1 for cid in reference if reference[cid] != before[cid])
        print(f"uninterrupted run: {full:.2f}s, {changes} values written "
              f"(chunks of {args.chunk_size})")
        fractions = ([float(x) for x in args.fractions.split(",")] if args.fractions else
                     [rng.uniform(0.3, 1.0) for _ in range(args.kill_points)])
        passed = 0
        print(f"{'kill':>4} {'at s':>6} {'written':>8}  result")
        for i, fraction in enumerate(fractions, 1):
            folder = root / f"kill{i:03d}"
            shutil.copytree(root / "base", folder)
            proc = run(folder)
            time.sleep(fraction * full)
            proc.kill()  # SIGKILL / TerminateProcess: no cleanup code runs
            proc.wait()
            problems, written = check(folder, before, reference)
            rerun = run(folder)
            _, err = rerun.communicate()
            if rerun.returncode != 0:
                problems.append(f"c: the next run failed: {err.decode(errors='replace')[-300:]}")
            elif values(folder / "erp.sqlite") != reference:
                problems.append("c: the next run did not converge to the uninterrupted result")
            elif any(status == "pending"
                     for *_, status in audit(folder / ".keyservices" / "state.sqlite")):
                problems.append("c: pending audit rows remain after the next run")
            ok = not problems
            passed += ok
            print(f"{i:>4} {fraction * full:>6.2f} {written:>8}  "
                  f"{'ok' if ok else 'FAILED: ' + '; '.join(problems[:3])}")
            shutil.rmtree(folder, ignore_errors=True)
        print(f"{passed} passed, {len(fractions) - passed} failed")
        return 0 if passed == len(fractions) else 1


if __name__ == "__main__":
    sys.exit(main())
