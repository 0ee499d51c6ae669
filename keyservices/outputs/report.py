"""``keyservices report``: key-service penetration by industry, branch and sales rep.

Pure counting (``penetration_matrix``) plus the files a manager opens: ``penetration.csv`` (long
format, one row per group and service), ``won-lost.csv`` when won/lost figures are given, and
``report.html``, one standalone page (inline CSS and SVG, nothing loaded from anywhere) rendered
from ``report.html.j2`` with autoescaping. The output depends on the input only (no timestamps),
so the same night gives byte-identical files. No SQLAlchemy here: the caller brings the data.
"""

from __future__ import annotations

import datetime as dt
import io
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from jinja2 import FileSystemLoader, StrictUndefined, TemplateError

from ..calls.outcomes import OutcomeRow
from ..calls.wonlost import NO_GROUP, WonLostRow
from ..errors import ConfigError
from ..model import Customer
from ..resources import templates_dir as packaged_templates
from .backtest_chart import backtest_view
from .cells import csv_writer
from .digest import sandbox_class
from .files import atomic_write
from .outcomes import (
    MEANINGS,
    OUTCOMES_COLUMNS,
    OUTCOMES_CSV,
    outcome_windows,
    outcomes_csv_rows,
)

REPORT_TEMPLATE = "report.html.j2"
PENETRATION_CSV = "penetration.csv"
WON_LOST_CSV = "won-lost.csv"
REPORT_HTML = "report.html"

Dimension = Literal["industry", "branch", "sales_rep"]
DIMENSIONS: dict[Dimension, str] = {"industry": "Industry", "branch": "Branch",
                                    "sales_rep": "Sales rep"}
TOTAL_GROUP = "(all)"  # the total row: every in-scope customer

PENETRATION_COLUMNS = ["dimension", "group", "customers", "service_code", "service_name",
                       "users", "share"]
WON_LOST_COLUMNS = ["window", "kind", "group", "service_code", "service_name", "won", "lost",
                    "won_value", "lost_value"]


@dataclass(frozen=True, slots=True)
class Cell:
    """One service within one group: how many of the group's customers use it."""

    code: str
    name: str
    users: int
    share: float  # users / the group's customers (0.0 for an empty group)


@dataclass(frozen=True, slots=True)
class MatrixRow:
    group: str
    customers: int
    cells: tuple[Cell, ...]  # in service order

    def cell(self, code: str) -> Cell:
        for c in self.cells:
            if c.code == code:
                return c
        raise KeyError(code)


@dataclass(frozen=True, slots=True)
class Matrix:
    """Penetration of every service within each group of one dimension, and over all customers."""

    by: Dimension
    services: tuple[tuple[str, str], ...]  # (code, name), in rule order
    rows: tuple[MatrixRow, ...]  # most customers first, then by name
    total: MatrixRow  # group TOTAL_GROUP

    @property
    def label(self) -> str:
        return DIMENSIONS[self.by]


@dataclass(frozen=True, slots=True)
class ReportFiles:
    csv: Path
    html: Path
    won_lost_csv: Path | None = None
    outcomes_csv: Path | None = None  # the calls' outcomes (with a state store and calls)


def group_of(customer: Customer, by: Dimension) -> str:
    """The customer's industry, branch or sales rep as shown; blank or missing is NO_GROUP."""
    if by not in DIMENSIONS:
        raise ValueError(f"unknown dimension {by!r}; use one of {', '.join(DIMENSIONS)}")
    value = getattr(customer, by)
    return (value or "").strip() or NO_GROUP


def _column(customers: Mapping[int, Customer], ids: list[int], by: str) -> list[Any]:
    """The ``by`` field of these customers: a column of a ``CustomerTable``, else per object."""
    column = getattr(customers, "column", None)
    if column is None:
        return [getattr(customers[cid], by) for cid in ids]
    import numpy as np

    return list(column(by, np.fromiter(ids, dtype=np.int64, count=len(ids))).tolist())


def penetration_matrix(customers: Mapping[int, Customer], services: Mapping[int, frozenset[str]],
                       service_names: Mapping[str, str], by: Dimension) -> Matrix:
    """Users and share of each service per group of ``by``, counting the customers in ``services``.

    ``services`` holds the in-scope (classified) customers and their service codes; every id in it
    must be in ``customers``. Codes missing from ``service_names`` are not counted.
    """
    if by not in DIMENSIONS:
        raise ValueError(f"unknown dimension {by!r}; use one of {', '.join(DIMENSIONS)}")
    order = tuple(service_names.items())
    sizes: dict[str, int] = {}
    users: dict[str, dict[str, int]] = {}
    # each in-scope customer's group read as one column (no object per customer: at a million,
    # seconds), each distinct value named once, and (group, services) pairs counted in one pass
    raw = _column(customers, list(services), by)
    named = {value: (value or "").strip() or NO_GROUP for value in set(raw)}
    for (group, codes), n in Counter(zip(map(named.__getitem__, raw),
                                         services.values())).items():
        sizes[group] = sizes.get(group, 0) + n
        counts = users.setdefault(group, {})
        for code in codes:
            counts[code] = counts.get(code, 0) + n

    def row(group: str, size: int, counts: Mapping[str, int]) -> MatrixRow:
        return MatrixRow(group, size, tuple(
            Cell(code, name, counts.get(code, 0), counts.get(code, 0) / size if size else 0.0)
            for code, name in order))

    groups = sorted(sizes, key=lambda g: (-sizes[g], g.casefold(), g))
    totals: dict[str, int] = {}
    for counts in users.values():
        for code, n in counts.items():
            totals[code] = totals.get(code, 0) + n
    return Matrix(by=by, services=order, rows=tuple(row(g, sizes[g], users[g]) for g in groups),
                  total=row(TOTAL_GROUP, len(services), totals))


