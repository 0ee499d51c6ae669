"""``keyservices report`` for a dealer group (#25): penetration and won/lost per company and for
the group, in the report's three files.

penetration.csv and won-lost.csv gain a first ``company`` column: every company's rows as its own
report has them, then a set of rows whose company is ``(group)``: penetration per company
(dimension ``company``) and per industry across the companies (industries are the group's
shared words; branches and reps belong to one company), won and lost per company (kind
``company``), each with an ``(all)`` total. report.html opens with the group's summary and has a
section per company. A company whose rules lack a service is left out of that service's share
for the group (its customers could not have it). Pure: no SQLAlchemy.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..calls.outcomes import OutcomeRow, added
from ..calls.wonlost import NO_GROUP, WonLostRow
from .backtest_chart import backtest_view
from .files import atomic_write
from .outcomes import (
    MEANINGS,
    OUTCOMES_COLUMNS,
    OUTCOMES_CSV,
    outcome_windows,
    outcomes_csv_rows,
)
from .report import (
    PENETRATION_COLUMNS,
    PENETRATION_CSV,
    REPORT_HTML,
    TOTAL_GROUP,
    WON_LOST_COLUMNS,
    WON_LOST_CSV,
    Cell,
    Matrix,
    MatrixRow,
    ReportFiles,
    csv_bytes,
    find_report_templates,
    penetration_rows,
    render_page,
    won_lost_csv_rows,
    won_lost_windows,
)

GROUP_TEMPLATE = "report-group.html.j2"
GROUP_COMPANY = "(group)"  # the company column of the group's own rows
COMPANY_COLUMN = "company"


@dataclass(frozen=True, slots=True)
class CompanyReport:
    """One company's part of a group's report: its figures, or why it has none tonight."""

    company: str
    matrices: Sequence[Matrix] = ()  # empty: the company failed (``error`` says why)
    won_lost: Mapping[str, list[WonLostRow]] | None = None  # None: no state store yet
    error: str | None = None
    exit_code: int = 0
    backtest: Mapping[str, Any] | None = None  # its saved backtest summary (None: none saved)
    backtest_hint: str | None = None  # without one: the command that saves one
    # the calls' outcomes per window (None: none, ``outcomes_note`` says why)
    outcomes: Mapping[str, Sequence[OutcomeRow]] | None = None
    outcomes_note: str | None = None

    @property
    def names(self) -> dict[str, str]:
        return dict(self.matrices[0].services) if self.matrices else {}


def merged(matrices: Sequence[Matrix]) -> Matrix:
    """One dimension's matrices of several companies as one, groups matched by name.

    A service's users are summed over the companies whose rules have it, and its share is of
    those companies' customers in the group."""
    by = matrices[0].by
    services = _services(matrices)
    sizes: dict[str, int] = {}
    for m in matrices:
        for r in m.rows:
            sizes[r.group] = sizes.get(r.group, 0) + r.customers
    groups = sorted(sizes, key=lambda g: (-sizes[g], g.casefold(), g))
    rows = tuple(_merge_rows(g, [r for m in matrices for r in m.rows if r.group == g],
                             services) for g in groups)
    return Matrix(by=by, services=services, rows=rows,
                  total=_merge_rows(TOTAL_GROUP, [m.total for m in matrices], services))


def _services(matrices: Iterable[Matrix]) -> tuple[tuple[str, str], ...]:
    """Every company's services, in the order they first appear."""
    seen: dict[str, str] = {}
    for m in matrices:
        for code, name in m.services:
            seen.setdefault(code, name)
    return tuple(seen.items())


def _merge_rows(group: str, rows: Sequence[MatrixRow],
                services: Sequence[tuple[str, str]]) -> MatrixRow:
    cells = []
    for code, name in services:
        having = [(r.customers, c.users) for r in rows for c in r.cells if c.code == code]
        eligible, users = sum(n for n, _ in having), sum(u for _, u in having)
        cells.append(Cell(code, name, users, users / eligible if eligible else 0.0))
    return MatrixRow(group, sum(r.customers for r in rows), tuple(cells))


def summary(reports: Sequence[CompanyReport]) -> tuple[list[MatrixRow], MatrixRow] | None:
    """Each reported company's overall row (named after it) and the group's; None when no
    company could be reported."""
    done = [r for r in reports if r.matrices]
    if not done:
        return None
    rows = [MatrixRow(r.company, r.matrices[0].total.customers, r.matrices[0].total.cells)
            for r in done]
    total = merged([r.matrices[0] for r in done]).total
    return rows, total


def group_won_lost(reports: Sequence[CompanyReport]) -> dict[str, list[WonLostRow]] | None:
    """Won and lost per company and service in each window (counted once: from the branch
    rows), then the group's per service; None when no company has a state store yet."""
    having = [r for r in reports if r.won_lost is not None]
    if not having:
        return None
    out: dict[str, list[WonLostRow]] = {}
    for report in having:
        assert report.won_lost is not None
        for window, rows in report.won_lost.items():
            mine = out.setdefault(window, [])
            for code in report.names:
                mine.append(_add(report.company, code,
                                 [r for r in rows if r.kind == "branch" and r.service == code]))
    for window, rows in out.items():
        codes = list(dict.fromkeys(r.service for r in rows))
        rows += [_add(TOTAL_GROUP, code, [r for r in rows if r.service == code]) for code in codes]
    return out


