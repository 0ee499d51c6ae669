"""A dealer group's night (#25): every company of ``companies:``, each one night of its own.

Each company is ``commands.run`` on the company's config (``config.company_configs``): its ERP,
rules, baseline, change guard, ownership check, state store, audit and rollback. The run lock of
the group's state folder is taken once for the whole night; the companies run in a pool of
``parallel:`` threads (each database is read by its own engine and the heavy work runs inside
it, so two companies overlap where one waits on its database). A company that fails fails alone:
its error is kept with its name, the others are still written and reported, and the night's exit
code is the worst one. The digests are delivered once, after every company has queued its own.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import night
from ..config import Config, company_configs, slug
from ..errors import (
    EXIT_FAILURE,
    EXIT_GUARD,
    EXIT_INVALID,
    EXIT_OK,
    EXIT_UNDELIVERED,
    ConfigError,
    GuardTripped,
    KeyservicesError,
)
from ..outputs import digest as digest_mod
from ..outputs.group import CompanyRow, render_consolidated
from ..outputs.headline import at_stake
from ..state import run_lock
from .audit import history
from .check import CheckReport, check
from .deliver import deliver_outbox, preflight
from .result import RunResult
from .run import run
from .setup import Status, status

log = logging.getLogger("keyservices")

# how bad an exit code is, for the night's one code: a failure (1) over a refusal by config,
# schema or data shape (2) over a guard (3) over a digest that stayed queued (5)
# rows of each long list a company's result keeps once its night is done (the rest counted)
KEEP = 1000
SEVERITY = {EXIT_OK: 0, EXIT_UNDELIVERED: 1, EXIT_GUARD: 2, EXIT_INVALID: 3, EXIT_FAILURE: 4}


def worst(codes: Sequence[int]) -> int:
    """The exit code that tells most about a night of several companies."""
    return max(codes, key=lambda code: SEVERITY.get(code, len(SEVERITY)), default=EXIT_OK)


@dataclass
class CompanyNight:
    """One company's part of the night: its result, or why it failed (and its exit code)."""

    company: str
    exit_code: int
    result: RunResult | None = None  # None: it stopped before a plan (no database, data shape)
    error: str | None = None
    error_type: str | None = None
    row: CompanyRow | None = None  # its line in the group's table, counted before the cut

    def kept(self) -> CompanyNight:
        """Itself with its line counted and its result's long lists cut (``KEEP`` rows): the
        group holds every company's night until the end, and only two are worked at once."""
        self.row = company_row(self)
        if self.result is not None:
            self.result = self.result.slimmed(KEEP)
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"company": self.company, "exit_code": self.exit_code,
                "error": None if self.error is None else {"type": self.error_type,
                                                          "message": self.error},
                "result": self.result.to_dict() if self.result is not None else None}


@dataclass
class GroupResult:
    """The night of every company: one entry per company in the config's order."""

    companies: list[CompanyNight]
    dry_run: bool
    delivery: str = "outbox"  # outbox (no smtp) | sent | queued (SMTP failed)
    delivery_error: str | None = None
    notes: list[str] = field(default_factory=list)
    digest_eml: Path | None = None  # the group's table (every company, what failed and why)

    @property
    def exit_code(self) -> int:
        codes = [c.exit_code for c in self.companies]
        return worst(codes + ([EXIT_UNDELIVERED] if self.delivery_error else []))

    @property
    def failed(self) -> list[CompanyNight]:
        return [c for c in self.companies if c.exit_code not in (EXIT_OK, EXIT_UNDELIVERED)]

    def to_dict(self) -> dict[str, Any]:
        return {"group": True, "exit_code": self.exit_code, "dry_run": self.dry_run,
                "delivery": self.delivery, "delivery_error": self.delivery_error,
                "failed": [c.company for c in self.failed], "notes": self.notes,
                "digest_eml": str(self.digest_eml) if self.digest_eml else None,
                "companies": [c.to_dict() for c in self.companies]}


