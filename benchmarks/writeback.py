"""Write throughput: keyservices' guarded, audited, chunked apply against a bare executemany.

Both write the same planned values into copies of the same demo ERP (SQLite), in the same run.
The tool does more per value (an audit row stored before the first chunk, settled after the
last; a commit per chunk), so the ratio is the price of being able to roll back and to survive
a kill at any moment.

Two ways to run it:

  default       ``keyservices run`` live in a subprocess (the night-1 baseline, as
                ``nightly.py``'s apply step runs it), its "write values" step against a bare
                ``executemany`` of the same UPDATEs in plan order, one transaction, on a copy
                made before: the ratio ``nightly.py`` reports, without the rest of it;
  --in-process  ``apply_changes`` called directly, with the time of its parts (audit rows
                built, waits for the audit stored ahead, ERP chunks, settle): where the time
                goes.

Each round starts from fresh copies; the rounds alternate which side runs first. Like
``nightly.py``, the copies are not flushed to disk first, so the first commit on each side also
writes out its copy's pages; ``--sync`` flushes them before measuring (both sides then pay
only for their own writes, and the ratio is higher).

Usage: python benchmarks/writeback.py [--erp pristine.sqlite | --customers 60000]
           [--rounds 3] [--chunk-size 5000] [--in-process] [--sync]
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from keyservices.demodb import build_demo_db
from keyservices.progress import gc_paused
from keyservices.resources import example_rules_dir

AS_OF = dt.date(2026, 11, 24)
ATTR = 2044
BARE = ('UPDATE "ARCustomerCustomProperties" SET "TextVal" = ? WHERE "CustomerID" = ? AND '
        '"ShAttributeID" = 2044 AND "TextVal" IS ?')


def write_config(folder: Path, chunk_size: int) -> Path:
    path = folder / "config.yaml"
    path.write_text(f"erp: {{url: 'sqlite:///erp.sqlite'}}\n"
                    f"rules: '{example_rules_dir().as_posix()}'\n"
                    f"state: {{dir: state}}\ndigest: {{outbox: outbox}}\nmode: live\n"
                    f"write: {{chunk_size: {chunk_size}}}\n", encoding="utf-8")
    return path


def bare(db: Path, rows: list[tuple[Any, ...]]) -> float:
    """The floor: one executemany of the guarded UPDATEs, one commit, nothing else."""
    con = sqlite3.connect(db)
    start = time.perf_counter()
    con.executemany(BARE, rows)
    con.commit()
    elapsed = time.perf_counter() - start
    con.close()
    return elapsed


def live_run(config: Path) -> tuple[float, int]:
    """``keyservices run`` (live) in a subprocess: its "write values" step and values written."""
    proc = subprocess.run([sys.executable, "-m", "keyservices", "run", "-c", str(config),
                           "--no-email", "--as-of", AS_OF.isoformat(), "--force"],
                          check=False, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"keyservices run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    step = re.search(r"write values ([\d.]+)s", proc.stdout)
    written = re.search(r"(\d[\d,]*) values written", proc.stdout)
    if not step or not written:
        raise RuntimeError(f"no write step in the run's output:\n{proc.stdout[-3000:]}")
    return float(step.group(1)), int(written.group(1).replace(",", ""))


def in_process(folder: Path, plan: list[Any], chunk_size: int) -> tuple[float, dict[str, float]]:
    """``apply_changes`` called directly, each part timed."""
    from keyservices.erp import ErpTables, connect, writeback
    from keyservices.state import StateStore

    parts: dict[str, float] = {}

    def timed(obj: Any, name: str, label: str) -> None:
        real = getattr(obj, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return real(*args, **kwargs)
            finally:
                parts[label] = parts.get(label, 0.0) + time.perf_counter() - start
        setattr(obj, name, call)

    engine = connect(f"sqlite:///{(folder / 'erp.sqlite').as_posix()}")
    state = StateStore(f"sqlite:///{(folder / 'state.sqlite').as_posix()}")
    from keyservices.state import AuditRows
    real_rows = AuditRows.statements
    timed(AuditRows, "statements", "audit rows built")
    timed(writeback.AuditAhead, "stored", "waits for the audit")  # the first chunk's stored here
    timed(state, "settle", "settle")
    real_chunk = writeback._write_chunk
    real_stored = writeback.AuditAhead.stored
    timed(writeback, "_write_chunk", "ERP chunks")
    run_id = state.begin_run(as_of=AS_OF, erp="bench", prop="ZCJKeyServices", mode="live",
                             baseline=True)
    planned = copy.deepcopy(plan)  # apply_changes sets each change's status
    try:
        with gc_paused():  # as in a run
            start = time.perf_counter()
            report = writeback.apply_changes(engine, ErpTables(), ATTR, planned, state=state,
                                             run_id=run_id, chunk_size=chunk_size)
            seconds = time.perf_counter() - start
    finally:
        writeback._write_chunk = real_chunk
        writeback.AuditAhead.stored = real_stored  # type: ignore[method-assign]
        AuditRows.statements = real_rows  # type: ignore[method-assign]
        engine.dispose()
        state.close()
    assert len(report.applied) == len(plan), "the tool did not apply every value"
    return seconds, parts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--erp", type=Path, default=None,
                        help="a demo database as built by 'keyservices demo-db' (copied, never "
                             "changed) instead of building one")
    parser.add_argument("--customers", type=int, default=60_000)
    parser.add_argument("--chunk-size", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--in-process", action="store_true")
    parser.add_argument("--sync", action="store_true",
                        help="flush the fresh copies to disk before measuring")
    args = parser.parse_args()
    import keyservices

    with tempfile.TemporaryDirectory(prefix="ks-write-") as tmp:
        root = Path(tmp)
        pristine = root / "pristine.sqlite"
        if args.erp:
            shutil.copy(args.erp, pristine)
        else:
            build_demo_db(pristine, customers=args.customers, as_of=AS_OF)
        folder = root / "tool"
        folder.mkdir()
        shutil.copy(pristine, folder / "erp.sqlite")
        config = write_config(folder, args.chunk_size)
        plan = keyservices.run(keyservices.load_config(config), dry_run=True, as_of=AS_OF).changes
        rows = [(c.after, c.customer_id, c.before) for c in plan]
        print(f"changed values {len(plan):,}; chunk_size {args.chunk_size}; "
              f"{'apply_changes in process' if args.in_process else 'keyservices run, live'}")
        ratios = []
        for n in range(1, args.rounds + 1):
            shutil.rmtree(folder)
            folder.mkdir()
            shutil.copy(pristine, folder / "erp.sqlite")
            shutil.copy(pristine, root / "bare.sqlite")
            config = write_config(folder, args.chunk_size)
            if args.sync and hasattr(os, "sync"):
                os.sync()
            bare_first = n % 2 == 0
            if bare_first:
                floor = bare(root / "bare.sqlite", rows)
            parts: dict[str, float] = {}
            if args.in_process:
                tool, parts = in_process(folder, plan, args.chunk_size)
            else:
                tool, written = live_run(config)
                assert written == len(plan), f"the run wrote {written} of {len(plan)} values"
            if not bare_first:
                floor = bare(root / "bare.sqlite", rows)
            ratios.append(tool / floor)
            detail = "  ".join(f"{k} {v:.3f}s" for k, v in parts.items())
            print(f"round {n}: write {tool:.3f}s  bare executemany {floor:.3f}s  "
                  f"write/bare {tool / floor:.2f}  {detail}", flush=True)
        print(f"write/bare: {', '.join(f'{r:.2f}' for r in ratios)} "
              f"(median {sorted(ratios)[len(ratios) // 2]:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
