"""The report's "Opportunities: outcomes": what became of each play's calls, on the page and in
``opportunity-outcomes.csv``.

The figures are ``keyservices.calls.outcomes``'s; here they are laid out (a window's rows, each
figure's one-sentence meaning) and written as CSV rows through ``outputs.cells`` like every
other CSV. Pure: no SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..calls.outcomes import ALL_PLAYS, HORIZON, OutcomeRow

OUTCOMES_CSV = "opportunity-outcomes.csv"
OUTCOMES_COLUMNS = ["window", "play", "opened", "won", "win_share", "withdrawn", "expired",
                    "won_not_verified", "closed_earlier", "value_won", "won_without_value"]

# each figure in one sentence, as the page says it (and docs/ranking.md)
_WON = ("closed in the window because the service came through a sale the causes engine named "
        "(a new contract, an item sold, GL revenue) or, for uncovered machines, a contract line "
        "put on one of them: the life cycle's own rule.")
_WITHDRAWN = ("closed in the window because the call's reason went (the customer inactive, the "
              "machines pulled, the gap cleared): never won, never lost, so left out of the win "
              "share.")
_EXPIRED = (f"still open {HORIZON} days after first found, without a win, with the {HORIZON}th "
            "day in the window: the horizon of the chance to win (p_win); and the renewal calls "
            "lost in the window (no contract of the service runs any more).")
_SHARE = ("won / (won + expired): of the calls decided in the window, the share won; withdrawn "
          "calls, unverified wins and earlier versions' closes are left out.")
_VALUE = ("the annual value the ranking put on the calls won (its expected value / its chance "
          "to win, as last ranked).")
MEANINGS: tuple[tuple[str, str], ...] = (
    ("Opened", "calls first found in the window (or found again after they closed)."),
    ("Won", _WON), ("Withdrawn", _WITHDRAWN), ("Expired", _EXPIRED), ("Win share", _SHARE),
    ("Value won", _VALUE))


def outcome_windows(outcomes: Mapping[str, Sequence[OutcomeRow]] | None
                    ) -> list[dict[str, Any]]:
    """Each window's rows for the page: the plays, then the total, and whether the rarer
    columns (wins not verified, earlier versions' closes, wins without a value) show."""
    out = []
    for label, rows in (outcomes or {}).items():
        plays = [r for r in rows if r.play != ALL_PLAYS]
        total = next((r for r in rows if r.play == ALL_PLAYS), None)
        out.append({"label": label, "rows": plays, "total": total,
                    "not_verified": sum(r.not_verified for r in plays),
                    "closed": sum(r.closed for r in plays),
                    "unvalued": sum(r.unvalued for r in plays)})
    return out


def outcomes_csv_rows(outcomes: Mapping[str, Sequence[OutcomeRow]]) -> Iterable[list[Any]]:
    """One row per window and play (the total under ``all plays``), numbers as numbers; an
    undecided win share is blank."""
    for window, rows in outcomes.items():
        for r in rows:
            share = r.win_share
            yield [window, r.play, r.opened, r.won, "" if share is None else f"{share:.4f}",
                   r.withdrawn, r.expired, r.not_verified, r.closed, f"{r.value_won:.2f}",
                   r.unvalued]


__all__ = ["MEANINGS", "OUTCOMES_COLUMNS", "OUTCOMES_CSV", "outcome_windows",
           "outcomes_csv_rows"]
