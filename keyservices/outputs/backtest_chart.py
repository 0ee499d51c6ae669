"""The backtest's chart in ``report``: the saved summary laid out for the page.

``backtest --save`` (or a live run that learned its rates) keeps the backtest's scores in the
state store; ``report`` draws them rather than running a backtest (about three dry runs). This
turns the summary (``calls.backtest.Backtest.summary``, plain data) into what the template
needs: bar widths as percentages of one shared scale, so bars compare across plays, and words
for the plays. Widths are numbers computed here, never text from the ERP or the rules: the
names the page shows go through the template's autoescaping. Pure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

HINT_COMMAND = "keyservices backtest --save"
TOPS = (25, 100)
_PLAYS = {"all plays": "All plays", "industry_gap": "Industry gaps",
          "uncovered_machines": "Machines on no contract"}
_CROSS = "cross_sell:"


def play_label(play: str) -> str:
    """A play as a manager reads it: "Cross-sell: Copier customers without Managed IT"."""
    if play.startswith(_CROSS):
        return "Cross-sell: " + play[len(_CROSS):]
    return _PLAYS.get(play, play.replace("_", " ").capitalize())


def _scale(values: list[float]) -> float:
    """The axis's end: the largest value rounded up to the next 5 % (at least 5 %)."""
    top = max([v for v in values if v is not None] or [0.0])
    return max(0.05, math.ceil(top * 20 - 1e-9) / 20)


def _w(value: float | None, scale: float) -> float:
    return round(100 * min(max(value or 0.0, 0.0), scale) / scale, 1)


def backtest_view(summary: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The saved summary as the chart's rows (None: no backtest saved)."""
    if not summary:
        return None
    scores = [summary["overall"], *summary.get("plays", [])]
    shown = [s.get(f"{kind}_at_{k}") for s in scores for k in TOPS
             for kind in ("precision", "static")] + [s.get("random") for s in scores]
    scale = _scale([v for v in shown if v is not None])
    plays = []
    for s in scores:
        tops = []
        for k in TOPS:
            if f"precision_at_{k}" not in s:
                continue
            bars = [("learned", "Learned ranking", s[f"precision_at_{k}"]),
                    ("static", "Static order", s.get(f"static_at_{k}")),
                    ("random", "Random order", s.get("random"))]
            tops.append({"k": k, "lift_random": s.get(f"lift_random_at_{k}"),
                         "lift_static": s.get(f"lift_static_at_{k}"),
                         "bars": [{"kind": kind, "label": label, "value": v or 0.0,
                                   "w": _w(v, scale)} for kind, label, v in bars]})
        plays.append({"name": play_label(s["play"]), "offers": s["offers"], "won": s["won"],
                      "value_won": s.get("annual_value_won_top_25", 0.0), "tops": tops})
    tenths = summary.get("calibration", [])
    top = _scale([max(c["predicted"], c["observed"]) for c in tenths])
    dates = summary.get("dates", [])
    made = summary.get("made_at")
    return {"as_of": summary["as_of"], "made_on": made[:10] if made else None,
            "dates": len(dates), "first": dates[0] if dates else None,
            "last": dates[-1] if dates else None, "scale": scale, "plays": plays,
            "ticks": [{"x": _w(scale * t / 4, scale), "label": f"{scale * t / 4:.0%}"}
                      for t in range(5)],
            "calibration": [{"tenth": i, "predicted": c["predicted"], "observed": c["observed"],
                             "offers": c["offers"], "pw": _w(c["predicted"], top),
                             "ow": _w(c["observed"], top)}
                            for i, c in enumerate(tenths, 1)],
            "calibration_scale": top}


__all__ = ["HINT_COMMAND", "backtest_view", "play_label"]
