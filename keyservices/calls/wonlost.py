"""Won and lost: services gained and lost per branch and sales rep, with their annual value.

A service's value is its contracts': 12 x the monthly base rate of the customer's active contracts
that match the service's ``contracts`` section (after roll-up, so a parent's value includes its
locations' contracts). The nightly run computes it beside the rules' own numbers
(``ValueColumns``, an ``Extra`` for ``read_facts``) and stores it with each audited change
(``fill_annual_values``); ``won_lost`` then adds up the audit rows of a period. A lost service is
worth what was recorded when that customer's service was last added, since its contracts are
usually gone by the night it is lost. Services without a contracts section have no value (0).

Pure: numpy and the rule models, no SQLAlchemy.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..engine.classify import Classification
from ..engine.metrics import Codes, Column, Extra, contract_filters
from ..model import Change, Facts
from ..rules import ContractsSection, RuleSet

NO_GROUP = "(none)"  # the customer has no industry / branch / sales rep
Kind = Literal["branch", "sales_rep"]


@dataclass(frozen=True, slots=True)
class WonLostRow:
    """Customers who gained (won) or lost a service in one branch or sales rep's book."""

    kind: Kind
    group: str
    service: str  # service code
    won: int
    lost: int
    won_value: float
    lost_value: float

MONTHS = 12
WINDOWS = (30, 90)  # days: the periods the report and the digest show
WEEK = 7  # days: "this week" on the digest's first screen, the 7 nights up to the run's date
KINDS: tuple[Kind, ...] = ("branch", "sales_rep")


class ValueColumns(Extra):
    """Per service with a contracts section: the monthly base rate of the customer's active
    contracts matching that section, computed in the same statement as the rules' numbers."""

    def __init__(self, rules: RuleSet) -> None:
        self.sections: tuple[tuple[str, ContractsSection], ...] = tuple(
            (s.code, s.contracts) for s in rules.services if s.contracts is not None)
        need = {"contract_codes"} if self.sections else set()
        for _, sec in self.sections:
            if sec.bill_codes:
                need.add("bill_codes")
            if sec.statuses:
                need.add("statuses")
        self.codes_needed = frozenset(need)

    def columns(self, codes: Codes) -> list[Column]:
        return [_rate_column(codes, sec) for _, sec in self.sections]

    def positions(self, facts: Facts) -> dict[str, int]:
        """Service code -> its column in ``facts.metrics`` (empty when the facts were read on the
        dict path, which carries no extra columns)."""
        if facts.metrics is None or facts.codes is None:
            return {}
        compiled = facts.metrics.compiled
        return {code: compiled.index_of(_rate_column(facts.codes, sec))
                for code, sec in self.sections}


def _rate_column(codes: Codes, sec: ContractsSection) -> Column:
    """The monthly rate of the contracts the section matches, filtered as the rule counts them."""
    return Column("contracts", "rate", contract_filters(codes, sec))


def annual_values(classification: Classification, facts: Facts,
                  values: ValueColumns) -> dict[int, dict[str, float]]:
    """Each in-scope customer's annual value per service with a contracts section (rolled up),
    whether or not it has the service; {} when the facts carry no value columns."""
    codes, yearly = _yearly(classification, facts, values)
    return {cid: dict(zip(codes, row)) for cid, row in
            zip(classification.services, yearly.tolist())} if codes else {}


def _yearly(classification: Classification, facts: Facts,
            values: ValueColumns) -> tuple[list[str], np.ndarray]:
    """The services with a contracts section, and a row of their annual values (12 x the
    monthly rate, rolled up, never below 0, to the cent) per in-scope customer, in the order
    of ``classification.services``; no services when the facts carry no value columns."""
    pos = values.positions(facts)
    rolled = classification.rolled
    if not pos or rolled is None:
        return [], np.zeros((0, 0))
    codes = list(pos)
    return codes, np.round(np.maximum(rolled[:, [pos[c] for c in codes]], 0.0) * MONTHS, 2)


