"""Why each service was added or removed, and which customers look at risk.

A digest line "- Copiers, Managed Print" tells a manager what changed, not why: a competitor
took the fleet out, a contract ended, revenue fell under a threshold. The rules compare a handful
of numbers per customer (``metrics.Compiled``), so keeping last night's numbers and comparing
them with tonight's names the fact that flipped each verdict, in the rule's own terms.

Numbers are matched by their column's definition (``column_key``) and a service only by its
exact checks (``signature``): after a rule change, or when the dealer's codes a glob matches
change, that service is said to be not comparable rather than explained with other numbers.

Pure: numpy and the rule models. ``keyservices.state.snapshot`` keeps the numbers on disk;
``keyservices.commands.why`` joins the two for ``run`` and ``explain``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..model import Change, Customer, RiskFlag
from ..rules import RuleSet
from ..words import plural
from .metrics import NONE, Check, Column, Compiled

# what the rule says for each kind of number: the section field holding its threshold
_THRESHOLD = {"units": "min_count", "count": "min_count", "rate": "min_base_rate",
              "revenue": "min_revenue", "qty": "min_quantity", "top_price": "min_unit_price",
              "top_cost": "min_unit_cost", "amount": "min_amount"}
TAKEOUT, CHURN = "takeout", "churn"
REWRITTEN = "same services; value rewritten in the configured format"


def column_key(col: Column) -> str:
    """A column's identity across nights: its kind, aggregate, filters (resolved ids) and window."""
    return repr(col)


@dataclass(frozen=True, slots=True)
class _Part:
    """One section of a service, with the checks it compiled to."""

    kind: str  # equipment | contracts | gl | items_sold
    sec: Any
    checks: tuple[Check, ...]


@dataclass(slots=True)
class _Service:
    code: str
    name: str
    match: str
    parts: list[_Part]
    exclude_match: str = "any"
    excludes: list[_Part] = field(default_factory=list)


def _services(rules: RuleSet, compiled: Compiled) -> list[_Service]:
    """Each rule service beside its compiled checks (``compile_rules`` keeps section order)."""
    out = []
    for svc, comp in zip(rules.services, compiled.services):
        parts = [_Part(n, s, tuple(c)) for (n, s), c in zip(svc.sections(), comp.sections)]
        excludes = ([_Part(n, s, tuple(c)) for (n, s), c
                     in zip(svc.exclude.sections(), comp.exclude or [])]
                    if svc.exclude is not None else [])
        out.append(_Service(svc.code, svc.name, svc.match, parts, comp.exclude_match, excludes))
    return out


def rule_columns(compiled: Compiled) -> list[int]:
    """The columns the services' checks read (not the extras riding along): what is kept."""
    used = {c.column for s in compiled.services
            for sections in (s.sections, s.exclude or []) for sec in sections for c in sec}
    return sorted(used)


def signatures(rules: RuleSet, compiled: Compiled) -> dict[str, str]:
    """Per service, everything its verdict depends on: match, columns and thresholds."""
    def part(p: _Part) -> str:
        return repr([(column_key(compiled.columns[c.column]), c.minimum) for c in p.checks])

    return {s.code: repr((s.match, [part(p) for p in s.parts], s.exclude_match,
                          [part(p) for p in s.excludes])) for s in _services(rules, compiled)}


@dataclass(slots=True)
class Kept:
    """The numbers of an earlier clean live run (see ``keyservices.state.snapshot``)."""

    as_of: dt.date
    ids: np.ndarray  # int64 customer ids, ascending
    columns: Mapping[str, np.ndarray]  # column_key -> one value per id
    signatures: dict[str, str] = field(default_factory=dict)


def since(kept: Kept, as_of: dt.date) -> str:
    """"since last night", or since the date of the facts compared with."""
    return f"since {_night(kept, as_of)}"


def _night(kept: Kept, as_of: dt.date) -> str:
    return ("last night" if kept.as_of == as_of - dt.timedelta(days=1)
            else kept.as_of.isoformat())


