"""``keyservices secret set|delete``: passwords in the OS keyring (Windows Credential Manager)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .base import cli, config_option, emit_json, json_option, load_config_at

WHICH_ARGUMENT = click.Choice(["erp", "smtp", "state"])
COMPANY = click.option("--company", default=None, metavar="NAME",
                       help="A group's company whose ERP password this is (companies: in the "
                            "config).")


@cli.group("secret")
def secret_group() -> None:
    """Keep the ERP, SMTP or state-store password in the OS keyring.

    The entry is service "keyservices", user = the variable the config names (erp.password_env,
    default KEYSERVICES_ERP_PASSWORD). It belongs to the account that runs the command: on
    Windows run it as the scheduled task's account (runas /user:DOMAIN\\svc-keyservices). The
    environment variable, when set, wins over the keyring; 'keyservices check' says which
    source was used.

    \b
    Example:
      keyservices secret set erp -c config.yaml
    """


@secret_group.command("set")
@click.argument("which", type=WHICH_ARGUMENT)
@config_option
@click.option("--stdin", "from_stdin", is_flag=True,
              help="Read the password from the first line of standard input (for scripts).")
@COMPANY
@json_option
def secret_set(which: str, config_path: Path, from_stdin: bool, company: str | None,
               as_json: bool) -> None:
    """Store a password in the keyring of the account running this command.

    WHICH is erp, smtp or state (state only when state.password_env is set). The password is
    asked for twice without echo, or read from standard input with --stdin.

    \b
    Example:
      keyservices secret set erp -c config.yaml
      runas /user:DOMAIN\\svc-ks "cmd /s /k \\"keyservices secret set erp -c C:\\ks\\config.yaml\\""
      printf '%s\\n' "$PW" | keyservices secret set smtp --stdin -c config.yaml
      keyservices secret set erp --company North -c config.yaml
    """
    import dataclasses

    from ..commands.secret import secret_name, set_secret

    config = load_config_at(config_path)
    name = secret_name(config, which, company)
    if from_stdin:
        password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    else:
        password = click.prompt(f"{which} password (stored as {name})", hide_input=True,
                                confirmation_prompt=True, err=True)
    result = set_secret(config, which, password, company)
    if as_json:
        emit_json(dataclasses.asdict(result))
        return
    click.echo(f"Stored the {which} password in the keyring ({result.backend}) of "
               f"{result.account}: service '{result.service}', user '{result.user}'.")
    if result.warning:
        click.echo(f"Warning: {result.warning}.", err=True)
    if result.env_wins:
        click.echo(f"Note: {result.user} is also set in this environment, and it wins over the "
                   "keyring here.")
    click.echo(f"The job must run as {result.account} to find it; check with: keyservices "
               f"check -c {config.config_path}")


@secret_group.command("delete")
@click.argument("which", type=WHICH_ARGUMENT)
@config_option
@COMPANY
@json_option
def secret_delete(which: str, config_path: Path, company: str | None, as_json: bool) -> None:
    """Remove a password from the keyring of the account running this command.

    The environment variable, if set, is left alone.

    \b
    Example:
      keyservices secret delete erp -c config.yaml
    """
    import dataclasses

    from ..commands.secret import delete_secret

    result = delete_secret(load_config_at(config_path), which, company)
    if as_json:
        emit_json(dataclasses.asdict(result))
        return
    if result.changed:
        click.echo(f"Deleted the {which} password (service '{result.service}', user "
                   f"'{result.user}') from the keyring of {result.account}.")
    else:
        click.echo(f"No {which} password (service '{result.service}', user '{result.user}') "
                   f"in the keyring of {result.account}: nothing to delete.")
