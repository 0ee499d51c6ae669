"""Rules compiled to per-customer numbers the database computes, evaluated over arrays.

Why: every section of the rule language needs only one to four numbers per customer (active units
in some categories, matching contracts and their base rate, revenue on some accounts in a window,
quantity / amount / top unit price of items sold). Asking the database for exactly those numbers,
one row per customer and one column per number, shrinks what crosses the wire to what a rule can
use, and lets a million customers' facts live in one float array (tens of MB) instead of millions
of Python dicts (gigabytes). Parent roll-up and thresholds then run as array operations.

Pure: numpy and the rule models, no SQLAlchemy. ``keyservices.erp.facts`` turns the ``Column`` specs
into SQL; ``classify`` evaluates through ``evaluate``. The dict-based facts path in ``classify``
stays as the reference the tests compare this one against, and serves ``explain``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..rules import (
    ContractsSection,
    EquipmentSection,
    GlSection,
    ItemsSoldSection,
    RuleSet,
    glob_match,
)

NONE = -1e18  # a maximum over no rows (SQL NULL): below every threshold a rule can state
KINDS = ("equipment", "contracts", "gl", "items_sold", "invoices")
# money sums are added in a different order by the database than by Python: a threshold met to
# the cent must not flip on the last bit of a float
_EPS = 1e-6


class NotCompilable(Exception):
    """The rule set uses something the array path cannot express; use the dict-based facts."""


@dataclass(frozen=True, slots=True)
class Filter:
    """Rows of a kind that count towards a column: ``column`` is a logical profile column."""

    column: str  # category_id | active | contract_code_id | bill_code_id | status_id |
    #              account_id | transaction_type | item_category_id | expires_within (ids=(days,))
    #              | on_contract (equipment; ids=(1,): on an active contract, (0,): on none)
    ids: tuple[int, ...] = ()
    globs: tuple[str, ...] = ()  # for text columns (transaction_type), matched with LIKE
    null: bool = False  # rows where the column is NULL count too (a glob that matches "")


@dataclass(frozen=True, slots=True)
class Column:
    """One number per customer row: an aggregate over the rows of ``kind`` passing ``filters``."""

    kind: str  # equipment | contracts | gl | items_sold | invoices
    agg: str  # units | count | rate | revenue | qty | amount | top_price | top_cost
    filters: tuple[Filter, ...]
    window: int | None = None  # days back from the run date (gl, items_sold)

    @property
    def is_max(self) -> bool:
        return self.agg in ("top_price", "top_cost")

    @property
    def empty(self) -> float:
        return NONE if self.is_max else 0.0


@dataclass(slots=True)
class Codes:
    """The dealer's code lists (id -> code) that the rules' globs are resolved against."""

    categories: dict[int, str]
    contract_codes: dict[int, str] = field(default_factory=dict)
    bill_codes: dict[int, str] = field(default_factory=dict)
    statuses: dict[int, str] = field(default_factory=dict)
    accounts: dict[int, str] = field(default_factory=dict)
    item_categories: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Check:
    column: int  # index into Compiled.columns
    minimum: float


Section = tuple[Check, ...]  # every check must hold


@dataclass(slots=True)
class CompiledService:
    code: str
    match: str
    sections: list[Section]
    exclude_match: str = "any"
    exclude: list[Section] | None = None


@dataclass(slots=True)
class Compiled:
    """The columns to compute and, per service, the checks over them."""

    columns: list[Column] = field(default_factory=list)
    services: list[CompiledService] = field(default_factory=list)
    _index: dict[Column, int] = field(default_factory=dict)

    def column(self, col: Column) -> int:
        """The index of ``col``, adding it once (two sections asking the same share a column)."""
        if col not in self._index:
            self._index[col] = len(self.columns)
            self.columns.append(col)
        return self._index[col]

    def of_kind(self, kind: str) -> list[int]:
        return [i for i, c in enumerate(self.columns) if c.kind == kind]

    def index_of(self, col: Column) -> int:
        """Where an ``extra`` column's values are (KeyError if it was not compiled in)."""
        return self._index[col]


