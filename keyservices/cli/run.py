"""``keyservices run, check, digest and send-outbox``: the night and what it sends."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .base import (
    RUN_ID,
    as_of_option,
    cli,
    company_option,
    config_option,
    emit_json,
    json_option,
    load_config_at,
    one_company_option,
    program,
    progress_reporter,
)
from .jsonerrors import error_object

if TYPE_CHECKING:
    from ..config import Config


@cli.command("run")
@config_option
@click.option("--dry-run", is_flag=True,
              help="Compute and print the plan; write nothing (ERP, state, outbox).")
@click.option("--force", is_flag=True,
              help="Write even when the change guard would stop the run (after review), or when "
                   "the state store does not know this ERP and it is the same database renamed.")
@click.option("--new-erp", is_flag=True,
              help="The configured ERP is new to this state store: tonight is its baseline "
                   "(fills empty values; overwriting a value still counts against the guard).")
@click.option("--no-email", is_flag=True, help="Write the digest to the outbox but do not send it.")
@click.option("--mode", type=click.Choice(["live", "test"]), default=None,
              help="Override the config's mode for this run (test writes nothing to the ERP).")
@as_of_option
@company_option
@json_option
def run_cmd(config_path: Path, dry_run: bool, force: bool, new_erp: bool, no_email: bool,
            mode: str | None, as_of: dt.datetime | None, companies: tuple[str, ...],
            as_json: bool) -> None:
    """The nightly job: classify every customer and write the property where it changed.

    Reads facts with a few aggregate queries, classifies, writes changed values in guarded,
    chunked transactions (never INSERT or DELETE), audits every change with its before-value,
    writes the digest to the outbox and sends it when SMTP is configured.

    A dealer group's config (companies:) runs every company, parallel: at a time, each with
    its own database, guard, audit and digest; a company that fails fails alone, and the exit
    code is the worst across companies.

    \b
    Examples:
      keyservices run -c config.yaml --dry-run
      keyservices run -c config.yaml
      keyservices run -c group.yaml --company North --company South
    """
    from ..commands.result import RunResult
    from ..commands.run import run
    from ..errors import GuardTripped
    from .console import print_run
    from .exiting import keep

    config = load_config_at(config_path, {"mode": mode})
    if as_of and as_of.date() < dt.date.today() and config.mode == "live" and not dry_run \
            and not force:
        raise click.BadParameter(
            f"{as_of:%Y-%m-%d} is in the past: a live night as of a past date compares today's "
            "ERP with that date and writes the result. Review it with --dry-run, then rerun "
            "with --force if that is what you want", param_hint="--as-of")
    if config.companies:
        _run_group(config, config_path, companies, dry_run=dry_run, force=force,
                   new_erp=new_erp, no_email=no_email, as_of=as_of, as_json=as_json)
        return
    if companies:
        from ..config import company_configs

        company_configs(config, companies)  # one company: its name (the dealer) or exit 2
    try:
        with progress_reporter(as_json) as progress:
            result = run(config, dry_run=dry_run, force=force, new_erp=new_erp,
                         send=not no_email,
                         as_of=as_of.date() if as_of else None, reporter=progress)
        keep(result)  # a million changes: let the process end without freeing them one by one
    except GuardTripped as exc:
        # the plan the guard stopped: shown here, the guard's message by the error handler
        # (once); under --json the handler puts both in one document
        if isinstance(exc.detail, RunResult) and not as_json:
            print_run(exc.detail, guard_message=False)
        raise
    if as_json:
        data = result.to_dict(passing=True)  # the long lists written a row at a time
        if result.delivery_error:  # exit 5: the run's result and the error, one document
            data["error"] = error_object(result.exit_code, "DeliveryFailed",
                                         result.delivery_error)
        emit_json(data)
    else:
        print_run(result)
        if result.dry_run:
            click.echo(f"Next: review the plan, then '{program()} run -c {config_path}' "
                       "applies it.")
        elif result.mode == "test":
            click.echo(f"Next: read the digest; when it looks right, set 'mode: live' in "
                       f"{config_path} (or run with --mode live) to write the ERP.")
        if result.delivery_error:
            click.echo(f"Error: {result.delivery_error}", err=True)
    sys.exit(result.exit_code) if result.exit_code else None


def _run_group(config: Config, config_path: Path, companies: tuple[str, ...], *, dry_run: bool,
               force: bool, new_erp: bool, no_email: bool, as_of: dt.datetime | None,
               as_json: bool) -> None:
    """A group's night: every company (or those named), one summary each, the worst exit."""
    from ..commands.group import run_group
    from .console import print_group

    result = run_group(config, only=companies, dry_run=dry_run, force=force, new_erp=new_erp,
                       send=not no_email, as_of=as_of.date() if as_of else None)
    if as_json:
        emit_json(result.to_dict())
    else:
        print_group(result)
        if result.dry_run and not result.failed:
            click.echo(f"Next: review the plans, then '{program()} run -c {config_path}' "
                       "applies them.")
    sys.exit(result.exit_code) if result.exit_code else None


@cli.command()
@config_option
@click.option("--show-sql", is_flag=True,
              help="Print every statement a run can send to the ERP, in run order, as SQL to "
                   "paste (T-SQL batches ending in GO on SQL Server), and stop (no connection "
                   "is made). A statement not sent every night says when it is (the weekly "
                   "win-rate learning, the contract lines of a closing offer).")
@click.option("--with-ids", is_flag=True,
              help="With --show-sql: connect (reads only) and write in this database's attribute "
                   "and code-list ids, so each statement is the one tonight's run sends.")
@click.option("--suggest-indexes", is_flag=True,
              help="Print the CREATE INDEX statements a DBA could run so the nightly statements "
                   "read index ranges instead of whole tables (keyservices never creates them).")
