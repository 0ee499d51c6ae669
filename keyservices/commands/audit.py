"""The audit trail and its undo: ``history`` and ``rollback``.

Every value a run writes is stored with its before-value in the state store; a rollback restores
them where the value is still what that run wrote, through the same guarded, audited write path.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from .. import night
from ..config import Config
from ..erp import attribute_id, display_url, wrap_db_error
from ..erp.writeback import apply_changes
from ..errors import ConfigError
from ..model import Change
from ..progress import Reporter
from ..state import StateStore, run_lock


@dataclass
class RollbackReport:
    """What ``rollback`` restored, and which customers it left alone and why."""

    run_id: int  # the rollback's own run (it is audited like any other)
    of_run: int
    restored: list[str]
    skipped: list[dict[str, Any]]  # the value is no longer what that run wrote

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def history(config: Config, *, run_id: int | None = None, customer: str | None = None,
            limit: int | None = 1000) -> dict[str, Any]:
    """The audit: recent runs, or the changes of one run or one customer (number)."""
    state = StateStore(config.state_url)
    try:
        if run_id is None and customer is None:
            return {"runs": [dataclasses.asdict(r) for r in state.runs(limit or 20)]}
        return {"changes": state.history(run_id=run_id, customer=customer, limit=limit)}
    finally:
        state.close()


def rollback(config: Config, run_id: int, *, reporter: Reporter | None = None) -> RollbackReport:
    """Restore the before-values a run wrote, where the value is still what that run wrote.

    Values edited since (in e-automate or by a later run) are left alone and reported. The
    rollback is a run of its own, audited, so it can itself be rolled back.
    """
    rules = night.rules_for(config)
    tables = night.tables_for(config, rules)
    with run_lock(config.state.dir):
        state = StateStore(config.state_url)
        try:
            record = state.run_record(run_id)
            if record is None:
                raise ConfigError(f"no run {run_id} in the state store; 'keyservices history' "
                                  "lists the runs")
            rows = [r for r in state.history(run_id=run_id, limit=None)
                    if r["status"] == "applied"]
            if not rows:
                raise ConfigError(f"run {run_id} wrote no value, so there is nothing to roll back")
            planned = [Change(customer_id=r["customer_id"], number=r["customer_number"],
                              name=r["customer_name"], branch=None, sales_rep=None,
                              before=r["after"], after=r["before"],
                              added=tuple(x for x in r["removed"].split(";") if x),
                              removed=tuple(x for x in r["added"].split(";") if x))
                       for r in rows]
            engine = night.engine_for(config)
            try:
                with engine.connect() as conn:
                    attr = attribute_id(conn, tables, rules.property)
                own = state.begin_run(as_of=dt.date.today(), erp=display_url(config.erp.url),
                                      prop=rules.property, mode="rollback", baseline=False)
                report = apply_changes(engine, tables, attr, planned, state=state, run_id=own,
                                       chunk_size=config.write.chunk_size, reporter=reporter)
            except SQLAlchemyError as exc:
                raise wrap_db_error(exc, config.erp.url) from exc
            finally:
                engine.dispose()
            by_id = {c.customer_id: c for c in planned}
            result = RollbackReport(
                run_id=own, of_run=run_id,
                restored=[by_id[i].number for i in report.applied],
                skipped=[{"customer": by_id[i].number, "run_wrote": by_id[i].before,
                          "restores_to": by_id[i].after} for i in report.conflicts])
            state.finish_run(own, status="done", exit_code=0,
                             message=f"rollback of run {run_id}: {len(result.restored)} restored, "
                                     f"{len(result.skipped)} left alone",
                             counts={"written": len(result.restored),
                                     "conflicts": len(result.skipped)})
            return result
        finally:
            state.close()
