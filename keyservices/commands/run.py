"""``keyservices run``: the nightly job.

Read facts, classify, diff against the stored values, write the changed ones (guarded, audited,
in chunks), work out who to call, render the digest and send it. Nothing here prints or exits:
results come back as data, failures as ``KeyservicesError`` subclasses with an exit code.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from .. import night
from ..calls import lifecycle, monitor_calls, renewal, wonlost
from ..config import Config, guard_limits, guard_off
from ..engine.classify import Classification
from ..engine.diff import (
    attribute_is_foreign,
    guard_message,
    guarded,
    ownership_message,
    penetration,
    plan_changes,
    set_aside_foreign,
    set_aside_two_rows,
    two_rows_note,
    unwritable_locations_note,
)
from ..erp import display_url
from ..erp.writeback import apply_changes, reconcile
from ..errors import EXIT_GUARD, GuardTripped, KeyservicesError, SchemaError
from ..model import Counts, Facts, customer_column
from ..progress import Beside, Reporter, Timings, gc_paused, step
from ..rules import RuleSet
from ..state import StateStore, run_lock
from ..state.backtests import save_backtest
from ..state.rates import save_rates
from . import why
from .alerts import listing_for, save_alerts
from .deliver import alert_failure, digest_and_send, preflight
from .guard import clock_check, is_baseline, refuse_new_erp_if_known
from .result import RunResult

log = logging.getLogger("keyservices")


def run(config: Config, *, dry_run: bool = False, force: bool = False, new_erp: bool = False,
        send: bool = True, as_of: dt.date | None = None,
        reporter: Reporter | None = None, locked: bool = False) -> RunResult:
    """The nightly job: read facts, classify, diff, write changed values, render and send the digest.

    ``dry_run`` computes the plan, the guard and the ownership check exactly as a live run would,
    and writes nothing anywhere (ERP, state store, outbox). ``force`` overrides the change guard;
    ``new_erp`` says the configured ERP is a new one for this state store (its first run is a
    baseline). A run that fails (exit 1-4) queues a short failure alert for the admins.
    ``locked``: the caller holds the run lock (a group's night, for all its companies).
    """
    try:
        return _run(config, dry_run=dry_run, force=force, new_erp=new_erp, send=send,
                    as_of=as_of, reporter=reporter, locked=locked)
    except KeyservicesError as exc:
        if not dry_run and exc.exit_code in (1, 2, 3, 4):
            alert_failure(config, exc, exc.exit_code)
        raise
    except Exception as exc:
        if not dry_run:
            alert_failure(config, exc, 1)
        raise


def _run(config: Config, *, dry_run: bool, force: bool, new_erp: bool, send: bool,
         as_of: dt.date | None, reporter: Reporter | None, locked: bool) -> RunResult:
    explicit, as_of = as_of is not None, as_of or dt.date.today()
    # everything that can be checked without the ERP is checked before it is touched
    rules = night.rules_for(config)
    preflight(config, rules)
    if not rules.property.upper().startswith("Z"):
        log.warning("the property %s does not start with Z: e-automate's custom properties for "
                    "dealer processes conventionally do; make sure it is the one keyservices "
                    "owns", rules.property)
    if dry_run:
        reader = StateStore.reader(config.state_url)
        try:
            with gc_paused(), night.open_erp(config, rules) as erp:
                baseline = _baseline(config, rules, erp, reader, new_erp=new_erp, force=force,
                                     as_of=as_of, explicit=explicit, dry_run=True)
                return _compute(config, rules, erp, as_of, run_id=None, baseline=baseline,
                                dry_run=True, force=force, state=reader, reporter=reporter)
        finally:
            if reader is not None:
                reader.close()
    with contextlib.nullcontext() if locked else run_lock(config.lock_dir):
        state = StateStore(config.state_url)  # its schema is checked here, before the ERP
        try:
            return _live(config, rules, state, as_of, force=force, new_erp=new_erp, send=send,
                         reporter=reporter, explicit=explicit)
        finally:
            state.close()


def _live(config: Config, rules: RuleSet, state: StateStore, as_of: dt.date, *, force: bool,
          new_erp: bool, send: bool, reporter: Reporter | None, explicit: bool) -> RunResult:
    """A live or test-mode run under the lock: the run record wraps everything after it."""
    abandoned = state.unfinished_runs()
    if abandoned:
        log.warning("run(s) %s did not finish (the process ended); marking them failed",
                    ", ".join(map(str, abandoned)))
        state.mark_abandoned(abandoned)
    run_id: int | None = None
    try:
        with gc_paused(), night.open_erp(config, rules) as erp:
            baseline = _baseline(config, rules, erp, state, new_erp=new_erp, force=force,
                                 as_of=as_of, explicit=explicit)
            attr_id, attr_name = erp.attribute()
            run_id = state.begin_run(as_of=as_of, erp=display_url(config.erp.url),
                                     prop=attr_name, mode=config.mode, baseline=baseline,
                                     erp_id=erp.identity(), attr_id=attr_id,
                                     company=config.company_name)
            if state.has_pending():  # any earlier run's unsettled audit, whatever its status
                settled = settle_here(erp, state, display_url(config.erp.url))
                log.warning("settled the audit of earlier unfinished writes against the ERP: "
                            "%s", settled)
            result = _compute(config, rules, erp, as_of, run_id=run_id, baseline=baseline,
                              dry_run=False, force=force, state=state, reporter=reporter)
        if config.mode == "live" and not result.guard_message:
            result.won_lost = _won_lost(state, rules, as_of)
        result.carried = state.unreported(rules.property, before_run=run_id)
        if result.carried:
            runs = sorted({c.carried_from for c in result.carried if c.carried_from})
            result.notes.append(
                f"{len(result.carried)} value(s) written by run(s) {', '.join(map(str, runs))}, "
                "which stopped before their digest, are listed here, marked as carried over")
        result = digest_and_send(config, rules, result, send=send, reporter=reporter)
        state.mark_reported([run_id, *(c.carried_from for c in result.carried if c.carried_from)])
    except KeyservicesError as exc:
        if run_id is not None:
            _mark_failed(state, run_id, exc.exit_code, str(exc))
        raise
    except Exception as exc:
        if run_id is not None:
            _mark_failed(state, run_id, 1, f"{type(exc).__name__}: {exc}")
        raise
    status = "guard" if result.guard_message else "done"
    state.finish_run(run_id, status=status, exit_code=result.exit_code,
                     message=result.guard_message or result.delivery_error,
                     counts=result.counts.as_dict(), timings=result.timings,
                     statements=result.statements)
    if result.guard_message:
        raise GuardTripped(result.guard_message, result)
    return result


def _mark_failed(state: StateStore, run_id: int, exit_code: int, message: str) -> None:
    """The run's record says it failed; when the store itself cannot take that (a full disk),
    the error that stopped the run is the one reported, and the next run marks it failed."""
    try:
        state.finish_run(run_id, status="failed", exit_code=exit_code, message=message)
    except (KeyservicesError, SQLAlchemyError) as exc:
        log.warning("could not mark run %s failed in the state store (%s); the next run "
                    "marks it", run_id, exc)


def _baseline(config: Config, rules: RuleSet, erp: night.Erp, state: StateStore | None, *,
              new_erp: bool, force: bool, as_of: dt.date, explicit: bool,
              dry_run: bool = False) -> bool:
    """Whether tonight is a baseline (a live run only; a test-mode run writes nothing).

    ``--new-erp`` on an ERP the store knows is refused in every mode, and a live night dated
    before this ERP's last live run stops (``clock_check``): a dry run says the same."""
    history = state.live_history() if state is not None else []
    identity, display = erp.identity(), display_url(config.erp.url)
    attr_id, name = erp.attribute()
    refuse_new_erp_if_known(history, identity=identity, display=display, new_erp=new_erp)
    if config.mode != "live":
        return False
    if not (explicit and dry_run):  # a dry run as of a date on purpose writes nothing
        clock_check(history, identity=identity, display=display, as_of=as_of,
                    explicit=explicit, force=force)
    return is_baseline(history, identity=identity, display=display, prop=name, attr_id=attr_id,
                       new_erp=new_erp, force=force)


def settle_here(erp: night.Erp, state: StateStore, display: str,
                run_ids: Sequence[int] | None = None) -> dict[str, int]:
    """Settle the unsettled runs (these, or all) against this ERP, which must be the one each
    wrote: a pending row read in another database would be settled wrongly (a run on a copy
    marking the original's written values not applied). Otherwise exit 3, naming both."""
    unsettled = state.unsettled_runs()
    if run_ids is not None:
        unsettled = {k: v for k, v in unsettled.items() if k in set(run_ids)}
    if not unsettled:
        return {}
    attr_id, name = erp.attribute()
    identity = erp.identity()
    elsewhere = {k: v for k, v in unsettled.items()
                 if not (v.same_erp(identity, display) and v.same_attribute(attr_id, name))}
    if elsewhere:
        run_id, target = next(iter(elsewhere.items()))
        raise GuardTripped(
            f"run {run_id} stopped while writing {target.property} in {target.erp_id or target.erp}"
            f"; its audit is settled by reading that ERP, but the config points at {name} in "
            f"{identity}. Nothing was written. Run keyservices once with the config of that ERP "
            "(it settles the audit), then run this one again")
    return reconcile(erp.engine, erp.tables, attr_id, state, run_ids=list(unsettled))


def _compute(config: Config, rules: RuleSet, erp: night.Erp, as_of: dt.date, *,
             run_id: int | None, baseline: bool, dry_run: bool, force: bool,
             state: StateStore | None, reporter: Reporter | None) -> RunResult:
    """The night (``night.compute``), then the plan, the ownership check, the guard, the writes
    and, only after a clean live write, the opportunity life cycle."""
    timings = Timings()
    stored_life = None
    # what the digest lists (alerts seen before) and the remembered opportunities are read from
    # the state store on a second thread (two seconds at a million opportunities), let go once
    # the customers are read: then the database aggregates while the interpreter is idle
    beside = Beside()
    try:
        listing = beside.submit(listing_for, config, rules, state, as_of)
        if rules.opportunities is not None and state is not None:
            stored_life = beside.submit(state.load_life)
        tonight = night.compute(config, as_of, erp=erp, reporter=reporter, timings=timings,
                                listing=listing, settle=False, beside=beside)
    except BaseException:
        beside.close(cancel=True)
        raise
    beside.close()
    # the check of the values is still running on a second connection: a failure waits for
    # its verdict, and nothing is written or shown before it (``settle``)
    with tonight.explaining(erp):
        facts, classification = tonight.facts, tonight.classification
        assert tonight.calls is not None and tonight.values is not None
        with step(reporter, timings, "plan changes", total=len(classification.services)) as advance:
            plan = plan_changes(facts, classification, rules, locations=config.write.locations)
            wonlost.fill_annual_values(plan.changes, classification, facts, tonight.values)
            advance(len(classification.services))
        # customers with two value rows of the attribute: classified, listed, never written
        twice = [str(n) for n in customer_column(
            facts.customers, "number", list(getattr(facts.customers, "two_value_rows", ())))]
        set_aside_two_rows(plan, twice)
        # never overwrite data the tool does not own, whatever --force says
        aside = set_aside_foreign(
            plan, rules, state.written_values(rules.property) if state is not None else ())
        if aside and attribute_is_foreign(len(aside), _non_empty(facts, classification)
                                          + plan.location_values):
            raise SchemaError(ownership_message(rules.property, aside))
        counts = Counts(read=len(facts.customers), classified=len(classification.services),
                        changed=len(plan.changes), unchanged=plan.unchanged,
                        no_configuration=len(plan.no_configuration),
                        no_attribute=len(plan.no_attribute), inactive=classification.inactive,
                        prospects=classification.prospects,
                        locations_rolled_up=classification.locations_rolled_up,
                        locations_changed=len(plan.locations),
                        locations_unchanged=plan.locations_unchanged,
                        locations_no_configuration=len(plan.locations_no_configuration),
                        locations_no_attribute=len(plan.locations_no_attribute))
        guard = None if (force or config.mode == "test") else guard_message(
            guarded(plan.writes(), baseline=baseline), plan.records,
            *guard_limits(config.write), baseline=baseline)
        # why each change happened (against the last clean live run's facts), who may be leaving
        erp_id = erp.identity()
        with step(reporter, timings, "causes and risks", total=len(plan.changes)) as advance:
            risks, why_notes = why.annotate(config, rules, tonight, plan.changes, baseline=baseline,
                                            erp_id=erp_id)
            advance(len(plan.changes))
        found = tonight.calls.opportunities
        lifecycle_counts: dict[str, int] = {}
        tracked = None
        if stored_life is not None:
            # tracked across nights: upserted, won when the service appears through a sale the
            # causes name (or the machines go on a contract line), withdrawn when their reason
            # goes; snoozed and dismissed ones are
            # kept but not listed
            stored = beside.result(stored_life)
            appeared: dict[int, set[str]] = {}  # the services tonight's values add
            named: dict[tuple[int, str], str] = {}  # and the sale the causes engine names
            names = rules.service_names()
            for change in [*plan.changes, *aside]:
                appeared.setdefault(change.customer_id, set()).update(change.added)
                for code in change.added:
                    said = [c for c in change.causes if c.startswith(f"{names.get(code)}:")]
                    if said:
                        named[(change.customer_id, code)] = said[0]
            kept = why.hold_back(found, risks, stored.active_keys() if risks else ())
            # an uncovered-machine offer is won when its machines went on a contract line
            covered = why.machines_covered(erp, tonight, stored, kept, appeared)
            tracked = lifecycle.advance(
                stored, kept, classification.services, as_of, appeared=appeared,
                causes=named if not baseline else None, covered=covered,
                running=renewal.running_tonight(tonight.facts, classification, rules),
                kept=monitor_calls.kept_tonight(tonight.facts, classification, rules))
            found, lifecycle_counts = tracked.visible, dict(tracked.counts)
        found = why.hold_back(found, risks)  # a customer at risk is not offered tonight
    tonight.settle(erp, reporter)
    if tonight.learned and tonight.rates is not None and state is not None and not dry_run \
            and tonight.rates.offered:  # kept, so the next nights need not learn them again
        save_rates(state.engine, erp.identity(), tonight.rates)
        if tonight.backtest is not None:  # its scores, for report's chart
            save_backtest(state.engine, erp.identity(),
                          tonight.backtest.summary(as_of, config.ranking.months))
    result = RunResult(
        run_id=run_id, as_of=as_of, mode=config.mode, dry_run=dry_run, baseline=baseline,
        counts=counts, changes=plan.changes, no_configuration=plan.no_configuration,
        no_attribute=plan.no_attribute, services=penetration(classification, rules),
        statements=tonight.statements, timings=timings, guard_message=guard,
        opportunities=found, opportunity_counts=lifecycle_counts, alerts=tonight.calls.alerts,
        alert_counts=tonight.calls.alert_counts, notes=list(tonight.calls.notes),
        location_changes=plan.locations,
        location_no_configuration=plan.locations_no_configuration,
        location_no_attribute=plan.locations_no_attribute)
    result.notes += settings_notes(config)
    if twice:
        result.notes.append(two_rows_note(rules.property,
                                          erp.tables.physical("custom_properties"), twice))
    unwritable_locations = unwritable_locations_note(plan, rules.property)
    if unwritable_locations:
        result.notes.append(unwritable_locations)
    if aside:
        result.notes.append(
            f"{len(aside)} value(s) of {rules.property} were not written by keyservices and "
            "were left as they are (clear them in e-automate to let keyservices fill them): "
            + ", ".join(f"{c.number} ({(c.before or '')[:30]!r})" for c in aside[:20])
            + (" ..." if len(aside) > 20 else ""))
    if not rules.property.upper().startswith("Z"):
        result.notes.append(f"The property {rules.property} does not start with Z, as "
                            "e-automate's custom properties for dealer processes do: make sure "
                            "it is the attribute keyservices owns.")
    result.alert_monitors, result.renewals = tonight.calls.alert_monitors, tonight.renewals
    result.risks = risks
    result.mode_default = config.mode == "test" and "mode" not in config.sources
    result.guard_off = config.mode == "live" and guard_off(config.write)
    result.notes += why_notes
    if guard:
        result.exit_code = EXIT_GUARD
        return result
    live = not dry_run and config.mode == "live"
    if live and plan.writes():
        assert state is not None and run_id is not None
        report = apply_changes(erp.engine, erp.tables, tonight.attribute_id, plan.writes(),
                               state=state, run_id=run_id, chunk_size=config.write.chunk_size,
                               reporter=reporter, timings=timings)
        followed = {c.customer_id for c in plan.locations}
        counts.locations_written = sum(1 for i in report.applied if i in followed)
        counts.written = len(report.applied) - counts.locations_written
        counts.conflicts = len(report.conflicts)
        counts.already = len(report.already)
        if report.already:
            held = [c.number for c in plan.writes() if c.status == "already"]
            result.notes.append(
                f"{len(held)} value(s) already held what this run would write when it wrote "
                "(another keyservices install, or a person, wrote them since the read): "
                "recorded as already held, not as written by this run: "
                f"{', '.join(held[:20])}{' ...' if len(held) > 20 else ''}")
        if report.conflicts:
            edited = [c.number for c in plan.writes() if c.status == "conflict"]
            result.notes.append(
                f"{len(edited)} value(s) were edited in e-automate while this run worked "
                f"and were left as they are (the next run looks again): "
                f"{', '.join(edited[:20])}{' ...' if len(edited) > 20 else ''}")
    if live and tracked is not None:
        assert state is not None
        with step(reporter, timings, "opportunity life cycle") as advance:
            state.save_life(tracked)
            advance(len(tracked.found) + len(tracked.closings))
    if live:  # alerts' first-seen dates move only with a clean live run, like the life cycle
        assert state is not None
        save_alerts(state, tonight)
    if live:  # tomorrow's causes compare with tonight's facts (a clean live run only)
        with step(reporter, timings, "keep tonight's facts") as advance:
            note = why.keep(config, rules, tonight, erp_id=erp_id, run_id=run_id)
            if note:
                result.notes.append(note)
            advance(len(classification.services))
    return result


def settings_notes(config: Config) -> list[str]:
    """What the summary and the digest say about the settings that decide whether anything is
    written: test mode by default, and a change guard switched off."""
    notes = []
    if config.mode == "test" and "mode" not in config.sources:
        notes.append("Test mode: the config does not set 'mode:', so this run wrote nothing to "
                     "the ERP. When the digest looks right, set 'mode: live' in "
                     f"{config.config_path.name if config.config_path else 'config.yaml'}.")
    if config.mode == "live" and guard_off(config.write):
        notes.append("The change guard is off (write.max_changes_percent: off): any number of "
                     "values may be rewritten in one night. Set a limit to switch it back on.")
    return notes


def _non_empty(facts: Facts, classification: Classification) -> int:
    """In-scope customers whose value row holds something (what ownership is judged against)."""
    ids = list(classification.services)
    has_row = customer_column(facts.customers, "has_value_row", ids).tolist()
    values = customer_column(facts.customers, "current_value", ids).tolist()
    return sum(1 for ok, value in zip(has_row, values) if ok and (value or "").strip())


def _won_lost(state: StateStore, rules: RuleSet, as_of: dt.date) -> dict[str, Any]:
    """Services won and lost per sales rep tonight and over the last 30 and 90 days, and this
    week's (the 7 nights up to ``as_of``) per branch and rep for the first screen: one read."""
    week = wonlost.windows_ending(as_of, (wonlost.WEEK,))
    windows = {"tonight": (as_of, as_of), **wonlost.windows_ending(as_of), **week}
    rows = state.won_lost_rows(as_of)  # streamed, newest first: memory stays with the window
    by_window = wonlost.won_lost(rows, rules.service_names(), windows, newest_first=True)
    ((label, (since, until)),) = week.items()
    week_rows = by_window.pop(label)
    # a live night knows its week even when nothing was won: the first screen says 0
    return {**wonlost.digest_table(by_window),
            "week": wonlost.week_money(week_rows, since, until)}
