"""Diff: what the property says today against what the rules say, and whether it is safe to write.

Pure. Values are compared as sets of service codes, so a value typed in a different order is not
rewritten; customers without a configuration or without the attribute are listed, never written.
"""

from __future__ import annotations

from collections import Counter
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
    """Changes for writable customers whose set of services differs; the rest listed by reason.

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
            diff = outcome[key] = None if current == new else (
                rules.render_value(new) or None,
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


def guard_message(n_changes: int, in_scope: int, max_changes: int | None,
                  max_percent: float | None) -> str | None:
    """Why the change guard stops this run, or None when the changes are within limits."""
    reasons = []
    if max_changes is not None and n_changes > max_changes:
        reasons.append(f"{n_changes} changes exceed write.max_changes = {max_changes}")
    if max_percent is not None and in_scope and n_changes * 100.0 / in_scope > max_percent:
        reasons.append(f"{n_changes} changes are {n_changes * 100.0 / in_scope:.1f}% of "
                       f"{in_scope} customers, above write.max_changes_percent = {max_percent:g}")
    if not reasons:
        return None
    return ("Change guard: " + "; ".join(reasons) + ". Nothing was written. Review the plan with "
            "'keyservices run --dry-run', then rerun with --force if the changes are right.")


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
