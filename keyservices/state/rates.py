"""The learned win rates in the state store: the latest learning per ERP, with its evidence.

``backtest --save`` and the nightly run (at most once per ``opportunities.learn_every_days``)
replace an ERP's rows in one transaction; exports and ``explain`` read them. A store made by
an earlier version has no table yet: it reads as no rates.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from ..calls.rates import Rates
from .schema import win_rates


def load_rates(engine: sa.Engine, erp_id: str) -> Rates | None:
    """The rates last learned for this ERP, or None."""
    if win_rates.name not in sa.inspect(engine).get_table_names():
        return None
    t = win_rates
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t.c.play, t.c.service, t.c.industry, t.c.tier, t.c.fleet,
                                      t.c.held, t.c.offered, t.c.won, t.c.first_as_of,
                                      t.c.last_as_of, t.c.learned_on)
                            .where(t.c.erp_id == erp_id)).all()
    if not rows:
        return None
    first, last, learned = rows[0][8:11]
    return Rates.learn((((r[0], r[1], r[2], r[3], r[4], r[5]), int(r[6]), int(r[7]))
                        for r in rows),
                       first=_day(first), last=_day(last), learned_on=_day(learned))


def save_rates(engine: sa.Engine, erp_id: str, rates: Rates) -> None:
    """Replace this ERP's rates (one transaction)."""
    if rates.first is None or rates.last is None or rates.learned_on is None:
        raise ValueError("rates without their dates are not stored")
    win_rates.create(engine, checkfirst=True)
    rows = [{"erp_id": erp_id, "play": c[0], "service": c[1], "industry": c[2], "tier": c[3],
             "fleet": c[4], "held": c[5], "offered": n, "won": w, "first_as_of": rates.first,
             "last_as_of": rates.last, "learned_on": rates.learned_on}
            for c, n, w in rates.rows()]
    with engine.begin() as conn:
        conn.execute(win_rates.delete().where(win_rates.c.erp_id == erp_id))
        if rows:
            conn.execute(win_rates.insert(), rows)


def _day(value: object) -> dt.date | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


__all__ = ["load_rates", "save_rates"]
