"""A dealer group's dry-run night (#25) against the sum of its companies' single dry runs.

    python benchmarks/group.py --companies 4 --customers 5000      # a quick look
    python benchmarks/group.py --companies 20 --customers 50000    # the issue's size

N demo dealers of M customers each (``demo-db`` with different seeds), then, in the same
invocation and on the same files:

- **singles**: ``keyservices run --dry-run`` on each company's own single-company config, one
  after the other, each in a subprocess (wall time including process start); their sum is the
  baseline a group replaces (one install per company, run one after the other);
- **group**: one ``keyservices run --dry-run`` on a ``companies:`` config with ``parallel:``
  (default 2), in a subprocess, its peak RSS from the process's own ``VmHWM`` (the wrapper of
  ``nightly.py``).

It prints the ratio group / sum (the goal: at most 1.0 with ``parallel: 2`` on 2 cores), the
group's peak RSS against the largest single's (the goal: at most 1 GB, companies not all held at
once), and the statements each company sent in each (the goal: the same, and the same for each).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nightly import RSS

from keyservices.demodb import build_demo_db
from keyservices.resources import example_rules_dir

AS_OF = dt.date(2026, 11, 24)  # the demo data's date


def dry_run(config: Path) -> dict[str, Any]:
    """One ``run --dry-run --json`` in a subprocess: wall time, peak RSS and its JSON."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", RSS, "run", "-c", str(config), "--dry-run",
                           "--as-of", AS_OF.isoformat(), "--json"],
                          capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"keyservices run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    rss = int(next(line.split()[1] for line in proc.stderr.splitlines()
                   if line.startswith("RSS_KB")))
    return {"seconds": seconds, "rss_mb": rss / 1024, "result": json.loads(proc.stdout)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--companies", type=int, default=4)
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--keep", type=Path, default=None,
                        help="Build (or reuse) the databases in this folder.")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="ks-group-"))
    root.mkdir(parents=True, exist_ok=True)
    rules = example_rules_dir().as_posix()
    names = [f"co{n:02d}" for n in range(1, args.companies + 1)]
    start = time.perf_counter()
    for n, name in enumerate(names, start=1):
        db = root / f"{name}.sqlite"
        if not db.exists():
            build_demo_db(db, customers=args.customers, seed=100 + n, as_of=AS_OF)
    print(f"{args.companies} companies x {args.customers:,} customers built in "
          f"{time.perf_counter() - start:.0f} s in {root} ({os.cpu_count()} cores)")

    singles: dict[str, dict[str, Any]] = {}
    for name in names:
        folder = root / "single" / name
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / "config.yaml"
        config.write_text(f"dealer: {name}\nerp: {{url: 'sqlite:///{(root / name).as_posix()}"
                          f".sqlite'}}\nrules: '{rules}'\nstate: {{dir: state}}\n"
                          "digest: {outbox: outbox}\n", encoding="utf-8")
        singles[name] = dry_run(config)
    group_folder = root / "group"
    group_folder.mkdir(exist_ok=True)
    entries = "".join(f"  - name: {name}\n    erp: {{url: 'sqlite:///"
                      f"{(root / name).as_posix()}.sqlite'}}\n" for name in names)
    config = group_folder / "config.yaml"
    config.write_text(f"dealer: Group\nrules: '{rules}'\nstate: {{dir: state}}\n"
                      f"digest: {{outbox: outbox}}\nparallel: {args.parallel}\n"
                      f"companies:\n{entries}", encoding="utf-8")
    group = dry_run(config)

    total = sum(s["seconds"] for s in singles.values())
    nights = {c["company"]: c for c in group["result"]["companies"]}
    failed = [name for name, c in nights.items() if c["exit_code"] != 0]
    print("\n| company | single s | single peak RSS MB | statements single | statements "
          "in group |\n| --- | ---: | ---: | ---: | ---: |")
    for name in names:
        one = singles[name]
        in_group = (nights[name]["result"] or {}).get("statements")
        print(f"| {name} | {one['seconds']:.2f} | {one['rss_mb']:.0f} | "
              f"{one['result']['statements']} | {in_group} |")
    statements = {(nights[n]["result"] or {}).get("statements") for n in names}
    print(f"\nsum of {len(names)} single dry runs: {total:.2f} s")
    print(f"group dry run, parallel: {args.parallel}: {group['seconds']:.2f} s, "
          f"peak RSS {group['rss_mb']:.0f} MB (largest single "
          f"{max(s['rss_mb'] for s in singles.values()):.0f} MB)")
    print(f"ratio group / sum: {group['seconds'] / total:.2f} (goal <= 1.0)")
    print(f"statements per company: {sorted(statements, key=str)} "
          f"({'constant' if len(statements) == 1 else 'NOT constant'})")
    if failed:
        print(f"companies that failed in the group: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
