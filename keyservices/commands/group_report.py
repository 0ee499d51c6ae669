"""``keyservices report`` of a dealer group (#25): each company's penetration and won/lost, read
as its own report reads it, written as one set of files with a company column.

One company (``--company X``, or a config without ``companies:``) is ``commands.report`` exactly
as before. The companies are read in a pool of ``parallel:`` threads, as in the night; a company
that fails (a missing database, a data shape) fails alone: the others are reported, the page
names it and why, and the exit code is the worst one.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..calls.outcomes import OutcomeRow
from ..calls.wonlost import WonLostRow
from ..config import Config, company_configs
from ..errors import EXIT_FAILURE, EXIT_OK, KeyservicesError
from ..outputs.alerts import quoted
from ..outputs.backtest_chart import HINT_COMMAND
from ..outputs.group_report import (
    CompanyReport,
    group_outcomes,
    group_won_lost,
    summary,
    write_group_report,
)
from ..outputs.report import TOTAL_GROUP, ReportFiles
from ..progress import Reporter
from .group import worst
from .report import ReportResult, compute, report

log = logging.getLogger("keyservices")


@dataclass
class GroupReportResult:
    """Where the group's files went, each company's headline numbers, and who failed."""

    as_of: dt.date
    out: Path
    files: ReportFiles
    customers: int  # in scope, over the companies reported
    companies: list[dict[str, Any]]  # company, exit_code, error, customers, services
    services: list[dict[str, Any]]  # the group's: code, name, users, share
    won_lost: dict[str, dict[str, float]] | None = None  # window -> the group's totals
    notes: list[str] = field(default_factory=list)
    # the companies' calls' outcomes added up: window -> one dict per play, then "all plays"
    outcomes: dict[str, list[dict[str, Any]]] | None = None

    @property
    def exit_code(self) -> int:
        return worst([c["exit_code"] for c in self.companies])

    def to_dict(self) -> dict[str, Any]:
        return {"group": True, "as_of": self.as_of.isoformat(), "out": str(self.out),
                "files": {"csv": str(self.files.csv), "html": str(self.files.html),
                          "won_lost_csv": str(self.files.won_lost_csv)
                          if self.files.won_lost_csv else None,
                          "outcomes_csv": str(self.files.outcomes_csv)
                          if self.files.outcomes_csv else None},
                "exit_code": self.exit_code, "customers": self.customers,
                "companies": self.companies, "services": self.services,
                "won_lost": self.won_lost, "outcomes": self.outcomes, "notes": self.notes}


def report_for(config: Config, companies: Sequence[str] = (), *, out: Path | None = None,
               as_of: dt.date | None = None,
               reporter: Reporter | None = None) -> ReportResult | GroupReportResult:
    """One company's report as today (a config without ``companies:``, or one ``--company``),
    else the group's of the companies named (all by default)."""
    picked = company_configs(config, companies)  # an unknown name: refused before any read
    if not config.companies or len(picked) == 1:
        return report(picked[0], out=out, as_of=as_of, reporter=reporter)
    return group_report(config, picked, out=out, as_of=as_of)


def group_report(config: Config, picked: Sequence[Config], *, out: Path | None = None,
                 as_of: dt.date | None = None) -> GroupReportResult:
    """The report of these companies of the group, written into ``out`` (default ``report/``
    in the group's state folder)."""
    as_of = as_of or dt.date.today()
    workers = max(1, min(config.parallel, len(picked)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="report") as pool:
        done = list(pool.map(lambda company: _one(company, as_of), picked))
    reports = [r for r, _ in done]
    target = out or (config.state.dir / "report")
    files = write_group_report(target, dealer=config.dealer, as_of=as_of, reports=reports,
                               templates=config.digest.templates)
    found = summary(reports)
    group = group_won_lost(reports)
    notes = [f"{r.company}: {note}" for r, parts in done for note in parts]
    return GroupReportResult(
        as_of=as_of, out=target, files=files,
        customers=found[1].customers if found else 0,
        companies=[{"company": r.company, "exit_code": r.exit_code, "error": r.error,
                    "customers": r.matrices[0].total.customers if r.matrices else None,
                    "services": [{"code": c.code, "name": c.name, "users": c.users,
                                  "share": round(c.share, 4)}
                                 for c in r.matrices[0].total.cells] if r.matrices else [],
                    "backtest": dict(r.backtest) if r.backtest else None,
                    "outcomes": _outcomes(r.outcomes), "outcomes_note": r.outcomes_note}
                   for r in reports],
        services=[{"code": c.code, "name": c.name, "users": c.users, "share": round(c.share, 4)}
                  for c in found[1].cells] if found else [],
        won_lost=None if group is None else {
            label: _totals([r for r in rows if r.group == TOTAL_GROUP])
            for label, rows in group.items()},
        notes=notes, outcomes=_outcomes(group_outcomes(reports)))


def _one(config: Config, as_of: dt.date) -> tuple[CompanyReport, list[str]]:
    """One company's figures and notes; whatever stops it is kept with its name, never raised."""
    name = config.company_name
    try:
        parts = compute(config, as_of)
    except KeyservicesError as exc:
        return CompanyReport(name, error=str(exc), exit_code=exc.exit_code), []
    except Exception as exc:  # a company's failure must not stop the others
        log.exception("company %s: unexpected error in the report", name)
        return CompanyReport(name, error=f"{type(exc).__name__}: {exc}",
                             exit_code=EXIT_FAILURE), []
    return CompanyReport(name, tuple(parts.matrices), parts.won_lost, exit_code=EXIT_OK,
                         backtest=parts.backtest, outcomes=parts.outcomes,
                         outcomes_note=parts.outcomes_note,
                         backtest_hint=HINT_COMMAND + f" --company {quoted(name)}"
                         if parts.calls else None), parts.notes


def _outcomes(by_window: Mapping[str, Sequence[OutcomeRow]] | None
              ) -> dict[str, list[dict[str, Any]]] | None:
    """Outcomes as ``--json`` gives them: window -> one dict per play (None: none)."""
    return None if by_window is None else {
        label: [r.to_dict() for r in rows] for label, rows in by_window.items()}


def _totals(rows: Sequence[WonLostRow]) -> dict[str, float]:
    """The group's won and lost in one window (its rows per service, each change once)."""
    return {"won": sum(r.won for r in rows), "lost": sum(r.lost for r in rows),
            "won_value": round(sum(r.won_value for r in rows), 2),
            "lost_value": round(sum(r.lost_value for r in rows), 2)}
