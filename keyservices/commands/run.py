"""``keyservices run``: the nightly job.

Read facts, classify, diff against the stored values, write the changed ones (guarded, audited,
in chunks), work out who to call, render the digest and send it. Nothing here prints or exits:
results come back as data, failures as ``KeyservicesError`` subclasses with an exit code.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from .. import night
from ..calls import lifecycle, wonlost
from ..config import Config
from ..engine.diff import guard_message, penetration, plan_changes
from ..erp import display_url
from ..erp.writeback import apply_changes, reconcile
from ..errors import EXIT_GUARD, GuardTripped, KeyservicesError
from ..model import Counts
from ..progress import Reporter, Timings, gc_paused, step
from ..rules import RuleSet
from ..state import StateStore, run_lock
from .deliver import alert_failure, digest_and_send
from .result import RunResult

log = logging.getLogger("keyservices")


def run(config: Config, *, dry_run: bool = False, force: bool = False, send: bool = True,
        as_of: dt.date | None = None, reporter: Reporter | None = None) -> RunResult:
    """The nightly job: read facts, classify, diff, write changed values, render and send the digest.

    ``dry_run`` computes the plan and writes nothing anywhere (ERP, state store, outbox). A run
    that fails (exit 1-4) queues a short failure alert for the admins and sends it if it can.
    """
    try:
        return _run(config, dry_run=dry_run, force=force, send=send, as_of=as_of,
                    reporter=reporter)
    except KeyservicesError as exc:
        if not dry_run and exc.exit_code in (1, 2, 3, 4):
            alert_failure(config, exc, exc.exit_code)
        raise
    except Exception as exc:
        if not dry_run:
            alert_failure(config, exc, 1)
        raise


def _run(config: Config, *, dry_run: bool, force: bool, send: bool, as_of: dt.date | None,
         reporter: Reporter | None) -> RunResult:
    as_of = as_of or dt.date.today()
    rules = night.rules_for(config)  # validated completely before the database is touched
    erp_name = display_url(config.erp.url)
    if dry_run:
        return _compute(config, rules, as_of, run_id=None, baseline=False, dry_run=True,
                        reporter=reporter)
    with run_lock(config.state.dir):
        state = StateStore(config.state_url)
        try:
            abandoned = state.unfinished_runs()
            if abandoned:
                log.warning("run(s) %s did not finish (the process ended); marking them failed",
                            ", ".join(map(str, abandoned)))
                state.mark_abandoned(abandoned)
            # the first live run is a baseline; a test-mode run always shows what it would change
            baseline = config.mode == "live" and not state.has_live_run(erp_name, rules.property)
            run_id = state.begin_run(as_of=as_of, erp=erp_name, prop=rules.property,
                                     mode=config.mode, baseline=baseline)
            try:
                result = _compute(config, rules, as_of, run_id=run_id, baseline=baseline,
                                  dry_run=False, force=force, state=state, reporter=reporter,
                                  reconcile_pending=bool(abandoned))
                if config.mode == "live" and not result.guard_message:
                    result.won_lost = _won_lost(state, rules, as_of)
                result = digest_and_send(config, rules, result, send=send, reporter=reporter)
            except KeyservicesError as exc:
                state.finish_run(run_id, status="failed", exit_code=exc.exit_code,
                                 message=str(exc))
                raise
            except Exception as exc:
                state.finish_run(run_id, status="failed", exit_code=1,
                                 message=f"{type(exc).__name__}: {exc}")
                raise
            status = "guard" if result.guard_message else "done"
            state.finish_run(run_id, status=status, exit_code=result.exit_code,
                             message=result.guard_message or result.delivery_error,
                             counts=result.counts.as_dict(), timings=result.timings,
                             statements=result.statements)
        finally:
            state.close()
    if result.guard_message:
        raise GuardTripped(result.guard_message, result)
    return result

def _compute(config: Config, rules: RuleSet, as_of: dt.date, *, run_id: int | None,
             baseline: bool, dry_run: bool, force: bool = False,
             state: StateStore | None = None, reporter: Reporter | None = None,
             reconcile_pending: bool = False) -> RunResult:
    """The night (``night.compute``), then the plan, the guard, the life cycle and the writes."""
    timings = Timings()
    with gc_paused(), night.open_erp(config, rules) as erp:
        if reconcile_pending and state is not None:
            settled = reconcile(erp.engine, erp.tables, erp.attribute_id(), state)
            log.warning("settled the audit of the unfinished run(s) against the ERP: %s", settled)
        tonight = night.compute(config, as_of, erp=erp, reporter=reporter, timings=timings)
        facts, classification = tonight.facts, tonight.classification
        assert tonight.calls is not None and tonight.values is not None
        with step(reporter, timings, "plan changes",
                  total=len(classification.services)) as advance:
            plan = plan_changes(facts, classification, rules)
            wonlost.fill_annual_values(plan.changes, classification, facts, tonight.values)
            advance(len(classification.services))
        counts = Counts(read=len(facts.customers), classified=len(classification.services),
                        changed=len(plan.changes), unchanged=plan.unchanged,
                        no_configuration=len(plan.no_configuration),
                        no_attribute=len(plan.no_attribute), inactive=classification.inactive,
                        prospects=classification.prospects,
                        locations_rolled_up=classification.locations_rolled_up)
        guard = None if (force or baseline or config.mode == "test") else guard_message(
            len(plan.changes), plan.in_scope, config.write.max_changes,
            config.write.max_changes_percent)
        found = tonight.calls.opportunities
        lifecycle_counts: dict[str, int] = {}
        if rules.opportunities is not None and state is not None:
            # tracked across nights: upserted, won when the service appears, closed when the
            # condition clears; snoozed and dismissed ones are kept but not listed
            with step(reporter, timings, "opportunity life cycle") as advance:
                tracked = lifecycle.advance(state.load_opportunities(), found,
                                            classification.services, as_of)
                state.save_opportunities(tracked.records)
                found, lifecycle_counts = tracked.visible, dict(tracked.counts)
                advance(len(found))
        result = RunResult(
            run_id=run_id, as_of=as_of, mode=config.mode, dry_run=dry_run, baseline=baseline,
            counts=counts, changes=plan.changes, no_configuration=plan.no_configuration,
            no_attribute=plan.no_attribute, services=penetration(classification, rules),
            statements=tonight.statements, timings=timings, guard_message=guard,
            opportunities=found, opportunity_counts=lifecycle_counts,
            alerts=tonight.calls.alerts, alert_counts=tonight.calls.alert_counts,
            notes=list(tonight.calls.notes))
        if guard:
            result.exit_code = EXIT_GUARD
        elif not dry_run and config.mode == "live" and plan.changes:
            assert state is not None and run_id is not None
            report = apply_changes(erp.engine, erp.tables, tonight.attribute_id, plan.changes,
                                   state=state, run_id=run_id,
                                   chunk_size=config.write.chunk_size, reporter=reporter,
                                   timings=timings)
            counts.written = len(report.applied)
            counts.conflicts = len(report.conflicts)
            if report.conflicts:
                edited = [c.number for c in plan.changes if c.status == "conflict"]
                result.notes.append(
                    f"{len(edited)} value(s) were edited in e-automate while this run worked "
                    f"and were left as they are (the next run looks again): "
                    f"{', '.join(edited[:20])}{' ...' if len(edited) > 20 else ''}")
    return result


def _won_lost(state: StateStore, rules: RuleSet, as_of: dt.date) -> dict[str, Any]:
    """Services won and lost per sales rep tonight and over the last 30 and 90 days."""
    windows = {"tonight": (as_of, as_of), **wonlost.windows_ending(as_of)}
    rows = state.won_lost(None, as_of, include_baseline=True, with_values=True)
    table = wonlost.digest_table(wonlost.won_lost(rows, rules.service_names(), windows))
    return table if table["rows"] else {}
