"""The nightly run at 10k, 100k, 250k and 1M customers against the bare-SQL floor and a naive reader.

Every figure in the table is measured in the same invocation, on this machine:

  tool       ``keyservices run --dry-run`` in a subprocess (process start, imports, read facts,
             classify, plan, opportunities, summary), with its peak RSS and per-step timings;
  floor      the statements that produce the facts the rules need (captured from a run of the
             tool on the same kind of database), executed with the bare driver (sqlite3 /
             psycopg) and fetched, nothing else: what any implementation pays to get the facts
             out of the database. The data-shape check's statements are work only the tool
             does: they are left out of the floor the targets are judged against, and timed
             beside it ("facts + checks");
  naive      one query per customer per kind of fact (equipment, contracts, GL, items sold, the
             current value), index-friendly, the shape of a row-by-row tool; at --naive-max and
             below, on SQLite and on PostgreSQL over TCP;
  apply      a real live run at --apply-size (the baseline writes every changed value through
             the guarded, audited, chunked path) against a bare ``executemany`` of the same
             UPDATEs on a copy of the database, on SQLite and on PostgreSQL (through the
             proxy); then a second live run, which must write 0;
  baseline   at the largest size, night 1 as a dry run and then live: live/dry, the digest step,
             peak RSS;
  gl x2      the largest size again with every GL line duplicated (twice the history rows):
             peak RSS must stay flat.

Usage:
  python benchmarks/nightly.py                         # 10k, 100k, 250k, 1M (about 40 minutes)
  python benchmarks/nightly.py --sizes 10000 --pg-sizes 10000 --pg-tool-size 10000 \
      --apply-size 10000 --no-gl2
Results: benchmarks/results.json and the tables in benchmarks/README.md (--write), ending with
the targets (``targets.py``), each met or missed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pgsupport import (
    bare_apply_pg,
    copy_database,
    floor_pg,
    latency_proxy,
    pg_database,
    postgres,
    round_trip,
)
from targets import targets, targets_table

import keyservices
from keyservices.demodb import build_demo_db, populate, simulate_next_day
from keyservices.erp.facts import NATIVE_ROWS
from keyservices.resources import example_rules_dir

AS_OF = dt.date(2026, 11, 24)  # night 1: the demo data's date; the baseline is written
NIGHT2 = AS_OF + dt.timedelta(days=1)  # night 2, measured: one simulated day of ERP activity
HERE = Path(__file__).resolve().parent
# Peak RSS of the tool's own process: VmHWM (reset at exec) where /proc exists; ru_maxrss would
# also count the benchmark's own memory, which a forked child inherits as its starting peak.
RSS = ("import resource, runpy, sys; sys.argv = ['keyservices'] + sys.argv[1:]; "
       "code = 0\ntry: runpy.run_module('keyservices', run_name='__main__')\n"
       "except SystemExit as e: code = e.code or 0\n"
       "try: kb = [int(l.split()[1]) for l in open('/proc/self/status') "
       "if l.startswith('VmHWM')][0]\n"
       "except OSError: kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
       "print('RSS_KB', kb, file=sys.stderr)\n"
       "sys.exit(code)")


# -- the pieces --------------------------------------------------------------------------------
def write_config(folder: Path, url: str, extra: str = "") -> Path:
    path = folder / "config.yaml"
    path.write_text(f"erp: {{url: '{url}'}}\nrules: '{example_rules_dir().as_posix()}'\n"
                    f"state: {{dir: state}}\ndigest: {{outbox: outbox}}\n{extra}",
                    encoding="utf-8")
    return path


def capture(url: str, folder: Path, as_of: dt.date | None = None) -> list[tuple[str, Any]]:
    """The statements a dry run sends to the ERP, exactly as the driver receives them."""
    config = keyservices.load_config(write_config(folder, url))
    seen: list[tuple[str, Any]] = []
    state = sa.engine.make_url(str(config.state_url)).database

    def listen(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
               executemany: bool) -> None:
        # the ERP's reads: not the state store's, not a savepoint of the data-shape check
        if conn.engine.url.database != state and statement.lstrip()[:6].upper() in (
                "SELECT", "WITH "):
            seen.append((statement, parameters))

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", listen)
    try:
        keyservices.run(config, dry_run=True, as_of=as_of or NIGHT2)
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", listen)
    return seen


def is_check(sql: str) -> bool:
    """A statement only the tool sends: the data-shape check (SQLite's typeof() scan, a
    server's catalogue, the enrichment tables' presence). The facts floor leaves these out: a
    floor is the least work that gives the answer (#26)."""
    text = sql.lower()
    return any(mark in text for mark in ("typeof(", "information_schema", "pg_catalog",
                                         "sqlite_master", "sys.columns", "sys.objects"))


def facts_only(statements: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """The statements that produce the numbers the rules need, and nothing else."""
    return [(sql, params) for sql, params in statements if not is_check(sql)]


def floor_sqlite(db: Path, statements: list[tuple[str, Any]]) -> tuple[float, int]:
    con = sqlite3.connect(db)
    start = time.perf_counter()
    rows = 0
    for sql, params in statements:
        cur = con.execute(sql, params)
        while batch := cur.fetchmany(NATIVE_ROWS):  # the tool's batch: faster than 20,000
            rows += len(batch)
    elapsed = time.perf_counter() - start
    con.close()
    return elapsed, rows


def tool(config: Path, *args: str, as_of: dt.date | None = None) -> dict[str, Any]:
    """One CLI run in a subprocess: wall time, peak RSS, statements and per-step timings."""
    start = time.perf_counter()
    # the demo data's dates are in the past: a live night as of one needs --force
    proc = subprocess.run([sys.executable, "-c", RSS, "run", "-c", str(config), "--as-of",
                           (as_of or NIGHT2).isoformat(), "--force", *args],
                          capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0,):
        raise RuntimeError(f"keyservices run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    rss = int(next(line.split()[1] for line in proc.stderr.splitlines()
                   if line.startswith("RSS_KB")))
    m = re.search(r"(\d+) statements read the ERP; (.*)", proc.stdout)
    written = re.search(r"(\d[\d,]*) values written", proc.stdout)
    steps = {k.strip(): float(v) for k, v in re.findall(r"([a-zA-Z' ]+?) ([\d.]+)s",
                                                        m.group(2))} if m else {}
    return {"seconds": elapsed, "rss_mb": rss // 1024, "statements": int(m.group(1)) if m else None,
            "steps": steps,
            "written": int(written.group(1).replace(",", "")) if written else 0}


NAIVE = {  # one query per customer per kind of fact; each uses an index on the customer
    "equipment": 'SELECT m."CategoryID", COUNT(*) FROM "SCEquipments" e JOIN "ICModels" m ON '
                 'm."ModelID" = e."ModelID" WHERE (e."LocationID" = {p} OR (e."LocationID" IS NULL '
                 'AND e."CustomerID" = {p})) AND e."Active" = {true} GROUP BY m."CategoryID"',
    "contracts": 'SELECT "ContractCodeID", "BillCodeID", COUNT(*), SUM("BaseRate") FROM '
                 '"SCContracts" WHERE "CustomerID" = {p} AND "Active" = {true} GROUP BY 1, 2',
    "gl": 'SELECT "GLID", SUM("Amount") FROM "GLDetail" WHERE "CustomerID" = {p} AND '
          '"TransactionDate" >= {p} GROUP BY 1',
    "items": 'SELECT m."CategoryID", SUM(d."Quantity"), MAX(d."Amount" / NULLIF(d."Quantity", 0)) '
             'FROM "ARInvoices" i JOIN "ARInvoiceDetails" d ON d."InvoiceID" = i."InvoiceID" '
             'JOIN "ICItems" it ON it."ItemID" = d."ItemID" JOIN "ICModels" m ON m."ModelID" = '
             'it."ModelID" WHERE i."CustomerID" = {p} AND i."InvoiceDate" >= {p} GROUP BY 1',
    "value": 'SELECT "TextVal" FROM "ARCustomerCustomProperties" WHERE "CustomerID" = {p} AND '
             '"ShAttributeID" = 2044',
}


def naive(connect: Any, param: str, true: str, since: Any) -> float:
    con = connect()
    cur = con.cursor()
    sql = {k: v.format(p=param, true=true) for k, v in NAIVE.items()}
    start = time.perf_counter()
    cur.execute('SELECT "CustomerID" FROM "ARCustomers"')
    ids = [r[0] for r in cur.fetchall()]
    for cid in ids:
        cur.execute(sql["equipment"], (cid, cid))
        cur.fetchall()
        cur.execute(sql["contracts"], (cid,))
        cur.fetchall()
        cur.execute(sql["gl"], (cid, since))
        cur.fetchall()
        cur.execute(sql["items"], (cid, since))
        cur.fetchall()
        cur.execute(sql["value"], (cid,))
        cur.fetchall()
    elapsed = time.perf_counter() - start
    con.close()
    return elapsed


def bare_apply(db: Path, changes: list[tuple[Any, ...]]) -> float:
    con = sqlite3.connect(db)
    start = time.perf_counter()
    con.executemany('UPDATE "ARCustomerCustomProperties" SET "TextVal" = ? WHERE "CustomerID" = ? '
                    'AND "ShAttributeID" = 2044 AND "TextVal" IS ?', changes)
    con.commit()
    elapsed = time.perf_counter() - start
    con.close()
    return elapsed


# -- the benchmark -----------------------------------------------------------------------------
def sqlite_size(root: Path, size: int, args: argparse.Namespace,
                statements: list[tuple[str, Any]] | None,
                ) -> tuple[dict[str, Any], list[tuple[str, Any]], dict[str, Any] | None]:
    """Night 1 (a real live baseline) then night 2 (a day of ERP activity later), measured."""
    pristine = root / f"pristine-{size}.sqlite"
    t0 = time.perf_counter()
    if not pristine.exists():
        build_demo_db(pristine, customers=size, as_of=AS_OF)
    build = time.perf_counter() - t0
    folder = root / f"sqlite-{size}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    db = folder / "erp.sqlite"
    shutil.copy(pristine, db)
    config = write_config(folder, "sqlite:///erp.sqlite", "mode: live\n")
    applied = None
    measured = size in (args.apply_size, max(int(x) for x in args.sizes.split(",")))
    if measured:  # night 1 as a dry run first: what the live baseline is compared with
        dry1 = tool(config, "--dry-run", as_of=AS_OF)
    if size == args.apply_size:  # the baseline is a real apply: measure it against bare SQL
        shutil.copy(db, folder / "bare.sqlite")
        plan = keyservices.run(keyservices.load_config(config), dry_run=True,
                               as_of=AS_OF).changes
        changes = [(c.after, c.customer_id, c.before) for c in plan]
    night1 = tool(config, "--no-email", as_of=AS_OF)
    if measured:
        applied = {"db": "sqlite", "customers": size, "changed_values": night1["written"],
                   "tool_written": night1["written"], "tool_run_s": round(night1["seconds"], 2),
                   "tool_write_s": round(night1["steps"].get("write values", 0), 2),
                   "dry_run_s": round(dry1["seconds"], 2),
                   "live_over_dry": round(night1["seconds"] / dry1["seconds"], 2),
                   "digest_s": night1["steps"].get("digest"),
                   "peak_rss_mb": max(night1["rss_mb"], dry1["rss_mb"]), "steps": night1["steps"]}
    if size == args.apply_size:
        assert applied is not None
        bare = bare_apply(folder / "bare.sqlite", changes)
        (folder / "bare.sqlite").unlink()
        rerun = tool(config, "--no-email", as_of=AS_OF)
        write_s = night1["steps"].get("write values", night1["seconds"])
        applied.update(changed_values=len(changes), bare_executemany_s=round(bare, 2),
                       write_over_bare=round(write_s / bare, 2),
                       rerun_written=rerun["written"], rerun_s=round(rerun["seconds"], 2))
    if applied:
        print(json.dumps(applied), flush=True)
    engine = sa.create_engine(f"sqlite:///{db.as_posix()}")
    simulate_next_day(engine, day=NIGHT2)
    engine.dispose()
    statements = statements or capture("sqlite:///erp.sqlite", folder)
    floor_s, rows = floor_sqlite(db, facts_only(statements))
    checked_s, _ = floor_sqlite(db, statements)
    run = tool(config, "--dry-run")
    row: dict[str, Any] = {
        "db": "sqlite", "customers": size, "build_s": round(build, 1),
        "night1_s": round(night1["seconds"], 1), "night1_written": night1["written"],
        "tool_s": round(run["seconds"], 2), "floor_s": round(floor_s, 2),
        "floor_checks_s": round(checked_s, 2),
        "tool_over_floor": round(run["seconds"] / floor_s, 2), "statements": run["statements"],
        "captured_statements": len(statements), "rows_fetched": rows,
        "peak_rss_mb": run["rss_mb"], "steps": run["steps"]}
    if size <= args.naive_max:
        since = (dt.datetime.combine(NIGHT2, dt.time()) - dt.timedelta(days=729)).isoformat(" ")
        naive_s = naive(lambda: sqlite3.connect(db), "?", "1", since)
        row.update(naive_s=round(naive_s, 1), naive_over_tool=round(naive_s / run["seconds"], 1))
    print(json.dumps(row), flush=True)
    return row, statements, applied


def gl_doubled(root: Path, size: int, statements: list[tuple[str, Any]]) -> dict[str, Any]:
    source = root / f"sqlite-{size}" / "erp.sqlite"
    folder = root / f"sqlite-{size}-gl2"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    db = folder / "erp.sqlite"
    shutil.copy(source, db)
    con = sqlite3.connect(db)
    cols = [r[1] for r in con.execute('PRAGMA table_info("GLDetail")') if not r[5]]
    lines = con.execute('SELECT COUNT(*) FROM "GLDetail"').fetchone()[0]
    names = ", ".join(f'"{c}"' for c in cols)
    con.execute(f'INSERT INTO "GLDetail" ({names}) SELECT {names} FROM "GLDetail"')
    con.commit()
    con.close()
    config = write_config(folder, "sqlite:///erp.sqlite", "mode: live\n")
    floor_s, _rows = floor_sqlite(db, facts_only(statements))
    checked_s, _rows = floor_sqlite(db, statements)
    run = tool(config, "--dry-run")
    row = {"db": "sqlite", "customers": size, "gl_lines": 2 * lines, "note": "GL lines doubled",
           "tool_s": round(run["seconds"], 2), "floor_s": round(floor_s, 2),
           "floor_checks_s": round(checked_s, 2),
           "tool_over_floor": round(run["seconds"] / floor_s, 2),
           "statements": run["statements"], "peak_rss_mb": run["rss_mb"], "steps": run["steps"]}
    print(json.dumps(row), flush=True)
    shutil.rmtree(folder)
    return row


def plain_dates(root: Path, size: int) -> dict[str, Any]:
    """A third SQLite shape (#26): the demo built with ``--plain-dates`` (every date 'YYYY-MM-DD'
    text, no time, as some ERPs and exports hold them): night 1 live, a day of activity, night 2
    measured against its own floors (its statements captured from a run on it)."""
    pristine = root / f"pristine-{size}-plain.sqlite"
    t0 = time.perf_counter()
    if not pristine.exists():
        build_demo_db(pristine, customers=size, as_of=AS_OF, plain_dates=True)
    build = time.perf_counter() - t0
    folder = root / f"sqlite-{size}-plain"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    db = folder / "erp.sqlite"
    shutil.copy(pristine, db)
    config = write_config(folder, "sqlite:///erp.sqlite", "mode: live\n")
    night1 = tool(config, "--no-email", as_of=AS_OF)
    engine = sa.create_engine(f"sqlite:///{db.as_posix()}")
    simulate_next_day(engine, day=NIGHT2, plain_dates=True)
    engine.dispose()
    statements = capture("sqlite:///erp.sqlite", folder)
    floor_s, rows = floor_sqlite(db, facts_only(statements))
    checked_s, _ = floor_sqlite(db, statements)
    run = tool(config, "--dry-run")
    row = {"db": "sqlite", "customers": size, "note": "plain dates", "build_s": round(build, 1),
           "night1_s": round(night1["seconds"], 1), "tool_s": round(run["seconds"], 2),
           "floor_s": round(floor_s, 2), "floor_checks_s": round(checked_s, 2),
           "tool_over_floor": round(run["seconds"] / floor_s, 2), "rows_fetched": rows,
           "statements": run["statements"], "peak_rss_mb": run["rss_mb"], "steps": run["steps"]}
    print(json.dumps(row), flush=True)
    shutil.rmtree(folder)
    return row


def pg_apply(root: Path, size: int, db_url: str, db_info: str, direct_url: str,
             ports: tuple[int, int]) -> dict[str, Any]:
    """The live baseline through the proxy against psycopg's bare executemany of the same
    UPDATEs on a copy of the database (made before the tool writes), also through the proxy."""
    _port, _proxy_port = ports
    folder = root / f"pg-{size}-live"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    config = write_config(folder, db_url, "mode: live\n")
    copy_database(direct_url, f"erp{size}", f"bare{size}")
    plan = keyservices.run(keyservices.load_config(config), dry_run=True, as_of=AS_OF).changes
    changes = [(c.after, c.customer_id, c.before) for c in plan]
    live = tool(config, "--no-email", as_of=AS_OF)
    bare = bare_apply_pg(db_info.replace(f"dbname=erp{size}", f"dbname=bare{size}"), changes)
    write_s = live["steps"].get("write values", live["seconds"])
    row = {"db": "postgresql (TCP, LAN-like latency)", "customers": size,
           "changed_values": len(changes), "tool_written": live["written"],
           "tool_run_s": round(live["seconds"], 2), "tool_write_s": round(write_s, 2),
           "bare_executemany_s": round(bare, 2), "write_over_bare": round(write_s / bare, 2),
           "peak_rss_mb": live["rss_mb"], "steps": live["steps"]}
    print(json.dumps(row), flush=True)
    return row


def pg_part(root: Path, sizes: list[int], naive_max: int, tool_size: int,
            lan_delay: float, apply_size: int = 0,
            ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rows, applied = [], []
    with contextlib.ExitStack() as stack:
        direct_url, direct_info = stack.enter_context(postgres())
        port = int(direct_info.split("port=")[1].split()[0])
        proxy_port = stack.enter_context(latency_proxy(port, lan_delay))
        conninfo = direct_info.replace(f"port={port}", f"port={proxy_port}")
        rtt = round_trip(conninfo)
        loopback = round_trip(direct_info)
        for size in sizes:
            db_url, db_info = pg_database(direct_url, direct_info, f"erp{size}")
            t0 = time.perf_counter()
            engine = sa.create_engine(db_url)  # loaded directly, not through the proxy
            populate(engine, customers=size, as_of=AS_OF)
            with engine.begin() as conn:
                conn.execute(sa.text("ANALYZE"))
            engine.dispose()
            build = time.perf_counter() - t0
            folder = root / f"pg-{size}"
            folder.mkdir(exist_ok=True)
            db_url = db_url.replace(f":{port}/", f":{proxy_port}/")  # from here: LAN-like
            db_info = db_info.replace(f"port={port}", f"port={proxy_port}")
            config = write_config(folder, db_url)
            row: dict[str, Any] = {"db": "postgresql (TCP, LAN-like latency)", "customers": size,
                                   "build_s": round(build, 1),
                                   "round_trip_ms": round(rtt * 1000, 3),
                                   "loopback_round_trip_ms": round(loopback * 1000, 3)}
            # the win rates stored first (as a weekly night or 'backtest --save' leaves them),
            # so that the measured night, like the floor, reads only the night's facts
            rates = subprocess.run([sys.executable, "-m", "keyservices", "backtest", "--save",
                                    "-c", str(config), "--as-of", AS_OF.isoformat()],
                                   capture_output=True, text=True, check=False)
            if rates.returncode != 0:
                raise RuntimeError(f"keyservices backtest failed:\n{rates.stderr[-3000:]}")
            run = tool(config, "--dry-run", as_of=AS_OF)  # night 1 (no baseline on PostgreSQL)
            row.update(tool_s=round(run["seconds"], 2), statements=run["statements"],
                       peak_rss_mb=run["rss_mb"], steps=run["steps"])
            if size == tool_size:
                statements = capture(db_url, folder, AS_OF)
                floor_s, fetched = floor_pg(db_info, facts_only(statements))
                checked_s, _ = floor_pg(db_info, statements)
                row.update(floor_s=round(floor_s, 2), floor_checks_s=round(checked_s, 2),
                           tool_over_floor=round(run["seconds"] / floor_s, 2),
                           rows_fetched=fetched)
            if size <= naive_max:
                import psycopg

                since = dt.datetime.combine(AS_OF, dt.time()) - dt.timedelta(days=729)
                naive_s = naive(lambda info=db_info: psycopg.connect(info), "%s", "true", since)
                row.update(naive_s=round(naive_s, 1),
                           naive_over_tool=round(naive_s / run["seconds"], 1))
            if size == apply_size:
                applied.append(pg_apply(root, size, db_url, db_info, direct_url,
                                        (port, proxy_port)))
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows, applied


def table(results: dict[str, Any]) -> str:
    out = [("| database | customers | tool s | floor s (facts) | facts + checks s | tool/floor | "
            "naive s | naive/tool | statements | peak RSS MB |"),
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in results["reads"]:
        label = r["db"] + (f" ({r['note']})" if r.get("note") else "")
        out.append(f"| {label} | {r['customers']:,} | {r['tool_s']} | {r.get('floor_s', '-')} | "
                   f"{r.get('floor_checks_s', '-')} | "
                   f"{r.get('tool_over_floor', '-')} | {r.get('naive_s', '-')} | "
                   f"{r.get('naive_over_tool', '-')} | {r['statements']} | {r['peak_rss_mb']} |")
    out += ["", ("| live baseline (night 1) | customers | values written | write step s | "
            "bare executemany s | write/bare | live run s | dry run s | live/dry | digest s |"),
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for a in results.get("apply", []):
        out.append(f"| {a['db']} | {a['customers']:,} | {a['tool_written']:,} | "
                   f"{a['tool_write_s']} | {a.get('bare_executemany_s', '-')} | "
                   f"{a.get('write_over_bare', '-')} | {a['tool_run_s']} | "
                   f"{a.get('dry_run_s', '-')} | {a.get('live_over_dry', '-')} | "
                   f"{a['steps'].get('digest', '-')} |")
    for a in results.get("apply", []):
        if "rerun_written" in a:
            out.append(f"\nSecond live run at {a['customers']:,} with no data change: "
                       f"{a['rerun_written']} rows written ({a['rerun_s']} s).")
    return "\n".join(out) + "\n\nTargets:\n\n" + targets_table(results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,250000,300000,1000000")
    parser.add_argument("--naive-max", type=int, default=100_000)
    parser.add_argument("--pg-sizes", default="10000,100000,250000")
    parser.add_argument("--pg-tool-size", type=int, default=100_000)
    # 250k customers: some 115k changed values, the size the write target is set at (100k+)
    parser.add_argument("--apply-size", type=int, default=250_000)
    parser.add_argument("--no-gl2", action="store_true", help="skip the doubled-GL run")
    parser.add_argument("--lan-delay-ms", type=float, default=0.0,
                        help="one-way delay the proxy adds on PostgreSQL; its own hop already "
                             "costs a LAN-like round trip (measured and reported)")
    parser.add_argument("--no-pg", action="store_true")
    parser.add_argument("--plain-size", type=int, default=300_000,
                        help="the plain-dates shape's size (0: skip it)")
    parser.add_argument("--work", type=Path, default=None,
                        help="keep databases here between invocations (reused when present)")
    parser.add_argument("--write", action="store_true",
                        help="write benchmarks/results.json and the table in benchmarks/README.md")
    args = parser.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    results: dict[str, Any] = {
        "date": dt.date.today().isoformat(), "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores", "reads": [], "apply": []}
    with contextlib.ExitStack() as stack:
        if args.work:
            root = args.work
            root.mkdir(parents=True, exist_ok=True)
        else:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ks-bench-")))
        statements = None
        for size in sizes:
            row, statements, applied = sqlite_size(root, size, args, statements)
            results["reads"].append(row)
            if applied:
                results["apply"].append(applied)
        if not args.no_gl2:
            results["reads"].append(gl_doubled(root, sizes[-1], statements))
        if args.plain_size:
            results["reads"].append(plain_dates(root, args.plain_size))
        if not args.no_pg:
            pg_reads, pg_applied = pg_part(root, [int(x) for x in args.pg_sizes.split(",")],
                                           args.naive_max, args.pg_tool_size,
                                           args.lan_delay_ms / 1000, args.apply_size)
            results["reads"] += pg_reads
            results["apply"] += pg_applied
    results["targets"] = targets(results)
    text = table(results)
    print()
    print(text)
    if args.write:
        (HERE / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
        readme = HERE / "README.md"
        old = readme.read_text(encoding="utf-8") if readme.exists() else ""
        start, end = "<!-- nightly:start -->", "<!-- nightly:end -->"
        block = f"{start}\n{text}\n{end}"
        if start in old:
            old = old[:old.index(start)] + block + old[old.index(end) + len(end):]
        else:
            old = old.rstrip() + "\n\n" + block + "\n"
        readme.write_text(old, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