def find_report_templates(override: Path | None = None, name: str = REPORT_TEMPLATE) -> Path:
    """The configured template folder if it has ``name`` (``report.html.j2``), else the
    packaged one.

    A folder of customised digest templates made before the report existed keeps working.
    """
    if override is not None:
        if not override.is_dir():
            raise ConfigError(f"template folder {override} not found (check digest.templates in "
                              "config.yaml)")
        if (override / name).is_file():
            return override
    folder = packaged_templates()
    if not (folder / name).is_file():
        raise ConfigError(f"report template {name} not found in {folder}; reinstall "
                          "keyservices")
    return folder


def write_report(out_dir: Path, *, dealer: str, as_of: dt.date, matrices: list[Matrix],
                 won_lost: Mapping[str, list[WonLostRow]] | None = None,
                 templates: Path | None = None, backtest: Mapping[str, Any] | None = None,
                 backtest_hint: str | None = None,
                 outcomes: Mapping[str, Sequence[OutcomeRow]] | None = None,
                 outcomes_note: str | None = None) -> ReportFiles:
    """Write penetration.csv, report.html, (when ``won_lost`` is given) won-lost.csv and
    (when ``outcomes`` is) opportunity-outcomes.csv.

    ``outcomes``: the calls' outcomes per window (``calls.outcomes``); without them the page
    says ``outcomes_note`` (why there are none) in one line.

    ``backtest``: the saved backtest summary the page charts; without one, ``backtest_hint``
    (the command that saves one) is said in one line, or nothing (no call list to test).

    ``won_lost`` maps a window's label ("last 30 days") to its rows; windows keep the mapping's
    order, rows are sorted (branch before sales rep, then group name, then service order).
    Each file is written beside its target and renamed into place.
    """
    if not matrices:
        raise ValueError("write_report needs at least one penetration matrix")
    names = dict(matrices[0].services)
    html = render_html(dealer=dealer, as_of=as_of, matrices=matrices, won_lost=won_lost,
                       templates=find_report_templates(templates), backtest=backtest,
                       backtest_hint=backtest_hint, outcomes=outcomes,
                       outcomes_note=outcomes_note)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(csv=out_dir / PENETRATION_CSV, html=out_dir / REPORT_HTML,
                        won_lost_csv=out_dir / WON_LOST_CSV if won_lost is not None else None,
                        outcomes_csv=out_dir / OUTCOMES_CSV if outcomes is not None else None)
    atomic_write(files.csv, csv_bytes(PENETRATION_COLUMNS, penetration_rows(matrices)))
    if files.won_lost_csv is not None and won_lost is not None:
        atomic_write(files.won_lost_csv,
                      csv_bytes(WON_LOST_COLUMNS, won_lost_csv_rows(won_lost, names)))
    if files.outcomes_csv is not None and outcomes is not None:
        atomic_write(files.outcomes_csv, csv_bytes(OUTCOMES_COLUMNS, outcomes_csv_rows(outcomes)))
    atomic_write(files.html, html.encode("utf-8"))
    return files


def penetration_rows(matrices: Iterable[Matrix]) -> Iterable[list[Any]]:
    """The long-format CSV rows: each group of each matrix, then its total, one row per service."""
    for m in matrices:
        for r in (*m.rows, m.total):
            for c in r.cells:
                yield [m.by, r.group, r.customers, c.code, c.name, c.users, f"{c.share:.4f}"]


def won_lost_csv_rows(won_lost: Mapping[str, list[WonLostRow]],
                      names: Mapping[str, str]) -> Iterable[list[Any]]:
    for window, rows in won_lost.items():
        for r in sorted_won_lost(rows, names):
            yield [window, r.kind, r.group, r.service, names.get(r.service, r.service), r.won,
                   r.lost, f"{r.won_value:.2f}", f"{r.lost_value:.2f}"]


def render_html(*, dealer: str, as_of: dt.date, matrices: list[Matrix],
                won_lost: Mapping[str, list[WonLostRow]] | None, templates: Path,
                backtest: Mapping[str, Any] | None = None,
                backtest_hint: str | None = None,
                outcomes: Mapping[str, Sequence[OutcomeRow]] | None = None,
                outcomes_note: str | None = None) -> str:
    """The standalone report page."""
    names = dict(matrices[0].services)
    context = {"dealer": dealer, "as_of": as_of, "matrices": matrices,
               "overall": matrices[0].total, "chart": bar_chart(matrices[0].total),
               "names": names, "windows": won_lost_windows(won_lost, names),
               "no_group": NO_GROUP, "has_won_lost": won_lost is not None,
               "backtest": backtest_view(backtest), "backtest_hint": backtest_hint,
               "outcomes": outcome_windows(outcomes), "outcomes_note": outcomes_note,
               "meanings": MEANINGS}
    return render_page(templates, REPORT_TEMPLATE, context)


