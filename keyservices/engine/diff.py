"""Diff: what the property says today against what the rules say, and whether it is safe to write.

Pure. Values are compared as the text the rules render (services in rule order, the configured
separator and format), so a change of ``value:`` or ``separator:`` converges on the next run;
customers without a configuration or without the attribute are listed, never written. Values the
tool could not have written are found before anything is (``foreign_values``). With
``write.locations`` a parent's active locations follow its value (``plan_locations``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ..model import Change, Customer, CustomerRef, CustomerTable, Facts, ServiceCount
from ..rules import RuleSet
from .classify import Classification


@dataclass(slots=True)
class Plan:
    changes: list[Change] = field(default_factory=list)
    no_configuration: list[CustomerRef] = field(default_factory=list)
    no_attribute: list[CustomerRef] = field(default_factory=list)
    unchanged: int = 0
    in_scope: int = 0
    # write.locations (level: parent): the active locations that follow their parent's value,
    # written and guarded like any change but counted and listed apart from customer changes
    locations: list[Change] = field(default_factory=list)
    locations_no_configuration: list[CustomerRef] = field(default_factory=list)
    locations_no_attribute: list[CustomerRef] = field(default_factory=list)
    locations_unchanged: int = 0
    locations_in_scope: int = 0  # active locations following an in-scope parent
    location_values: int = 0  # of those, writable ones holding a non-empty value

    def writes(self) -> list[Change]:
        """Every planned write, customers first: what the guard counts and the write-back
        applies."""
        return [*self.changes, *self.locations]

    @property
    def records(self) -> int:
        """The records tonight's values are for (customers and following locations): what
        write.max_changes_percent is a share of."""
        return self.in_scope + self.locations_in_scope


class _Differ:
    """A record's stored value against the rendered one. Values and service sets repeat across
    customers (a few dozen combinations for a million customers), so each (stored value,
    services) pair is compared and rendered once."""

    def __init__(self, rules: RuleSet) -> None:
        self.rules = rules
        order = [s.code for s in rules.services]
        self.rank = {code: i for i, code in enumerate(order)}
        self.last = len(order)
        self.outcome: dict[tuple[str | None, frozenset[str]],
                           tuple[str | None, tuple, tuple] | None] = {}

    def diff(self, value: str | None, new: frozenset[str]
             ) -> tuple[str | None, tuple, tuple] | None:
        """(value to write, services added, removed) for a stored ``value``, or None when it
        already says ``new``."""
        key = (value, new)
        if key in self.outcome:
            return self.outcome[key]
        rank, last = self.rank, self.last
        current = self.rules.parse_value(value)
        rendered = self.rules.render_value(new) or None
        diff = self.outcome[key] = None if (value or None) == rendered else (
            rendered,
            tuple(sorted(new - current, key=lambda x: rank.get(x, last))),
            tuple(sorted(current - new, key=lambda x: (rank.get(x, last), x))))
        return diff

    def change(self, c: Customer, new: frozenset[str], follows: str | None = None
               ) -> Change | None:
        """The change that gives ``c`` the value of ``new``, or None when it already has it."""
        diff = self.diff(c.current_value, new)
        if diff is None:
            return None
        return Change(customer_id=c.id, number=c.number, name=c.name, branch=c.branch,
                      sales_rep=c.sales_rep, before=c.current_value, after=diff[0],
                      added=diff[1], removed=diff[2], follows=follows)


def plan_changes(facts: Facts, classification: Classification, rules: RuleSet, *,
                 locations: bool = False) -> Plan:
    """Changes for writable customers whose value differs from the rendered one (another set of
    services, or the same services in another order, format or separator); the rest listed by
    reason. With ``locations`` (write.locations, level: parent) each active location follows
    its parent's value too (``plan_locations``).
    """
    plan = Plan(in_scope=len(classification.services))
    differ = _Differ(rules)
    customers = facts.customers
    if isinstance(customers, CustomerTable):
        _plan_by_column(plan, differ, customers, classification.services)
    else:
        _plan_by_record(plan, differ, customers, classification.services)
    by_number = _by_number
    plan.changes.sort(key=by_number)
    plan.no_configuration.sort(key=by_number)
    plan.no_attribute.sort(key=by_number)
    if locations:
        plan_locations(plan, facts, classification, rules, differ)
    return plan


def _plan_by_column(plan: Plan, differ: _Differ, customers: CustomerTable,
                    services: Mapping[int, frozenset[str]]) -> None:
    """``_plan_by_record`` on columns: each distinct (stored value, services) pair is compared
    once, and an object is made only for a customer that changes or cannot be written."""
    import numpy as np

    ids = np.fromiter(services.keys(), dtype=np.int64, count=len(services))
    new = list(services.values())
    rows = customers.positions(ids)
    col = customers.columns
    no_config = customers.missing("config_id", rows)
    no_row = ~no_config & ~col["has_value_row"][rows]
    for mask, into in ((no_config, plan.no_configuration), (no_row, plan.no_attribute)):
        at = rows[mask]
        into.extend(map(CustomerRef, col["number"][at].tolist(), col["name"][at].tolist(),
                        col["branch"][at].tolist(), col["sales_rep"][at].tolist()))
    writable = np.flatnonzero(~no_config & ~no_row)
    values = col["current_value"][rows[writable]].tolist()
    diffs = list(map(differ.diff, values, [new[i] for i in writable.tolist()]))
    changed = [i for i, d in zip(writable.tolist(), diffs) if d is not None]
    outcomes = [d for d in diffs if d is not None]  # (after, added, removed), as ``changed``
    plan.unchanged += len(writable) - len(changed)
    at = rows[changed]
    for cid, number, name, branch, rep, before, (after, added, removed) in zip(
            ids[changed].tolist(), col["number"][at].tolist(), col["name"][at].tolist(),
            col["branch"][at].tolist(), col["sales_rep"][at].tolist(),
            col["current_value"][at].tolist(), outcomes):
        plan.changes.append(Change(customer_id=cid, number=number, name=name, branch=branch,
                                   sales_rep=rep, before=before, after=after, added=added,
                                   removed=removed))


def _plan_by_record(plan: Plan, differ: _Differ, customers: Mapping[int, Customer],
                    services: Mapping[int, frozenset[str]]) -> None:
    for cid, new in services.items():
        c = customers[cid]
        if c.config_id is None:
            plan.no_configuration.append(CustomerRef(c.number, c.name, c.branch, c.sales_rep))
            continue
        if not c.has_value_row:
            plan.no_attribute.append(CustomerRef(c.number, c.name, c.branch, c.sales_rep))
            continue
        change = differ.change(c, new)
        if change is None:
            plan.unchanged += 1
            continue
        plan.changes.append(change)


def plan_locations(plan: Plan, facts: Facts, classification: Classification, rules: RuleSet,
                   differ: _Differ | None = None) -> None:
    """Add to ``plan`` the locations whose value differs from their parent's (level: parent).

    A location follows when it is active and not a prospect and its parent is in scope:
    exactly the locations whose facts count for the parent, so the value they show is the one
    their own machines and contracts helped make. Inactive locations (and those of inactive
    parents) keep whatever they hold. Locations that cannot hold a value are listed apart
    from the customers, as they share their parent's fix.
    """
    differ = differ or _Differ(rules)
    services = classification.services
    customers = facts.customers
    records: Iterable[Customer] = customers.values()
    if isinstance(customers, CustomerTable):  # objects for the active locations only
        col = customers.columns
        parent = col["parent_id"]
        wanted = (parent >= 0) & (parent != customers.ids) & col["active"] & ~col["prospect"]
        records = map(customers.__getitem__, customers.ids[wanted].tolist())
    for c in records:
        if (c.parent_id is None or not (c.is_location and c.active and not c.prospect)
                or c.id in services):
            continue
        new = services.get(c.parent_id)
        if new is None:  # the parent is inactive, a prospect or not on record
            continue
        plan.locations_in_scope += 1
        if c.config_id is None:
            plan.locations_no_configuration.append(
                CustomerRef(c.number, c.name, c.branch, c.sales_rep))
            continue
        if not c.has_value_row:
            plan.locations_no_attribute.append(
                CustomerRef(c.number, c.name, c.branch, c.sales_rep))
            continue
        if c.current_value and c.current_value.strip():
            plan.location_values += 1
        change = differ.change(c, new, follows=customers[c.parent_id].number)
        if change is None:
            plan.locations_unchanged += 1
        else:
            plan.locations.append(change)
    plan.locations.sort(key=_by_number)
    plan.locations_no_configuration.sort(key=_by_number)
    plan.locations_no_attribute.sort(key=_by_number)


def unwritable_locations_note(plan: Plan, attribute: str, limit: int = 10) -> str | None:
    """One line for the locations that cannot follow their parent (instead of one digest row
    each: a company's sites usually share one fix, and the parents that need fixing stay
    visible in the capped lists)."""
    refs = plan.locations_no_configuration + plan.locations_no_attribute
    if not refs:
        return None
    numbers = ", ".join(r.number for r in refs[:limit]) + (" ..." if len(refs) > limit else "")
    reasons = ", ".join(text for n, text in (
        (len(plan.locations_no_configuration),
         f"{len(plan.locations_no_configuration)} without a custom-property configuration"),
        (len(plan.locations_no_attribute),
         f"{len(plan.locations_no_attribute)} whose configuration lacks {attribute}")) if n)
    records = "1 location record cannot" if len(refs) == 1 else \
        f"{len(refs):,} location records cannot"
    return (f"{records} follow their parent: {reasons} ({numbers}). In e-automate, assign "
            f"them the customer configuration that includes {attribute} (Tools / Lists & Codes "
            "/ Configurations (Custom Properties), Assign); 'keyservices run --dry-run --json' "
            "lists them all.")


def _by_number(item: Change | CustomerRef) -> str:
    return item.number.upper()


def guarded(changes: Iterable[Change], *, baseline: bool) -> int:
    """How many changes count against the change guard: every one, except that a baseline fills
    empty values for free. Overwriting or clearing a value always counts, on every run."""
    if not baseline:
        return sum(1 for _ in changes)
    return sum(1 for c in changes if c.before not in (None, ""))


def guard_message(n_changes: int, in_scope: int, max_changes: int | None,
                  max_percent: float | None, *, baseline: bool = False,
                  command: str = "keyservices run", what: str = "changes") -> str | None:
    """Why the change guard stops this run, or None when the changes are within limits."""
    what = "existing values overwritten or cleared" if baseline else what
    reasons = []
    if max_changes is not None and n_changes > max_changes:
        reasons.append(f"{n_changes} {what} exceed write.max_changes = {max_changes}")
    if max_percent is not None and in_scope and n_changes * 100.0 / in_scope > max_percent:
        reasons.append(f"{n_changes} {what} are {n_changes * 100.0 / in_scope:.1f}% of "
                       f"{in_scope} customers, above write.max_changes_percent = {max_percent:g}")
    if not reasons:
        return None
    return ("Change guard: " + "; ".join(reasons) + ". Nothing was written. Review the plan with "
            f"'{command} --dry-run', then rerun with --force if the changes are right.")


# what a hand-edited or older value may use between service codes or names
_SEPARATORS = re.compile(r"\s*[,;|/+]\s*")


def owned(value: str | None, rules: RuleSet, written: Iterable[str] = ()) -> bool:
    """Whether keyservices could have written ``value``: empty, a value it wrote before (the
    audit's ``written``), or service codes or names joined by the configured separator or any
    common one (so a change of ``value:`` or ``separator:`` still counts as its own)."""
    if value is None or not value.strip() or value in written:
        return True
    known = {s.code.casefold() for s in rules.services} | {
        s.name.casefold() for s in rules.services}
    # at least one code or name: a value of separators only ('/', ';;') is a person's mark
    parts = [p.strip() for p in value.split(rules.separator)] if rules.separator.strip() else []
    parts = [p for p in parts if p]
    if parts and all(p.casefold() in known for p in parts):
        return True
    parts = [p for p in _SEPARATORS.split(value.strip()) if p]
    return bool(parts) and all(p.casefold() in known for p in parts)


def foreign_values(changes: Iterable[Change], rules: RuleSet,
                   written: Iterable[str] = ()) -> list[str]:
    """The distinct current values the planned changes would overwrite that keyservices could
    not have written (review dates, industry text, a person's note)."""
    written = set(written)
    seen: dict[str, None] = {}
    for c in changes:
        if c.before is not None and c.before not in seen and not owned(c.before, rules, written):
            seen[c.before] = None
    return list(seen)


def set_aside_foreign(plan: Plan, rules: RuleSet, written: Iterable[str] = ()) -> list[Change]:
    """Take the changes that would overwrite a value keyservices does not own out of the plan
    (they are never written) and return them, to be listed."""
    foreign = set(foreign_values(plan.writes(), rules, written))
    if not foreign:
        return []
    aside: list[Change] = []
    for name in ("changes", "locations"):  # a location's value is owned or not like any other
        kept: list[Change] = []
        for c in getattr(plan, name):
            (aside if c.before in foreign else kept).append(c)
        setattr(plan, name, kept)
    return aside


def attribute_is_foreign(n_foreign: int, n_values: int) -> bool:
    """Whether values keyservices does not own are too many to be a person's odd edit: more than
    1% of the attribute's non-empty values, and at least 3. The property then most likely
    points at another process's attribute (review dates, industry text)."""
    return n_foreign >= 3 and n_foreign * 100 > n_values


def ownership_message(attribute: str, aside: list[Change]) -> str:
    """The refusal: the attribute, how many values, three examples, and what to do."""
    distinct = list(dict.fromkeys(c.before for c in aside))
    examples = ", ".join(repr((v or "")[:40]) for v in distinct[:3])
    return (f"the attribute {attribute} holds {len(aside)} value(s) keyservices could not have "
            f"written (e.g. {examples}); it looks like another process's attribute, so nothing "
            "was written. Point 'property:' in the rules at the attribute keyservices owns (by "
            "convention a Z... custom property such as ZCJKeyServices), or clear those values "
            "in e-automate first. 'keyservices check' lists them.")


def penetration(classification: Classification, rules: RuleSet) -> list[ServiceCount]:
    """How many in-scope customers use each service."""
    total = len(classification.services) or 1
    counts = {s.code: 0 for s in rules.services}
    # a million customers hold a few dozen distinct sets of services: count the sets
    for services, n in Counter(classification.services.values()).items():
        for code in services:
            counts[code] = counts.get(code, 0) + n
    return [ServiceCount(s.code, s.name, counts[s.code], counts[s.code] / total)
            for s in rules.services]


def set_aside_two_rows(plan: Plan, numbers: Iterable[str]) -> list[CustomerRef]:
    """Take the customers with two or more value rows of the attribute out of the plan's
    "without the attribute" lists (they have a row, two in fact: they are never written, for
    another reason) and return them, to be listed with that reason."""
    twice = set(numbers)
    if not twice:
        return []
    out = [r for r in plan.no_attribute + plan.locations_no_attribute if r.number in twice]
    plan.no_attribute = [r for r in plan.no_attribute if r.number not in twice]
    plan.locations_no_attribute = [r for r in plan.locations_no_attribute
                                   if r.number not in twice]
    return sorted(out, key=lambda r: r.number)


def two_rows_note(attribute: str, table: str, numbers: list[str]) -> str:
    """The digest's line on customers with duplicate value rows: how many, which, what to do."""
    numbers = sorted(numbers)
    shown = ", ".join(numbers[:20]) + (" ..." if len(numbers) > 20 else "")
    return (f"{len(numbers)} customer(s) have two or more value rows of {attribute} in {table}; "
            "they are classified but never written until the extra rows are deleted in "
            f"e-automate (keep one per customer): {shown}")
