"""``keyservices backtest``: the call list rebuilt on past dates and scored.

The backtest rebuilds the call list on past dates from the ERP's dated history and scores it
against what was won in the 90 days after each (``calls.backtest``, read by ``night.learn``);
the rates it learns are what ``p_win`` comes from, and ``--save`` keeps them in the state
store for the nights and exports that follow (``night.rates_for``), with the scores for
``report``'s chart (``state.backtests``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from .. import night
from ..calls.backtest import Backtest
from ..config import Config
from ..engine.metrics import NotCompilable
from ..errors import ConfigError
from ..progress import Reporter, Timings
from ..state import StateStore
from ..state.backtests import save_backtest
from ..state.rates import save_rates


@dataclass
class BacktestReport:
    """What ``backtest`` prints: the scores, the dates, how long it took."""

    as_of: dt.date
    months: int
    result: Backtest
    saved: bool
    statements: int
    seconds: float


def backtest(config: Config, *, as_of: dt.date | None = None, months: int | None = None,
             save: bool = False, reporter: Reporter | None = None) -> BacktestReport:
    """Rebuild the list on ``months`` past dates, score it, and (``save``) keep the rates and
    the scores."""
    as_of = as_of or dt.date.today()
    months = months or config.ranking.months
    rules = night.rules_for(config)
    if rules.opportunities is None:
        raise ConfigError("the rules have no 'opportunities:' block, so there is no call list "
                          "to test; see docs/rules.md")
    timings = Timings()
    with night.open_erp(config, rules) as erp:
        try:
            result, statements = night.learn(erp, as_of, months, reporter, timings)
        except NotCompilable as exc:
            raise ConfigError(f"the backtest reads the history as numbers the database adds "
                              f"up, and these rules need the per-code detail: {exc}. Write the "
                              "rule without it (docs/rules.md), or rank the calls without "
                              "learned rates") from None
        if save:
            store = StateStore(config.state_url)
            try:
                save_rates(store.engine, erp.identity(), result.rates)
                save_backtest(store.engine, erp.identity(), result.summary(as_of, months))
            finally:
                store.close()
    return BacktestReport(as_of, months, result, save, statements,
                          round(sum(timings.values()), 3))


__all__ = ["BacktestReport", "backtest"]
