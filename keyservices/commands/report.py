"""``keyservices report``: penetration by industry, branch and sales rep, and won / lost.

Reads the ERP the way a run does (the same set-based facts, plus the contract value columns of
``keyservices.calls.wonlost``), classifies, and counts every in-scope customer's services per group;
won and lost over the last 30 and 90 days come from the state store's audit, and what became
of the calls (``calls.outcomes``) from its opportunity store (when a state store exists).
``keyservices.outputs.report`` writes the files; nothing is written to the ERP or the state store.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from .. import night
from ..calls.outcomes import OutcomeRow, outcomes
from ..calls.wonlost import ValueColumns, annual_book, totals, windows_ending, won_lost
from ..config import Config
from ..engine.classify import Classification
from ..erp import wrap_db_error
from ..model import Facts
from ..outputs.backtest_chart import HINT_COMMAND
from ..outputs.report import (
    DIMENSIONS,
    Matrix,
    ReportFiles,
    WonLostRow,
    penetration_matrix,
    write_report,
)
from ..progress import Reporter
from ..state import StateStore
from ..state.backtests import load_backtest
from ..state.store import store_exists

NO_STORE = "no state store yet (no live run)"


@dataclass
class ReportResult:
    """Where the files went and the headline numbers (``to_dict`` for ``--json``)."""

    as_of: dt.date
    out: Path
    files: ReportFiles
    customers: int  # in scope (active, not prospects, at the rule set's level)
    services: list[dict[str, Any]]  # code, name, users, share, annual_value (of their contracts)
    groups: dict[str, int]  # dimension -> number of groups
    won_lost: dict[str, dict[str, float]] | None = None  # window -> won, lost, won/lost value
    notes: list[str] = field(default_factory=list)
    # the saved backtest's scores (``backtest --save`` or a live run's learning) the page
    # charts, as ``backtest --json`` prints them, with ``made_at``; None: none saved
    backtest: dict[str, Any] | None = None
    # the calls' outcomes (calls.outcomes): window -> one dict per play, then "all plays";
    # None with outcomes_note saying why (no state store, no call tracked yet)
    outcomes: dict[str, list[dict[str, Any]]] | None = None
    outcomes_note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["as_of"] = self.as_of.isoformat()
        data["out"] = str(self.out)
        data["files"] = {k: str(v) if v else None for k, v in data["files"].items()}
        return data


@dataclass
class ReportParts:
    """One company's figures before anything is written: a group's report gathers these."""

    matrices: list[Matrix]
    won_lost: dict[str, list[WonLostRow]] | None
    customers: int
    services: list[dict[str, Any]]
    notes: list[str]
    backtest: dict[str, Any] | None = None  # the saved backtest summary (None: none saved)
    calls: bool = True  # the rules find calls (else there is no list to backtest)
    # the calls' outcomes per window (calls.outcomes); None: none to show, outcomes_note says why
    outcomes: dict[str, list[OutcomeRow]] | None = None
    outcomes_note: str | None = None


def report(config: Config, *, out: Path | None = None, as_of: dt.date | None = None,
           reporter: Reporter | None = None) -> ReportResult:
    """Write penetration.csv, report.html and (with a state store) won-lost.csv and
    opportunity-outcomes.csv into ``out``.

    ``out`` defaults to ``report/`` in the state folder. Penetration counts the customers a run
    would write (active, not prospects; locations rolled up with ``level: parent``) by their
    industry, branch and sales rep. Won and lost cover the nights of live runs in the last 30 and
    90 days up to ``as_of``; without a state store (no run yet) that part is left out.
    """
    as_of = as_of or dt.date.today()
    parts = compute(config, as_of, reporter=reporter)
    target = out or (config.state.dir / "report")
    files = write_report(target, dealer=config.dealer, as_of=as_of, matrices=parts.matrices,
                         won_lost=parts.won_lost, templates=config.digest.templates,
                         backtest=parts.backtest,
                         backtest_hint=HINT_COMMAND if parts.calls else None,
                         outcomes=parts.outcomes, outcomes_note=parts.outcomes_note)
    return ReportResult(
        as_of=as_of, out=target, files=files, customers=parts.customers,
        services=parts.services, groups={m.by: len(m.rows) for m in parts.matrices},
        won_lost=None if parts.won_lost is None else {
            label: totals(rows) for label, rows in parts.won_lost.items()},
        notes=parts.notes, backtest=parts.backtest,
        outcomes=None if parts.outcomes is None else {
            label: [r.to_dict() for r in rows] for label, rows in parts.outcomes.items()},
        outcomes_note=parts.outcomes_note)


def compute(config: Config, as_of: dt.date, *, reporter: Reporter | None = None) -> ReportParts:
    """Penetration per dimension, won/lost (None without a state store) and notes for one
    company, reading its ERP as a night would; nothing is written."""
    rules = night.rules_for(config)
    with night.open_erp(config, rules) as erp:
        tonight = night.compute(config, as_of, erp=erp, reporter=reporter, calls=False)
        calls = rules.opportunities is not None
        saved = _backtest(config, erp.identity()) if calls else None
    facts, classification, values = tonight.facts, tonight.classification, tonight.values
    assert values is not None
    names = rules.service_names()
    matrices = [penetration_matrix(facts.customers, classification.services, names, by)
                for by in DIMENSIONS]
    notes: list[str] = []
    figures, outcomes, why = _from_store(config, names, as_of, calls)
    if figures is None:
        notes.append(f"{NO_STORE}, so there are no won/lost figures; they appear once runs "
                     "have written changes")
    if facts.metrics is None and values.sections:
        notes.append("the rules need the detailed facts path, which carries no contract values: "
                     "annual values are shown as 0")
    if calls and saved is None:
        notes.append(f"no backtest saved yet: run '{HINT_COMMAND}' to chart here whether the "
                     "call list would have been right")
    return ReportParts(matrices=matrices, won_lost=figures,
                       customers=len(classification.services),
                       services=_services(matrices[0], classification, facts, values),
                       notes=notes, backtest=saved, calls=calls, outcomes=outcomes,
                       outcomes_note=why)


def _services(matrix: Matrix, classification: Classification, facts: Facts,
              values: ValueColumns) -> list[dict[str, Any]]:
    """Each service's users and share overall, and the annual value of its users' contracts."""
    book = annual_book(classification, facts, values)
    return [{"code": c.code, "name": c.name, "users": c.users, "share": round(c.share, 4),
             "annual_value": round(book.get(c.code, 0.0), 2)} for c in matrix.total.cells]


def _backtest(config: Config, erp_id: str) -> dict[str, Any] | None:
    """The backtest summary last saved for this ERP, read only (a report writes nothing);
    None without a state store or a saved backtest."""
    reader = StateStore.reader(config.state_url)
    if reader is None:
        return None
    try:
        return load_backtest(reader.engine, erp_id)
    except SQLAlchemyError as exc:
        raise wrap_db_error(exc, config.state_url) from exc
    finally:
        reader.close()


def _from_store(config: Config, names: dict[str, str], as_of: dt.date, calls: bool
                ) -> tuple[dict[str, list[WonLostRow]] | None,
                           dict[str, list[OutcomeRow]] | None, str | None]:
    """Won/lost per window from the audit and the calls' outcomes per window from the
    opportunity store (each None without a state store), and why there are no outcomes."""
    if not store_exists(config.state_url):
        return None, None, (f"No opportunity outcomes: {NO_STORE}; they appear once live runs "
                            "have tracked calls")
    store = StateStore(config.state_url)
    try:
        windows = windows_ending(as_of)
        # the rows up to as_of, newest first, streamed: a loss is worth what was recorded when
        # the service was last added, and reading stops once every loss has its value
        figures = won_lost(store.won_lost_rows(as_of), names, windows, newest_first=True)
        if not store.has_opportunities():
            return figures, None, (
                "No opportunity outcomes: no live run has tracked a call yet" if calls else
                "No opportunity outcomes: the rules find no calls (add opportunities: or "
                "cross_sell: to the rules)")
        return figures, outcomes(store.outcome_records(as_of), windows), None
    except SQLAlchemyError as exc:
        raise wrap_db_error(exc, config.state_url) from exc
    finally:
        store.close()


__all__ = ["ReportParts", "ReportResult", "compute", "report"]
