"""Win rates learned from the dealer's own history: the chance an offer is won within 90 days.

An offer is counted by its *cell*: the play that found it, the service, the customer's
industry, size tier and the services it already used. For each cell the history says how many
such offers there were on past dates and how many were won in the 90 days after (``backtest``).

A cell seen a few times says little, so every rate leans on the rate of the wider group it
belongs to (beta-binomial smoothing, the prior's weight ``strength`` offers):

    rate(cell) = (won + strength x rate(the wider group's other offers)) / (offered + strength)

from the widest group down: all offers, then the play and service, then the industry, then the
size tier (``priority.tiers``, where the rules define tiers), then the fleet (machines in the
field: none, 1-2, 3-9, 10 or more), then the services held. Each offer counts once, in the
narrowest group it belongs to; the groups above it lend their other offers' rate. A cell with hundreds of offers keeps its own rate; a cell with
none takes its wider group's. Every number here can be said in one sentence: "won 14 of 83
offers like this in the 12 months to 2026-11-01".

Pure: plain Python and numpy.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

Cell = tuple[str, str, str, str, str, str]  # play, service, industry, tier, fleet, services held
LEVELS = ("play and service", "industry", "size tier", "fleet", "services held")
ROOT_RATE = 0.05  # the rate assumed before any history: one offer in twenty won
STRENGTH = 20.0  # the prior's weight, in offers (20 ranked best of 20, 100, 400 on the demo)
SHOWN_FROM = 10  # evidence quoted from the narrowest group with at least this many offers


@dataclass
class Rates:
    """Offers and wins per cell, and the rates they give (see the module docstring)."""

    counts: dict[Cell, tuple[int, int]] = field(default_factory=dict)  # (offered, won)
    strength: float = STRENGTH
    first: dt.date | None = None  # the earliest and latest as-of date learned from
    last: dt.date | None = None
    learned_on: dt.date | None = None  # the day the outcomes were known to (last + 90 days)
    _levels: list[dict[tuple[str, ...], list[int]]] = field(default_factory=list, repr=False)
    _memo: dict[tuple[str, ...], float] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._levels = [{} for _ in range(len(LEVELS) + 1)]
        for cell, (offered, won) in self.counts.items():
            for depth in range(len(LEVELS) + 1):
                key = _prefix(cell, depth)
                got = self._levels[depth].setdefault(key, [0, 0])
                got[0] += offered
                got[1] += won

    @classmethod
    def learn(cls, trials: Iterable[tuple[Cell, int, int]], *, first: dt.date | None = None,
              last: dt.date | None = None, learned_on: dt.date | None = None,
              strength: float = STRENGTH) -> Rates:
        """From (cell, offered, won) counts, added up per cell."""
        counts: dict[Cell, list[int]] = {}
        for cell, offered, won in trials:
            got = counts.setdefault(cell, [0, 0])
            got[0] += offered
            got[1] += won
        return cls({c: (n, w) for c, (n, w) in counts.items()}, strength, first, last,
                   learned_on)

    @property
    def offered(self) -> int:
        return self._levels[0].get((), [0, 0])[0]

    @property
    def won(self) -> int:
        return self._levels[0].get((), [0, 0])[1]

    def p(self, cell: Cell) -> float:
        """The chance an offer of this cell is won within 90 days.

        From the widest group down, each group's prior is the rate of the wider group's *other*
        offers (the cell's own offers are counted once, at its own level, not again in every
        group above it, which would pull a cell of many lost offers to nothing)."""
        key = tuple(cell)
        got = self._memo.get(key)
        if got is None:
            rate = ROOT_RATE
            counts = [self._levels[d].get(_prefix(cell, d), (0, 0))
                      for d in range(len(LEVELS) + 1)]
            for depth in range(len(LEVELS) + 1):
                offered, won = counts[depth]
                below = counts[depth + 1] if depth < len(LEVELS) else (0, 0)
                rest_n, rest_w = offered - below[0], won - below[1]
                rate = (rest_w + self.strength * rate) / (rest_n + self.strength)
            got = self._memo[key] = rate
        return got

    def evidence(self, cell: Cell, describe: Mapping[str, str] | None = None) -> str:
        """The rate's evidence in one sentence, from the narrowest group with enough offers."""
        if not self.offered:
            return (f"no history yet: {ROOT_RATE:.0%} assumed until "
                    "'keyservices backtest --save' learns the rates")
        depth = 1
        for d in range(len(LEVELS), 0, -1):
            if self._levels[d].get(_prefix(cell, d), (0, 0))[0] >= SHOWN_FROM:
                depth = d
                break
        offered, won = self._levels[depth].get(_prefix(cell, depth), (0, 0))
        what = _like(cell, depth, describe or {})
        since = (f" from {self.first.isoformat()} to {self.last.isoformat()}"
                 if self.first and self.last else "")
        if not offered:
            return (f"no {what} offered{since}: the rate of all offers "
                    f"({self.won} won of {self.offered}) stands in")
        return f"won {won} of {offered} {what}{since}"

    def rows(self) -> list[tuple[Cell, int, int]]:
        """(cell, offered, won), for the state store."""
        return [(c, n, w) for c, (n, w) in sorted(self.counts.items())]


def _prefix(cell: Cell, depth: int) -> tuple[str, ...]:
    """The group of a cell at a depth: () all offers, (play, service), + industry, + tier..."""
    return () if depth == 0 else cell[:depth + 1]


def _like(cell: Cell, depth: int, describe: Mapping[str, str]) -> str:
    play, service, industry, tier, fleet, held = cell
    words = [f"{describe.get(service, service)} offers ({play.replace('_', ' ')})"]
    if depth >= 2:
        words.append(f"to {industry or 'no industry'}")
    if depth >= 3 and tier:
        words.append(f"tier {tier}")
    if depth >= 4:
        words.append(f"with {fleet}")
    if depth >= 5:
        used = [describe.get(code, code) for code in held.split("+") if code]
        words.append(f"using {', '.join(used) or 'no key service'}")
    return " ".join(words)


__all__ = ["LEVELS", "ROOT_RATE", "STRENGTH", "Cell", "Rates"]
