"""The digest's headline numbers, counted once for the subject, the headline cells and the
lists: a branch or rep copy counts its own customers everywhere, the consolidated digest the
company's, and a customer under two risk flags is one customer."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..model import DigestData, Opportunity
from ..words import plural


def totals(data: DigestData) -> dict[str, Any]:
    """Full lengths of the lists and the added/removed service counts, also for a trimmed copy."""
    out = {"changes": len(data.changes), "no_configuration": len(data.no_configuration),
           "no_attribute": len(data.no_attribute), "opportunities": len(data.opportunities),
           "alerts": len(data.alerts), "new_alerts": sum(1 for a in data.alerts if a.new),
           "added": sum(len(ch.added) for ch in data.changes),
           "removed": sum(len(ch.removed) for ch in data.changes),
           "at_stake": at_stake(data.opportunities)}
    out.update(data.totals)
    return out


def at_stake(opportunities: Sequence[Opportunity]) -> float:
    """The estimated annual value of every opportunity listed tonight (the money the calls are
    about); by column on a night's frame, where a million objects would cost seconds."""
    column = getattr(opportunities, "column", None)
    values = (column("estimated_annual_value") if column is not None
              else [o.estimated_annual_value for o in opportunities])
    return float(sum(v for v in values if v is not None and not math.isnan(v)))


def subject_for(data: DigestData, counted: dict[str, Any] | None = None) -> str:
    c = data.counts
    counted = counted or totals(data)
    added, removed = counted["added"], counted["removed"]
    marks = [m for m, on in (("TEST", data.mode == "test"), ("DRY RUN", data.dry_run),
                             ("CHANGE GUARD", bool(data.guard_message))) if on]
    if data.branch or data.sales_rep:
        marks.insert(0, data.branch or data.sales_rep or "")
    prefix = "[keyservices" + "".join(f" {m}" for m in marks) + "]"
    unwritable = unwritable_counts(data, counted)["unwritable_count"]
    if data.baseline:
        body = f"baseline, {plural(c.classified, 'customer')} classified"
    elif not counted["changes"]:
        body = "nothing changed"
    else:
        body = (f"{plural(added, 'service')} added, {removed:,} removed on "
                f"{plural(counted['changes'], 'customer')}")
    return f"{prefix} {data.as_of.isoformat()}: {body}; {unwritable:,} cannot be written"


def unwritable_counts(data: DigestData, counted: dict[str, Any]) -> dict[str, int]:
    """How many customers cannot be written, as the subject counts them: a branch or rep copy
    its own, the consolidated digest the company's."""
    copy = bool(data.branch or data.sales_rep)
    no_config = counted["no_configuration"] if copy else data.counts.no_configuration
    no_attr = counted["no_attribute"] if copy else data.counts.no_attribute
    return {"unwritable_count": no_config + no_attr, "no_configuration_count": no_config,
            "no_attribute_count": no_attr}
