"""The digest's status alerts: the new ones listed, the continuing ones counted per monitor.

The same few hundred alerts fire every night; listing them all buries the few that are new. The
digest lists the alerts first seen tonight (most urgent monitor first, capped), and for each
monitor counts the new and the continuing ones, with the export command that lists them all.
A rep's or branch's copy counts only its own customers.
"""

from __future__ import annotations

import re
from typing import Any

from ..model import DigestData


def copy_monitors(rows: list[dict[str, Any]], attribute: str, value: str
                  ) -> list[dict[str, Any]]:
    """The per-monitor counts of one branch's or sales rep's customers."""
    key = "by_rep" if attribute == "sales_rep" else "by_branch"
    out = []
    for row in rows:
        new, continuing = (row.get(key) or {}).get(value, (0, 0))
        if new or continuing:
            out.append({**row, "new": new, "continuing": continuing, "total": new + continuing})
    return out


def alert_context(data: DigestData, max_rows: int) -> dict[str, Any]:
    """Template variables: ``alerts`` (the new ones, capped), ``more_alerts`` (new ones not
    listed), ``alert_monitors`` (per monitor: name, priority, new, continuing, the command that
    lists them), ``new_alerts`` and ``continuing_alerts`` (totals)."""
    fresh = [a for a in data.alerts if a.new]
    monitors = data.alert_monitors
    if data.branch or data.sales_rep:  # a copy: its own customers' counts
        monitors = copy_monitors(monitors, "sales_rep" if data.sales_rep else "branch",
                                 data.sales_rep or data.branch or "")
    total_new = (sum(m["new"] for m in monitors) if monitors
                 else data.totals.get("new_alerts", len(fresh)))  # totals: a trimmed copy
    owner = f" --owner {quoted(data.sales_rep)}" if data.sales_rep else ""
    company = f" --company {quoted(data.company)}" if data.company else ""
    rows = [{**m, "command": f"keyservices export alerts --monitor {m['code']}{owner} "
                             f"-c {quoted(data.config_file)}{company}"} for m in monitors]
    shown = fresh[:max_rows]
    return {"alerts": shown, "more_alerts": max(0, total_new - len(shown)),
            "alert_monitors": rows, "new_alerts": total_new,
            "continuing_alerts": sum(m["continuing"] for m in monitors)}


def quoted(value: str) -> str:
    """A command-line argument as a Windows or POSIX shell reads it (names and paths with
    spaces)."""
    return f'"{value}"' if re.search(r"[\s&()]", value) else value
