"""The nightly run against the bare-SQL floor and a naive per-customer implementation.

For each size: builds a demo ERP (SQLite), then measures in the same process run
  * tool   : ``keyservices run --dry-run`` (read facts, classify, diff), in a subprocess, with its
             peak RSS;
  * floor  : the same aggregate SQL the tool issues, executed directly with the sqlite3 module and
             fetched, nothing else;
  * naive  : one query per customer per fact kind (what a row-by-row tool does), sizes <= --naive-max;
  * the number of statements the tool sends to the ERP.

Usage: python benchmarks/nightly.py [--sizes 10000,100000] [--naive-max 10000] [--json FILE]
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

from sqlalchemy.dialects import sqlite as sqlite_dialect

from keyservices.demodb import build_demo_db
from keyservices.erp import ErpTables
from keyservices.facts import customers_query, fact_queries
from keyservices.resources import example_rules_dir
from keyservices.rules import load_rules

AS_OF = dt.date(2026, 11, 24)
RSS = ("import resource, runpy, sys; sys.argv = ['keyservices'] + sys.argv[1:]; "
       "code = 0\ntry: runpy.run_module('keyservices', run_name='__main__')\n"
       "except SystemExit as e: code = e.code or 0\n"
       "print('RSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
       "sys.exit(code)")


def floor(db: Path) -> tuple[float, int]:
    rules = load_rules(example_rules_dir())
    tables = ErpTables()
    con = sqlite3.connect(db)
    start = time.perf_counter()
    categories = [r[0] for r in con.execute('SELECT "ModelCategory" FROM "ICModelCategories"')]
    attr = con.execute('SELECT "ShAttributeID" FROM "ShAttributes" WHERE "AttributeName" = ?',
                       ("ZCJKeyServices",)).fetchone()[0]
    statements = [customers_query(tables, rules, attr),
                  *fact_queries(tables, rules, categories, AS_OF).values()]
    rows = 0
    for stmt in statements:
        compiled = stmt.compile(dialect=sqlite_dialect.dialect(),
                                compile_kwargs={"render_postcompile": True})
        params = compiled.construct_params()
        processors = compiled._bind_processors  # dates as SQLAlchemy stores them in SQLite
        values = [processors[k](params[k]) if k in processors else params[k]
                  for k in compiled.positiontup]
        rows += len(con.execute(str(compiled), values).fetchall())
    elapsed = time.perf_counter() - start
    con.close()
    return elapsed, rows


def naive(db: Path) -> float:
    """One query per customer per fact kind, over the same data (a row-by-row tool)."""
    con = sqlite3.connect(db)
    start = time.perf_counter()
    ids = [r[0] for r in con.execute('SELECT "CustomerID" FROM "ARCustomers"')]
    since = (AS_OF - dt.timedelta(days=364)).isoformat()
    for cid in ids:
        con.execute('SELECT c."ModelCategory", COUNT(*) FROM "SCEquipments" e JOIN "ICModels" m '
                    'ON m."ModelID" = e."ModelID" JOIN "ICModelCategories" c ON c."CategoryID" = '
                    'm."CategoryID" WHERE COALESCE(e."LocationID", e."CustomerID") = ? AND '
                    'e."Active" = 1 GROUP BY c."ModelCategory"', (cid,)).fetchall()
        con.execute('SELECT k."ContractCodeID", COUNT(*) FROM "SCContracts" k WHERE '
                    'k."CustomerID" = ? AND k."Active" = 1 GROUP BY 1', (cid,)).fetchall()
        con.execute('SELECT a."AccountNumber", SUM(g."Amount") FROM "GLDetail" g JOIN '
                    '"GLAccounts" a ON a."GLID" = g."GLID" WHERE g."CustomerID" = ? AND '
                    'g."TransactionDate" >= ? GROUP BY 1', (cid, since)).fetchall()
        con.execute('SELECT "TextVal" FROM "ARCustomerCustomProperties" WHERE "CustomerID" = ? '
                    'AND "ShAttributeID" = 2044', (cid,)).fetchall()
    elapsed = time.perf_counter() - start
    con.close()
    return elapsed


def tool(folder: Path) -> tuple[float, int, int]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", RSS, "-q", "run", "-c",
                           str(folder / "config.yaml"), "--dry-run", "--json", "--as-of",
                           AS_OF.isoformat()], capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - start
    rss = int(next(line.split()[1] for line in proc.stderr.splitlines()
                   if line.startswith("RSS_KB")))
    return elapsed, json.loads(proc.stdout)["statements"], rss


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--naive-max", type=int, default=10_000)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="ks-bench-") as tmp:
        for size in (int(x) for x in args.sizes.split(",")):
            folder = Path(tmp) / str(size)
            folder.mkdir()
            t0 = time.perf_counter()
            build_demo_db(folder / "erp.sqlite", customers=size, as_of=AS_OF)
            build = time.perf_counter() - t0
            shutil.copytree(example_rules_dir(), folder / "rules")
            (folder / "config.yaml").write_text("erp: {url: 'sqlite:///erp.sqlite'}\n",
                                                encoding="utf-8")
            floor_s, rows = floor(folder / "erp.sqlite")
            tool_s, statements, rss = tool(folder)
            naive_s = naive(folder / "erp.sqlite") if size <= args.naive_max else None
            row = {"customers": size, "build_s": round(build, 2), "tool_s": round(tool_s, 2),
                   "floor_s": round(floor_s, 2), "tool_over_floor": round(tool_s / floor_s, 2),
                   "naive_s": None if naive_s is None else round(naive_s, 2),
                   "naive_over_tool": None if naive_s is None else round(naive_s / tool_s, 2),
                   "statements": statements, "rows_fetched": rows, "peak_rss_mb": rss // 1024}
            results.append(row)
            print(json.dumps(row))
    print()
    print("| customers | build s | tool s | floor s | tool/floor | naive s | naive/tool | "
          "statements | peak RSS MB |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        print(f"| {r['customers']:,} | {r['build_s']} | {r['tool_s']} | {r['floor_s']} | "
              f"{r['tool_over_floor']} | {r['naive_s'] or '-'} | {r['naive_over_tool'] or '-'} | "
              f"{r['statements']} | {r['peak_rss_mb']} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
