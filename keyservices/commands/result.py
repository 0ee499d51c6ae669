"""What one run did, as data: the CLI prints it, ``--json`` dumps it, the digest renders it."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import EXIT_OK
from ..model import (
    Change,
    Counts,
    CustomerRef,
    DigestData,
    Opportunity,
    Renewal,
    RiskFlag,
    ServiceCount,
    StatusAlert,
)

# the lists that grow with the night (a row per change, customer or call)
LONG = ("changes", "no_configuration", "no_attribute", "opportunities", "alerts", "carried",
        "location_changes", "location_no_configuration", "location_no_attribute")


@dataclass
class RunResult:
    """What one run did; ``exit_code`` is what the scheduler sees."""

    run_id: int | None
    as_of: dt.date
    mode: str
    dry_run: bool
    baseline: bool
    counts: Counts
    changes: list[Change]
    no_configuration: list[CustomerRef]
    no_attribute: list[CustomerRef]
    services: list[ServiceCount]
    statements: int
    timings: dict[str, float]
    guard_message: str | None = None
    digest_eml: Path | None = None
    digest_html: Path | None = None
    delivery_error: str | None = None
    delivery: str = "none"  # none | outbox (no smtp configured) | sent | queued (SMTP failed)
    sent: list[Path] = field(default_factory=list)
    digests: list[Path] = field(default_factory=list)  # the consolidated copy, then per branch
    notes: list[str] = field(default_factory=list)  # shown at the end of the digest
    opportunities: Sequence[Opportunity] = field(default_factory=list)  # most promising first
    opportunity_counts: dict[str, int] = field(default_factory=dict)  # new, open, won, closed...
    alerts: list[StatusAlert] = field(default_factory=list)  # status monitor hits (rendered)
    alert_counts: dict[str, int] = field(default_factory=dict)  # monitor code -> customers hit
    won_lost: dict[str, Any] = field(default_factory=dict)  # per sales rep, see wonlost
    # values written by earlier runs that stopped before their digest, listed in this one
    carried: list[Change] = field(default_factory=list)
    exit_code: int = EXIT_OK
    # per monitor that fired: new and continuing hits (keyservices.calls.alertlife.summary)
    alert_monitors: list[dict[str, Any]] = field(default_factory=list)
    renewals: list[Renewal] = field(default_factory=list)  # digest.renewals_ics: the calendars
    # write.locations: locations following their parent's value, and those that cannot hold it
    location_changes: list[Change] = field(default_factory=list)
    location_no_configuration: list[CustomerRef] = field(default_factory=list)
    location_no_attribute: list[CustomerRef] = field(default_factory=list)
    # customers who may be leaving (takeout, churn), not offered as opportunities tonight
    risks: list[RiskFlag] = field(default_factory=list)
    mode_default: bool = False  # test mode because the config never says mode:
    guard_off: bool = False  # the change guard switched off in the config (write: ... off)
    # what the digest showed, its long lists cut (outputs.digest.trimmed): a group's night
    # renders it again as the company's section of the group's digest (not in to_dict)
    digest_data: DigestData | None = None
    # lists cut short by ``slimmed`` (a group's night keeps 20 companies' results): their full
    # lengths, and the services added and removed per service over every change
    cut: dict[str, int] = field(default_factory=dict)
    moves: dict[str, list[int]] = field(default_factory=dict)

    def total(self, name: str) -> int:
        """How many rows the list ``name`` had before any cut."""
        return self.cut.get(name, len(getattr(self, name)))

    def per_service(self) -> dict[str, list[int]]:
        """Services added and removed over every change: code -> [added, removed]."""
        if "changes" in self.cut:
            return self.moves
        out: dict[str, list[int]] = {}
        for ch in self.changes:
            for code in ch.added:
                out.setdefault(code, [0, 0])[0] += 1
            for code in ch.removed:
                out.setdefault(code, [0, 0])[1] += 1
        return out

    def slimmed(self, keep: int) -> RunResult:
        """A copy whose long lists keep their first ``keep`` rows, with their full lengths in
        ``cut``: a group's night holds every company's result until the end, and 20 companies'
        full plans would hold gigabytes (``--company NAME --json`` lists one company's all)."""
        long = {name: getattr(self, name) for name in LONG if len(getattr(self, name)) > keep}
        if not long:
            return self
        out = dataclasses.replace(self, cut={name: len(rows) for name, rows in long.items()},
                                  moves=self.per_service())
        for name, rows in long.items():
            setattr(out, name, list(rows[:keep]))
        return out

    def to_dict(self, *, passing: bool = False) -> dict[str, Any]:
        """The result as JSON-ready data. ``passing``: the long lists are ``Rows``, made into
        dicts one at a time as they are written (``--json`` of a million calls), not held."""
        # the long lists are converted shallowly: dataclasses.asdict deep-copies every field of
        # every item, which at hundreds of thousands of changes costs seconds and gigabytes
        data = dataclasses.asdict(dataclasses.replace(
            self, changes=[], no_configuration=[], no_attribute=[], opportunities=[], alerts=[],
            carried=[], location_changes=[], location_no_configuration=[],
            location_no_attribute=[], digest_data=None))
        del data["digest_data"]
        for key in LONG:
            data[key] = Rows(getattr(self, key)) if passing else _rows(getattr(self, key))
        data["as_of"] = self.as_of.isoformat()
        for key in ("digest_eml", "digest_html"):
            data[key] = str(data[key]) if data[key] else None
        data["sent"] = [str(p) for p in self.sent]
        data["digests"] = [str(p) for p in self.digests]
        return data


class Rows:
    """A long list written as JSON one item at a time (``cli.base.emit_json``): each item
    becomes a dict as it is written, and a frame's rows are not kept. Not a list, so that no
    encoder can take it for an empty one."""

    def __init__(self, items: Sequence[Any]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        items = self.items
        rows: Iterable[Any] = items.passing() if hasattr(items, "passing") else items
        names: list[str] | None = None
        for item in rows:
            if names is None:
                names = [f.name for f in dataclasses.fields(item)]
            yield {n: getattr(item, n) for n in names}


def _rows(items: Sequence[Any]) -> list[dict[str, Any]]:
    """Slotted dataclasses as dicts, one level deep (their fields are plain values)."""
    if not items:
        return []
    names = [f.name for f in dataclasses.fields(items[0])]
    return [{n: getattr(item, n) for n in names} for item in items]
