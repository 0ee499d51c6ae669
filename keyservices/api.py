"""The library API: one public function per command, each taking the config first.

The CLI is a thin layer over these; tests and embedders call them directly, e.g.
``keyservices.run(load_config("config.yaml"), dry_run=True)``. Nothing here prints or exits:
results come back as data, failures as ``KeyservicesError`` subclasses with an exit code.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from . import digest as digest_mod
from . import calls, lifecycle, mail, wonlost
from .classify import classify
from .config import Config
from .diff import guard_message, penetration, plan_changes
from .erp import (ErpTables, StatementCounter, attribute_id, connect, display_url,
                  verify_schema, wrap_db_error)
from .errors import (EXIT_GUARD, EXIT_OK, EXIT_UNDELIVERED, ConfigError, GuardTripped,
                     KeyservicesError, SchemaError)
from .facts import read_categories, read_facts
from .model import (Change, Counts, CustomerRef, DigestData, Opportunity, ServiceCount,
                    StatusAlert)
from .progress import Reporter, Timings, gc_paused, step
from .rules import RuleSet, load_rules
from .state import StateStore, run_lock
from .writeback import apply_changes, reconcile

log = logging.getLogger("keyservices")


@dataclass
class RunResult:
    """What one run did; ``exit_code`` is what the scheduler sees."""

    run_id: int | None
    as_of: dt.date
    mode: str
    dry_run: bool
    baseline: bool
    counts: Counts
    changes: list[Change]
    no_configuration: list[CustomerRef]
    no_attribute: list[CustomerRef]
    services: list[ServiceCount]
    statements: int
    timings: dict[str, float]
    guard_message: str | None = None
    digest_eml: Path | None = None
    digest_html: Path | None = None
    delivery_error: str | None = None
    delivery: str = "none"  # none | outbox (no smtp configured) | sent | queued (SMTP failed)
    sent: list[Path] = field(default_factory=list)
    digests: list[Path] = field(default_factory=list)  # the consolidated copy, then per branch
    notes: list[str] = field(default_factory=list)  # shown at the end of the digest
    opportunities: list[Opportunity] = field(default_factory=list)  # most promising first
    opportunity_counts: dict[str, int] = field(default_factory=dict)  # new, open, won, closed...
    alerts: list[StatusAlert] = field(default_factory=list)  # status monitor hits (rendered)
    alert_counts: dict[str, int] = field(default_factory=dict)  # monitor code -> customers hit
    won_lost: dict[str, Any] = field(default_factory=dict)  # per sales rep, see wonlost
    exit_code: int = EXIT_OK

    def to_dict(self) -> dict[str, Any]:
        # the long lists are converted shallowly: dataclasses.asdict deep-copies every field of
        # every item, which at hundreds of thousands of changes costs seconds and gigabytes
        long = ("changes", "no_configuration", "no_attribute", "opportunities", "alerts")
        data = dataclasses.asdict(dataclasses.replace(self, **{k: [] for k in long}))
        for key in long:
            data[key] = _rows(getattr(self, key))
        data["as_of"] = self.as_of.isoformat()
        for key in ("digest_eml", "digest_html"):
            data[key] = str(data[key]) if data[key] else None
        data["sent"] = [str(p) for p in self.sent]
        data["digests"] = [str(p) for p in self.digests]
        return data


def _rows(items: list[Any]) -> list[dict[str, Any]]:
    """Slotted dataclasses as dicts, one level deep (their fields are plain values)."""
    if not items:
        return []
    names = [f.name for f in dataclasses.fields(items[0])]
    return [{n: getattr(item, n) for n in names} for item in items]


def _engine_for(config: Config) -> sa.Engine:
    """The ERP engine, with the password from the environment and the configured timeout."""
    return connect(config.erp.url, password=config.erp_password(),
                   connect_timeout=config.erp.connect_timeout)


def _rules_for(config: Config) -> RuleSet:
    return load_rules(config.rules)


def _tables_for(config: Config, rules: RuleSet) -> ErpTables:
    extra = {}
    if rules.industry_source.startswith("column:"):
        extra["customers"] = [rules.industry_source.split(":", 1)[1]]
    return ErpTables(config.erp.profile and {k: v.model_dump() for k, v in config.erp.profile.items()},
                     config.erp.db_schema, extra)


def needed_tables(rules: RuleSet) -> list[str]:
    """The profile tables this rule set reads (and so must exist)."""
    needed = ["customers", "sales_reps", "branches", "attributes", "custom_properties",
              "model_categories"]
    if rules.industry_source == "customer_type":
        needed.append("customer_types")
    if rules.all_sections("equipment"):
        needed += ["equipment", "models"]
    if rules.all_sections("contracts"):
        needed += ["contracts", "contract_codes", "bill_codes"]
    if rules.uses_contract_statuses():
        needed.append("contract_statuses")
    if rules.uses_item_categories():
        needed.append("item_categories")
    if rules.all_sections("gl"):
        needed += ["gl_detail", "gl_accounts"]
    if rules.all_sections("items_sold"):
        needed += ["invoices", "invoice_lines", "items", "models"]
    return list(dict.fromkeys(needed))


def unused_columns(rules: RuleSet) -> set[tuple[str, str]]:
    """Optional profile columns that this rule set does not read (so need not exist)."""
    unused = {("customers", "decision_contact_id")}  # only the opportunity export reads it
    if not rules.uses_transaction_types():
        unused.add(("gl_detail", "transaction_type"))
    if not rules.uses_contract_statuses():
        unused.add(("contracts", "status_id"))
    if not rules.uses_item_categories():
        unused.add(("items", "item_category_id"))
    return unused


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
    rules = _rules_for(config)  # validated completely before the database is touched
    tables = _tables_for(config, rules)
    erp_name = display_url(config.erp.url)
    if dry_run:
        return _compute(config, rules, tables, as_of, run_id=None, baseline=False, dry_run=True,
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
                result = _compute(config, rules, tables, as_of, run_id=run_id, baseline=baseline,
                                  dry_run=False, force=force, state=state, reporter=reporter,
                                  reconcile_pending=bool(abandoned))
                if config.mode == "live" and not result.guard_message:
                    result.won_lost = _won_lost(state, rules, as_of)
                result = _digest_and_send(config, rules, result, send=send, reporter=reporter)
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


def _compute(config: Config, rules: RuleSet, tables: ErpTables, as_of: dt.date, *,
             run_id: int | None, baseline: bool, dry_run: bool, force: bool = False,
             state: StateStore | None = None, reporter: Reporter | None = None,
             reconcile_pending: bool = False) -> RunResult:
    timings = Timings()
    engine = _engine_for(config)
    counter = StatementCounter()
    sa.event.listen(engine, "before_cursor_execute", counter)
    try:
        with gc_paused():
            return _compute_on(config, rules, tables, as_of, engine, counter, timings,
                               run_id=run_id, baseline=baseline, dry_run=dry_run, force=force,
                               state=state, reporter=reporter,
                               reconcile_pending=reconcile_pending)
    except SQLAlchemyError as exc:
        raise _explain_db_error(exc, engine, tables, rules, config) from exc
    finally:
        engine.dispose()


def _compute_on(config: Config, rules: RuleSet, tables: ErpTables, as_of: dt.date,
                engine: sa.Engine, counter: StatementCounter, timings: Timings, *,
                run_id: int | None, baseline: bool, dry_run: bool, force: bool,
                state: StateStore | None, reporter: Reporter | None,
                reconcile_pending: bool) -> RunResult:
    with engine.connect() as conn:
        attr = attribute_id(conn, tables, rules.property)
    if reconcile_pending and state is not None:
        settled = reconcile(engine, tables, attr, state)
        log.warning("settled the audit of the unfinished run(s) against the ERP: %s", settled)
    counter.count = 0
    values = wonlost.ValueColumns(rules)  # contract value per service, for won/lost figures
    with engine.connect() as conn:
        facts = read_facts(conn, tables, rules, attr, as_of, reporter=reporter,
                           timings=timings, extra=[values, *calls.extras(rules)])

    def contacts(ids: set[int]) -> dict[int, Any]:
        """The contacts the monitors' texts name: one more query, kept to the alerted few."""
        from .exports import read_contacts

        with engine.connect() as conn:
            return read_contacts(conn, tables, ids)

    with step(reporter, timings, "classify", total=len(facts.customers)) as advance:
        classification = classify(facts, rules)
        if facts.metrics is not None:
            facts.metrics.release()
        advance(len(facts.customers))
    with step(reporter, timings, "plan changes",
              total=len(classification.services)) as advance:
        plan = plan_changes(facts, classification, rules)
        wonlost.fill_annual_values(plan.changes, classification, facts, values)
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
    with step(reporter, timings, "opportunities") as advance:
        tonight = calls.who_to_call(facts, classification, rules, contacts)
        read_statements = counter.count + 1  # + the attribute lookup
        found = tonight.opportunities
        lifecycle_counts: dict[str, int] = {}
        if rules.opportunities is not None and state is not None:
            # tracked across nights: upserted, won when the service appears, closed when
            # the condition clears; snoozed and dismissed ones are kept but not listed
            tracked = lifecycle.advance(state.load_opportunities(), found,
                                        classification.services, as_of)
            state.save_opportunities(tracked.records)
            found, lifecycle_counts = tracked.visible, dict(tracked.counts)
        advance(len(found))
    result = RunResult(
        run_id=run_id, as_of=as_of, mode=config.mode, dry_run=dry_run, baseline=baseline,
        counts=counts, changes=plan.changes, no_configuration=plan.no_configuration,
        no_attribute=plan.no_attribute, services=penetration(classification, rules),
        statements=read_statements, timings=timings, guard_message=guard,
        opportunities=found, opportunity_counts=lifecycle_counts, alerts=tonight.alerts,
        alert_counts=tonight.alert_counts, notes=list(tonight.notes))
    if guard:
        result.exit_code = EXIT_GUARD
    elif not dry_run and config.mode == "live" and plan.changes:
        assert state is not None and run_id is not None
        report = apply_changes(engine, tables, attr, plan.changes, state=state,
                               run_id=run_id, chunk_size=config.write.chunk_size,
                               reporter=reporter, timings=timings)
        counts.written = len(report.applied)
        counts.conflicts = len(report.conflicts)
        if report.conflicts:
            edited = [c.number for c in plan.changes if c.status == "conflict"]
            result.notes.append(
                f"{len(edited)} value(s) were edited in e-automate while this run worked and "
                f"were left as they are (the next run looks again): {', '.join(edited[:20])}"
                f"{' ...' if len(edited) > 20 else ''}")
    return result