def _add(group: str, code: str, rows: Sequence[WonLostRow]) -> WonLostRow:
    return WonLostRow("company", group, code,  # type: ignore[arg-type]  # the group's own kind
                      sum(r.won for r in rows), sum(r.lost for r in rows),
                      sum(r.won_value for r in rows), sum(r.lost_value for r in rows))


def penetration_csv(reports: Sequence[CompanyReport]) -> Iterable[list[Any]]:
    """Each company's penetration rows with its name first, then the group's."""
    for report in reports:
        for row in penetration_rows(report.matrices):
            yield [report.company, *row]
    found = summary(reports)
    if found is None:
        return
    rows, total = found
    for r in (*rows, total):
        for c in r.cells:
            yield [GROUP_COMPANY, COMPANY_COLUMN, r.group, r.customers, c.code, c.name, c.users,
                   f"{c.share:.4f}"]
    industries = [r.matrices[0] for r in reports if r.matrices and r.matrices[0].by == "industry"]
    if industries:
        for row in penetration_rows([merged(industries)]):
            yield [GROUP_COMPANY, *row]


def won_lost_csv(reports: Sequence[CompanyReport],
                 group: Mapping[str, list[WonLostRow]]) -> Iterable[list[Any]]:
    """Each company's won/lost rows with its name first, then the group's per company."""
    names: dict[str, str] = {}
    for report in reports:
        names.update({k: v for k, v in report.names.items() if k not in names})
        if report.won_lost is not None:
            for row in won_lost_csv_rows(report.won_lost, report.names):
                yield [report.company, *row]
    for window, rows in group.items():
        for r in rows:
            yield [GROUP_COMPANY, window, r.kind, r.group, r.service, names.get(r.service,
                                                                                r.service),
                   r.won, r.lost, f"{r.won_value:.2f}", f"{r.lost_value:.2f}"]


def group_outcomes(reports: Sequence[CompanyReport]) -> dict[str, list[OutcomeRow]] | None:
    """The companies' outcomes added up per window and play; None when no company has any."""
    having = [r.outcomes for r in reports if r.outcomes is not None]
    return added(having) if having else None


def outcomes_csv(reports: Sequence[CompanyReport],
                 group: Mapping[str, Sequence[OutcomeRow]]) -> Iterable[list[Any]]:
    """Each company's outcome rows with its name first, then the group's."""
    for report in reports:
        if report.outcomes is not None:
            for row in outcomes_csv_rows(report.outcomes):
                yield [report.company, *row]
    for row in outcomes_csv_rows(group):
        yield [GROUP_COMPANY, *row]


def write_group_report(out_dir: Path, *, dealer: str, as_of: dt.date,
                       reports: Sequence[CompanyReport],
                       templates: Path | None = None) -> ReportFiles:
    """Write the group's penetration.csv, report.html and (once any company has a state
    store) won-lost.csv, each beside its target and renamed into place."""
    group = group_won_lost(reports)
    calls = group_outcomes(reports)
    html = render_group_html(dealer=dealer, as_of=as_of, reports=reports, group=group,
                             templates=find_report_templates(templates, GROUP_TEMPLATE))
    out_dir.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(csv=out_dir / PENETRATION_CSV, html=out_dir / REPORT_HTML,
                        won_lost_csv=out_dir / WON_LOST_CSV if group is not None else None,
                        outcomes_csv=out_dir / OUTCOMES_CSV if calls is not None else None)
    atomic_write(files.csv, csv_bytes([COMPANY_COLUMN, *PENETRATION_COLUMNS],
                                      penetration_csv(reports)))
    if files.won_lost_csv is not None and group is not None:
        atomic_write(files.won_lost_csv, csv_bytes([COMPANY_COLUMN, *WON_LOST_COLUMNS],
                                                   won_lost_csv(reports, group)))
    if files.outcomes_csv is not None and calls is not None:
        atomic_write(files.outcomes_csv, csv_bytes([COMPANY_COLUMN, *OUTCOMES_COLUMNS],
                                                   outcomes_csv(reports, calls)))
    atomic_write(files.html, html.encode("utf-8"))
    return files


def render_group_html(*, dealer: str, as_of: dt.date, reports: Sequence[CompanyReport],
                      group: Mapping[str, list[WonLostRow]] | None, templates: Path) -> str:
    """The group's standalone page: its summary, then a section per company."""
    found = summary(reports)
    services = _services(r.matrices[0] for r in reports if r.matrices)
    companies = [{"name": r.company, "error": r.error, "exit_code": r.exit_code,
                  "matrices": list(r.matrices), "names": r.names,
                  "overall": r.matrices[0].total if r.matrices else None,
                  "has_won_lost": r.won_lost is not None,
                  "windows": won_lost_windows(r.won_lost, r.names),
                  "backtest": backtest_view(r.backtest), "backtest_hint": r.backtest_hint,
                  "outcomes": outcome_windows(r.outcomes), "outcomes_note": r.outcomes_note}
                 for r in reports]
    windows = [{"label": label,
                "rows": [r for r in rows if r.group != TOTAL_GROUP],
                "total": [r for r in rows if r.group == TOTAL_GROUP]}
               for label, rows in (group or {}).items()]
    context = {"dealer": dealer, "as_of": as_of, "companies": companies,
               "services": services, "names": dict(services), "no_group": NO_GROUP,
               "rows": found[0] if found else [], "total": found[1] if found else None,
               "windows": windows, "has_won_lost": group is not None,
               "failed": [r for r in reports if r.error],
               "outcomes": outcome_windows(group_outcomes(reports)), "meanings": MEANINGS}
    return render_page(templates, GROUP_TEMPLATE, context)
