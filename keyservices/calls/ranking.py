"""One ranking for every play: the expected value of the call.

Each opportunity gets ``p_win``, the chance its service is won within 90 days, from the win
rate of its cell (``calls.rates``: play, service, industry, size tier, services held), and
``expected_value`` = ``p_win`` x its estimated annual value. An opportunity nothing prices is
valued at the median of tonight's priced offers, so that it ranks by its chance alone. The list
is ordered by expected value (or by ``p_win`` where the rules say ``rank_by: p_win``); ties by
value, then customer number. Priority rules stay on top of the ranking as the admin's
overrides: a pinned opportunity comes first, a boost multiplies its expected value.

Pure: numpy and the frame.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..engine.metrics import Codes, Column, Extra, Filter
from ..model import Facts
from .frame import Offer, OpportunityFrame
from .rates import Cell, Rates

FLEETS = ("no machines", "1-2 machines", "3-9 machines", "10+ machines")


class FleetColumns(Extra):
    """Each customer's machines in the field (every category, active), the fleet of its cell."""

    def columns(self, codes: Codes) -> list[Column]:
        return [fleet_column(codes)]


def fleet_column(codes: Codes) -> Column:
    return Column("equipment", "units", (Filter("category_id", tuple(sorted(codes.categories))),
                                         Filter("active")))


def fleets(facts: Facts, rolled: np.ndarray | None, ids: Sequence[int]) -> dict[int, str]:
    """Customer id -> its fleet band (in-scope customers, ``ids`` in classification order);
    {} when the facts carry no numbers."""
    if rolled is None or facts.metrics is None or facts.codes is None:
        return {}
    try:
        units = rolled[:, facts.metrics.compiled.index_of(fleet_column(facts.codes))]
    except KeyError:
        return {}
    band = np.searchsorted(np.array([0.5, 2.5, 9.5]), units)
    return dict(zip(ids, (FLEETS[b] for b in band.tolist())))


def cells(frame: OpportunityFrame, services: Mapping[int, frozenset[str]],
          tiers: Mapping[int, str], fleet: Mapping[int, str] | None = None
          ) -> tuple[list[Cell], np.ndarray]:
    """The distinct cells of the frame's rows and each row's, by codes (a few thousand for a
    million rows)."""
    if not len(frame):
        return [], np.zeros(0, dtype=np.int64)
    book: dict[object, int] = {}

    def coded(tag: str, values: list[Any]) -> np.ndarray:
        """Each value's code in ``book`` (by its distinct values: a dict and ``map`` in C,
        not a Python step per customer)."""
        distinct: dict[Any, int] = dict.fromkeys(values, 0)
        for v in distinct:
            distinct[v] = book.setdefault((tag, v), len(book))
        return np.fromiter(map(distinct.__getitem__, values), dtype=np.int64, count=len(values))

    # each customer's part of the cell is looked up once, not once per offer
    customers, row_of = np.unique(frame.customer, return_inverse=True)
    row_of = row_of.reshape(-1)
    ids = customers.tolist()
    held_of: dict[frozenset[str] | None, str] = {None: ""}

    def held_key(used: frozenset[str] | None) -> str:
        got = held_of.get(used)
        if got is None:
            got = held_of[used] = "+".join(sorted(used or ()))
        return got

    first = np.zeros(len(ids), dtype=np.int64)
    first[row_of[::-1]] = np.arange(len(row_of))[::-1]  # a row of each customer
    held = coded("h", list(map(held_key, map(services.get, ids))))[row_of]
    industry = coded("i", frame.people("industry")[first].tolist())[row_of]
    tier = coded("t", list(map(tiers.get, ids)))[row_of]
    fleet = fleet or {}
    size = coded("f", list(map(fleet.get, ids)))[row_of]
    unique, at = unique_columns([frame.offer, industry, tier, size, held])
    names = {v: k for k, v in book.items()}
    out: list[Cell] = []
    for o, *parts in unique.T.tolist():
        offer = frame.offers[o]
        ind, tr, fl, hd = (names[x] for x in parts)
        assert isinstance(ind, tuple) and isinstance(tr, tuple) and isinstance(fl, tuple) \
            and isinstance(hd, tuple)
        out.append((offer.play, offer.service_code, str(ind[1] or ""), str(tr[1] or ""),
                    str(fl[1] or ""), str(hd[1])))
    return out, at.reshape(-1)