def _explain_db_error(exc: SQLAlchemyError, engine: sa.Engine, tables: ErpTables,
                      rules: RuleSet, config: Config) -> KeyservicesError:
    """A failed statement may mean a missing table or column (a setup problem, exit 2) rather
    than an outage (exit 1); the schema is inspected only on this unhappy path."""
    try:
        with engine.connect() as conn:
            problems = verify_schema(conn, tables, needed_tables(rules), unused_columns(rules))
    except SQLAlchemyError:
        problems = []
    if problems:
        return SchemaError("the ERP database is not as configured:\n" + "\n".join(
            f"  - {p}" for p in problems))
    return wrap_db_error(exc, config.erp.url)


def _digest_and_send(config: Config, rules: RuleSet, result: RunResult, *, send: bool,
                     reporter: Reporter | None) -> RunResult:
    """Render the digest into the outbox, then deliver everything queued there."""
    timings = Timings(result.timings)
    quiet = (not result.changes and not result.guard_message and not result.baseline)
    if quiet and not config.digest.send_empty:
        return result
    data = DigestData(
        run_id=result.run_id, as_of=result.as_of, generated_at=dt.datetime.now(),
        dealer=config.dealer, property_name=rules.property, mode=result.mode,
        dry_run=result.dry_run, baseline=result.baseline, counts=result.counts,
        changes=result.changes, no_configuration=result.no_configuration,
        no_attribute=result.no_attribute, services=result.services,
        service_names=rules.service_names(), guard_message=result.guard_message,
        notes=list(result.notes),
        opportunities=result.opportunities, alerts=result.alerts, won_lost=result.won_lost)
    with step(reporter, timings, "digest") as advance:
        templates = digest_mod.find_templates_dir(config.digest.templates)
        stem = f"{result.as_of.isoformat()}-run{result.run_id:04d}-digest"
        copies: list[tuple[str, DigestData, list[str]]] = []
        if config.digest.to or not (config.digest.branches or config.digest.sales_reps):
            copies.append((stem, data, config.digest.to))
        routed = [(digest_mod.for_branch(data, branch), branch, recipients)
                  for branch, recipients in config.digest.branches.items()]
        routed += [(digest_mod.for_sales_rep(data, rep), rep, recipients)
                   for rep, recipients in config.digest.sales_reps.items()]
        for mine, name, recipients in routed:
            if (mine.changes or mine.opportunities or mine.alerts or mine.guard_message
                    or mine.baseline or config.digest.send_empty):
                copies.append((f"{stem}-{digest_mod.slug(name)}", mine, recipients))
        for name, copy, recipients in copies:
            rendered = digest_mod.render(copy, templates, max_rows=config.digest.max_rows,
                                         max_unwritable_rows=config.digest.max_unwritable_rows,
                                         max_opportunities=_top(rules))
            message = digest_mod.build_message(rendered, sender=config.digest.sender,
                                               recipients=recipients)
            paths = digest_mod.write_outbox(message, rendered, config.digest.outbox, name)
            result.digests.append(paths.eml)
            if result.digest_eml is None:
                result.digest_eml, result.digest_html = paths.eml, paths.html
            advance(1)
        result.delivery = "outbox"
        digest_mod.save_data(data, _digest_data_path(config, result.run_id))
    if send and config.smtp is not None:
        with step(reporter, timings, "send") as advance:
            report = send_outbox(config)
            result.sent = list(report.sent)
            result.delivery = "sent" if result.digest_eml in report.sent else "queued"
            if result.digest_eml in report.sent:  # delivered: it now lives in outbox/sent
                sent = config.digest.outbox / "sent"
                result.digest_eml = sent / result.digest_eml.name
                result.digest_html = sent / result.digest_html.name
            advance(len(report.sent))
            if report.error:
                result.delivery_error = (f"the digest could not be sent ({report.error}); it stays "
                                         f"queued in {config.digest.outbox} and the next run (or "
                                         f"'keyservices send-outbox') retries it")
                if result.exit_code == EXIT_OK:
                    result.exit_code = EXIT_UNDELIVERED
    result.timings = dict(timings)
    return result


