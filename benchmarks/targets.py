"""The targets of the nightly benchmark, each a ratio or a limit measured in one invocation.

``targets(results)`` turns ``nightly.py``'s results into rows (target, measured, limit, met);
``targets_table`` renders them for benchmarks/README.md. A target whose measurement is missing
from this invocation (a size not run) is shown as not measured, never as met.
"""

from __future__ import annotations

from typing import Any

WRITE_OVER_BARE = 2.0  # the write step against a bare guarded executemany, same changes
WRITE_VALUES = 100_000  # ... at this many changed values (issue #17: "at 100k changed values")
LIVE_OVER_DRY = 2.0  # the largest size's live baseline against its dry run, same night
DIGEST_S = 1.0  # the digest step of the largest size's baseline
READ_OVER_FLOOR = 1.3  # a dry run against the bare fact statements (the facts floor)
READ_SIZE = 300_000  # ... judged at this size and up (#26: 300k and 1M on SQLite)
PEAK_RSS_MB = 1024


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    reads = results.get("reads", [])
    applies = results.get("apply", [])
    sqlite_reads = [r for r in reads if r["db"] == "sqlite" and not r.get("note")]
    largest = max((r["customers"] for r in sqlite_reads), default=0)
    rows: list[dict[str, Any]] = []

    def add(name: str, measured: float | None, limit: float, unit: str = "") -> None:
        rows.append({"target": name, "measured": measured, "limit": limit, "unit": unit,
                     "met": measured is not None and measured <= limit})

    for a in applies:  # judged where the write is as large as the target says
        if "write_over_bare" in a and a["changed_values"] >= WRITE_VALUES:
            add(f"write / bare executemany, {a['db']}, {a['customers']:,} customers "
                f"({a['changed_values']:,} values)", a["write_over_bare"], WRITE_OVER_BARE)
    for db in sorted({a["db"] for a in applies if "write_over_bare" in a}):
        if not any(a["db"] == db and a["changed_values"] >= WRITE_VALUES
                   for a in applies if "write_over_bare" in a):
            add(f"write / bare executemany, {db}, {WRITE_VALUES:,}+ values", None,
                WRITE_OVER_BARE)
    big = next((a for a in applies if a["db"] == "sqlite" and a["customers"] == largest), None)
    add(f"live baseline / dry run, sqlite, {largest:,}", big and big.get("live_over_dry"),
        LIVE_OVER_DRY)
    add(f"digest of the baseline, sqlite, {largest:,}", big and big.get("digest_s"), DIGEST_S,
        " s")
    # read tool / facts floor (#26): every SQLite size from READ_SIZE up and the largest, the
    # plain-dates shape, and PostgreSQL where its floor was measured
    judged = [r for r in sqlite_reads if r["customers"] >= READ_SIZE or r["customers"] == largest]
    judged += [r for r in reads if r.get("note") == "plain dates"]
    judged += [r for r in reads if r["db"].startswith("postgresql") and "tool_over_floor" in r]
    for r in judged:
        label = r["db"] + (f" ({r['note']})" if r.get("note") else "")
        add(f"read tool / facts floor, {label}, {r['customers']:,}", r.get("tool_over_floor"),
            READ_OVER_FLOOR)
    peaks = [r["peak_rss_mb"] for r in [*reads, *applies] if r.get("peak_rss_mb")]
    add("peak RSS, every run", max(peaks, default=None), PEAK_RSS_MB, " MB")
    # constant: the same count at every size of a database (SQLite checks its values with a
    # scan and asks which tables exist apart; a server reads the declared types in one call)
    counts: dict[str, set[int]] = {}
    for r in reads:
        if r.get("statements"):
            counts.setdefault(r["db"].split(" ")[0], set()).add(r["statements"])
    rows.append({"target": "statements the same at every size, per database",
                 "measured": ", ".join(f"{db} {'/'.join(map(str, sorted(n)))}"
                                       for db, n in sorted(counts.items())) or None,
                 "limit": "one count each", "unit": "",
                 "met": bool(counts) and all(len(n) == 1 for n in counts.values())})
    return rows


def targets_table(results: dict[str, Any]) -> str:
    out = ["| target | measured | limit | |", "| --- | ---: | ---: | --- |"]
    for t in targets(results):
        measured = "not measured" if t["measured"] is None else f"{t['measured']}{t['unit']}"
        limit = t["limit"] if isinstance(t["limit"], str) else f"<= {t['limit']}{t['unit']}"
        out.append(f"| {t['target']} | {measured} | {limit} | "
                   f"{'met' if t['met'] else '**missed**'} |")
    return "\n".join(out)
