"""The digest step at any size: render, attach, queue and store a night of N synthetic changes.

    python benchmarks/digest_render.py                  # 600,000 changes (the million-customer night)
    python benchmarks/digest_render.py --changes 50000 --repeat 3

Prints the time and the size of each part: rendering (both parts and the attachment), building
the message, writing it to the outbox, storing the trimmed digest data for ``digest --preview``.
The rendered HTML must not grow with the night (the lists are capped), and neither should the
time beyond one pass over the changes (counting, picking the listed ones, streaming the
attachment until its size limit).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import sys
import tempfile
import time
from pathlib import Path

from keyservices.model import (
    Change,
    Counts,
    CustomerRef,
    DigestData,
    Opportunity,
    ServiceCount,
    StatusAlert,
)
from keyservices.outputs.digest import (
    build_message,
    find_templates_dir,
    render,
    save_data,
    trimmed,
    write_outbox,
)

NAMES = {"CPY": "Copiers", "MPS": "Managed Print", "DM": "Document Management",
         "MIT": "Managed IT"}
BRANCHES = ("Springfield (Main)", "Shelbyville", "Ogdenville", "Capital City")
REPS = ("Dana Whitfield", "Lena Schäfer", "Marco Rossi", "Priya Nair", "Zoë Lambert", "Sam Okafor")


def synthetic(changes: int, others: int) -> DigestData:
    """A night of ``changes`` changes and ``others`` opportunities, alerts and unwritable ones."""
    def where(i: int) -> dict[str, str]:
        return {"branch": BRANCHES[i % len(BRANCHES)], "sales_rep": REPS[i % len(REPS)]}

    return DigestData(
        run_id=42, as_of=dt.date(2026, 11, 25), generated_at=dt.datetime(2026, 11, 25, 2, 30),
        dealer="Benchmark Office Systems", property_name="ZCJKeyServices", mode="live",
        dry_run=False, baseline=False,
        counts=Counts(read=changes * 2, classified=changes * 2, changed=changes, written=changes,
                      no_configuration=others, no_attribute=others // 2),
        changes=[Change(customer_id=i, number=f"C{i:07d}", name=f"Evergreen Fabrication {i}",
                        before="CPY;MPS", after="CPY;MPS;MIT", added=("MIT",),
                        removed=("DM",) if i % 5 == 0 else (), **where(i))
                 for i in range(changes)],
        no_configuration=[CustomerRef(f"N{i:07d}", f"Cedar Home {i}", **where(i))
                          for i in range(others)],
        no_attribute=[CustomerRef(f"A{i:07d}", f"Legacy Co {i}", **where(i))
                      for i in range(others // 2)],
        services=[ServiceCount(code, name, changes, 0.5) for code, name in NAMES.items()],
        service_names=NAMES,
        opportunities=[Opportunity(f"C{i:07d}", f"Maple Medical {i}", service="Copiers",
                                   priority="High", reason="84% of Healthcare peers use Copiers",
                                   why=("Mid-size account (tier B): +5 points",), **where(i))
                       for i in range(others)],
        alerts=[StatusAlert(f"C{i:07d}", f"Bluebird Tooling {i}", BRANCHES[i % 4],
                            "No sale for 90 days", f"Bluebird Tooling {i} bought nothing in 90 "
                            "days. Call Kai Lefèvre (555-852-3110).", sales_rep=REPS[i % 6])
                for i in range(others)])


def timed(label: str, func, results: dict[str, float]):  # type: ignore[no-untyped-def]
    gc.collect()
    start = time.perf_counter()
    value = func()
    results[label] = time.perf_counter() - start
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--changes", type=int, default=600_000)
    parser.add_argument("--others", type=int, default=None,
                        help="opportunities, alerts and unwritable customers (default: changes/10)")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    args = parser.parse_args()
    others = args.changes // 10 if args.others is None else args.others
    print(f"building {args.changes:,} changes and {others:,} of each other list ...",
          flush=True)
    data = synthetic(args.changes, others)
    templates = find_templates_dir()
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(max(1, args.repeat)):
            t: dict[str, float] = {}
            rendered = timed("render (html, text, attachment)",
                             lambda: render(data, templates), t)
            message = timed("build message", lambda r=rendered: build_message(
                r, sender="ks@example.com", recipients=["m@example.com"]), t)
            paths = timed("write outbox", lambda m=message, r=rendered: write_outbox(
                m, r, Path(folder), "digest"), t)
            name = rendered.attachment.filename if rendered.attachment else ""
            timed("store for --preview", lambda n=name: save_data(
                trimmed(data, 50, n), Path(folder) / "run.json.gz"), t)
            for k, v in t.items():
                best[k] = min(best.get(k, v), v)
        stored = (Path(folder) / "run.json.gz").stat().st_size
        eml = paths.eml.stat().st_size
    attachment = rendered.attachment
    print(f"changes {args.changes:,}: HTML part {len(rendered.html.encode('utf-8')):,} bytes, "
          f"text part {len(rendered.text.encode('utf-8')):,} bytes, attachment "
          f"{(attachment.filename + ' ' + format(len(attachment.data), ',') + ' bytes') if attachment else 'none (too large: the digest names the command)'}, "
          f".eml {eml:,} bytes, stored data {stored:,} bytes")
    for k, v in best.items():
        print(f"  {k:<34} {v:8.3f} s")
    print(f"  {'total':<34} {sum(best.values()):8.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
