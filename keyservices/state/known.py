"""What the state store knows of the ERPs it wrote: each (ERP, attribute) of a finished live
run, and how to tell whether the configured ERP and attribute are the ones a run wrote."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from .schema import runs


@dataclass(frozen=True, slots=True)
class KnownErp:
    """An ERP and property a finished live run wrote; ``erp_id`` is None for runs recorded
    before the ERP's identity was kept (they are matched by ``erp``, the display URL)."""

    erp_id: str | None
    erp: str
    property: str
    attr_id: int | None = None  # None: recorded before the attribute's id was kept
    last_as_of: dt.date | None = None  # the latest as-of date of those runs

    def same_erp(self, identity: str | None, display: str) -> bool:
        """Whether this is the ERP named (by identity; an old run without one, by its URL)."""
        return self.erp_id == identity if self.erp_id is not None else self.erp == display

    def same_attribute(self, attr_id: int | None, name: str) -> bool:
        """Whether this is the attribute named: by id, or (an old run without one) by its name
        compared without case, as SQL Server's usual collation compares it."""
        if self.attr_id is not None and attr_id is not None:
            return self.attr_id == attr_id
        return self.property.casefold() == name.casefold()


def live_history(engine: sa.Engine) -> list[KnownErp]:
    """The (ERP, property) pairs of finished live runs; reads only, tolerates a store made by an
    earlier version (no ``erp_id`` or ``attr_id`` column yet), so a dry run can ask without
    migrating it."""
    inspector = sa.inspect(engine)
    if "runs" not in inspector.get_table_names():
        return []
    present = {c["name"] for c in inspector.get_columns("runs")}
    erp_id = runs.c.erp_id if "erp_id" in present else sa.null()
    attr_id = runs.c.attr_id if "attr_id" in present else sa.null()
    stmt = (sa.select(erp_id.label("erp_id"), runs.c.erp, runs.c.property,
                      attr_id.label("attr_id"), sa.func.max(runs.c.as_of))
            .where(runs.c.mode == "live", runs.c.status == "done")
            .group_by(erp_id, runs.c.erp, runs.c.property, attr_id))
    with engine.connect() as conn:
        return [KnownErp(r[0], r[1], r[2], r[3], as_date(r[4])) for r in conn.execute(stmt)]


def as_date(value: Any) -> dt.date | None:
    """A date as the driver returns an aggregate of one (SQLite: text)."""
    if value is None or isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])