def _won_lost(state: StateStore, rules: RuleSet, as_of: dt.date) -> dict[str, Any]:
    """Services won and lost per sales rep tonight and over the last 30 and 90 days."""
    windows = {"tonight": (as_of, as_of), **wonlost.windows_ending(as_of)}
    rows = state.won_lost(None, as_of, include_baseline=True, with_values=True)
    table = wonlost.digest_table(wonlost.won_lost(rows, rules.service_names(), windows))
    return table if table["rows"] else {}


def _top(rules: RuleSet) -> int:
    return rules.opportunities.top if rules.opportunities else 0


def _digest_data_path(config: Config, run_id: int | None) -> Path:
    return config.state.dir / "digests" / f"run-{run_id or 0:06d}.json.gz"


def preview_digest(config: Config, *, run_id: int | None = None,
                   out: Path | None = None) -> tuple[Path, str]:
    """Render a run's digest (the latest by default) with the current templates.

    Returns the HTML file written and the plain-text part; handy when editing the templates.
    """
    folder = config.state.dir / "digests"
    if run_id is not None:
        path = _digest_data_path(config, run_id)
        if not path.exists():
            raise ConfigError(f"no digest stored for run {run_id} in {folder}")
    else:
        stored = sorted(folder.glob("run-*.json.gz")) if folder.is_dir() else []
        if not stored:
            raise ConfigError(f"no run has produced a digest yet (looked in {folder}); "
                              "run 'keyservices run' first")
        path = stored[-1]
    data = digest_mod.load_data(path)
    rendered = digest_mod.render(data, digest_mod.find_templates_dir(config.digest.templates),
                                 max_rows=config.digest.max_rows,
                                 max_unwritable_rows=config.digest.max_unwritable_rows,
                                 max_opportunities=_top(_rules_for(config)))
    target = out or (config.state.dir / "preview.html")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(rendered.html, encoding="utf-8")
    return target, rendered.text


