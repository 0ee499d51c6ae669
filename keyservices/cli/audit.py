"""``keyservices history and rollback``: the audit trail and its undo."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import EXIT_GUARD
from .base import (
    RUN_ID,
    cli,
    company_option,
    config_option,
    emit_json,
    json_option,
    load_config_at,
    progress_reporter,
)


@cli.command("history")
@config_option
@click.option("--run", "run_id", type=RUN_ID, default=None, help="Show the changes of this run.")
@click.option("--customer", default=None, help="Show the changes of this customer number.")
@click.option("--limit", type=click.IntRange(0), default=1000, show_default=True,
              help="Show at most this many changes (0: all of them).")
@company_option
@json_option
def history_cmd(config_path: Path, run_id: int | None, customer: str | None, limit: int,
                companies: tuple[str, ...], as_json: bool) -> None:
    """The audit: recent runs, or every change of one run or one customer.

    Each change is kept with its before- and after-value, so any run can be rolled back.

    \b
    Examples:
      keyservices history -c config.yaml
      keyservices history --run 12 -c config.yaml
      keyservices history --customer ABC001 -c config.yaml
      keyservices history --run 1 --limit 0 -c config.yaml    # every change of a big run
    """
    from ..commands.group import group_history
    from .console import print_history

    config = load_config_at(config_path)
    data = group_history(config, companies, run_id=run_id, customer=customer,
                         limit=limit or None)
    if as_json:
        emit_json(data)
        return
    print_history(data, company=bool(config.companies))
    shown, total = len(data.get("changes", [])), data.get("total", 0)
    if total > shown:
        click.echo(f"Showing {shown:,} of {total:,} changes; {total - shown:,} more. Rerun with "
                   "--limit 0 for all of them, or --json to process them.")


@cli.command("rollback")
@click.argument("run_id", type=RUN_ID)
@config_option
@click.option("--dry-run", is_flag=True, help="Show what would be restored; write nothing.")
@click.option("--force", is_flag=True,
              help="Restore even when the change guard would stop it, or when later runs wrote "
                   "the same customers (after review with --dry-run).")
@company_option
@json_option
def rollback_cmd(run_id: int, config_path: Path, dry_run: bool, force: bool,
                 companies: tuple[str, ...], as_json: bool) -> None:
    """Restore the values a run replaced, where they are still what that run wrote.

    The plan is made against the values in the ERP now: customers whose value changed since
    (edited in e-automate, or by a later run) are left alone and listed; values already
    restored are not written again, so repeating a rollback writes nothing. The change guard
    applies as for a run, and a run that is not the latest to write its customers needs
    --force. The rollback is audited as a run of its own.

    \b
    Examples:
      keyservices rollback 12 --dry-run -c config.yaml
      keyservices rollback 12 -c config.yaml
      keyservices rollback 12 --company North -c group.yaml   # a group: one company's run
    """
    from ..commands.audit import rollback
    from ..commands.group import one_company

    config = one_company(load_config_at(config_path), companies, "rollback")
    with progress_reporter(as_json) as progress:
        report = rollback(config, run_id, dry_run=dry_run, force=force, reporter=progress)
    if as_json:
        emit_json(report.to_dict())
        sys.exit(EXIT_GUARD if report.guard_message else 0)
    if report.dry_run:
        head = (f"Rollback of run {report.of_run} (dry run, nothing written): "
                f"{len(report.restored)} value(s) would be restored")
    elif report.run_id is None:
        head = f"Rollback of run {report.of_run}: nothing to restore, nothing written"
    else:
        head = (f"Rollback of run {report.of_run} (audited as run {report.run_id}): "
                f"{len(report.restored)} value(s) restored")
    click.echo(f"{head}, {len(report.already)} already restored, {len(report.skipped)} left "
               "alone.")
    for number in report.restored[:50] if report.dry_run else []:
        click.echo(f"  {number}: would be restored")
    for item in report.skipped[:50]:
        click.echo(f"  {item['customer']}: no longer {item['run_wrote'] or '(empty)'!s}; "
                   "left as it is")
    if report.guard_message:  # the dry run's plan is shown; the live rollback would stop
        click.echo(report.guard_message, err=True)
        sys.exit(EXIT_GUARD)
