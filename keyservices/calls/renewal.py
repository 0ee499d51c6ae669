"""The renewal play: a customer whose every contract of a service ends within the window.

Such a customer keeps the service only if a contract is renewed or replaced, so the call is
worth its own contracts' annual value (12 x their monthly base rate) at the chance that it
is renewed. A customer with another contract of the service running past the window is not
at risk and gets no call (the renewals calendar still lists the contract that ends).

The play is judged the same way everywhere, by the contracts alone (not the service's other
signs, such as last year's revenue, which outlive a lapsed contract):

* the backtest marks a renewal call *won* when the customer has a contract of the service
  running 90 days after the call's date (``calls.backtest``); every contract the call was
  about had ended by then (the window is at most 90 days), so that contract is a renewal;
* the night closes a renewal call that is no longer found as *won* when a contract of the
  service runs past the window (renewed), as *lost* when none runs any more (not renewed)
  (``calls.lifecycle``).

Columns: per service with contract codes, its active contracts, and those ending within
``opportunities.renewal_days`` of the date, computed in the night's contract statement.

Pure: numpy and the rule models; no SQLAlchemy, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from ..engine.classify import Classification
from ..engine.metrics import Codes, Column, Extra, contracts_matching
from ..model import Facts
from ..rules import RuleSet

RENEWAL = "renewal"  # the play
PRIORITY = "Medium"  # its static priority (priority rules may change it)
VALUE_BASIS = "its own contracts' annual value, to two digits"


def renewable(rules: RuleSet) -> list[tuple[str, tuple[str, ...]]]:
    """(service code, contract code globs) of the services a renewal call may be made for:
    those defined by contract codes, when ``opportunities.renewal_days`` is set."""
    settings = rules.opportunities
    if settings is None or not settings.renewal_days:
        return []
    return [(s.code, tuple(s.contracts.contract_codes)) for s in rules.services
            if s.contracts is not None and s.contracts.contract_codes]


def columns(rules: RuleSet, codes: Codes) -> list[tuple[str, Column, Column]]:
    """(service, its active contracts, those ending within the window) per renewable service."""
    settings = rules.opportunities
    if settings is None:
        return []
    days = settings.renewal_days
    return [(code, contracts_matching(codes, globs),
             contracts_matching(codes, globs, expires_within=days))
            for code, globs in renewable(rules)]


class RenewalColumns(Extra):
    """The renewal play's columns; pass to ``read_facts(extra=[...])``."""

    def __init__(self, rules: RuleSet) -> None:
        self.rules = rules
        self.codes_needed = frozenset({"contract_codes"} if renewable(rules) else set())

    def columns(self, codes: Codes) -> list[Column]:
        out: list[Column] = []
        for _, running, ending in columns(self.rules, codes):
            out += [c for c in (running, ending) if c not in out]
        return out


Counts = dict[str, tuple[np.ndarray, np.ndarray]]  # service -> (running, ending), per customer


def counts(rules: RuleSet, index: Callable[[Column], int] | Mapping[Column, int],
           codes: Codes, rolled: np.ndarray | None) -> Counts:
    """Service -> (contracts running, contracts ending within the window) per customer, in the
    rolled-up array's order; {} when the facts were read without these columns."""
    if rolled is None:
        return {}
    find = index.__getitem__ if isinstance(index, Mapping) else index
    out: Counts = {}
    try:
        for code, running, ending in columns(rules, codes):
            out[code] = (rolled[:, find(running)], rolled[:, find(ending)])
    except KeyError:
        return {}
    return out


def due(found: Counts) -> dict[str, np.ndarray]:
    """Service -> whether each customer's every contract of it ends within the window."""
    return {code: (running > 0.5) & (ending >= running - 1e-9)
            for code, (running, ending) in found.items()}


def running(found: Counts, ids: Sequence[int] | np.ndarray) -> dict[str, np.ndarray]:
    """Service -> the sorted ids of the customers with a contract of it running (judging)."""
    ids = np.asarray(ids, dtype=np.int64)
    return {code: np.sort(ids[run > 0.5]) for code, (run, _) in found.items()}


def running_tonight(facts: Facts, classification: Classification, rules: RuleSet
                    ) -> dict[str, np.ndarray] | None:
    """``running`` for the night's classification (what closes its renewal calls); None
    when the rules make no renewal call."""
    if not renewable(rules):
        return None
    index = facts.metrics.compiled.index_of if facts.metrics is not None else {}
    return running(counts(rules, index, facts.codes, classification.rolled),
                   list(classification.services))


def reason(name: str, contracts: int, days: int) -> str:
    """Why the call is made, e.g. 'its 2 Copiers contracts all end within 90 days'."""
    if contracts == 1:
        return f"its {name} contract ends within {days} days"
    return f"its {contracts} {name} contracts all end within {days} days"


__all__ = ["PRIORITY", "RENEWAL", "VALUE_BASIS", "Counts", "RenewalColumns", "columns", "counts",
           "due", "reason", "renewable", "running",
           "running_tonight"]
