"""``keyservices init, schedule, status and config show``: installing and watching."""

from __future__ import annotations

from pathlib import Path

import click

from .base import cli, config_option, emit_json, json_option, load_config_at


@cli.command("init")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False), default=Path("."))
@click.option("--force", is_flag=True, help="Replace an existing config.yaml and rules/.")
def init_cmd(directory: Path, force: bool) -> None:
    """Write a commented config.yaml and starter rules/ to edit.

    The config starts in test mode (compute and email, write nothing); switch to mode: live
    when the digests look right.

    \b
    Example:
      keyservices init /opt/keyservices
    """
    from ..commands.setup import init

    for path in init(directory, force=force):
        click.echo(f"Wrote {path}")
    cfg = directory / "config.yaml"
    click.echo(f"Next: set erp.url in {cfg}, export KEYSERVICES_ERP_PASSWORD, then run "
               f"'keyservices check -c {cfg}'.")


@cli.command("schedule")
@config_option
@click.option("--at", "at", default="02:30", show_default=True,
              help="Time of day to run (HH:MM, local time).")
@json_option
def schedule_cmd(config_path: Path, at: str, as_json: bool) -> None:
    """Print the crontab line and the Windows schtasks command for this config.

    Nothing is installed: copy the line for your system. Both run quietly (-q), so the
    scheduler sees only errors, and the exit code tells it how the run went.

    \b
    Example:
      keyservices schedule -c config.yaml --at 03:15
    """
    import re

    from ..commands.setup import schedule

    if not re.fullmatch(r"([01]?\d|2[0-3]):[0-5]\d", at):
        raise click.BadParameter("use HH:MM, e.g. 02:30", param_hint="--at")
    plan = schedule(load_config_at(config_path), at=at)
    if as_json:
        import dataclasses

        emit_json(dataclasses.asdict(plan))
        return
    click.echo("Linux / macOS (crontab -e):")
    click.echo(f"  {plan.cron}")
    click.echo("Windows (an administrator's command prompt):")
    click.echo(f"  {plan.schtasks}")
    click.echo(f"Check the last runs with: {plan.check}")


@cli.command("status")
@config_option
@json_option
def status_cmd(config_path: Path, as_json: bool) -> None:
    """The last runs, digests still queued, and who holds the run lock.

    What to look at in the morning when no digest arrived.

    \b
    Example:
      keyservices status -c config.yaml
    """
    import dataclasses

    from ..commands.setup import status

    st = status(load_config_at(config_path))
    if as_json:
        emit_json(dataclasses.asdict(st))
        return
    if not st.runs:
        click.echo("No run yet.")
    for r in st.runs:
        c = r["counts"]
        click.echo(f"run {r['id']:>4}  {r['started_at']:%Y-%m-%d %H:%M}  {r['mode']:<8} "
                   f"{r['status']:<7} exit {r['exit_code'] if r['exit_code'] is not None else '-'}"
                   f"  written {c.get('written', '-')}  {(r['message'] or '')[:70]}")
    what = ("Queued digests" if load_config_at(config_path).smtp is not None else
            "Digests in the outbox (no smtp: configured, so none are emailed)")
    click.echo(f"{what}: {len(st.queued)}" + "".join(f"\n  {q}" for q in st.queued[-10:]))
    if st.lock_holder:
        click.echo(f"A run is in progress: pid {st.lock_holder.get('pid')} on "
                   f"{st.lock_holder.get('host')} since {st.lock_holder.get('since')}")
    else:
        click.echo("No run in progress.")


@cli.group("config")
def config_group() -> None:
    """Inspect the configuration: the effective settings and where each one came from.

    \b
    Example:
      keyservices config show -c config.yaml
    """


@config_group.command("show")
@config_option
@json_option
def config_show(config_path: Path, as_json: bool) -> None:
    """Print the effective settings and where each came from, secrets masked.

    Precedence: command-line flags, then KEYSERVICES_* environment variables (for example
    KEYSERVICES_ERP_URL, KEYSERVICES_WRITE_MAX_CHANGES), then the file, then the defaults.

    \b
    Example:
      keyservices config show -c config.yaml
    """
    from ..config import show

    rows = show(load_config_at(config_path))
    if as_json:
        emit_json([{"key": k, "value": v, "source": s} for k, v, s in rows])
        return
    width = max(len(k) for k, _, _ in rows)
    for key, value, source in rows:
        click.echo(f"{key:<{width}}  {value:<40}  {source}")
