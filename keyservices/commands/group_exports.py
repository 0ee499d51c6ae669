"""Exports of a dealer group (#25): every company's rows in one file, a first column naming
the company, so one CRM import or spreadsheet serves the group.

Each company's rows are its own export (its database, rules, ranking and state store), in the
config's order of companies and, within a company, in its own order (``rank`` is the place in
that company's ranking). A company whose export fails is left out with a warning naming it and
why, the others are still exported, and the exit code is the worst one, as in the night.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..config import Config, company_configs
from ..errors import EXIT_OK, KeyservicesError
from ..outputs.cells import csv_writer
from ..outputs.exports import OpportunityExport
from .export import export_alerts, export_opportunities
from .group import worst

COMPANY_COLUMN = "company"
HUBSPOT_COMPANY_COLUMN = "Dealer Company"  # HubSpot's "Company Name" is the customer's


@dataclass
class CompanyFailure:
    """A company left out of a group's export, and why."""

    company: str
    exit_code: int
    error: str

    def to_dict(self) -> dict[str, Any]:
        return {"company": self.company, "exit_code": self.exit_code, "error": self.error}


@dataclass
class GroupExport(OpportunityExport):
    """A group's export: the merged CSV, its counts summed, and the companies left out."""

    failed: list[CompanyFailure] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return worst([f.exit_code for f in self.failed]) if self.failed else EXIT_OK


def group_opportunities(config: Config, companies: Sequence[str] = (), **options: Any
                        ) -> OpportunityExport:
    """``export opportunities``: one company's export as today, or a group's (every company
    named, all by default) with a ``company`` column. ``options`` as ``export_opportunities``.

    With the promoter filter the counts are summed over the companies; a survey row is counted
    unmatched when it names no active contact in the company that matched most of the file."""
    header = HUBSPOT_COMPANY_COLUMN if options.get("fmt") == "hubspot" else COMPANY_COLUMN
    return _merge(config, companies, header,
                  lambda company: export_opportunities(company, **options))


def group_alerts(config: Config, companies: Sequence[str] = (), **options: Any
                 ) -> OpportunityExport:
    """``export alerts``: one company's as today, or a group's with a ``company`` column."""
    def one(company: Config) -> OpportunityExport:
        return OpportunityExport(*export_alerts(company, **options))

    return _merge(config, companies, COMPANY_COLUMN, one)


def _merge(config: Config, companies: Sequence[str], header: str,
           export: Callable[[Config], OpportunityExport]) -> OpportunityExport:
    picked = company_configs(config, companies)  # an unknown name: refused before any export
    if not config.companies:
        return export(picked[0])
    out = GroupExport("", 0)
    buf = io.StringIO()
    writer = csv_writer(buf)
    wrote_header = False
    unmatched: list[int] = []
    for company in picked:
        name = company.company_name
        try:
            part = export(company)
        except KeyservicesError as exc:
            out.failed.append(CompanyFailure(name, exc.exit_code, str(exc)))
            out.warnings.append(f"{name}: left out of the export (exit {exc.exit_code}): {exc}")
            continue
        rows = csv.reader(io.StringIO(part.text, newline=""))
        head = next(rows, [])
        if not wrote_header:
            writer.writerow([header, *head])
            wrote_header = True
        for row in rows:
            writer.writerow([name, *row])
        out.count += part.count
        out.promoters += part.promoters
        out.left_out_customers += part.left_out_customers
        out.left_out_rows += part.left_out_rows
        out.bad_property_values += part.bad_property_values
        out.csv_problems = out.csv_problems or part.csv_problems  # the same file each time
        unmatched.append(part.csv_unmatched)
        out.warnings += [f"{name}: {w}" for w in part.warnings]
    out.csv_unmatched = min(unmatched, default=0)
    out.text = buf.getvalue()
    return out
