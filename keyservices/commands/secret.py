"""``keyservices secret set|delete erp|smtp|state``: passwords kept in the OS keyring.

A job under Windows Task Scheduler runs as a service account that never sees an admin's per-user
``setx`` variable; the keyring of that account (Windows Credential Manager) does. Each entry is
named service ``keyservices``, user = the password's environment variable (``erp.password_env``,
``smtp.password_env``, ``state.password_env``), so installs that name different variables keep
different passwords. The environment variable, when set, still wins over the keyring.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from typing import Literal

from ..config import Config, company_configs
from ..credentials import KEYRING_SERVICE, delete_password, plaintext_warning, store_password
from ..errors import ConfigError

Which = Literal["erp", "smtp", "state"]
WHICH: tuple[Which, ...] = ("erp", "smtp", "state")


@dataclass
class SecretResult:
    """What ``secret set`` or ``secret delete`` did, never the password."""

    which: str
    service: str  # the keyring entry: service ...
    user: str  # ... and user (the environment variable's name)
    account: str  # the OS account whose keyring holds it: the one the job must run as
    changed: bool  # stored, or deleted (False: there was nothing to delete)
    backend: str | None = None
    env_wins: bool = False  # the variable is set here, so this environment ignores the keyring
    # the keyring backend keeps it in a plain file (keyrings.alt): what that means, what to do
    warning: str | None = None


def secret_name(config: Config, which: str, company: str | None = None) -> str:
    """The environment variable (and keyring user) of a password; a ConfigError when the config
    names none for it. A group's ERP passwords are per company (``company``)."""
    if which not in WHICH:
        raise ConfigError(f"unknown password {which!r}: use one of {', '.join(WHICH)}")
    config = company_config(config, which, company)
    name = config.password_env(which)
    if name:
        return name
    if which == "smtp":
        raise ConfigError("the config has no smtp: section, so there is no SMTP password to "
                          "store; add smtp: (host, username) first")
    raise ConfigError("state.password_env is not set in the config: the state store needs a "
                      "password only when state.url names a database server; set "
                      "state.password_env (e.g. KEYSERVICES_STATE_PASSWORD) first")


def set_secret(config: Config, which: str, password: str,
               company: str | None = None) -> SecretResult:
    """Store ``password`` in the keyring of the account running this, under the config's name."""
    name = secret_name(config, which, company)
    if not password or password != password.strip("\r\n"):
        raise ConfigError("the password is empty or has a line break at an end: nothing stored "
                          "(with --stdin, pass exactly one line)")
    backend = store_password(name, password)
    return SecretResult(which=which, service=KEYRING_SERVICE, user=name, account=_account(),
                        changed=True, backend=backend, env_wins=bool(os.environ.get(name)),
                        warning=plaintext_warning(name))


def delete_secret(config: Config, which: str, company: str | None = None) -> SecretResult:
    """Remove the keyring entry (the environment variable, if any, is left alone)."""
    name = secret_name(config, which, company)
    deleted = delete_password(name)
    return SecretResult(which=which, service=KEYRING_SERVICE, user=name, account=_account(),
                        changed=deleted, env_wins=bool(os.environ.get(name)))


def company_config(config: Config, which: str, company: str | None) -> Config:
    """The config whose password is meant: a group's ERP password is one company's (each
    company's database has its own login, or at least its own entry)."""
    if company is None:
        if which == "erp" and config.companies:
            raise ConfigError(f"this config has {len(config.companies)} companies, each with its "
                              "own ERP password: say whose with --company NAME ("
                              f"{', '.join(c.name for c in config.companies)})")
        return config
    if which != "erp":
        raise ConfigError(f"--company is for the ERP password; the {which} password is the "
                          "group's")
    return company_configs(config, [company])[0]


def _account() -> str:
    """The account whose keyring is used (DOMAIN\\user on Windows)."""
    user = getpass.getuser()
    domain = os.environ.get("USERDOMAIN")
    return f"{domain}\\{user}" if domain and os.name == "nt" else user


__all__ = ["WHICH", "SecretResult", "company_config", "delete_secret", "secret_name",
           "set_secret"]
