"""The alert store: each status alert firing now, with the night it was first seen.

The nightly run saves what changed (hits first seen tonight inserted, hits that cleared deleted),
so a quiet night costs nothing and a night's save is proportional to what changed, not to the
number of alerts. Only a clean live run saves (``keyservices.commands.alerts``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING

import sqlalchemy as sa

from .bulk import execute_many_tuples
from .schema import alerts, opportunities

if TYPE_CHECKING:  # a type only: importing ``calls`` at run time loads numpy and the rule engine
    from ..calls.alertlife import Key

_BATCH = 500  # keys per DELETE statement (SQL Server's parameter limit is 2,100)


class AlertTable:
    """The alert methods of ``StateStore`` (which provides ``engine``)."""

    engine: sa.Engine

    def alert_first_seen(self) -> dict[Key, dt.date]:
        """Every alert firing at the last clean live run, by (customer id, monitor code); empty
        for a store made before alerts were kept (a dry run reads it without migrating)."""
        if alerts.name not in sa.inspect(self.engine).get_table_names():
            return {}
        # Straight from the driver: SQLAlchemy's rows and its per-value date conversion cost
        # more than the query at a million customers, and the rows share a few dates.
        stmt = sa.select(alerts.c.customer_id, alerts.c.monitor_code, alerts.c.first_seen)
        with self.engine.connect() as conn:
            cursor = conn.connection.cursor()
            try:
                cursor.execute(str(stmt.compile(dialect=conn.dialect)))
                rows = cursor.fetchall()
            finally:
                cursor.close()
        if not rows:
            return {}
        dates = {first: _date(first) for first in {row[2] for row in rows}}
        if type(rows[0][0]) is int:  # every driver the store supports; int() costs a pass
            return {(cid, code): dates[first] for cid, code, first in rows}
        return {(int(cid), code): dates[first] for cid, code, first in rows}

    def save_alerts(self, added: Sequence[Key], cleared: Sequence[Key], as_of: dt.date) -> None:
        """Insert the hits first seen tonight and delete the ones that cleared, in one
        transaction (executemany each)."""
        if not added and not cleared:
            return
        with self.engine.begin() as conn:
            if cleared:
                conn.execute(alerts.delete().where(
                    alerts.c.customer_id == sa.bindparam("k_customer_id"),
                    alerts.c.monitor_code == sa.bindparam("k_monitor_code")),
                    [{"k_customer_id": cid, "k_monitor_code": code} for cid, code in cleared])
            # the driver's executemany, a slice of tuples at a time: a noisy monitor's first
            # night inserts hundreds of thousands (as dicts through SQLAlchemy: seconds, 100s MB)
            for start in range(0, len(added), 50_000):
                execute_many_tuples(conn, alerts.insert(), alerts,
                                    ("customer_id", "monitor_code", "first_seen"),
                                    [(cid, code, as_of) for cid, code in
                                     added[start:start + 50_000]])

    def hidden_opportunities(self, as_of: dt.date) -> frozenset[tuple[int, str]]:
        """(customer id, service code) of the opportunities a snooze or dismiss hides on
        ``as_of``: the digest does not list them, so their contacts are not read."""
        stmt = sa.select(opportunities.c.customer_id, opportunities.c.service_code).where(
            opportunities.c.snoozed_until.is_not(None), opportunities.c.snoozed_until >= as_of)
        with self.engine.connect() as conn:
            return frozenset((int(cid), code) for cid, code in conn.execute(stmt))


def _date(value: dt.date | dt.datetime | str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])
