"""What became of the calls: each play's opportunities opened, won and withdrawn in a window.

The report's "Opportunities: outcomes" counts the life cycle's own verdicts
(``keyservices.calls.lifecycle``), so the report, the digest and ``opportunity list`` never
disagree about a call: *won* only through a sale the causes engine named (or an uncovered
machine put on a contract line), *withdrawn* when the call's reason went. A withdrawn call was
never won and never lost, so it stays out of the win share; so do the wins an earlier version
recorded without a named sale (marked not verified by the state store's migration) and the
*closed* records of earlier versions, whose cause was never checked.

A call is *lost* to the share when it is still open 90 days after it was first found without
a win, or, for a renewal call, when it closes lost (no contract of the service runs any more): ``p_win`` is the chance of a win within those 90 days, so the share can be read against
it. Each record counts once per window for its outcome: its close when that falls in the
window, else its 90th day when that does and it was still open then.

The store keeps each call's latest life only: a call reopened after it closed starts again
(``first_seen`` moves), and its earlier close is no longer counted.

Pure: no database; the caller streams the stored records' columns.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .lifecycle import ACTIVE, CLOSED, LOST, REASON_UNVERIFIED, WITHDRAWN, WON

HORIZON = 90  # days: p_win is the chance of a win within them (calls.backtest's label)
ALL_PLAYS = "all plays"  # the total row
NO_PLAY = "(not recorded)"  # a record stored before calls had a play
PLAY_ORDER = ("industry_gap", "cross_sell:", "uncovered_machines", "renewal", "monitor:")

# one stored record as the report reads it
Record = tuple[str | None, str, dt.date, dt.date | None, str | None, float | None, float | None]


@dataclass(frozen=True, slots=True)
class OutcomeRow:
    """One play's calls in one window; every figure a count of calls, value in a year's money.

    ``opened``: first found (or found again after closing) in the window. ``won``: won in the
    window by a named sale. ``not_verified``: a win an earlier version recorded (not counted as
    won). ``withdrawn``: its reason went in the window. ``closed``: closed by an earlier version
    (cause never checked). ``expired``: reached its 90th day in the window still open, without
    a win, or a renewal call lost in the window (not renewed). ``value_won``: the annual value the ranking put on the calls won (expected value /
    chance); ``unvalued``: wins stored without one (before calls were ranked).
    """

    play: str
    opened: int = 0
    won: int = 0
    not_verified: int = 0
    withdrawn: int = 0
    closed: int = 0
    expired: int = 0
    value_won: float = 0.0
    unvalued: int = 0

    @property
    def win_share(self) -> float | None:
        """won / (won + expired): withdrawn, not verified and closed left out; None when no
        call was won or expired in the window."""
        decided = self.won + self.expired
        return self.won / decided if decided else None

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        share = self.win_share
        out["win_share"] = None if share is None else round(share, 4)
        out["value_won"] = round(self.value_won, 2)
        return out


FIELDS = ("opened", "won", "not_verified", "withdrawn", "closed", "expired")


def play_key(play: str) -> tuple[int, str]:
    """The plays in docs/ranking.md's order (gap, cross-sells by name, machines), then any
    other by name, then the records stored without a play."""
    if play == NO_PLAY:
        return len(PLAY_ORDER) + 1, ""
    for n, start in enumerate(PLAY_ORDER):
        if play == start or (start.endswith(":") and play.startswith(start)):
            return n, play.casefold()
    return len(PLAY_ORDER), play.casefold()


def outcomes(records: Iterable[Record], windows: Mapping[str, tuple[dt.date, dt.date]]
             ) -> dict[str, list[OutcomeRow]]:
    """Per window ("last 30 days" -> (first day, last day), both included), one row per play
    found in the records, plays in ``play_key`` order, then the ``ALL_PLAYS`` total.

    ``records``: (play, status, first_seen, closed_on, close_reason, p_win, expected_value) of
    every stored opportunity, streamed (only the counts are kept)."""
    acc: dict[str, dict[str, list[float]]] = {label: {} for label in windows}
    spans = list(windows.items())
    horizon = dt.timedelta(days=HORIZON)
    for play, status, first_seen, closed_on, reason, p_win, expected in records:
        name = play or NO_PLAY
        ninetieth = first_seen + horizon
        for label, (since, until) in spans:
            cell = None
            if since <= first_seen <= until:
                cell = acc[label].setdefault(name, [0] * 8)
                cell[0] += 1
            if closed_on is not None and since <= closed_on <= until:
                if status == WON and reason == REASON_UNVERIFIED:
                    at = 2
                elif status in (WON, WITHDRAWN, CLOSED, LOST):
                    at = {WON: 1, WITHDRAWN: 3, CLOSED: 4, LOST: 5}[status]
                else:
                    continue
            elif since <= ninetieth <= until and (
                    status in ACTIVE or (closed_on is not None and closed_on > ninetieth)):
                at = 5
            else:
                continue
            cell = cell or acc[label].setdefault(name, [0] * 8)
            cell[at] += 1
            if at == 1:
                if p_win and expected is not None:
                    cell[6] += round(expected / p_win, 2)
                else:
                    cell[7] += 1
    out: dict[str, list[OutcomeRow]] = {}
    for label in windows:
        rows = [_row(play, cell) for play, cell in
                sorted(acc[label].items(), key=lambda item: play_key(item[0]))]
        sums = [sum(getattr(r, f) for r in rows) for f in (*FIELDS, "value_won", "unvalued")]
        out[label] = [*rows, _row(ALL_PLAYS, sums)]
    return out


def _row(play: str, cell: list[float]) -> OutcomeRow:
    counts = {f: int(cell[n]) for n, f in enumerate(FIELDS)}
    return OutcomeRow(play, **counts, value_won=round(float(cell[6]), 2), unvalued=int(cell[7]))


def added(windows: Iterable[Mapping[str, Iterable[OutcomeRow]]]
          ) -> dict[str, list[OutcomeRow]]:
    """Several companies' outcomes as one (a group's): each window's rows added up per play,
    in ``play_key`` order, the ``ALL_PLAYS`` total last."""
    acc: dict[str, dict[str, list[float]]] = {}
    for by_window in windows:
        for label, rows in by_window.items():
            for r in rows:
                cell = acc.setdefault(label, {}).setdefault(r.play, [0] * 8)
                for n, value in enumerate((*[getattr(r, f) for f in FIELDS], r.value_won,
                                           r.unvalued)):
                    cell[n] += value
    return {label: [_row(play, cell) for play, cell in sorted(
        plays.items(), key=lambda item: (item[0] == ALL_PLAYS, play_key(item[0])))]
        for label, plays in acc.items()}


def total(rows: Iterable[OutcomeRow]) -> OutcomeRow | None:
    """The ``ALL_PLAYS`` row of one window's rows."""
    return next((r for r in rows if r.play == ALL_PLAYS), None)


__all__ = ["ALL_PLAYS", "HORIZON", "NO_PLAY", "OutcomeRow", "added", "outcomes", "play_key", "total"]
