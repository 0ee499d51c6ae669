"""The digest's way out: rendered into the outbox, sent over SMTP, previewed while editing the
templates, and a short alert when a run fails. A run's result goes in; files and mail come out."""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from pathlib import Path

from .. import night
from ..config import Config, slug
from ..errors import EXIT_OK, EXIT_UNDELIVERED, ConfigError, LockHeld
from ..model import Change, Counts, DigestData, RiskFlag
from ..outputs import digest as digest_mod
from ..outputs import mail
from ..outputs.calendar import calendar_for
from ..outputs.files import atomic_write
from ..outputs.morning import settle_unwritable
from ..progress import Reporter, Timings, step
from ..resources import SECTION_TEMPLATE
from ..rules import RuleSet
from ..state import run_lock
from .logs import current_log_file
from .result import RunResult

log = logging.getLogger("keyservices")


def preflight(config: Config, rules: RuleSet) -> None:
    """Render a sample digest with the configured templates before the ERP is touched: a broken
    or missing template must stop the night before the first write, not after it."""
    templates = digest_mod.find_templates_dir(config.digest.templates)
    sample = Change(customer_id=0, number="C000", name="Sample", branch=None, sales_rep=None,
                    before=None, after=rules.render_value({s.code for s in rules.services[:1]}),
                    added=tuple(s.code for s in rules.services[:1]), removed=())
    data = DigestData(
        run_id=0, as_of=dt.date.today(), generated_at=dt.datetime.now(), dealer=config.dealer,
        property_name=rules.property, mode=config.mode, dry_run=False, baseline=False,
        counts=Counts(), changes=[sample], no_configuration=[], no_attribute=[], services=[],
        service_names=rules.service_names())
    sample.causes = ("Sample: why it changed",)  # the causes and risk blocks are rendered too
    data.risks = [RiskFlag(0, "C000", "Sample", None, None, "takeout", "why it is at risk")]
    digest_mod.render(data, templates, max_rows=config.digest.max_rows,
                      max_unwritable_rows=config.digest.max_unwritable_rows,
                      max_opportunities=_top(rules))
    if (templates / SECTION_TEMPLATE).is_file():  # a group's sections, when the folder has it
        digest_mod.render(data, templates, html_template=SECTION_TEMPLATE)