def alert_failure(config: Config, error: BaseException, exit_code: int) -> Path | None:
    """Queue (and try to send) a short alert for a failed run; never raises.

    A failure must never go unnoticed at 2 a.m., but the alert must not hide the failure either:
    any problem while alerting is logged and swallowed.
    """
    try:
        log_file = config.state.dir / "keyservices.log"
        tail: list[str] = []
        if log_file.exists():
            tail = log_file.read_text(encoding="utf-8", errors="replace").splitlines()[-30:]
        when = dt.datetime.now()
        message = digest_mod.failure_message(
            error=str(error) or type(error).__name__, exit_code=exit_code, when=when,
            dealer=config.dealer, log_tail=tail, sender=config.digest.sender,
            recipients=config.digest.admins or config.digest.to)
        config.digest.outbox.mkdir(parents=True, exist_ok=True)
        path = config.digest.outbox / f"{when:%Y-%m-%d-%H%M%S}-failure-exit{exit_code}.eml"
        digest_mod._atomic_write(path, message.as_bytes())
        if config.smtp is not None:
            report = send_outbox(config)
            if report.error:
                log.warning("the failure alert stays queued: %s", report.error)
        return path
    except Exception:  # noqa: BLE001 - alerting is best effort by design
        log.exception("could not queue the failure alert")
        return None


