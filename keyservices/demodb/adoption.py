"""The demo's two years of adoption: who took up a key service, when, and why.

The generator first gives every company the services it has (``_Generator._services``, with
start dates spread over four years, as before). Then, for the 24 periods of 30 days before the
demo date, every active company takes up each key service it does not use yet with the chance

    h = BASE[service] x INDUSTRY[industry][service] x SIZE[sites] x HELD[service](services used)

and puts its copiers on no contract onto one with the chance ``COVER x SIZE[sites]``. So
adoption depends on what a dealer can see: the industry, the size (sites, and with it the fleet
and revenue), the services already used and the machines left uncovered. A taken-up service
is dated: a contract starting that day (with, for copiers and managed print, the machines
installed that day on its lines); a copier put on a contract gets a contract line starting that
day. ``chance`` is the model itself, so a benchmark can rank by the true chances.

Its own random stream (``seed`` + 1), after every company is made: the rest of the demo
(ids, values, dates) is what it was without it.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .schema import BILL_CODES, CONTRACT_CODES, COPIERS, INDUSTRIES, PRINTERS, REPS

PERIODS = 24  # periods of 30 days, the two years before the demo date
PERIOD_DAYS = 30
SERVICES = ("CPY", "MPS", "DM", "MIT")
BASE = {"CPY": 0.002, "MPS": 0.002, "DM": 0.002, "MIT": 0.002}  # per period, before factors
COVER = 0.02  # per period, a company's uncovered copiers put on a contract
# the services whose use makes another likelier: MIT to copier users, MPS to copier users,
# DM to managed-print users
HELD = {"MIT": ("CPY", 3.0), "MPS": ("CPY", 2.0), "DM": ("MPS", 2.5), "CPY": ("", 1.0)}
CONTRACT = {"CPY": "COPY-MAINT", "MPS": "MPS-FLEET", "DM": "DM-SUB", "MIT": "IT-MANAGED"}
_MEAN = [sum(v[i] for v in INDUSTRIES.values()) / len(INDUSTRIES) for i in range(4)]


@dataclass(frozen=True, slots=True)
class Company:
    """What the adoption depends on, as the generator left the company."""

    parent: int
    industry: str
    sites: int
    held: frozenset[str]
    uncovered: tuple[tuple[int, dt.datetime], ...]  # copiers on no contract, install date


def size_factor(sites: int) -> float:
    """Bigger companies (more sites) take up services more often: 1 site x1, 5 sites x3."""
    return 0.5 + 0.5 * min(sites, 5)


def chance(service: str, industry: str, sites: int, held: Iterable[str]) -> float:
    """The chance, per 30 days, that a company not using ``service`` takes it up."""
    mine = INDUSTRIES[industry][SERVICES.index(service)] / _MEAN[SERVICES.index(service)]
    needs, factor = HELD[service]
    boost = factor if needs and needs in set(held) else 1.0
    return min(0.9, BASE[service] * mine ** 2 * size_factor(sites) * boost)


def cover_chance(sites: int) -> float:
    """The chance, per 30 days, that a company's uncovered copiers go on a contract."""
    return COVER * size_factor(sites)


def adopt(gen: Any, *, seed: int) -> None:
    """Add two years of dated adoption to the generator's rows (``gen``: the generator)."""
    rng = random.Random(seed + 1)
    start = gen.day - dt.timedelta(days=PERIOD_DAYS * PERIODS)
    for company in gen.companies:
        held = set(company.held)
        bare = list(company.uncovered)
        for period in range(PERIODS):
            day = start + dt.timedelta(days=PERIOD_DAYS * period + rng.randint(0, PERIOD_DAYS - 1))
            for service in SERVICES:
                if service not in held and rng.random() < chance(
                        service, company.industry, company.sites, held):
                    held.add(service)
                    _take_up(gen, rng, company.parent, service, day)
            ready = [b for b in bare if b[1] < day]
            if ready and rng.random() < cover_chance(company.sites):
                kid = _contract(gen, rng, company.parent, "COPY-MAINT", day)
                for eid, _ in ready:
                    _line(gen, kid, eid, day)
                bare = [b for b in bare if b[1] >= day]


def _take_up(gen: Any, rng: random.Random, parent: int, service: str, day: dt.datetime) -> None:
    kid = _contract(gen, rng, parent, CONTRACT[service], day)
    machines = {"CPY": (COPIERS, 1), "MPS": (PRINTERS, rng.randint(3, 8))}.get(service)
    if machines is not None:
        kinds, count = machines
        for _ in range(count):
            eid = gen.ids.next("equipment")
            gen.emit("SCEquipments", {
                "EquipmentID": eid, "EquipmentNumber": f"EQ{eid:07d}",
                "SerialNumber": f"SN{rng.randint(10**7, 10**8 - 1)}", "CustomerID": parent,
                "LocationID": parent, "ModelID": rng.choice(gen.model_ids[rng.choice(kinds)]),
                "InstallDate": day, "Active": True})
            gen.summary.equipment += 1
            _line(gen, kid, eid, day)


def _contract(gen: Any, rng: random.Random, customer: int, code: str, day: dt.datetime) -> int:
    kid = gen.ids.next("contract")
    exp = day + dt.timedelta(days=30 * 36)
    gen.emit("SCContracts", {
        "ContractID": kid, "ContractNumber": f"CN{kid:06d}-01", "ContractMajor": f"CN{kid:06d}",
        "ContractMinor": "01", "CustomerID": customer, "BillToID": customer,
        "ContractCodeID": list(CONTRACT_CODES).index(code) + 1,
        "BillCodeID": rng.randint(1, len(BILL_CODES)), "StartDate": day, "ExpDate": exp,
        "ExpDateInitial": exp, "Active": True, "BaseRate": round(rng.uniform(49, 1900), 2),
        "SalesRepID": rng.randint(1, len(REPS))})
    gen.summary.contracts += 1
    gen.summary.adopted += 1
    return kid


def _line(gen: Any, contract: int, equipment: int, day: dt.datetime) -> None:
    gen.emit("SCContractDetails", {"ContractDetailID": gen.ids.next("detail"),
                                   "ContractID": contract, "EquipmentID": equipment,
                                   "StartDate": day})
    gen.summary.contract_lines += 1


__all__ = ["BASE", "COVER", "PERIODS", "Company", "adopt", "chance", "cover_chance",
           "size_factor"]
