"""The last backtest's scores in the state store, per ERP, for ``report``'s chart.

Running a backtest inside ``report`` would cost about three dry runs, so ``backtest --save``
and a live run that learns its win rates keep the summary they computed
(``calls.backtest.Backtest.summary``) and ``report`` reads it. A store made by an earlier
version has no table yet: it reads as no backtest.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import sqlalchemy as sa

from .schema import backtests


def save_backtest(engine: sa.Engine, erp_id: str, summary: dict[str, Any], *,
                  made_at: dt.datetime | None = None) -> None:
    """Replace this ERP's backtest summary (one transaction); ``made_at`` defaults to now."""
    made = (made_at or dt.datetime.now(dt.UTC)).replace(tzinfo=None, microsecond=0)
    backtests.create(engine, checkfirst=True)
    row = {"erp_id": erp_id, "as_of": dt.date.fromisoformat(summary["as_of"]),
           "made_at": made, "summary": json.dumps(summary)}
    with engine.begin() as conn:
        conn.execute(backtests.delete().where(backtests.c.erp_id == erp_id))
        conn.execute(backtests.insert(), [row])


def load_backtest(engine: sa.Engine, erp_id: str) -> dict[str, Any] | None:
    """This ERP's last backtest summary with ``made_at`` (ISO, UTC), or None."""
    if backtests.name not in sa.inspect(engine).get_table_names():
        return None
    t = backtests
    with engine.connect() as conn:
        row = conn.execute(sa.select(t.c.made_at, t.c.summary)
                           .where(t.c.erp_id == erp_id)).first()
    if row is None:
        return None
    made = row[0] if isinstance(row[0], dt.datetime) else dt.datetime.fromisoformat(str(row[0]))
    data: dict[str, Any] = json.loads(row[1])
    data["made_at"] = made.isoformat(timespec="seconds")
    return data


__all__ = ["load_backtest", "save_backtest"]