def scored(frame: OpportunityFrame, rates: Rates, services: Mapping[int, frozenset[str]],
           tiers: Mapping[int, str], names: Mapping[str, str] | None = None,
           fleet: Mapping[int, str] | None = None) -> OpportunityFrame:
    """The frame with ``p_win``, ``expected_value`` and the rate's evidence on every row."""
    if not len(frame):
        return frame
    found, at = cells(frame, services, tiers, fleet)
    neutral = neutral_value(np.array([o.estimated_annual_value or 0.0
                                      for o in frame.offers], dtype=np.float64))
    unique, which = unique_columns([frame.offer, at])
    offers: list[Offer] = []
    for o, c in unique.T.tolist():
        offer, cell = frame.offers[o], found[c]
        # as shown (4 decimals, at least 1 in 10,000: no call is "never"): the expected
        # value is the shown p x value
        p = max(round(rates.p(cell), 4), 0.0001)
        value = offer.estimated_annual_value
        offers.append(dataclasses.replace(
            offer, p_win=p,
            expected_value=round(p * (value if value is not None and value > 0 else neutral), 2),
            evidence=rates.evidence(cell, names)))
    return frame.with_offers(which.reshape(-1), offers)


def unique_columns(parts: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(np.stack(parts), axis=1, return_inverse=True)`` for small non-negative
    codes, an order of magnitude faster: the columns are folded into one integer (mixed radix,
    in the same order, so the unique columns come out sorted as numpy's would) and that is
    made unique. Falls back to numpy's where the codes could overflow 63 bits."""
    sizes = [int(p.max()) + 1 if len(p) else 1 for p in parts]
    if float(np.prod(np.array(sizes, dtype=np.float64))) >= 2.0 ** 62:
        unique, at = np.unique(np.stack(parts), axis=1, return_inverse=True)
        return unique, at.reshape(-1)
    key = np.zeros(len(parts[0]), dtype=np.int64)
    for part, size in zip(parts, sizes, strict=True):
        key = key * size + part.astype(np.int64)
    values, at = np.unique(key, return_inverse=True)
    columns = []
    for size in reversed(sizes):
        values, digit = np.divmod(values, size)
        columns.append(digit)
    return np.stack(columns[::-1]), at.reshape(-1)


def neutral_value(values: np.ndarray) -> float:
    """What a call nothing prices is worth when ranked: the median priced value (1 when none
    is priced, so the calls rank by their chance alone)."""
    priced = values[values > 0]
    return float(np.median(priced)) if len(priced) else 1.0


def ranked(frame: OpportunityFrame, by: str = "expected_value") -> OpportunityFrame:
    """Pinned first, then by expected value (or ``p_win``) times the priority rules' boost,
    then value, then customer number and service."""
    if not len(frame):
        return frame
    column = np.array([((o.p_win if by == "p_win" else o.expected_value) or 0.0) * o.boost
                       for o in frame.offers], dtype=np.float64)[frame.offer]
    pinned = np.array([o.pinned for o in frame.offers], dtype=bool)[frame.offer]
    worth = np.array([o.estimated_annual_value or 0.0 for o in frame.offers],
                     dtype=np.float64)[frame.offer]
    codes = sorted({o.service_code for o in frame.offers})
    code = np.array([codes.index(o.service_code) for o in frame.offers])[frame.offer]
    numbers = frame.people("number").astype(str)
    return frame.take(np.lexsort((code, numbers, -worth, -column, ~pinned)))


__all__ = ["FLEETS", "FleetColumns", "cells", "fleet_column", "fleets", "neutral_value", "ranked",
           "scored"]
