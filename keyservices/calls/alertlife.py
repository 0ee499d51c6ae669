"""Status alerts across nights: which are new tonight and which have been firing for a while.

The same few hundred alerts arrive every night; what a manager needs is the handful that are new.
Each (customer, monitor) hit keeps the night it was first seen, in the state store; a hit that
clears and comes back later is new again. Only a clean live run saves (like the opportunity life
cycle), so a dry run, a test-mode run or a run stopped by the guard leaves tomorrow's "new" as
it was.

Pure: no database, no clock. The caller passes the stored first-seen dates, tonight's hits and
the date, and saves ``added`` and ``cleared``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..model import Customer, StatusAlert, customer_column, on_record
from ..rules import Monitor
from .frame import PRIORITY_ORDER

Key = tuple[int, str]  # (customer_id, monitor code)


@dataclass(slots=True)
class AlertLife:
    """Tonight's hits with their first-seen dates, and what changed since the stored ones.

    ``new``/``continuing`` count per monitor code the hits first seen tonight and before.
    """

    as_of: dt.date
    first_seen: dict[Key, dt.date] = field(default_factory=dict)
    added: list[Key] = field(default_factory=list)  # first seen tonight: to insert
    cleared: list[Key] = field(default_factory=list)  # stored but not hit tonight: to delete
    new: dict[str, int] = field(default_factory=dict)
    continuing: dict[str, int] = field(default_factory=dict)


def advance(stored: Mapping[Key, dt.date], hits: Mapping[int, Sequence[str]],
            as_of: dt.date) -> AlertLife:
    """Fold tonight's hits (customer id -> monitor codes) into the stored first-seen dates."""
    life = AlertLife(as_of)
    for cid, codes in hits.items():
        for code in codes:
            key = (cid, code)
            before = stored.get(key)
            if before is None:
                life.added.append(key)
                life.first_seen[key] = as_of
                life.new[code] = life.new.get(code, 0) + 1
            else:  # a backfill (--as-of) never shows a first-seen date in its own future
                life.first_seen[key] = min(before, as_of)
                if before >= as_of:
                    life.new[code] = life.new.get(code, 0) + 1
                else:
                    life.continuing[code] = life.continuing.get(code, 0) + 1
    life.cleared = [key for key in stored if key not in life.first_seen]
    return life


def mark(alerts: Iterable[StatusAlert], life: AlertLife, as_of: dt.date) -> None:
    """Fill each rendered alert's ``first_seen`` and ``new`` from the life cycle."""
    for alert in alerts:
        alert.first_seen = life.first_seen.get((alert.customer_id, alert.code), as_of)
        alert.new = alert.first_seen >= as_of


def summary(life: AlertLife, monitors: Sequence[Monitor], customers: Mapping[int, Customer],
            classified: int) -> list[dict[str, Any]]:
    """One row per monitor that fired: its new and continuing hits overall, per branch and per
    sales rep (a rep's copy of the digest shows the rep's own), and its share of the classified
    customers. Monitors in rule order, most urgent priority first."""
    rows: dict[str, dict[str, Any]] = {}
    order = {m.code: i for i, m in enumerate(monitors)}
    for m in monitors:
        rows[m.code] = {"code": m.code, "name": m.name, "priority": m.priority or "",
                        "new": life.new.get(m.code, 0),
                        "continuing": life.continuing.get(m.code, 0),
                        "by_branch": {}, "by_rep": {}}
    keys = [k for k in life.first_seen if k[1] in rows]
    known = on_record(customers, [cid for cid, _ in keys])
    keys = [k for k, ok in zip(keys, known.tolist()) if ok]
    if keys:  # counted by array: a noisy monitor hits hundreds of thousands of customers
        ids = [cid for cid, _ in keys]
        code_of = {code: i for i, code in enumerate(rows)}
        code = np.fromiter((code_of[c] for _, c in keys), dtype=np.int64, count=len(keys))
        slot = np.fromiter((life.first_seen[k] < life.as_of for k in keys), dtype=np.int64,
                           count=len(keys))
        codes = list(rows)
        for key, field_name in (("by_branch", "branch"), ("by_rep", "sales_rep")):
            groups: dict[str, int] = {}
            values = customer_column(customers, field_name, ids).tolist()
            group = np.fromiter((groups.setdefault(v or "", len(groups)) for v in values),
                                dtype=np.int64, count=len(keys))
            names = list(groups)
            combined = (code * len(names) + group) * 2 + slot
            found, counts = np.unique(combined, return_counts=True)
            for value, n in zip(found.tolist(), counts.tolist()):
                rest, s = divmod(value, 2)
                c, g = divmod(rest, len(names))
                cell = rows[codes[c]][key].setdefault(names[g], [0, 0])
                cell[s] += n
    out = [r for r in rows.values() if r["new"] or r["continuing"]]
    for r in out:
        r["total"] = r["new"] + r["continuing"]
        r["share"] = r["total"] / classified if classified else 0.0
    out.sort(key=lambda r: (PRIORITY_ORDER.get(r["priority"], 9), order[r["code"]]))
    return out