class Comparison:
    """Tonight's numbers against a kept night's, built once and asked per customer.

    ``ids``/``values``: tonight's in-scope customers (ascending) and their rolled-up numbers in
    ``compiled``'s columns. ``kept`` is None when there is nothing comparable; ``why_not`` then
    says why (first night, another ERP, ...), briefly, instead of a guess.
    """

    def __init__(self, rules: RuleSet, compiled: Compiled, ids: np.ndarray, values: np.ndarray,
                 as_of: dt.date, kept: Kept | None, why_not: str | None = None) -> None:
        self.rules, self.compiled, self.as_of = rules, compiled, as_of
        self.ids, self.values = ids, values
        self.kept = kept
        self.why_not = why_not or ("not compared: no facts kept from an earlier live run"
                                   if kept is None else None)
        self.services = {s.code: s for s in _services(rules, compiled)}
        self.names = rules.service_names()
        self._kept_column: dict[int, np.ndarray] = {}  # tonight's column -> last night's values
        self._same: set[str] = set()
        if kept is not None:
            for j, col in enumerate(compiled.columns):
                if column_key(col) in kept.columns:
                    self._kept_column[j] = kept.columns[column_key(col)]
            tonight = signatures(rules, compiled)
            self._same = {code for code, sig in tonight.items()
                          if kept.signatures.get(code) == sig
                          and all(c.column in self._kept_column for p in self._parts(code)
                                  for c in p.checks)}

    def _parts(self, code: str) -> list[_Part]:
        s = self.services[code]
        return s.parts + s.excludes

    # -- rows --------------------------------------------------------------------------------------
    def _row(self, ids: np.ndarray, customer_id: int) -> int | None:
        i = int(np.searchsorted(ids, customer_id))
        return i if i < len(ids) and int(ids[i]) == customer_id else None

    def rows(self, customer_id: int) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Last night's numbers (in tonight's column order; NaN where not kept) and tonight's."""
        now = self._row(self.ids, customer_id)
        new = None if now is None else self.values[now]
        if self.kept is None:
            return None, new
        r = self._row(self.kept.ids, customer_id)
        if r is None:
            return None, new
        old = np.full(len(self.compiled.columns), np.nan)
        for j, values in self._kept_column.items():
            old[j] = values[r]
        return old, new

    # -- verdicts ----------------------------------------------------------------------------------
    @staticmethod
    def _ok(part: _Part, row: np.ndarray) -> bool:
        """A section holds when every one of its checks does (NaN: not kept, never holds)."""
        return all(row[c.column] >= c.minimum for c in part.checks)

    def has(self, code: str, row: np.ndarray) -> bool:
        """Whether the numbers in ``row`` give the service, as ``metrics.evaluate`` decides."""
        s = self.services[code]
        results = [self._ok(p, row) for p in s.parts]
        has = any(results) if s.match == "any" else all(results)
        if s.excludes:
            ex = [self._ok(p, row) for p in s.excludes]
            has = has and not (any(ex) if s.exclude_match == "any" else all(ex))
        return has

    def comparable(self) -> set[str]:
        """The services whose checks are the same as when the numbers were kept."""
        return set(self._same)

    def verdicts(self, customer_id: int) -> tuple[frozenset[str], frozenset[str]] | None:
        """The services kept numbers and tonight's give this customer, where both compare."""
        old, new = self.rows(customer_id)
        if old is None or new is None:
            return None
        codes = [c for c in self.services if c in self._same]
        return (frozenset(c for c in codes if self.has(c, old)),
                frozenset(c for c in codes if self.has(c, new)))

    # -- causes ------------------------------------------------------------------------------------
    def causes(self, change: Change) -> tuple[str, ...]:
        """One short line per service the change adds or removes, naming the facts that did it."""
        if not change.added and not change.removed:
            return (REWRITTEN,)
        if self.kept is None:
            return (self.why_not or "not compared",)
        rows: tuple[np.ndarray | None, np.ndarray | None] | None = None
        out = []
        for code, lost in [(c, False) for c in change.added] + [(c, True) for c in change.removed]:
            if rows is None and code in self._same:  # looked up only when compared
                rows = self.rows(change.customer_id)
            old, new = rows or (None, None)
            out.append(self.cause(code, old, new, lost=lost))
        return tuple(out)

    def cause(self, code: str, old: np.ndarray | None, new: np.ndarray | None, *,
              lost: bool) -> str:
        """Why ``code`` was added (``lost`` False) or removed, in one line."""
        name = self.names.get(code, code)
        assert self.kept is not None
        when = since(self.kept, self.as_of)
        if code not in self.services:
            return f"{name}: no such service in the rules any more"
        if code not in self._same:
            return f"{name}: its rule changed {when}; not compared"
        if old is None or new is None:
            return (f"{name}: not in scope {_night(self.kept, self.as_of)} (new, reactivated "
                    "or no longer a prospect)")
        if self.has(code, old) == self.has(code, new):
            return (f"{name}: the facts did not change it {when}; the value in e-automate "
                    "differed (edited by hand, or not written before)")
        s = self.services[code]
        texts = [self._part_text(p, old, new, lost=lost) for p in s.parts
                 if self._ok(p, old) == lost and self._ok(p, new) != lost]
        texts += ["excluded: " + self._part_text(p, old, new, lost=not lost) for p in s.excludes
                  if self._ok(p, old) != lost and self._ok(p, new) == lost]
        return f"{name}: " + "; ".join(texts or ["its facts changed"])

    def _part_text(self, part: _Part, old: np.ndarray, new: np.ndarray, *, lost: bool) -> str:
        flipped = [c for c in part.checks
                   if (old[c.column] >= c.minimum) == lost and (new[c.column] >= c.minimum) != lost]
        aggs = {self.compiled.columns[c.column].agg: c for c in flipped}
        if part.kind == "items_sold" and "qty" in aggs and len(aggs) > 1:
            flipped = [aggs["qty"]]  # "first ... sale" says it; the price follows from it
        return ", ".join(_check_text(self.compiled.columns[c.column], part,
                                     float(old[c.column]), float(new[c.column]), lost=lost,
                                     price=_top_price(self.compiled, part, new))
                         for c in flipped)

    def emptied(self, customer_ids: Sequence[int]) -> set[int]:
        """Of these customers (no service tonight), those the kept numbers gave a service: the
        churn of the facts, whatever the ERP's value says now."""
        if self.kept is None or not len(customer_ids):
            return set()
        asked = np.asarray(sorted(customer_ids), dtype=np.int64)
        pos = np.searchsorted(self.kept.ids, asked)
        pos[pos >= len(self.kept.ids)] = 0
        known = self.kept.ids[pos] == asked
        asked, pos = asked[known], pos[known]
        old = np.full((len(asked), len(self.compiled.columns)), np.nan)
        for j, values in self._kept_column.items():
            old[:, j] = values[pos]
        had = np.zeros(len(asked), dtype=bool)
        for code in self._same:
            had |= self._has_rows(self.services[code], old)
        return set(asked[had].tolist())

    @staticmethod
    def _has_rows(s: _Service, rows: np.ndarray) -> np.ndarray:
        def ok(p: _Part) -> np.ndarray:
            out = np.ones(len(rows), dtype=bool)
            for c in p.checks:
                out &= rows[:, c.column] >= c.minimum
            return out

        def combine(match: str, parts: list[_Part]) -> np.ndarray:
            results = [ok(p) for p in parts]
            return (np.logical_or.reduce(results) if match == "any"
                    else np.logical_and.reduce(results))

        has = combine(s.match, s.parts)
        if s.excludes:
            has &= ~combine(s.exclude_match, s.excludes)
        return has

    # -- risk ----------------------------------------------------------------------------------------
    def takeouts(self) -> dict[int, str]:
        """Customers whose machines of a class went (to none, or by more than half) while a
        contract for such machines is still active: what a competitor's takeout looks like.

        A contract is "for" machines when its service, or another service counting machines of
        the same categories, has it as a contracts section (copiers: COPY-* and MPS-*).
        """
        if self.kept is None or not len(self.ids) or not len(self.kept.ids):
            return {}
        _, now, then = np.intersect1d(self.ids, self.kept.ids, assume_unique=True,
                                      return_indices=True)
        found: dict[int, tuple[float, str]] = {}
        for col, what, contracts in _machines_and_contracts(self.rules, self.compiled):
            if col not in self._kept_column:
                continue
            old = self._kept_column[col][then]
            new = self.values[now, col]
            under = np.zeros(len(now), dtype=bool)
            for k, _ in contracts:
                under |= self.values[now, k] > 0
            hit = np.nonzero((old > 0) & ((new <= 0) | (new * 2 < old)) & under)[0]
            for i in hit.tolist():
                cid = int(self.ids[now[i]])
                gone = float(old[i] - new[i])
                if cid in found and found[cid][0] >= gone:
                    continue
                counts = [(float(self.values[now[i], k]), label) for k, label in contracts
                          if self.values[now[i], k] > 0]
                under_contract = _join([f"{n:g} {label}" for n, label in counts]) + (
                    " contracts are" if sum(n for n, _ in counts) > 1 else " contract is")
                text = (f"{plural(gone, 'machine')} ({what}) gone {since(self.kept, self.as_of)}, "
                        f"{old[i]:g} -> {new[i]:g}, while {under_contract} still active")
                found[cid] = (gone, text)
        return {cid: text for cid, (_, text) in found.items()}


