"""Money at stake: what an opportunity is likely worth a year, so a rep can act on the digest.

The estimate is the median annual contract value of the service among the customer's peers who
use it (same industry, or industry and size tier: ``opportunities.peers``), counting only peers
with a contract value for it (12 x the monthly base rate of their contracts matching the
service's ``contracts`` section, as ``calls.wonlost.ValueColumns`` computes it). A peer group
with fewer than ``MIN_PRICED_PEERS`` such peers borrows the median of every customer using the
service; a service with no contracts section has no estimate. A cross-sell rule's ``value:``
replaces the estimate.

Pure: numpy. Arrays are in ``Classification.services`` order; medians are computed per group
with one sort, so a million customers cost a fraction of a second.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

MIN_PRICED_PEERS = 3  # fewer peers with a contract value than this: use the dealer-wide median


@dataclass(frozen=True, slots=True)
class Estimate:
    value: float
    basis: str  # e.g. "median of 41 Legal peers' contracts"


@dataclass(slots=True)
class PeerValues:
    """Per (peer group, service) and per service, the median annual contract value and how
    many priced customers it came from."""

    by_group: dict[tuple[Hashable, str], tuple[float, int]] = field(default_factory=dict)
    overall: dict[str, tuple[float, int]] = field(default_factory=dict)
    _seen: dict[tuple[Hashable, str], Estimate | None] = field(default_factory=dict)

    def estimate(self, group: Hashable, label: str, code: str) -> Estimate | None:
        """The peers' median, or the dealer-wide one when too few peers have a value (worked
        out once per group and service: a million opportunities share a few hundred)."""
        key = (group, code)
        if key not in self._seen:
            self._seen[key] = self._estimate(group, label, code)
        return self._seen[key]

    def _estimate(self, group: Hashable, label: str, code: str) -> Estimate | None:
        mine = self.by_group.get((group, code)) if group is not None else None
        if mine is not None and mine[1] >= MIN_PRICED_PEERS:
            return Estimate(mine[0], f"median of {mine[1]} {label} peers' contracts")
        overall = self.overall.get(code)
        if overall is None:
            return None
        return Estimate(overall[0], f"median of all {overall[1]} customers' contracts")


def peer_values(values: Mapping[str, np.ndarray], uses: Mapping[str, np.ndarray],
                groups: np.ndarray, group_keys: Sequence[Hashable]) -> PeerValues:
    """Medians of the positive annual ``values[code]`` among customers where ``uses[code]``
    holds, per group (``groups``: each customer's index into ``group_keys``) and overall."""
    out = PeerValues()
    for code, annual in values.items():
        priced = uses[code] & (annual > 0)
        if not priced.any():
            continue
        v, g = annual[priced], groups[priced]
        out.overall[code] = (round(float(np.median(v)), 2), len(v))
        order = np.lexsort((v, g))
        v, g = v[order], g[order]
        starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
        ends = np.r_[starts[1:], len(g)]
        for start, end in zip(starts.tolist(), ends.tolist()):
            n = end - start
            mid = start + n // 2
            median = v[mid] if n % 2 else (v[mid - 1] + v[mid]) / 2
            out.by_group[(group_keys[int(g[start])], code)] = (round(float(median), 2), n)
    return out


__all__ = ["MIN_PRICED_PEERS", "Estimate", "PeerValues", "peer_values"]