def run_group(config: Config, *, only: Sequence[str] = (), dry_run: bool = False,
              force: bool = False, new_erp: bool = False, send: bool = True,
              as_of: dt.date | None = None) -> GroupResult:
    """The night of every company (or those named in ``only``), under one run lock.

    Every company's rules and templates are checked before any database is touched (a problem
    there stops the night, exit 2, as for one company). ``force`` and ``new_erp`` apply to each
    company named (``--company`` says which, where they are meant for one).
    """
    companies = company_configs(config, only)
    top = 0  # the most calls a company's rules list: the group's message lists as many
    for company in companies:  # nothing is touched while any company's setup is wrong
        rules = night.rules_for(company)
        preflight(company, rules)
        top = max(top, rules.opportunities.top if rules.opportunities else 0)
    as_of = as_of or dt.date.today()
    lock = contextlib.nullcontext() if dry_run else run_lock(config.state.dir)
    with lock:
        workers = max(1, min(config.parallel, len(companies)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="company") as pool:
            futures = [pool.submit(_one, company, dry_run=dry_run, force=force, new_erp=new_erp,
                                   as_of=as_of) for company in companies]
            nights = [f.result() for f in futures]
        result = GroupResult(companies=nights, dry_run=dry_run)
        if dry_run:
            result.delivery = "none"
            return _logged(result)
        if config.companies:
            result.digest_eml = _queue_group_digest(config, as_of, nights, top)
        if send and config.smtp is not None:
            report = deliver_outbox(config)  # once, for every company's digest and alert
            result.delivery = "queued" if report.error or report.queued else "sent"
            if report.error:
                result.delivery_error = (f"the digests could not be sent ({report.error}); they "
                                         f"stay queued in {config.digest.outbox} and the next "
                                         "run (or 'keyservices send-outbox') retries them")
    return _logged(result)


def _logged(result: GroupResult) -> GroupResult:
    for failed in result.failed:
        log.error("company %s failed (exit %s): %s", failed.company, failed.exit_code,
                  failed.error)
    return result


def company_row(night: CompanyNight) -> CompanyRow:
    """A company's line in the group's table."""
    if night.row is not None:
        return night.row
    r = night.result
    if r is None:
        return CompanyRow(night.company, "failed", night.exit_code, why=night.error)
    status = ("guard" if r.guard_message else "dry run" if r.dry_run else
              "test mode" if r.mode == "test" else "written")
    return CompanyRow(night.company, status, night.exit_code, r.counts.classified,
                      sum(len(c.added) for c in r.changes),
                      sum(len(c.removed) for c in r.changes),
                      r.counts.no_configuration + r.counts.no_attribute, night.error,
                      at_stake(r.opportunities))


def _queue_group_digest(config: Config, as_of: dt.date, nights: Sequence[CompanyNight],
                        top: int) -> Path | None:
    """The group's one message, queued in the outbox for ``digest.to`` (sent with the rest):
    the table, then every company's digest as a section (also one with recipients of its own).
    A company whose section does not fit (dozens of companies), and every company should the
    group's message fail to render, gets its digest as a message of its own: none is lost."""
    sections = [n.result.digest_data for n in nights
                if n.result is not None and n.result.digest_data is not None]
    templates = digest_mod.find_templates_dir(config.digest.templates)
    stem = f"{as_of.isoformat()}-group-{dt.datetime.now():%H%M%S}"
    alone = sections
    try:
        whole = render_consolidated(config.dealer, as_of, [company_row(n) for n in nights],
                                    sections, templates, max_rows=config.digest.max_rows,
                                    max_unwritable_rows=config.digest.max_unwritable_rows,
                                    max_opportunities=top)
        message = digest_mod.build_message(whole.rendered, sender=config.digest.sender,
                                           recipients=config.digest.to)
        queued = digest_mod.write_outbox(message, whole.rendered, config.digest.outbox,
                                         f"{stem}-digest").eml
        alone = [d for d in sections if (d.company or d.dealer) in whole.left_out]
    except Exception:  # each company's digest then goes as a message of its own
        log.exception("could not queue the group's digest; each company's goes on its own")
        queued = None
    for data in alone:  # to the group's recipients, in full (with its attachment)
        try:
            rendered = digest_mod.render(data, templates, max_rows=config.digest.max_rows,
                                         max_unwritable_rows=config.digest.max_unwritable_rows,
                                         max_opportunities=top)
            message = digest_mod.build_message(rendered, sender=config.digest.sender,
                                               recipients=config.digest.to)
            digest_mod.write_outbox(message, rendered, config.digest.outbox,
                                    f"{stem}-{slug(data.company or data.dealer)}-digest")
        except Exception:
            log.exception("could not queue %s's digest", data.company or data.dealer)
    return queued


def _one(config: Config, *, dry_run: bool, force: bool, new_erp: bool,
         as_of: dt.date) -> CompanyNight:
    """One company's night; whatever stops it is kept with its name, never raised."""
    name = config.company_name
    try:
        result = run(config, dry_run=dry_run, force=force, new_erp=new_erp, send=False,
                     as_of=as_of, locked=True)
        if result.guard_message:  # a dry run's guard: no error raised, the same verdict
            return CompanyNight(name, result.exit_code, result, result.guard_message,
                                GuardTripped.__name__).kept()
        return CompanyNight(name, result.exit_code, result).kept()
    except GuardTripped as exc:
        detail = exc.detail if isinstance(exc.detail, RunResult) else None
        return CompanyNight(name, exc.exit_code, detail, str(exc), type(exc).__name__).kept()
    except KeyservicesError as exc:
        return CompanyNight(name, exc.exit_code, None, str(exc), type(exc).__name__)
    except Exception as exc:  # a company's failure must not stop the others
        log.exception("company %s: unexpected error", name)
        return CompanyNight(name, EXIT_FAILURE, None, f"{type(exc).__name__}: {exc}",
                            type(exc).__name__)


def one_company(config: Config, companies: Sequence[str], what: str) -> Config:
    """The config of the one company a command acts on (a run id belongs to one company's
    store); a group needs ``--company NAME``, a single company may name itself."""
    picked = company_configs(config, companies)
    if config.companies and len(picked) != 1:
        raise ConfigError(f"{what} acts on one company: say which with --company NAME "
                          f"({', '.join(c.name for c in config.companies)})")
    return picked[0]


def group_history(config: Config, companies: Sequence[str] = (), *, run_id: int | None = None,
                  customer: str | None = None, limit: int | None = 1000) -> dict[str, Any]:
    """``history`` of every company named (all by default), each row with its company; a run
    id is one company's, so ``--run`` takes one company."""
    if run_id is not None:
        return history(one_company(config, companies, "history --run"), run_id=run_id,
                       limit=limit)
    parts = [history(c, customer=customer, limit=limit) for c in company_configs(config,
                                                                                  companies)]
    if customer is None:
        runs = sorted((r for part in parts for r in part["runs"]),
                      key=lambda r: r["started_at"], reverse=True)
        return {"runs": runs[:limit or 20]}
    return {"changes": [row for part in parts for row in part["changes"]],
            "total": sum(part["total"] for part in parts)}


def group_status(config: Config, companies: Sequence[str] = (), *, limit: int = 10) -> Status:
    """``status`` of the group: the shared outbox and lock, and each company's last runs."""
    picked = company_configs(config, companies)
    out = status(config, limit=limit)  # a group's own folder: its outbox and lock
    if config.companies:
        out.runs = sorted((r for c in picked for r in status(c, limit=limit).runs),
                          key=lambda r: r["started_at"], reverse=True)
    return out


@dataclass
class CompanyCheck:
    """``check`` of one company: its report, or what stops its night (and the exit code)."""

    company: str
    exit_code: int
    report: CheckReport | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"company": self.company, "exit_code": self.exit_code, "error": self.error,
                "report": self.report.to_dict() if self.report is not None else None}


def group_check(config: Config, companies: Sequence[str] = ()) -> list[CompanyCheck]:
    """``check`` for every company named (all by default): connectivity, tables, attribute,
    values and ownership, each company on its own; one company's problem is its line only."""
    out = []
    for company in company_configs(config, companies):
        try:
            out.append(CompanyCheck(company.company_name, EXIT_OK, check(company)))
        except KeyservicesError as exc:
            out.append(CompanyCheck(company.company_name, exc.exit_code, error=str(exc)))
    return out