def risks(comparison: Comparison | None, changes: Iterable[Change],
          customers: Mapping[int, Customer], names: Mapping[str, str], *,
          baseline: bool) -> list[RiskFlag]:
    """Takeout risks and churn (a change that removes the last service a customer had; not on
    a baseline, whose before-values are not last night's), by customer number."""
    found = [(cid, TAKEOUT, text) for cid, text
             in (comparison.takeouts() if comparison is not None else {}).items()]
    if not baseline:
        found += [(c.customer_id, CHURN, "last service(s) removed: "
                   + ", ".join(names.get(s, s) for s in c.removed))
                  for c in changes if c.removed and not c.after and c.carried_from is None]
    flags = []
    for cid, kind, text in found:
        c = customers[cid]
        flags.append(RiskFlag(cid, c.number, c.name, c.branch, c.sales_rep, kind, text))
    return sorted(flags, key=lambda f: (f.number.upper(), f.kind != TAKEOUT))


def _machines_and_contracts(rules: RuleSet, compiled: Compiled
                            ) -> list[tuple[int, str, list[tuple[int, str]]]]:
    """Each active-machine column with the contract-count columns that are "for" its machines."""
    services = _services(rules, compiled)
    equipment: dict[int, tuple[str, set[int]]] = {}
    per_service: list[tuple[set[int], list[tuple[int, str]]]] = []
    for s in services:
        cats: set[int] = set()
        contracts = []
        for p in s.parts:
            for c in p.checks:
                col = compiled.columns[c.column]
                if p.kind == "equipment" and any(f.column == "active" for f in col.filters):
                    ids = {i for f in col.filters if f.column == "category_id" for i in f.ids}
                    equipment.setdefault(c.column, (_what(p), ids))
                    cats |= ids
                elif p.kind == "contracts" and col.agg == "count":
                    contracts.append((c.column, _what(p)))
        per_service.append((cats, contracts))
    out = []
    for column, (what, ids) in equipment.items():
        linked = list(dict.fromkeys(k for cats, ks in per_service if cats & ids for k in ks))
        if linked:
            out.append((column, what, linked))
    return out