def won_lost_windows(won_lost: Mapping[str, list[WonLostRow]] | None,
                     names: Mapping[str, str]) -> list[dict[str, Any]]:
    """Each window's rows for the page, split by kind and totalled per kind."""
    windows = []
    for label, rows in (won_lost or {}).items():
        ordered = sorted_won_lost(rows, names)
        parts = []
        for kind in ("branch", "sales_rep"):  # the same wins twice over: totalled per kind
            mine = [r for r in ordered if r.kind == kind]
            parts.append({"title": DIMENSIONS[kind], "rows": mine,
                          "won": sum(r.won for r in mine), "lost": sum(r.lost for r in mine),
                          "won_value": sum(r.won_value for r in mine),
                          "lost_value": sum(r.lost_value for r in mine)})
        windows.append({"label": label, "parts": parts})
    return windows


def render_page(templates: Path, name: str, context: Mapping[str, Any]) -> str:
    """Render one report template; an error in it is a ConfigError naming file and line."""
    # sandboxed like the digest: digest.templates is a folder an admin edits; a part the
    # folder lacks (report-backtest.html.j2, new in a later version) comes from the package
    folders = list(dict.fromkeys([str(templates), str(packaged_templates())]))
    env = sandbox_class()(loader=FileSystemLoader(folders), undefined=StrictUndefined,
                          autoescape=lambda name: bool(name and name.endswith(".html.j2")),
                          trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["pct"] = lambda x: f"{x * 100:.0f}%"
    env.filters["pct1"] = lambda x: f"{x * 100:.1f}%"
    env.filters["num"] = lambda x: f"{x:,}"
    env.filters["money"] = lambda x: f"{x:,.0f}"
    env.filters["heat"] = heat_colour
    env.filters["ink"] = lambda share: "#ffffff" if share >= 0.65 else "#111827"
    try:
        return env.get_template(name).render(context)
    except TemplateError as exc:
        where, line = getattr(exc, "filename", None), getattr(exc, "lineno", None)
        tb = exc.__traceback__ if where is None else None
        while tb is not None:  # a render error: the innermost template frame has the line
            if tb.tb_frame.f_code.co_filename.endswith(".j2"):
                where, line = tb.tb_frame.f_code.co_filename, tb.tb_lineno
            tb = tb.tb_next
        raise ConfigError(f"report template error in {where or templates}"
                          f"{f':{line}' if line else ''}: {exc}") from None


def bar_chart(total: MatrixRow, *, width: int = 990, bar: int = 22,
              gap: int = 12) -> dict[str, Any]:
    """Geometry of the overall penetration chart (horizontal bars, one per service)."""
    label_w = min(320, max(120, 8 + 8 * max((len(c.name) for c in total.cells), default=0)))
    value_w = 130
    plot_w = width - label_w - value_w
    bars = []
    for i, c in enumerate(total.cells):
        y = 8 + i * (bar + gap)
        bars.append({"name": c.name, "users": c.users, "share": c.share, "y": y,
                     "w": round(plot_w * min(max(c.share, 0.0), 1.0), 1)})
    return {"width": width, "height": 16 + len(bars) * (bar + gap) - gap, "label_w": label_w,
            "plot_w": plot_w, "bar": bar, "bars": bars,
            "ticks": [{"x": round(label_w + plot_w * t / 4, 1), "label": f"{25 * t}%"}
                      for t in range(5)]}


def heat_colour(share: float) -> str:
    """Cell background for a share: near-white for 0%, dark blue for 100%."""
    t = min(max(share, 0.0), 1.0)
    low, high = (0xef, 0xf6, 0xff), (0x1e, 0x40, 0xaf)
    r, g, b = (round(lo + (hi - lo) * t) for lo, hi in zip(low, high, strict=True))
    return f"#{r:02x}{g:02x}{b:02x}"


def sorted_won_lost(rows: Iterable[WonLostRow], names: Mapping[str, str]) -> list[WonLostRow]:
    rank = {code: i for i, code in enumerate(names)}
    kinds = {"branch": 0, "sales_rep": 1}
    return sorted(rows, key=lambda r: (kinds.get(r.kind, 2), r.group.casefold(), r.group,
                                       rank.get(r.service, len(rank)), r.service))


def csv_bytes(header: list[str], rows: Iterable[list[Any]]) -> bytes:
    """CSV as the digest attaches it and ``export`` writes it: CRLF rows, UTF-8 with a BOM so
    that Excel reads accented names right (LibreOffice and the csv module with utf-8-sig too)."""
    buf = io.StringIO()
    writer = csv_writer(buf)  # group names from the ERP that look like formulas: neutralised
    writer.writerow(header)
    writer.writerows(rows)
    return ("\ufeff" + buf.getvalue()).encode("utf-8")
