"""Diff: what the property says today against what the rules say, and whether it is safe to write.

Pure. Values are compared as the text the rules render (services in rule order, the configured
separator and format), so a change of ``value:`` or ``separator:`` converges on the next run;
customers without a configuration or without the attribute are listed, never written. Values the
tool could not have written are found before anything is (``foreign_values``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..model import Change, CustomerRef, Facts, ServiceCount
from ..rules import RuleSet
from .classify import Classification


@dataclass(slots=True)
class Plan:
    changes: list[Change] = field(default_factory=list)
    no_configuration: list[CustomerRef] = field(default_factory=list)
    no_attribute: list[CustomerRef] = field(default_factory=list)
    unchanged: int = 0
    in_scope: int = 0


def plan_changes(facts: Facts, classification: Classification, rules: RuleSet) -> Plan:
    """Changes for writable customers whose value differs from the rendered one (another set of
    services, or the same services in another order, format or separator); the rest listed by
    reason.

    Values and service sets repeat across customers (a few dozen combinations for a million
    customers), so each (stored value, services) pair is compared and rendered once.
    """
    plan = Plan(in_scope=len(classification.services))
    order = [s.code for s in rules.services]
    rank = {code: i for i, code in enumerate(order)}
    outcome: dict[tuple[str | None, frozenset[str]], tuple[str | None, tuple, tuple] | None] = {}
    customers = facts.customers
    for cid, new in classification.services.items():
        c = customers[cid]
        if c.config_id is None:
            plan.no_configuration.append(CustomerRef(c.number, c.name, c.branch, c.sales_rep))
            continue
        if not c.has_value_row:
            plan.no_attribute.append(CustomerRef(c.number, c.name, c.branch, c.sales_rep))
            continue
        key = (c.current_value, new)
        if key in outcome:
            diff = outcome[key]
        else:
            current = rules.parse_value(c.current_value)
            rendered = rules.render_value(new) or None
            diff = outcome[key] = None if (c.current_value or None) == rendered else (
                rendered,
                tuple(sorted(new - current, key=lambda x: rank.get(x, len(order)))),
                tuple(sorted(current - new, key=lambda x: (rank.get(x, len(order)), x))))
        if diff is None:
            plan.unchanged += 1
            continue
        plan.changes.append(Change(
            customer_id=cid, number=c.number, name=c.name, branch=c.branch,
            sales_rep=c.sales_rep, before=c.current_value, after=diff[0], added=diff[1],
            removed=diff[2]))
    by_number = _by_number
    plan.changes.sort(key=by_number)
    plan.no_configuration.sort(key=by_number)
    plan.no_attribute.sort(key=by_number)
    return plan


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
    parts = [p.strip() for p in value.split(rules.separator)] if rules.separator.strip() else []
    if parts and all(p.casefold() in known for p in parts if p):
        return True
    return all(p.casefold() in known for p in _SEPARATORS.split(value.strip()) if p)


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
    foreign = set(foreign_values(plan.changes, rules, written))
    if not foreign:
        return []
    kept, aside = [], []
    for c in plan.changes:
        (aside if c.before in foreign else kept).append(c)
    plan.changes = kept
    return aside


def attribute_is_foreign(n_foreign: int, n_values: int) -> bool:
    """Whether values keyservices does not own are too many to be a person's odd edit: more than
    1% of the attribute's non-empty values, and at least 3. The property then most likely
    points at another process's attribute (review dates, industry text)."""
    return n_foreign >= 3 and n_foreign * 100 > n_values


def ownership_message(attribute: str, aside: list[Change]) -> str:
    """The refusal: the attribute, how many values, three examples, and what to do."""
    examples = ", ".join(repr((v or "")[:40]) for v in dict.fromkeys(c.before for c in aside))
    examples = ", ".join(examples.split(", ")[:3])
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
