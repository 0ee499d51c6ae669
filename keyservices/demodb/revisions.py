"""The demo's contract revisions: renewals and lapses of the last two years, dated.

e-automate renews a contract with a new revision (``ContractMinor``), so the dated history
shows a contract ending and the next one starting. The generator keeps most contracts running
to the demo date; a contract whose first term ended within the last two years is now split:

* the row the generator made is the **renewal**: the revision that started the day the first
  term ended, running past the demo date (its expiry, value and lines are what they were, so
  the demo's present is unchanged);
* the **first term** is added as its own revision (``-00``), ending that day, with its machines
  on its own contract lines;
* and some contracts **lapsed**: for each key service an active company does not use, with the
  chance ``LAPSE / size`` (bigger companies lapse less; ``adoption.size_factor``), a contract of
  it ran three years and ended on a day of the last two years, not renewed.

So the renewal play (``calls.renewal``) has history to learn from: a contract ending, then
either the next revision or nothing. Its own random stream (``seed`` + 2), after the
adoption: every id and value drawn before is what it was without it.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from typing import Any

from .adoption import CONTRACT, PERIOD_DAYS, PERIODS, SERVICES, size_factor
from .schema import BILL_CODES, CONTRACT_CODES, REPS

_SAME = ("ContractMajor", "CustomerID", "BillToID", "ContractCodeID", "BillCodeID", "BaseRate",
         "SalesRepID")
LAPSE = 0.06  # per key service a company does not use, before the size factor
TERM_DAYS = 3 * 365  # a lapsed contract's term


@dataclass(slots=True)
class FirstTerm:
    """A contract the generator kept running, whose first term ended in the window."""

    same: tuple[Any, ...]  # the renewal's values the first term shares (``_SAME``)
    start: dt.datetime
    ended: dt.datetime
    machines: list[int] = field(default_factory=list)  # on the renewal's contract lines


def in_window(day: dt.datetime, ended: dt.datetime) -> bool:
    """Whether a first term ending then is split into two revisions (the last two years)."""
    return day - dt.timedelta(days=PERIOD_DAYS * PERIODS) <= ended < day


def split(first: dict[int, FirstTerm], row: dict[str, Any], start: dt.datetime,
          ended: dt.datetime) -> None:
    """Make ``row`` (about to be emitted) the renewal that started when its first term ended,
    and remember the first term (``revise`` adds it)."""
    row["StartDate"] = ended
    first[row["ContractID"]] = FirstTerm(tuple(row[k] for k in _SAME), start, ended)


def revise(gen: Any, *, seed: int) -> None:
    """Add the first terms and the lapsed contracts (``gen``: the generator)."""
    rng = random.Random(seed + 2)
    for term in gen.first_terms.values():
        kid = gen.ids.next("contract")
        same = dict(zip(_SAME, term.same))
        gen.emit("SCContracts", {**same, "ContractID": kid,
                                 "ContractNumber": f"{same['ContractMajor']}-00",
                                 "ContractMinor": "00", "StartDate": term.start,
                                 "ExpDate": term.ended, "ExpDateInitial": term.ended,
                                 "Active": True})
        gen.summary.contracts += 1
        for eid in term.machines:
            gen.emit("SCContractDetails", {"ContractDetailID": gen.ids.next("detail"),
                                            "ContractID": kid, "EquipmentID": eid})
            gen.summary.contract_lines += 1
    first = gen.day - dt.timedelta(days=PERIOD_DAYS * PERIODS)
    for company in gen.companies:
        for service in SERVICES:
            if service in company.held or rng.random() >= LAPSE / size_factor(company.sites):
                continue
            ended = first + dt.timedelta(days=rng.randint(0, PERIOD_DAYS * PERIODS - 1))
            kid = gen.ids.next("contract")
            code = CONTRACT[service]
            gen.emit("SCContracts", {
                "ContractID": kid, "ContractNumber": f"CN{kid:06d}-01",
                "ContractMajor": f"CN{kid:06d}", "ContractMinor": "01",
                "CustomerID": company.parent, "BillToID": company.parent,
                "ContractCodeID": list(CONTRACT_CODES).index(code) + 1,
                "BillCodeID": rng.randint(1, len(BILL_CODES)),
                "StartDate": ended - dt.timedelta(days=TERM_DAYS), "ExpDate": ended,
                "ExpDateInitial": ended, "Active": True,
                "BaseRate": round(rng.uniform(49, 1900), 2),
                "SalesRepID": rng.randint(1, len(REPS))})
            gen.summary.contracts += 1


__all__ = ["LAPSE", "FirstTerm", "in_window", "revise", "split"]