def _smtp_settings(config: Config) -> mail.SmtpSettings | None:
    if config.smtp is None:
        return None
    return mail.SmtpSettings(
        host=config.smtp.host, port=config.smtp.port, security=config.smtp.security,
        username=config.smtp.username, password=config.smtp_password(),
        timeout=config.smtp.timeout, sender=config.digest.sender, ca_file=config.smtp.ca_file)


def send_outbox(config: Config) -> mail.DeliveryReport:
    """Deliver every digest still queued in the outbox (oldest first); needs ``smtp:``."""
    if config.smtp is None:
        raise ConfigError("no smtp: section in the config, so nothing can be sent; the digests "
                          f"stay in {config.digest.outbox}")
    return mail.send_outbox(_smtp_settings(config), config.digest.outbox)


@dataclass
class CheckReport:
    """What ``check`` found; ``problems`` make it fail (exit 2), ``warnings`` do not."""

    erp: str
    rules_files: list[Path]
    services: list[str]
    attribute_id: int | None = None
    customers: int = 0
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    unmapped_categories: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["rules_files"] = [str(p) for p in self.rules_files]
        return data


def check(config: Config) -> CheckReport:
    """Validate config and rules, connect, verify tables, columns and the attribute.

    Raises SchemaError (exit 2) when something the run needs is missing; unmapped dealer model
    categories are warnings, listed with their active equipment counts.
    """
    rules = _rules_for(config)
    tables = _tables_for(config, rules)
    report = CheckReport(erp=display_url(config.erp.url), rules_files=list(rules.files),
                         services=[f"{s.code} ({s.name})" for s in rules.services])
    engine = _engine_for(config)
    try:
        with engine.connect() as conn:
            report.problems = verify_schema(conn, tables, needed_tables(rules),
                                            unused_columns(rules))
            if not report.problems:
                try:
                    report.attribute_id = attribute_id(conn, tables, rules.property)
                except SchemaError as exc:
                    report.problems.append(str(exc))
                c = tables.customers
                report.customers = int(conn.execute(
                    sa.select(sa.func.count()).select_from(c)).scalar() or 0)
                report.unmapped_categories = _unmapped(conn, tables, rules)
                for cat, units in report.unmapped_categories.items():
                    report.warnings.append(f"model category {cat} ({units} active units) maps to "
                                           "no model class; add it under model_classes")
                report.warnings += _dead_globs(conn, tables, rules)
    except SQLAlchemyError as exc:
        raise wrap_db_error(exc, config.erp.url) from exc
    finally:
        engine.dispose()
    if report.problems:
        raise SchemaError("the ERP database is not as configured:\n" + "\n".join(
            f"  - {p}" for p in report.problems), report)
    return report


