"""Cross-sell rules evaluated over the night's classification (``rules.cross_sell`` says what).

A rule's conditions are checked per combination of (peer group, services), a few hundred for a
million customers, and per customer only for its tier and its equipment count, which comes from
the same set-based equipment statement as the rules' own numbers (``CrossSellColumns``).

Pure: numpy and the rule models.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from ..engine.metrics import Codes, Column, Extra, equipment_units
from ..rules import CrossSell, EquipmentSection, RuleSet, Units
from .monitors import indexer


def section_of(units: Units) -> EquipmentSection:
    """The rule's equipment condition as a service's equipment section (same keys)."""
    return EquipmentSection(**units.model_dump())


class CrossSellColumns(Extra):
    """Per cross-sell rule with an ``equipment:`` condition, its unit count per customer."""

    def __init__(self, rules: RuleSet) -> None:
        self.rules = rules

    def columns(self, codes: Codes) -> list[Column]:
        return [equipment_units(self.rules, codes, section_of(r.equipment))
                for r in self.rules.cross_sell if r.equipment is not None]


def units(rules: RuleSet, compiled_index: Callable[[Column], int] | Mapping[Column, int],
          codes: Codes | None, rolled: np.ndarray | None) -> dict[int, np.ndarray] | None:
    """Rule position -> units per in-scope customer (``Classification`` order), for the rules
    with an equipment condition; None when the facts carry no numbers (the detail path)."""
    wanted = [(i, r) for i, r in enumerate(rules.cross_sell) if r.equipment is not None]
    if not wanted:
        return {}
    if rolled is None or codes is None:
        return None
    find = indexer(compiled_index, "CrossSellColumns")
    return {i: rolled[:, find(equipment_units(rules, codes, section_of(r.equipment)))]
            for i, r in wanted if r.equipment is not None}


def play_of(rule: CrossSell) -> str:
    """The play a rule's offers belong to, the unit a win rate is learned for: machines on no
    contract offered a contract are ``uncovered_machines``; any other rule is its own play."""
    if rule.offer and rule.equipment is not None and rule.equipment.on_contract is False:
        return "uncovered_machines"
    return f"cross_sell:{rule.name}"


def uncovered_offers(rules: RuleSet, codes: Codes | None) -> dict[str, set[int]]:
    """Service code -> the model category ids of the ``uncovered_machines`` rules offering it:
    what a contract line must cover for such an offer to be won (``calls.lifecycle``)."""
    out: dict[str, set[int]] = {}
    if codes is None:
        return out
    for rule in rules.cross_sell:
        if play_of(rule) != "uncovered_machines" or rule.equipment is None:
            continue
        column = equipment_units(rules, codes, section_of(rule.equipment))
        ids = {i for f in column.filters if f.column == "category_id" for i in f.ids}
        for code in rule.offer:
            out.setdefault(code, set()).update(ids)
    return out


def combo_matches(rule: CrossSell, industry: str | None, services: frozenset[str]
                  ) -> list[str]:
    """The services this rule offers a customer of ``industry`` using ``services`` (before its
    tier and equipment conditions); [] when a condition fails."""
    if rule.industries and (industry or "").casefold() not in {
            i.casefold() for i in rule.industries}:
        return []
    if not set(rule.has) <= services:
        return []
    if rule.lacks:
        return [code for code in rule.lacks if code not in services]
    return list(rule.offer)


def reason(rule: CrossSell, names: Mapping[str, str], count: int | None) -> str:
    """Why, for the rep: the rule's own reason, else its conditions with the customer's count."""
    if rule.reason:
        return rule.reason
    parts = []
    if rule.has:
        parts.append("uses " + ", ".join(names[c] for c in rule.has))
    if rule.equipment is not None and count is not None:
        u = rule.equipment
        what = ", ".join([*u.model_classes, *u.categories])
        cover = {True: " on an active contract", False: " on no active contract",
                 None: ""}[u.on_contract]
        parts.append(f"{count} {what} unit{'s' if count != 1 else ''}{cover}")
    if rule.lacks:
        parts.append("lacks " + ", ".join(names[c] for c in rule.lacks))
    return f"{rule.name} ({'; '.join(parts)})" if parts else rule.name


def tier_ok(rule: CrossSell, ids: Sequence[int], tiers: Mapping[int, str]) -> np.ndarray:
    """Customers (in ``ids`` order) in one of the rule's tiers; all when it names none."""
    if not rule.tiers:
        return np.ones(len(ids), dtype=bool)
    wanted = set(rule.tiers)
    return np.fromiter((tiers.get(cid) in wanted for cid in ids), dtype=bool, count=len(ids))


__all__ = ["CrossSellColumns", "combo_matches", "play_of", "reason", "section_of", "tier_ok", "units"]