def digest_and_send(config: Config, rules: RuleSet, result: RunResult, *, send: bool,
                     reporter: Reporter | None) -> RunResult:
    """Render the digest into the outbox, then deliver everything queued there."""
    timings = Timings(result.timings)
    quiet = (not result.changes and not result.carried and not result.guard_message
             and not result.baseline and not result.location_changes)
    if quiet and not config.digest.send_empty:
        return result
    gave_up = mail.given_up(config.digest.outbox, unnoted=True)
    result.notes += delivery_notes(config, gave_up)
    data = DigestData(
        run_id=result.run_id, as_of=result.as_of, generated_at=dt.datetime.now(),
        dealer=config.dealer, property_name=rules.property, mode=result.mode,
        dry_run=result.dry_run, baseline=result.baseline, counts=result.counts,
        changes=[c for c in result.carried if not c.follows] + result.changes,
        no_configuration=result.no_configuration,
        no_attribute=result.no_attribute, services=result.services,
        service_names=rules.service_names(), guard_message=result.guard_message,
        notes=list(result.notes),
        opportunities=result.opportunities, alerts=result.alerts, won_lost=result.won_lost)
    data.alert_monitors, data.renewals = result.alert_monitors, result.renewals
    data.risks = result.risks
    data.config_file = str(config.config_path) if config.config_path else "config.yaml"
    data.company = config.company
    with step(reporter, timings, "digest") as advance:
        templates = digest_mod.find_templates_dir(config.digest.templates)
        # a group's companies share the outbox, and each counts its runs in its own store
        company = f"{slug(config.company)}-" if config.company else ""
        stem = f"{result.as_of.isoformat()}-{company}run{result.run_id:04d}-digest"
        copies: list[tuple[str, DigestData, list[str]]] = []
        # a group's company with the group's recipients: its digest is a section of the group's
        # one message (commands.group), rendered again from result.digest_data
        if config.in_group_digest:
            pass
        elif config.digest.to or not (config.digest.branches or config.digest.sales_reps):
            copies.append((stem, data, config.digest.to))
        routed = [(digest_mod.for_branch(data, branch), branch, recipients)
                  for branch, recipients in config.digest.branches.items()]
        routed += [(digest_mod.for_sales_rep(data, rep), rep, recipients)
                   for rep, recipients in config.digest.sales_reps.items()]
        for mine, name, recipients in routed:
            if (mine.changes or mine.opportunities or mine.alerts or mine.guard_message
                    or mine.baseline or config.digest.send_empty):
                copies.append((f"{stem}-{digest_mod.slug(name)}", mine, recipients))
        # an unwritable list its readers saw in the previous digest is said in one line; the
        # consolidated data always (a group's section and --preview render it), each copy sent
        data.unwritable_seen = settle_unwritable(
            [data, *(copy for _, copy, _ in copies if copy is not data)],
            previous_digest(config, result.run_id))
        attached = ""  # the file the consolidated digest attached, named again by --preview
        for name, copy, recipients in copies:
            rendered = digest_mod.render(copy, templates, max_rows=config.digest.max_rows,
                                         max_unwritable_rows=config.digest.max_unwritable_rows,
                                         max_opportunities=_top(rules))
            if copy is data and rendered.attachment is not None:
                attached = rendered.attachment.filename
            message = digest_mod.build_message(rendered, sender=config.digest.sender,
                                               recipients=recipients, ics=calendar_for(copy))
            paths = digest_mod.write_outbox(message, rendered, config.digest.outbox, name)
            result.digests.append(paths.eml)
            if result.digest_eml is None:
                result.digest_eml, result.digest_html = paths.eml, paths.html
            advance(1)
        result.delivery = "outbox"
        mail.mark_noted(gave_up)  # said once, in this digest; tonight's send may add more
        # what the digest can list, not every change: a million-change night stays small
        keep = max(config.digest.max_rows, config.digest.max_unwritable_rows, _top(rules))
        result.digest_data = digest_mod.trimmed(data, keep, attached)
        digest_mod.save_data(result.digest_data, digest_data_path(config, result.run_id))
    if send and config.smtp is not None:
        with step(reporter, timings, "send") as advance:
            report = deliver_outbox(config)  # the run already holds the run lock
            result.sent = list(report.sent)
            # partly sent: it reached some recipients and is kept (and logged) for the others
            reached = report.sent + report.partly_sent
            result.delivery = "sent" if result.digest_eml in reached else "queued"
            if result.digest_eml in report.sent:  # delivered: it now lives in outbox/sent
                sent = config.digest.outbox / "sent"
                result.digest_eml = sent / result.digest_eml.name
                if result.digest_html is not None:  # written beside it, and moved with it
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


def _top(rules: RuleSet) -> int:
    return rules.opportunities.top if rules.opportunities else 0


def digest_data_path(config: Config, run_id: int | None) -> Path:
    return config.state.dir / "digests" / f"run-{run_id or 0:06d}.json.gz"


def previous_digest(config: Config, run_id: int | None) -> DigestData | None:
    """The digest data stored by the latest run before ``run_id`` (this company's state folder),
    or None: the first night, or data an older version stored that cannot be read."""
    folder = config.state.dir / "digests"
    numbered = {int(p.name[4:10]): p for p in folder.glob("run-[0-9]*.json.gz")
                if p.name[4:10].isdigit()} if folder.is_dir() and run_id else {}
    earlier = [n for n in numbered if 0 < n < (run_id or 0)]
    if not earlier:
        return None
    try:
        return digest_mod.load_data(numbered[max(earlier)])
    except (OSError, EOFError, ValueError, TypeError, KeyError) as exc:  # damaged, foreign
        log.warning("could not read the previous digest %s (%s); the unwritable lists are "
                    "shown in full tonight", numbered[max(earlier)], exc)
        return None


def preview_digest(config: Config, *, run_id: int | None = None,
                   out: Path | None = None) -> tuple[Path, str]:
    """Render a run's digest (the latest by default) with the current templates.

    Returns the HTML file written and the plain-text part; handy when editing the templates.
    """
    folder = config.state.dir / "digests"
    if run_id is not None:
        path = digest_data_path(config, run_id)
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
                                 max_opportunities=_top(night.rules_for(config)))
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
        log_file = current_log_file(config.lock_dir)  # a group logs in its own folder
        tail: list[str] = []
        if log_file.exists():
            tail = log_file.read_text(encoding="utf-8", errors="replace").splitlines()[-30:]
        when = dt.datetime.now()
        message = digest_mod.failure_message(
            error=str(error) or type(error).__name__, exit_code=exit_code, when=when,
            dealer=config.dealer, log_tail=tail, sender=config.digest.sender,
            recipients=config.digest.admins or config.digest.to)
        config.digest.outbox.mkdir(parents=True, exist_ok=True)
        path = _alert_path(config.digest.outbox, when, exit_code)
        atomic_write(path, message.as_bytes())
        if config.smtp is not None and config.group_state is None:  # a group sends at the end
            try:
                report = send_outbox(config)
            except LockHeld:  # another run is sending this queue: it (or the next) sends it
                log.warning("the failure alert stays queued in %s: another run holds the lock",
                            config.digest.outbox)
            else:
                if report.error:
                    log.warning("the failure alert stays queued: %s", report.error)
        return path
    except Exception:  # alerting is best effort by design
        log.exception("could not queue the failure alert")
        return None


