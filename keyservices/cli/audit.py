"""``keyservices history and rollback``: the audit trail and its undo."""

from __future__ import annotations

from pathlib import Path

import click

from .base import cli, config_option, emit_json, json_option, load_config_at, progress_reporter


@cli.command("history")
@config_option
@click.option("--run", "run_id", type=int, default=None, help="Show the changes of this run.")
@click.option("--customer", default=None, help="Show the changes of this customer number.")
@json_option
def history_cmd(config_path: Path, run_id: int | None, customer: str | None,
                as_json: bool) -> None:
    """The audit: recent runs, or every change of one run or one customer.

    Each change is kept with its before- and after-value, so any run can be rolled back.

    \b
    Examples:
      keyservices history -c config.yaml
      keyservices history --run 12 -c config.yaml
      keyservices history --customer ABC001 -c config.yaml
    """
    from ..commands.audit import history
    from .console import print_history

    data = history(load_config_at(config_path), run_id=run_id, customer=customer)
    if as_json:
        emit_json(data)
    else:
        print_history(data)


@cli.command("rollback")
@click.argument("run_id", type=int)
@config_option
@json_option
def rollback_cmd(run_id: int, config_path: Path, as_json: bool) -> None:
    """Restore the values a run replaced, where they are still what that run wrote.

    Customers whose value changed since (edited in e-automate, or by a later run) are left
    alone and listed. The rollback is audited as a run of its own.

    \b
    Example:
      keyservices rollback 12 -c config.yaml
    """
    from ..commands.audit import rollback

    with progress_reporter(as_json) as progress:
        report = rollback(load_config_at(config_path), run_id, reporter=progress)
    if as_json:
        emit_json(report.to_dict())
        return
    click.echo(f"Rollback of run {report.of_run} (audited as run {report.run_id}): "
               f"{len(report.restored)} value(s) restored, {len(report.skipped)} left alone.")
    for item in report.skipped[:50]:
        click.echo(f"  {item['customer']}: no longer {item['run_wrote'] or '(empty)'!s}; "
                   "left as it is")