def _dead_globs(conn: sa.Connection, tables: ErpTables, rules: RuleSet) -> list[str]:
    """Globs in the rules that match nothing in this database: usually a typo."""
    from .rules import glob_match

    def codes(table: sa.Table) -> list[str]:
        return [c for c in conn.execute(sa.select(table.c.code if "code" in table.c
                                                  else table.c.number)).scalars() if c]

    categories = list(read_categories(conn, tables))
    checks: list[tuple[str, list[str], list[str]]] = [
        ("model_classes", [g for g, _ in rules.model_classes], categories)]
    for kind in ("equipment", "items_sold"):
        checks.append((f"{kind}.categories",
                       [g for sec in rules.all_sections(kind) for g in sec.categories], categories))
    if rules.all_sections("contracts"):
        contract = rules.all_sections("contracts")
        checks.append(("contracts.contract_codes", [g for c in contract for g in c.contract_codes],
                       codes(tables.contract_codes)))
        checks.append(("contracts.bill_codes", [g for c in contract for g in c.bill_codes],
                       codes(tables.bill_codes)))
    if rules.all_sections("gl"):
        checks.append(("gl.accounts", rules.gl_account_globs(), codes(tables.gl_accounts)))
    warnings = []
    for where, globs, values in checks:
        for glob in sorted(set(globs)):
            if not any(glob_match(v, [glob]) for v in values):
                warnings.append(f"{where}: {glob!r} matches nothing in this database")
    return warnings


def _unmapped(conn: sa.Connection, tables: ErpTables, rules: RuleSet) -> dict[str, int]:
    categories = read_categories(conn, tables)
    unmapped = [c for c in categories if rules.class_of(c) is None]
    if not unmapped:
        return {}
    e, m, mc = tables.equipment, tables.models, tables.model_categories
    rows = conn.execute(
        sa.select(mc.c.code, sa.func.count(e.c.id))
        .select_from(mc.join(m, m.c.category_id == mc.c.id)
                     .outerjoin(e, sa.and_(e.c.model_id == m.c.id, e.c.active == sa.true())))
        .where(mc.c.code.in_(unmapped)).group_by(mc.c.code))
    counts = {code: int(n) for code, n in rows}
    return {c: counts.get(c, 0) for c in unmapped}


def suggest_indexes(config: Config) -> list[tuple[Any, str]]:
    """The indexes the night's statements could use that the ERP lacks, as (advice, CREATE INDEX
    in the ERP's dialect). Read-only: the schema is inspected, nothing is created."""
    from . import indexes

    rules = _rules_for(config)
    tables = _tables_for(config, rules)
    engine = _engine_for(config)
    try:
        with engine.connect() as conn:
            missing = indexes.missing(conn, tables, indexes.advice(rules))
    except SQLAlchemyError as exc:
        raise wrap_db_error(exc, config.erp.url) from exc
    finally:
        engine.dispose()
    return [(a, indexes.create_statement(a, tables, engine.dialect)) for a in missing]