# -- words ---------------------------------------------------------------------------------------
def _what(part: _Part) -> str:
    sec = part.sec
    if part.kind in ("equipment", "items_sold"):
        return ", ".join([*sec.model_classes, *sec.categories])
    if part.kind == "contracts":
        return ", ".join([*sec.contract_codes, *(f"bill {b}" for b in sec.bill_codes),
                          *(f"status {s}" for s in sec.statuses)]) or "any"
    types = f" ({', '.join(sec.transaction_types)})" if sec.transaction_types else ""
    return ", ".join(sec.accounts) + types


def _top_price(compiled: Compiled, part: _Part, row: np.ndarray) -> float | None:
    for c in part.checks:
        if compiled.columns[c.column].agg == "top_price" and row[c.column] > NONE:
            return float(row[c.column])
    return None


def _n(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 or x == int(x) else f"{x:,.2f}"


def _join(items: Sequence[str]) -> str:
    return " and ".join(items) if len(items) <= 2 else ", ".join(items[:-1]) + " and " + items[-1]


def _check_text(col: Column, part: _Part, old: float, new: float, *, lost: bool,
                price: float | None = None) -> str:
    """One flipped check in the rule's own words, e.g. "GL 4300* revenue 820 < 1,000 over 365
    days (was 1,240)" or "17 units deactivated or moved (COPIER), 0 left"."""
    sec, what = part.sec, _what(part)
    need = getattr(sec, _THRESHOLD.get(col.agg, ""), None) or 0
    days = getattr(sec, "window_days", None)
    cmp = "<" if lost else ">="
    if col.agg == "units":
        if lost:
            text = f"{plural(old - new, 'unit')} deactivated or moved ({what}), {new:g} left"
        else:
            text = f"{plural(new - old, 'unit')} installed or moved in ({what}), {new:g} active"
        return text + (f"; needs {need:g}" if need != 1 or (lost and new > 0) else "")
    if col.agg == "count":
        if lost and new <= 0:
            return f"no active {what} contract any more"
        if not lost and old <= 0:
            return f"new active {what} contract" + (f" ({new:g} active)" if new != 1 else "")
        return f"active {what} contracts {old:g} -> {new:g}; needs {need:g}"
    if col.agg == "rate":
        return f"{what} base rate {_n(new)} {cmp} {_n(need)} a month (was {_n(old)})"
    if col.agg == "revenue":
        return f"GL {what} revenue {_n(new)} {cmp} {_n(need)} over {days} days (was {_n(old)})"
    if col.agg == "qty":
        if lost and new <= 0:
            return f"no {what} sold in the last {days} days any more"
        if not lost and old <= 0:
            at = f" at {_n(price)}" if price is not None else ""
            return f"first {what} sale{at} in the last {days} days"
        return f"{what} sold {new:g} in {days} days (was {old:g}); needs {need:g}"
    if col.agg in ("top_price", "top_cost"):
        unit = "price" if col.agg == "top_price" else "cost"
        if lost:
            return f"no {what} sold at unit {unit} >= {need:g} in the last {days} days any more"
        return f"{what} sold at unit {unit} {_n(new)} (needs {need:g})"
    return f"{what} sales {_n(new)} {cmp} {_n(need)} over {days} days (was {_n(old)})"


__all__ = ["CHURN", "REWRITTEN", "TAKEOUT", "Comparison", "Kept", "column_key", "risks",
           "rule_columns", "signatures", "since"]