class Extra:
    """Columns other steps (status monitors, customer tiers, contract values) need beside the
    rules', computed in the same statements. Subclasses name the code lists they resolve."""

    codes_needed: frozenset[str] = frozenset()

    def columns(self, codes: Codes) -> list[Column]:
        return []


# -- building blocks for extra columns -----------------------------------------------------------
def gl_revenue(codes: Codes, accounts: Sequence[str], window: int) -> Column:
    """Revenue on accounts matching ``accounts`` in the last ``window`` days."""
    ids, _ = _ids(codes.accounts, accounts)
    return Column("gl", "revenue", (Filter("account_id", ids),), window)


def contracts_matching(codes: Codes, contract_codes: Sequence[str], agg: str = "count",
                       expires_within: int | None = None) -> Column:
    """Active contracts whose code matches (``count`` or monthly base ``rate``), optionally only
    those expiring within ``expires_within`` days of the run date."""
    filters = [Filter("contract_code_id", _ids(codes.contract_codes, contract_codes)[0])]
    if expires_within is not None:
        filters.append(Filter("expires_within", (int(expires_within),)))
    return Column("contracts", agg, tuple(filters))


def invoices_within(window: int) -> Column:
    """Invoices (not void) dated within the last ``window`` days."""
    return Column("invoices", "count", (), window)


# -- compiling --------------------------------------------------------------------------------------
def needed_codes(rules: RuleSet) -> set[str]:
    """Which code lists the rules' globs must be resolved against (each is one small query)."""
    need = set()
    for sec in rules.all_sections("contracts"):
        need.add("contract_codes")
        if sec.bill_codes:
            need.add("bill_codes")
        if sec.statuses:
            need.add("statuses")
    if rules.all_sections("gl"):
        need.add("accounts")
    if any(s.item_categories for s in rules.all_sections("items_sold")):
        need.add("item_categories")
    return need


def compile_rules(rules: RuleSet, codes: Codes, extra: Sequence[Column] = ()) -> Compiled:
    """Columns and checks for every service; ``extra`` columns (for monitors, tiers) ride along."""
    for sec in rules.all_sections("gl"):
        if any("[" in g for g in sec.transaction_types):
            raise NotCompilable("a transaction type glob uses a character class")
    out = Compiled()
    for col in extra:
        out.column(col)
    cats = list(codes.categories.values())
    for svc in rules.services:
        sections = [_section(out, rules, codes, cats, name, sec) for name, sec in svc.sections()]
        compiled = CompiledService(svc.code, svc.match, sections)
        if svc.exclude is not None:
            compiled.exclude_match = svc.exclude.match
            compiled.exclude = [_section(out, rules, codes, cats, name, sec)
                                for name, sec in svc.exclude.sections()]
        out.services.append(compiled)
    return out


def _ids(table: Mapping[int, str], globs: Sequence[str]) -> tuple[tuple[int, ...], bool]:
    """Ids whose code matches a glob, and whether a missing code ("") matches too."""
    hit = tuple(sorted(i for i, code in table.items() if glob_match(code or "", list(globs))))
    return hit, glob_match("", list(globs))


def _section(out: Compiled, rules: RuleSet, codes: Codes, cats: list[str], name: str,
             sec: Any) -> Section:
    if name == "equipment":
        return _equipment(out, rules, codes, cats, sec)
    if name == "contracts":
        return _contracts(out, codes, sec)
    if name == "gl":
        return _gl(out, codes, sec)
    return _items_sold(out, rules, codes, cats, sec)


def _category_ids(rules: RuleSet, codes: Codes, cats: list[str],
                  sec: EquipmentSection | ItemsSoldSection) -> tuple[int, ...]:
    wanted = rules.categories_for(sec, cats)
    return tuple(sorted(i for i, code in codes.categories.items() if code in wanted))


def _equipment(out: Compiled, rules: RuleSet, codes: Codes, cats: list[str],
               sec: EquipmentSection) -> Section:
    col = out.column(equipment_units(rules, codes, sec))
    return (Check(col, sec.min_count),)


