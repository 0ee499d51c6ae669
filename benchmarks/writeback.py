"""Write throughput: keyservices' guarded, audited, chunked apply against a bare executemany.

Both write the same planned values into copies of the same demo ERP (SQLite), in the same run.
The tool does more per value (an audit row stored before the first chunk, settled after the
last; a commit per chunk), so the ratio is the price of being able to roll back and to survive
a kill at any moment.

Usage: python benchmarks/writeback.py [--customers 60000] [--chunk-size 5000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from keyservices.config import config_from_dict
from keyservices.demodb import build_demo_db
from keyservices.erp import ErpTables, connect
from keyservices.resources import example_rules_dir

AS_OF = dt.date(2026, 11, 24)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=60_000)
    parser.add_argument("--chunk-size", type=int, default=5000)
    args = parser.parse_args()
    import keyservices
    from keyservices.state import StateStore
    from keyservices.erp.writeback import apply_changes

    with tempfile.TemporaryDirectory(prefix="ks-write-") as tmp:
        root = Path(tmp)
        build_demo_db(root / "tool.sqlite", customers=args.customers, as_of=AS_OF)
        shutil.copy(root / "tool.sqlite", root / "bare.sqlite")
        config = config_from_dict({"erp": {"url": "sqlite:///tool.sqlite"},
                                   "rules": str(example_rules_dir()),
                                   "write": {"chunk_size": args.chunk_size}}, root)
        plan = keyservices.run(config, as_of=AS_OF, dry_run=True).changes
        attr = 2044

        engine = connect(config.erp.url)
        state = StateStore(config.state_url)
        run_id = state.begin_run(as_of=AS_OF, erp="bench", prop="ZCJKeyServices", mode="live",
                                 baseline=True)
        start = time.perf_counter()
        report = apply_changes(engine, ErpTables(), attr, plan, state=state, run_id=run_id,
                               chunk_size=args.chunk_size)
        tool = time.perf_counter() - start
        engine.dispose()
        state.close()

        rows = [(c.after, c.customer_id, attr, c.before) for c in plan]
        db = sqlite3.connect(root / "bare.sqlite")
        start = time.perf_counter()
        db.executemany('UPDATE "ARCustomerCustomProperties" SET "TextVal" = ? WHERE '
                       '"CustomerID" = ? AND "ShAttributeID" = ? AND "TextVal" IS ?', rows)
        db.commit()
        bare = time.perf_counter() - start
        db.close()

        assert len(report.applied) == len(plan), "the tool did not apply every value"
        n = len(plan)
        print(f"changed values        {n:>10,}")
        print(f"bare executemany      {bare:>9.3f}s  {n / bare:>10,.0f} values/s")
        print(f"keyservices apply     {tool:>9.3f}s  {n / tool:>10,.0f} values/s "
              f"(chunks of {args.chunk_size}, audited)")
        print(f"ratio tool / bare     {tool / bare:>9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
