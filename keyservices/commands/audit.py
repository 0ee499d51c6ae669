"""The audit trail and its undo: ``history`` and ``rollback``.

Every value a run writes is stored with its before-value in the state store. A rollback plans
against the values in the ERP now: it restores a value only where it is still what that run
wrote, counts the ones already restored, and leaves the rest alone, through the same guarded,
audited write path. The change guard applies to it as to a run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from .. import night
from ..config import Config, guard_limits
from ..engine.diff import guard_message
from ..erp import display_url
from ..erp.writeback import apply_changes, count_values, read_values
from ..errors import ConfigError, GuardTripped
from ..model import Change
from ..progress import Reporter
from ..state import StateStore, run_lock
from ..state.known import KnownErp
from .run import settle_here


@dataclass
class RollbackReport:
    """What ``rollback`` restored (or, with ``dry_run``, would restore), and what it left."""

    run_id: int | None  # the rollback's own run (audited like any other); None: nothing written
    of_run: int
    restored: list[str]  # customer numbers restored (dry run: to be restored)
    skipped: list[dict[str, Any]]  # the value is no longer what that run wrote: left alone
    already: list[str] = field(default_factory=list)  # already back at the before-value
    dry_run: bool = False
    guard_message: str | None = None  # dry run: why the live rollback would stop (exit 3)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def history(config: Config, *, run_id: int | None = None, customer: str | None = None,
            limit: int | None = 1000) -> dict[str, Any]:
    """The audit: recent runs, or the changes of one run or one customer (number).

    A list of changes cut at ``limit`` says how many rows there are in all (``total``), so a
    long run is never silently shown in part.
    """
    state = StateStore.for_reading(config.state_url)  # a read-only folder will do
    if state is None:
        return {"runs": []} if run_id is None and customer is None else {"changes": [],
                                                                          "total": 0}
    try:
        company = config.company_name  # each company keeps a store of its own
        if run_id is None and customer is None:
            return {"runs": [{**dataclasses.asdict(r), "company": company}
                             for r in state.runs(limit or 20)]}
        rows = state.history(run_id=run_id, customer=customer, limit=limit)
        for row in rows:
            row["company"] = row.get("company") or company
        total = (len(rows) if limit is None or len(rows) < limit
                 else state.count_history(run_id=run_id, customer=customer))
        return {"changes": rows, "total": total}
    finally:
        state.close()


def rollback(config: Config, run_id: int, *, dry_run: bool = False, force: bool = False,
             reporter: Reporter | None = None) -> RollbackReport:
    """Restore the before-values a run wrote, where the value is still what that run wrote.

    Values edited since (in e-automate or by a later run) are left alone and reported; values
    already restored (a repeated rollback) are counted and not written again. Refused (exit 3)
    unless ``force`` when later runs wrote the same customers, or when the restores exceed the
    change guard's limits; ``dry_run`` shows the plan and writes nothing.
    """
    rules = night.rules_for(config)
    lock = contextlib.nullcontext() if dry_run else run_lock(config.lock_dir)
    with lock:
        state = StateStore.reader(config.state_url) if dry_run else StateStore(config.state_url)
        if state is None:
            raise ConfigError(f"no run {run_id}: there is no state store yet; "
                              "'keyservices history' lists the runs")
        try:
            return _rollback(config, rules, state, run_id, dry_run=dry_run, force=force,
                             reporter=reporter)
        finally:
            state.close()


def _rollback(config: Config, rules: Any, state: StateStore, run_id: int, *, dry_run: bool,
              force: bool, reporter: Reporter | None) -> RollbackReport:
    record = state.run_record(run_id)
    if record is None:
        raise ConfigError(f"no run {run_id} in the state store; 'keyservices history' lists "
                          "the runs")
    target = state.target(run_id)
    assert target is not None
    with night.open_erp(config, rules) as erp:
        attr, name = erp.attribute()
        here = display_url(config.erp.url)
        _same_target(run_id, target, erp.identity(), here, attr, name, force=force)
        if not dry_run and run_id in state.unsettled_runs():
            # killed mid-write: its rows read as pending until settled, against its own ERP
            settle_here(erp, state, here, run_ids=[run_id])
        # a dry run settles nothing: a pending row is planned like an applied one (the values
        # in the ERP now say whether it was written)
        wanted = ("applied", "pending") if dry_run else ("applied",)
        rows = [r for r in state.history(run_id=run_id, limit=None) if r["status"] in wanted]
        if not rows:
            raise ConfigError(f"run {run_id} wrote no value, so there is nothing to roll back")
        now = read_values(erp.engine, erp.tables, attr, [r["customer_id"] for r in rows])
        planned: list[Change] = []
        report = RollbackReport(run_id=None, of_run=run_id, restored=[], skipped=[],
                                dry_run=dry_run)
        for r in rows:
            current = now.get(r["customer_id"])
            if r["customer_id"] in now and (current or None) == (r["after"] or None):
                planned.append(Change(
                    customer_id=r["customer_id"], number=r["customer_number"],
                    name=r["customer_name"], branch=r.get("branch"), sales_rep=r.get("sales_rep"),
                    before=current, after=r["before"],
                    added=tuple(x for x in (r["removed"] or "").split(";") if x),
                    removed=tuple(x for x in (r["added"] or "").split(";") if x),
                    follows=r.get("follows"), causes=(f"rollback of run {run_id}",)))
            elif r["customer_id"] in now and (current or None) == (r["before"] or None):
                report.already.append(r["customer_number"])
            else:
                report.skipped.append({"customer": r["customer_number"], "run_wrote": r["after"],
                                       "restores_to": r["before"], "now": current})
        if not force and planned:
            try:
                _guard(config, state, erp, attr, run_id, [r["customer_id"] for r in rows],
                       planned)
            except GuardTripped as exc:
                if not dry_run:
                    raise
                # the plan is what the admin reviews: shown, with why a live rollback would stop
                report.guard_message = (
                    f"{str(exc).split(' Nothing was written.')[0]}. A live rollback would stop "
                    f"here and write nothing; if the plan above is right, run "
                    f"'keyservices rollback {run_id} --force'")
        if dry_run or not planned:
            report.restored = [c.number for c in planned]
            return report
        own = state.begin_run(as_of=dt.date.today(), erp=here, prop=name, mode="rollback",
                              baseline=False, erp_id=erp.identity(), attr_id=attr,
                              company=config.company_name)
        try:
            written = apply_changes(erp.engine, erp.tables, attr, planned, state=state,
                                    run_id=own, chunk_size=config.write.chunk_size,
                                    reporter=reporter)
        except Exception as exc:
            state.finish_run(own, status="failed", exit_code=1,
                             message=f"rollback of run {run_id} failed: {type(exc).__name__}")
            raise
    by_id = {c.customer_id: c for c in planned}
    report.run_id = own
    report.restored = [by_id[i].number for i in written.applied]
    report.skipped += [{"customer": by_id[i].number, "run_wrote": by_id[i].before,
                        "restores_to": by_id[i].after, "now": None} for i in written.conflicts]
    state.finish_run(own, status="done", exit_code=0,
                     message=f"rollback of run {run_id}: {len(report.restored)} restored, "
                             f"{len(report.skipped)} left alone, {len(report.already)} already "
                             "restored",
                     counts={"written": len(report.restored), "conflicts": len(written.conflicts)})
    state.mark_reported([own])
    return report


def _same_target(run_id: int, target: KnownErp, identity: str, display: str, attr: int,
                 name: str, *, force: bool) -> None:
    """A rollback writes only where its run wrote: the same ERP (``--force`` accepts one whose
    identity changed, a database moved or renamed) and the same attribute (always)."""
    if not target.same_attribute(attr, name):
        raise GuardTripped(
            f"run {run_id} wrote the attribute {target.property}"
            f"{f' (id {target.attr_id})' if target.attr_id is not None else ''}, but the rules "
            f"now name {name} (id {attr}). Nothing was written. Roll it back with the rules "
            "and config that run used")
    if not force and not target.same_erp(identity, display):
        raise GuardTripped(
            f"run {run_id} wrote {target.erp_id or target.erp}, but the config points at "
            f"{identity}. Nothing was written. Roll it back with the config of that ERP; if it "
            "is the same database, moved or renamed, rerun with --force")


def _guard(config: Config, state: StateStore, erp: night.Erp, attr: int, run_id: int,
           customers: list[int], planned: list[Change]) -> None:
    """A rollback is a write like any other: later runs on the same customers (a typo for the
    run number), or more restores than the change guard allows, stop it until the admin has
    looked (--dry-run, --force)."""
    later = state.later_writers(run_id, customers)
    if later:
        raise GuardTripped(
            f"run {run_id} is not the latest run that wrote these customers: run(s) "
            f"{', '.join(map(str, later[:10]))}{' ...' if len(later) > 10 else ''} wrote some of "
            f"them since. Rolling it back would restore values older than theirs. Nothing was "
            f"written. Check the run number ('keyservices history'), review the plan with "
            f"'keyservices rollback {run_id} --dry-run', then rerun with --force if it is right")
    message = guard_message(len(planned), count_values(erp.engine, erp.tables, attr),
                            *guard_limits(config.write),
                            command=f"keyservices rollback {run_id}", what="restores")
    if message:
        raise GuardTripped(message)