def equipment_units(rules: RuleSet, codes: Codes, sec: EquipmentSection) -> Column:
    """Units in the field a section counts: its categories, active or not, and (``on_contract``)
    only machines on a contract active on the run date, or only machines on none."""
    cats = list(codes.categories.values())
    filters = [Filter("category_id", _category_ids(rules, codes, cats, sec))]
    if sec.active_only:
        filters.append(Filter("active"))
    if sec.on_contract is not None:
        filters.append(Filter("on_contract", (int(sec.on_contract),)))
    return Column("equipment", "units", tuple(filters))


def contract_filters(codes: Codes, sec: ContractsSection) -> tuple[Filter, ...]:
    """The contracts a section counts: its contract code, bill code and status globs as ids."""
    filters = []
    if sec.contract_codes:
        ids, _ = _ids(codes.contract_codes, sec.contract_codes)
        filters.append(Filter("contract_code_id", ids))
    if sec.bill_codes:
        ids, null = _ids(codes.bill_codes, sec.bill_codes)
        filters.append(Filter("bill_code_id", ids, null=null))
    if sec.statuses:
        ids, null = _ids(codes.statuses, sec.statuses)
        filters.append(Filter("status_id", ids, null=null))
    return tuple(filters)


def _contracts(out: Compiled, codes: Codes, sec: ContractsSection) -> Section:
    filters = contract_filters(codes, sec)
    checks = [Check(out.column(Column("contracts", "count", tuple(filters))), sec.min_count)]
    if sec.min_base_rate is not None:
        checks.append(Check(out.column(Column("contracts", "rate", tuple(filters))),
                            sec.min_base_rate - _EPS))
    return tuple(checks)


def _gl(out: Compiled, codes: Codes, sec: GlSection) -> Section:
    ids, _ = _ids(codes.accounts, sec.accounts)
    filters = [Filter("account_id", ids)]
    if sec.transaction_types:
        filters.append(Filter("transaction_type", globs=tuple(sec.transaction_types),
                              null=glob_match("", sec.transaction_types)))
    col = out.column(Column("gl", "revenue", tuple(filters), sec.window_days))
    return (Check(col, sec.min_revenue - _EPS),)


def _items_sold(out: Compiled, rules: RuleSet, codes: Codes, cats: list[str],
                sec: ItemsSoldSection) -> Section:
    filters = [Filter("category_id", _category_ids(rules, codes, cats, sec))]
    if sec.item_categories:
        ids, null = _ids(codes.item_categories, sec.item_categories)
        filters.append(Filter("item_category_id", ids, null=null))
    fs, w = tuple(filters), sec.window_days
    checks = [Check(out.column(Column("items_sold", "qty", fs, w)), sec.min_quantity - _EPS)]
    if sec.min_unit_price is not None:
        checks.append(Check(out.column(Column("items_sold", "top_price", fs, w)),
                            sec.min_unit_price - _EPS))
    if sec.min_unit_cost is not None:
        checks.append(Check(out.column(Column("items_sold", "top_cost", fs, w)),
                            sec.min_unit_cost - _EPS))
    if sec.min_amount is not None:
        checks.append(Check(out.column(Column("items_sold", "amount", fs, w)),
                            sec.min_amount - _EPS))
    return tuple(checks)