def annual_book(classification: Classification, facts: Facts,
                values: ValueColumns) -> dict[str, float]:
    """Per service, the annual value of its users' contracts added up: ``annual_values``
    summed over the customers that have each service, in the same order (the same floats), by
    column rather than with a mapping per customer; {} when the facts carry no value columns."""
    codes, yearly = _yearly(classification, facts, values)
    if not codes:
        return {}
    sets = list(classification.services.values())
    kinds = {codes_held: n for n, codes_held in enumerate(set(sets))}  # a few distinct sets
    kind = np.fromiter(map(kinds.__getitem__, sets), dtype=np.int64, count=len(sets))
    book: dict[str, float] = {}
    for code in sorted({c for held in kinds for c in held}):
        if code not in codes:
            book[code] = 0.0
            continue
        users = np.isin(kind, [n for held, n in kinds.items() if code in held])
        book[code] = sum(yearly[users, codes.index(code)].tolist(), 0.0)
    return book


def fill_annual_values(changes: Sequence[Change], classification: Classification, facts: Facts,
                       values: ValueColumns) -> int:
    """Set ``annual_values`` on each change: (code, 12 x monthly rate) for every added service
    with a contracts section and a positive value. Returns how many changes got one.

    ``classification.rolled`` holds one row per customer of ``classification.services``, in that
    dict's order; only the changed customers' rows are looked up.
    """
    pos = values.positions(facts)
    rolled = classification.rolled
    if not pos or rolled is None or not changes:
        return 0
    ids = np.fromiter(classification.services, dtype=np.int64, count=len(classification.services))
    order = np.argsort(ids, kind="stable")
    wanted = np.fromiter((c.customer_id for c in changes), dtype=np.int64, count=len(changes))
    at = np.searchsorted(ids[order], wanted)
    at[at >= len(ids)] = 0
    found = (ids[order][at] == wanted) if len(ids) else np.zeros(len(changes), dtype=bool)
    rows = order[at] if len(ids) else at
    filled = 0
    for change, ok, row in zip(changes, found.tolist(), rows.tolist(), strict=True):
        if not ok:
            continue
        vals = []
        for code in change.added:
            if code in pos:
                value = round(max(float(rolled[row, pos[code]]), 0.0) * MONTHS, 2)
                if value > 0:
                    vals.append((code, value))
        if vals:
            change.annual_values = tuple(vals)
            filled += 1
    return filled


def windows_ending(as_of: dt.date, days: Iterable[int] = WINDOWS
                   ) -> dict[str, tuple[dt.date, dt.date]]:
    """"last N days" -> (first day, last day), both included: the N nights up to ``as_of``."""
    return {f"last {n} days": (as_of - dt.timedelta(days=n - 1), as_of) for n in days}


def won_lost(rows: Iterable[Mapping[str, Any]], names: Mapping[str, str],
             windows: Mapping[str, tuple[dt.date, dt.date]], *,
             newest_first: bool = False) -> dict[str, list[WonLostRow]]:
    """Won and lost services per branch and per sales rep, with counts and annual value.

    ``rows`` are audit rows as ``StateStore.won_lost(None, until, include_baseline=True,
    with_values=True)`` returns them (oldest first), or as ``won_lost_rows(...,
    newest_first=True)`` streams them (``newest_first``: then they are not all held). A loss is
    worth the value recorded when that customer's service was last added, however long ago (a
    baseline row included); only rows of non-baseline runs within a window count there. Read
    newest first, a loss waits for the add before it and nothing else is remembered, so memory
    stays with the window's losses, not with the audit's history; reading stops once every loss
    is valued and the windows are behind. The group is the branch / sales rep recorded with the
    change (``report.NO_GROUP`` when none). Each window's rows are sorted by kind (branch
    first), group, then the service order of ``names``.
    """
    if not newest_first:  # oldest first, a night's rows in the store's order: reversed exactly
        rows = sorted(rows, key=lambda r: r["as_of"])[::-1]  # not reverse=True: ties reversed
    earliest = min((since for since, _ in windows.values()), default=None)
    acc: dict[str, dict[tuple[Kind, str, str], list[float]]] = {label: {} for label in windows}
    waiting: dict[tuple[int, str], list[list[float]]] = {}  # losses waiting for their add's value
    for r in rows:
        if earliest is not None and r["as_of"] < earliest and not waiting:
            break  # the windows are behind and no loss waits for a value
        cid = r["customer_id"]
        # the values are read only where they count (a stored row's are decoded on first use):
        # a baseline night's rows are all skipped
        for code in r["added"] if waiting else ():  # the add before the losses read so far
            for cell in waiting.pop((cid, code), ()):
                cell[3] += float((r.get("annual_values") or {}).get(code, 0.0))
        if r.get("baseline"):
            continue
        cells = [acc[label].setdefault((kind, (r.get(kind) or "").strip() or NO_GROUP, code),
                                       [0, 0, 0.0, 0.0])
                 for label, (since, until) in windows.items() if since <= r["as_of"] <= until
                 for kind in KINDS for code in (*r["added"], *r["removed"])]
        if not cells:
            continue
        values = (r.get("annual_values") or {}) if r["added"] else {}
        per_code = len(r["added"]) + len(r["removed"])
        for n, cell in enumerate(cells):
            k = n % per_code
            if k < len(r["added"]):
                cell[0] += 1
                cell[2] += float(values.get(r["added"][k], 0.0))
            else:
                cell[1] += 1
                waiting.setdefault((cid, r["removed"][k - len(r["added"])]), []).append(cell)
    close = getattr(rows, "close", None)
    if close is not None:  # a stream left early: let its cursor go now
        close()
    rank = {code: i for i, code in enumerate(names)}
    out: dict[str, list[WonLostRow]] = {}
    for label in windows:
        keys = sorted(acc[label], key=lambda k: (KINDS.index(k[0]), k[1].casefold(), k[1],
                                                 rank.get(k[2], len(rank)), k[2]))
        out[label] = []
        for kind, group, code in keys:
            won, lost, won_value, lost_value = acc[label][(kind, group, code)]
            out[label].append(WonLostRow(
                kind, group, code, int(won), int(lost),
                round(won_value, 2), round(lost_value, 2)))
    return out