@company_option
@json_option
def check(config_path: Path, show_sql: bool, with_ids: bool, suggest_indexes: bool,
          companies: tuple[str, ...], as_json: bool) -> None:
    """Validate config and rules, connect, and verify the ERP schema.

    Checks every table and column the rules need, that the custom-property attribute exists,
    and lists dealer model categories that map to no model class (with their equipment counts).

    \b
    Examples:
      keyservices check -c config.yaml
      keyservices check -c config.yaml --show-sql    # the SQL, for your DBA
      keyservices check -c config.yaml --suggest-indexes > indexes.sql
    """
    from ..commands.check import check as run_check
    from ..commands.group import one_company
    from .console import print_check

    config = load_config_at(config_path)
    if suggest_indexes or show_sql:  # one company's statements and indexes
        config = one_company(config, companies, "check --show-sql or --suggest-indexes")
    elif config.companies or companies:
        _check_group(config, companies, as_json)
        return

    if suggest_indexes:
        from ..commands.check import suggest_indexes as advise

        advice = advise(config)
        if as_json:
            emit_json([{"table": a.table, "keys": a.keys, "include": a.include, "why": a.why,
                         "sql": sql} for a, sql in advice])
        elif not advice:
            click.echo("-- every index the nightly statements can use is already there")
        else:
            click.echo("-- Indexes for a DBA to review; keyservices never creates anything in "
                       "the ERP.")
            for a, sql in advice:
                click.echo(f"-- {a.why}\n{sql}\n")
        return

    if show_sql:
        from ..commands.check import show_sql as compile_sql
        from ..commands.check import sql_script

        statements = compile_sql(config, with_ids=with_ids)
        if as_json:
            emit_json([{"name": n, "sql": q} for n, q in statements])
        else:
            click.echo(sql_script(config, statements, with_ids=with_ids))
        return
    report = run_check(config)
    if as_json:
        emit_json(report.to_dict())
    else:
        print_check(report)
        click.echo(f"Next: '{program()} run -c {config_path} --dry-run' shows what a run would "
                   "change.")


def _check_group(config: Config, companies: tuple[str, ...], as_json: bool) -> None:
    """A line per company: what its night would find, or what stops it; the worst exit."""
    from ..commands.group import group_check, worst

    checks = group_check(config, companies)
    if as_json:
        emit_json([c.to_dict() for c in checks])
    for c in [] if as_json else checks:
        if c.report is not None:
            click.echo(f"{c.company}: OK: {c.report.erp}, {c.report.customers:,} customers, "
                       f"attribute id {c.report.attribute_id}"
                       + (f", {len(c.report.warnings)} warning(s)" if c.report.warnings else ""))
        else:
            click.echo(f"{c.company}: exit {c.exit_code}: {c.error}")
    code = worst([c.exit_code for c in checks])
    sys.exit(code) if code else None


@cli.command()
@config_option
@click.option("--preview", "mode", flag_value="preview", default=True,
              help="Write the digest as an HTML file and print its path (the default).")
@click.option("--text", "mode", flag_value="text", help="Print the plain-text digest instead.")
@click.option("--run", "run_id", type=RUN_ID, default=None,
              help="The run whose digest to render; default the latest.")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Where to write the HTML; default preview.html in the state folder.")
@one_company_option
@json_option
def digest(config_path: Path, mode: str, run_id: int | None, out: Path | None,
           as_json: bool) -> None:
    """Render the latest run's digest again, with the current templates.

    Every run keeps the data of its digest in the state folder, so you can edit
    templates/digest.html.j2 and see the result at once, without another run.

    \b
    Example:
      keyservices digest --preview -c config.yaml
    """
    from ..commands.deliver import preview_digest

    path, text = preview_digest(load_config_at(config_path, one="digest"), run_id=run_id, out=out)
    if as_json:  # both: where the HTML went and the plain text
        emit_json({"html": str(path), "text": text})
        return
    from .terminal import terminal_text

    click.echo(terminal_text(text, keep_newlines=True) if mode == "text" else str(path))


@cli.command("send-outbox")
@config_option
@json_option
def send_outbox_cmd(config_path: Path, as_json: bool) -> None:
    """Send the digests still queued in the outbox (after an SMTP outage).

    Each run already retries the queue; this sends it now. It takes the run lock (exit 4 while a
    run holds it), moves mail older than digest.max_age_days to outbox/expired without sending
    it, and never sends a message twice. Exits 5 if SMTP still fails.

    \b
    Example:
      keyservices send-outbox -c config.yaml
    """
    from ..commands.deliver import send_outbox
    from ..errors import DeliveryFailed

    config = load_config_at(config_path)
    report = send_outbox(config)
    data = {"sent": [str(p) for p in report.sent], "queued": [str(p) for p in report.queued],
            "expired": [str(p) for p in report.expired],
            "already_sent": [str(p) for p in report.already_sent], "warnings": report.warnings}
    if as_json and not report.error:
        emit_json({**data, "error": None})  # as before: scripts test data["error"]
    elif not as_json:
        click.echo(f"Sent {len(report.sent)}, still queued {len(report.queued)}.")
        if report.expired:
            click.echo(f"Expired {len(report.expired)} older than digest.max_age_days "
                       f"({config.digest.max_age_days}), not sent: moved to "
                       f"{config.digest.outbox / 'expired'}")
    for warning in report.warnings:
        click.echo(f"Warning: {warning}", err=True)
    if report.error:  # under --json the handler prints ``data`` with the error, one document
        raise DeliveryFailed(f"{report.error}; {len(report.queued)} message(s) stay queued",
                             data)