# -- the numbers, per customer row -------------------------------------------------------------------
@dataclass(slots=True)
class MetricTable:
    """One row per customer (in ``ids`` order, ascending), one column per ``Compiled`` column."""

    compiled: Compiled
    ids: np.ndarray  # int64 CustomerIDs, sorted
    values: np.ndarray  # float64, shape (len(ids), len(columns))

    @classmethod
    def empty(cls, compiled: Compiled, ids: Sequence[int] | np.ndarray) -> MetricTable:
        arr = np.asarray(ids, dtype=np.int64)
        row = np.array([NONE if col.is_max else 0.0 for col in compiled.columns],
                       dtype=np.float64)
        values = np.empty((len(arr), len(compiled.columns)), dtype=np.float64)
        values[:] = row  # row by row, in memory order (a column at a time strides: 5x slower)
        return cls(compiled, arr, values)

    def release(self) -> None:
        """Drop the per-record numbers once classified (the rolled-up ones live on in the
        classification): at a million customers that is some 180 MB a run no longer holds."""
        self.values = np.empty((0, self.values.shape[1]), dtype=self.values.dtype)

    def put(self, columns: Sequence[int], rows: np.ndarray) -> int:
        """Store a batch of (customer id, value...) rows; rows for unknown customers are dropped.

        Returns how many rows were stored.
        """
        if not len(rows):
            return 0
        keys = rows[:, 0].astype(np.int64)
        pos = np.searchsorted(self.ids, keys)
        pos[pos >= len(self.ids)] = 0
        known = self.ids[pos] == keys
        self.values[np.ix_(pos[known], np.asarray(columns))] = rows[known, 1:]
        return int(known.sum())


def rolled_up(table: MetricTable, target: np.ndarray,
              rows: np.ndarray | None = None) -> np.ndarray:
    """Each row's numbers added into its ``target`` row (sums add, maxima take the larger).

    ``target[i]`` is the row that row ``i`` counts for, or -1. Returns the rows ``rows`` (all by
    default) of the result, in that order; rows that nothing counts for hold the empty values.
    Asking only for the rows that are written keeps a full-size copy out of memory.
    """
    n = len(table.ids)
    if rows is None:
        rows = np.arange(n)
    position = np.full(n, -1, dtype=np.int64)
    position[rows] = np.arange(len(rows))
    valid = target >= 0
    src = np.nonzero(valid)[0]
    dst = position[target[valid]]
    kept = dst >= 0
    src, dst = src[kept], dst[kept]
    columns = table.compiled.columns
    out = np.empty((len(rows), len(columns)), dtype=table.values.dtype)
    out[:] = np.array([NONE if col.is_max else 0.0 for col in columns])
    # a row most rows count for alone (a parent without locations) just takes its values, a
    # whole row at a time; only rows that several count for are added up, in row order
    shared = np.bincount(dst, minlength=len(rows))[dst] > 1
    out[dst[~shared]] = table.values[src[~shared]]
    many_src, many_dst = src[shared], dst[shared]
    if not len(many_src):
        return out
    into, at = np.unique(many_dst, return_inverse=True)
    for j, col in enumerate(columns):
        if col.is_max:
            np.maximum.at(out[:, j], many_dst, table.values[many_src, j])
        else:  # bincount adds in row order from 0.0, over the shared rows' targets only
            out[into, j] = np.bincount(at.reshape(-1), weights=table.values[many_src, j],
                                       minlength=len(into))
    return out


def evaluate(compiled: Compiled, values: np.ndarray) -> np.ndarray:
    """Which services each row has: a bool array shaped (rows, services), in rule order."""
    rows = values.shape[0]
    out = np.zeros((rows, len(compiled.services)), dtype=bool)

    def section(checks: Section) -> np.ndarray:
        ok = np.ones(rows, dtype=bool)
        for check in checks:
            ok &= values[:, check.column] >= check.minimum
        return ok

    def combine(match: str, sections: list[Section]) -> np.ndarray:
        results = [section(s) for s in sections]
        if match == "any":
            return np.logical_or.reduce(results)
        return np.logical_and.reduce(results)

    for s, svc in enumerate(compiled.services):
        has = combine(svc.match, svc.sections)
        if svc.exclude:
            has &= ~combine(svc.exclude_match, svc.exclude)
        out[:, s] = has
    return out


__all__ = [
    "NONE",
    "Check",
    "Codes",
    "Column",
    "Compiled",
    "CompiledService",
    "Filter",
    "MetricTable",
    "NotCompilable",
    "compile_rules",
    "contract_filters",
    "equipment_units",
    "evaluate",
    "needed_codes",
    "rolled_up",
]