def totals(rows: Iterable[WonLostRow]) -> dict[str, float]:
    """Won and lost over every group of one kind (branch): each change counted once."""
    mine = [r for r in rows if r.kind == "branch"]
    return {"won": sum(r.won for r in mine), "lost": sum(r.lost for r in mine),
            "won_value": round(sum(r.won_value for r in mine), 2),
            "lost_value": round(sum(r.lost_value for r in mine), 2)}


def digest_table(by_window: Mapping[str, list[WonLostRow]], kind: str = "sales_rep"
                 ) -> dict[str, Any]:
    """Won and lost per sales rep (all services together) for each window, as the digest shows
    it: {"windows": [label...], "rows": [{"group", "cells": [[won, lost, won value, lost value]
    per window]}]}, the busiest group first."""
    labels = list(by_window)
    cells: dict[str, list[list[float]]] = {}
    for i, label in enumerate(labels):
        for row in by_window[label]:
            if row.kind != kind:
                continue
            mine = cells.setdefault(row.group, [[0, 0, 0.0, 0.0] for _ in labels])
            cell = mine[i]
            cell[0] += row.won
            cell[1] += row.lost
            cell[2] = round(cell[2] + row.won_value, 2)
            cell[3] = round(cell[3] + row.lost_value, 2)
    order = sorted(cells, key=lambda g: (-sum(c[0] + c[1] for c in cells[g]), g.casefold()))
    return {"windows": labels, "rows": [{"group": g, "cells": cells[g]} for g in order]}


def week_money(rows: Iterable[WonLostRow], since: dt.date, until: dt.date) -> dict[str, Any]:
    """One window's won and lost, all services together, as the digest's first screen shows it:
    [won, lost, won value, lost value] for the company ("all": every change once, as ``totals``
    counts it), per branch and per sales rep (so a branch's or rep's copy shows its own), and
    the days it covers. Small: one cell per branch and rep, stored with the digest."""
    out: dict[str, Any] = {"since": since.isoformat(), "until": until.isoformat(),
                           "all": [0, 0, 0.0, 0.0], "branch": {}, "sales_rep": {}}
    for r in rows:
        cells = [out[r.kind].setdefault(r.group, [0, 0, 0.0, 0.0])]
        if r.kind == "branch":  # every change is in one branch row: the company's total
            cells.append(out["all"])
        for cell in cells:
            cell[0] += r.won
            cell[1] += r.lost
            cell[2] = round(cell[2] + r.won_value, 2)
            cell[3] = round(cell[3] + r.lost_value, 2)
    return out


__all__ = ["ValueColumns", "annual_values", "digest_table", "fill_annual_values", "totals",
           "week_money", "windows_ending", "won_lost"]