def smtp_settings(config: Config) -> mail.SmtpSettings | None:
    if config.smtp is None:
        return None
    return mail.SmtpSettings(
        host=config.smtp.host, port=config.smtp.port, security=config.smtp.security,
        username=config.smtp.username, password=config.smtp_password(),
        timeout=config.smtp.timeout, sender=config.digest.sender, ca_file=config.smtp.ca_file)


def send_outbox(config: Config) -> mail.DeliveryReport:
    """Deliver every digest still queued in the outbox (oldest first); needs ``smtp:``.

    Takes the run lock, so it never races a run sending the same queue (LockHeld, exit 4).
    """
    if config.smtp is None:
        raise ConfigError("no smtp: section in the config, so nothing can be sent; the digests "
                          f"stay in {config.digest.outbox}")
    with run_lock(config.lock_dir):
        return deliver_outbox(config)


def deliver_outbox(config: Config) -> mail.DeliveryReport:
    """Send the queue for a caller that already holds the run lock; logs expiries, refused
    recipients (kept and retried) and the ones given up on, and warnings."""
    report = mail.send_outbox(smtp_settings(config), config.digest.outbox,
                              max_age_days=config.digest.max_age_days)
    outbox, days = config.digest.outbox, config.digest.max_age_days
    partly = {r.path.name for r in report.given_up if r.delivered}
    unsent = [p for p in report.expired if p.name not in partly]
    if unsent:
        log.warning("%d queued message(s) older than digest.max_age_days (%d) moved to %s "
                    "without sending: %s", len(unsent), days, outbox / mail.EXPIRED_DIR,
                    ", ".join(p.name for p in unsent))
    for refusal in report.refused:
        log.warning("%s. It stays in %s and every delivery retries it for %s only, until it is "
                    "older than digest.max_age_days (%d); check that address in %s",
                    refusal.describe(), outbox, refusal.recipient, days, _config_name(config))
    for refusal in report.given_up:
        log.warning("%s", _given_up_text(config, refusal))
    for warning in report.warnings:
        log.warning("%s", warning)
    return report


def delivery_notes(config: Config,
                   gave_up: list[mail.Refusal] | None = None) -> list[str]:
    """The digest's notes on mail the server refused: kept for a recipient (every digest while
    it is retried) and given up on (``gave_up``; by default those no digest has shown yet), so a
    refused address is seen by the people who read the digest, not only in the log."""
    outbox, days = config.digest.outbox, config.digest.max_age_days
    if gave_up is None:
        gave_up = mail.given_up(outbox, unnoted=True)
    notes = [f"{r.describe()}. It is kept and retried for {r.recipient} only, until it is older "
             f"than digest.max_age_days ({days}); check that address in {_config_name(config)}."
             for r in mail.kept_for_refused(outbox)]
    notes += [_given_up_text(config, r) for r in gave_up]
    return notes


def _given_up_text(config: Config, r: mail.Refusal) -> str:
    reached = ", ".join(r.delivered) if r.delivered else "no one"
    return (f"Gave up on sending {r.path.name} to {r.recipient}: the mail server refused it "
            f"({r.code} {r.reply}) until the message was older than digest.max_age_days "
            f"({config.digest.max_age_days}); it reached {reached}. It is kept in "
            f"{r.path.parent}: correct the address in {_config_name(config)} and forward it "
            "from there if it still matters.")


def _config_name(config: Config) -> str:
    return str(config.config_path) if config.config_path else "config.yaml"


def _alert_path(outbox: Path, when: dt.datetime, exit_code: int) -> Path:
    """A new file name per alert: two failures in the same second must not overwrite each other."""
    while True:
        path = outbox / f"{when:%Y-%m-%d-%H%M%S}-{secrets.token_hex(4)}-failure-exit{exit_code}.eml"
        if not path.exists():
            return path
