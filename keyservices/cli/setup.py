"""``keyservices init, schedule, status and config show``: installing and watching."""

from __future__ import annotations

from pathlib import Path

import click

from .base import (
    cli,
    company_option,
    config_option,
    emit_json,
    json_option,
    load_config_at,
    program,
)


@cli.command("init")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False), default=Path("."))
@click.option("--force", is_flag=True, help="Replace an existing config.yaml and rules/.")
@json_option
def init_cmd(directory: Path, force: bool, as_json: bool) -> None:
    """Write a commented config.yaml and starter rules/ to edit.

    The config starts in test mode (compute and email, write nothing); switch to mode: live
    when the digests look right.

    \b
    Example:
      keyservices init /opt/keyservices
    """
    from ..commands.setup import init

    written = init(directory, force=force)
    cfg = directory / "config.yaml"
    if as_json:
        emit_json({"written": [str(p) for p in written], "config": str(cfg)})
        return
    for path in written:
        click.echo(f"Wrote {path}")
    me = program()
    click.echo(f"Next: set erp.url in {cfg}, store the password ('{me} secret set erp "
               f"-c {cfg}', or the variable KEYSERVICES_ERP_PASSWORD), then run "
               f"'{me} check -c {cfg}'.")


@cli.command("schedule")
@config_option
@click.option("--at", "at", default="02:30", show_default=True,
              help="Time of day to run (HH:MM, local time).")
@click.option("--account", default="DOMAIN\\svc-keyservices", show_default=True,
              help="The Windows account the scheduled task runs as (it holds the password in "
                   "its Credential Manager).")
@json_option
def schedule_cmd(config_path: Path, at: str, account: str, as_json: bool) -> None:
    """Write the Windows task file; print how to register it, the crontab line and a systemd timer.

    Nothing is installed: copy what fits your system. The Windows task is a Task Scheduler file,
    keyservices-task.xml beside the config (schtasks /Create /XML reads it; a command line over
    261 characters would be refused), and runs as a named service account (not SYSTEM, which
    sees neither your environment variables nor your keyring). The cron line appends its output
    to task.log in the state folder. Every run is quiet (-q), and the exit code tells the
    scheduler how it went.

    \b
    Example:
      keyservices schedule -c config.yaml --at 03:15 --account CONTOSO\\svc-keyservices
    """
    import re

    from ..commands.setup import schedule

    if not re.fullmatch(r"([01]?\d|2[0-3]):[0-5]\d", at):
        raise click.BadParameter("use HH:MM, e.g. 02:30", param_hint="--at")
    plan = schedule(load_config_at(config_path), at=at, account=account)
    if as_json:
        import dataclasses

        emit_json(dataclasses.asdict(plan))
        return
    state = Path(plan.task_log).parent
    click.echo(f"Wrote {plan.task_xml}")
    click.echo(f"Windows (Task Scheduler): the task in that file runs daily at {at} as "
               f"{plan.account}. In an administrator's command prompt, first store the ERP "
               f"password as {plan.account} (a window opens, asks, and stays open):")
    for line in plan.runas.splitlines():  # a group: one per company
        click.echo(f"  {line}")
    click.echo(f"check as {plan.account} that it is found (Passwords: erp from keyring):")
    click.echo(f"  {plan.runas_check}")
    click.echo(f"then register the task (schtasks asks for {plan.account}'s Windows password):")
    click.echo(f"  {plan.schtasks}")
    click.echo("  Task Scheduler's Last Run Result shows the exit code; the log is "
               f"{state / 'keyservices-YYYY-MM-DD.log'}")
    click.echo("Linux / macOS (crontab -e; the password from an env file or the keyring; the "
               f"output goes to {plan.task_log}):")
    click.echo(f"  {plan.cron}")
    click.echo("Linux (systemd): /etc/systemd/system/keyservices.service")
    click.echo(_indent(plan.systemd_service))
    click.echo("and /etc/systemd/system/keyservices.timer")
    click.echo(_indent(plan.systemd_timer))
    click.echo("  then: systemctl daemon-reload && systemctl enable --now keyservices.timer")
    click.echo(f"Check the last runs with: {plan.check}")


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" if line else "" for line in text.rstrip().splitlines())


@cli.command("status")
@config_option
@company_option
@json_option
def status_cmd(config_path: Path, companies: tuple[str, ...], as_json: bool) -> None:
    """The last runs, digests still queued, and who holds the run lock.

    What to look at in the morning when no digest arrived.

    \b
    Example:
      keyservices status -c config.yaml
    """
    import dataclasses

    from ..commands.group import group_status
    from .terminal import terminal_text

    config = load_config_at(config_path)
    st = group_status(config, companies)
    if as_json:
        emit_json(dataclasses.asdict(st))
        return
    if not st.runs:
        click.echo("No run yet.")
    for r in st.runs:
        c = r["counts"]
        company = f"{terminal_text(r['company'])}  " if config.companies else ""
        click.echo(f"{company}run {r['id']:>4}  {r['started_at']:%Y-%m-%d %H:%M}  {r['mode']:<8} "
                   f"{r['status']:<7} exit {r['exit_code'] if r['exit_code'] is not None else '-'}"
                   f"  written {c.get('written', '-')}  "
                   f"{terminal_text((r['message'] or '')[:70])}")
    what = ("Queued digests" if load_config_at(config_path).smtp is not None else
            "Digests in the outbox (no smtp: configured, so none are emailed)")
    click.echo(f"{what}: {len(st.queued)}" + "".join(f"\n  {q}" for q in st.queued[-10:]))
    if st.refused:
        click.echo(terminal_text(
            f"Kept for refused recipients: {len(st.refused)} (retried for them only; check the "
            "addresses)" + "".join(f"\n  {r}" for r in st.refused[-10:]), keep_newlines=True))
    if st.expired:
        click.echo(f"Expired (older than digest.max_age_days, never sent): {st.expired} in "
                   f"{load_config_at(config_path).digest.outbox / 'expired'}")
    if st.gave_up:
        click.echo(terminal_text(
            f"Given up on (refused until they expired): {len(st.gave_up)}"
            + "".join(f"\n  {r}" for r in st.gave_up[-10:]), keep_newlines=True))
    if st.lock_holder:
        click.echo(terminal_text(f"A run is in progress: pid {st.lock_holder.get('pid')} on "
                                 f"{st.lock_holder.get('host')} since "
                                 f"{st.lock_holder.get('since')}"))
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
    from ..commands.settings import show

    rows = show(load_config_at(config_path))
    if as_json:
        emit_json([{"key": k, "value": v, "source": s} for k, v, s in rows])
        return
    width = max(len(k) for k, _, _ in rows)
    for key, value, source in rows:
        click.echo(f"{key:<{width}}  {value:<40}  {source}")
