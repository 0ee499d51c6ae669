"""Getting a dealer from nothing to a scheduled job: ``init``, ``schedule`` and ``status``.

Nothing here touches the ERP: ``init`` writes a commented config and starter rules, ``schedule``
prints the scheduler entries for this machine, ``status`` reads the state folder.
"""

from __future__ import annotations

import getpass
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import ConfigError
from ..outputs.mail import expired_count, given_up, kept_for_refused, queued
from ..resources import example_rules_dir
from ..state import StateStore
from ..state.lock import lock_holder

CONFIG_TEMPLATE = """\
# keyservices configuration. Every setting is shown with its default.
# Paths are relative to this file. Passwords never go here: they come from the environment
# variables named below, or else from the OS keyring under those names ('keyservices secret set
# erp'). 'keyservices check -c config.yaml' validates this file and the ERP.
dealer: "Your dealership"              # shown in the digest

erp:
  # SQLAlchemy URL of the e-automate company database (no password in it). SQL Server:
  #   mssql+pyodbc://keyservices@ERPSERVER/coYourCompany?driver=ODBC+Driver+18+for+SQL+Server
  # (pip install 'keyservices[mssql]' and an ODBC driver). KEYSERVICES_ERP_URL overrides it.
  url: "sqlite:///erp.sqlite"
  password_env: KEYSERVICES_ERP_PASSWORD   # the variable holding the database password
  # schema: dbo                        # schema of the ERP tables, when not the default
  connect_timeout: 15                  # seconds
  # SQL Server only (docs/eautomate-setup.md): how the night's reads meet e-automate's posting
  read_isolation: read_committed       # read_committed | snapshot | read_uncommitted (NOLOCK)
  lock_timeout_seconds: 60             # a lock wait longer than this fails the run (exit 1;
                                       # SQL Server and PostgreSQL)
  # profile:                           # rename tables/columns where your database differs
  #   model_categories: {table: ICModelCategories, columns: {code: ModelCategory}}

rules: rules                           # folder of rule files; rules/tests holds rule tests

mode: test                             # test: compute and email, write nothing; then: live
                                       # (not set: test, and the summary and digest say so)

write:
  chunk_size: 5000                     # customers per write transaction (max 20000)
  # max_changes: 500                   # change guard: refuse a run that changes more than this
  max_changes_percent: 10              # ... or more than this share of the customers; the
                                       # word off switches the guard off (the summary says so)
  locations: false                     # level: parent: true also writes each parent's value
                                       # to its active locations (ship-to screens, lists)

state:
  dir: .keyservices                    # runs, audit, run lock, log
  # url: sqlite:///.keyservices/state.sqlite   # or another database for the state store
  # password_env: KEYSERVICES_STATE_PASSWORD  # its password, when url names a server

digest:
  outbox: outbox                       # every digest is written here first (.eml and .html)
  sender: "keyservices@localhost"       # the From: address (use one your mail server accepts)
  to: []                               # the consolidated digest
  # branches:                          # a branch manager's copy with only their branch
  #   North: ["north-manager@example.com"]
  # sales_reps:                        # a rep's copy with only the customers they own
  #   "Dana Whitfield": ["dana@example.com"]
  # admins: ["it@example.com"]         # failure alerts (default: the 'to' list)
  send_empty: true                     # a short digest even when nothing changed
  max_rows: 50                         # rows per list before "+N more" (it says where the rest is)
  max_unwritable_rows: 20              # per list of customers that cannot be written
  max_age_days: 3                      # queued mail older than this is never sent (expired/)
  renewals_ics: false                  # true: each sales_reps copy carries an .ics of the
                                       # rep's contract renewals (next 60 days)
  # templates: templates               # your own copy of the digest templates

# smtp:                                # without it, digests stay in the outbox
#   host: smtp.example.com
#   port: 587
#   security: starttls                 # starttls | ssl | none
#   username: keyservices@example.com
#   password_env: KEYSERVICES_SMTP_PASSWORD
#   timeout: 30
#   ca_file: internal-ca.pem           # trust a private certificate authority
"""


def init(directory: Path, *, force: bool = False) -> list[Path]:
    """Write a commented ``config.yaml`` and starter ``rules/`` (with rule tests) to edit."""
    directory = Path(directory)
    config, rules = directory / "config.yaml", directory / "rules"
    existing = [p for p in (config, rules) if p.exists()]
    if existing and not force:
        raise ConfigError(f"{', '.join(str(p) for p in existing)} already exist(s); keyservices "
                          "init never overwrites your files (use --force to replace them)")
    directory.mkdir(parents=True, exist_ok=True)
    if rules.exists():
        shutil.rmtree(rules)
    shutil.copytree(example_rules_dir(), rules)
    config.write_text(CONFIG_TEMPLATE, encoding="utf-8")
    return [config, rules]


DEFAULT_ACCOUNT = "DOMAIN\\svc-keyservices"  # a placeholder: the admin names the real account
TASK_NAME = "keyservices nightly"
TASK_LOG = "task.log"  # in the state folder: the scheduled job's own stdout and stderr
_CMD_OPERATORS = "^&|<>()"  # what cmd.exe acts on outside double quotes
_CMD_SPECIAL = _CMD_OPERATORS + "%!,;="  # ... and what it expands or splits on: quote these too


@dataclass
class Schedule:
    """How to run this config nightly on each system; nothing is installed."""

    schtasks: str  # one line for cmd.exe (an administrator's command prompt)
    schtasks_argv: list[str]  # the same as an argument list, for scripts (subprocess, no shell)
    runas: str  # stores the ERP password in the task account's keyring (cmd.exe line)
    account: str  # the Windows account the task runs as
    task_log: str  # where the job's own output goes
    cron: str
    systemd_service: str
    systemd_timer: str
    check: str


def schedule(config: Config, *, at: str = "02:30", account: str = DEFAULT_ACCOUNT,
             program: Sequence[str] | None = None) -> Schedule:
    """The Windows scheduled task (as a named service account, its output appended to
    ``<state>/task.log``), the crontab line and a systemd timer that run this config nightly.

    ``program`` is the command that starts keyservices (default: the installed entry point).
    The state folder is created, so the log's folder exists before the first run."""
    hour, minute = (int(x) for x in at.split(":"))
    if not account.strip() or '"' in account:
        raise ConfigError(f"--account {account!r}: give the Windows account the task runs as, "
                          "e.g. DOMAIN\\svc-keyservices (no quotes)")
    assert config.config_path is not None
    cfg = str(config.config_path)
    exe = _entry_point()
    command = list(program) if program else (
        [str(exe)] if exe else [sys.executable, "-m", "keyservices"])
    config.state.dir.mkdir(parents=True, exist_ok=True)
    log = str(config.state.dir / TASK_LOG)
    # cron: POSIX shell quoting; the config's paths are relative to it, so cwd does not matter
    cron = (f"{minute} {hour} * * * {shlex.join([*command, '-q', 'run', '-c', cfg])} "
            f">> {shlex.quote(log)} 2>&1")
    argv = schtasks_argv(windows_task(command, cfg, log), account=account, at=f"{hour:02d}:"
                         f"{minute:02d}")
    runas = ["runas", f"/user:{account}",
             subprocess.list2cmdline([*command, "secret", "set", "erp", "-c", cfg])]
    service, timer = systemd_units(command, cfg, hour=hour, minute=minute)
    return Schedule(schtasks=cmd_line(argv), schtasks_argv=argv, runas=cmd_line(runas),
                    account=account, task_log=log, cron=cron, systemd_service=service,
                    systemd_timer=timer,
                    check=f"{subprocess.list2cmdline(['keyservices', 'status', '-c', cfg])}")


def windows_task(command: Sequence[str], config: str, log: str) -> str:
    """The task's command (``/TR``): cmd.exe runs keyservices and appends its output to ``log``.

    ``cmd /s /c "..."`` strips exactly the outer quotes, so the inner command line keeps its own;
    every argument is quoted for the Microsoft C runtime (``subprocess.list2cmdline``), and also
    where cmd.exe would otherwise read ``&``, ``(`` or ``%`` in a path."""
    inner = " ".join(_quote_arg(a) for a in [*command, "-q", "run", "-c", config])
    return f'cmd /s /c "{inner} >> {_quote_arg(log)} 2>&1"'


def schtasks_argv(task: str, *, account: str, at: str) -> list[str]:
    """``schtasks /Create`` for a daily task as ``account``; ``/RP *`` asks for its password
    (so the task runs whether or not the account is logged on, and can reach SQL Server)."""
    return ["schtasks", "/Create", "/TN", TASK_NAME, "/TR", task, "/SC", "DAILY", "/ST", at,
            "/RU", account, "/RP", "*", "/F"]


def cmd_line(argv: Sequence[str]) -> str:
    """``argv`` as one line to paste into cmd.exe: quoted by ``subprocess.list2cmdline`` for the
    program, then ``^`` before each character cmd.exe itself would act on (``>``, ``&``, ...)
    where cmd.exe sees it outside double quotes (it does not know the ``\"`` escape)."""
    out: list[str] = []
    quoted = False
    for ch in subprocess.list2cmdline(list(argv)):
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in _CMD_OPERATORS:
            out.append("^")
        out.append(ch)
    return "".join(out)


def _quote_arg(arg: str) -> str:
    """``list2cmdline`` quoting, forced where cmd.exe would act on a character of the argument."""
    text = subprocess.list2cmdline([arg])
    if text.startswith('"') or not any(c in _CMD_SPECIAL for c in arg):
        return text
    return '"' + re.sub(r"(\\+)$", r"\1\1", arg) + '"'  # no quote inside: only a trailing \ run


def systemd_units(command: Sequence[str], config: str, *, hour: int,
                  minute: int) -> tuple[str, str]:
    """A oneshot service (output to the journal) and its daily timer, for Linux."""
    exec_start = " ".join(_systemd_quote(a) for a in [*command, "-q", "run", "-c", config])
    service = (
        "[Unit]\nDescription=keyservices nightly run\n"
        "Wants=network-online.target\nAfter=network-online.target\n\n"
        "[Service]\nType=oneshot\n"
        f"User={_service_user()}\n"
        "# the password: KEYSERVICES_ERP_PASSWORD=... in this file (chmod 600), or the keyring\n"
        "EnvironmentFile=-/etc/keyservices/env\n"
        f"ExecStart={exec_start}\n")
    timer = (f"[Unit]\nDescription=keyservices nightly at {hour:02d}:{minute:02d}\n\n"
             f"[Timer]\nOnCalendar=*-*-* {hour:02d}:{minute:02d}:00\nPersistent=true\n\n"
             "[Install]\nWantedBy=timers.target\n")
    return service, timer


def _service_user() -> str:
    """The account that set this up (it owns the venv and config), never root."""
    user = getpass.getuser()
    return "keyservices" if user == "root" else user


def _systemd_quote(arg: str) -> str:
    """One ExecStart argument: bare when plain, else double quotes with C escapes; ``%%`` and
    ``$$`` for literal % and $ (systemd expands both)."""
    if re.fullmatch(r"[\w@+=:,./-]+", arg):
        return arg
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("%", "%%").replace("$", "$$") + '"'


def _entry_point() -> Path | None:
    """The installed ``keyservices`` script beside this Python (a venv's bin/ or Scripts/)."""
    folder = Path(sys.executable).parent
    for name in ("keyservices.exe", "keyservices"):
        if (folder / name).is_file():
            return folder / name
    found = shutil.which("keyservices")
    return Path(found) if found else None


@dataclass
class Status:
    runs: list[dict[str, Any]] = field(default_factory=list)
    queued: list[str] = field(default_factory=list)
    expired: int = 0  # queued mail older than digest.max_age_days, moved to outbox/expired unsent
    lock_holder: dict[str, Any] | None = None
    # queued mail the server refused for some recipients, retried for those (one line each)
    refused: list[str] = field(default_factory=list)
    # expired mail whose refused recipients never got it (one line each)
    gave_up: list[str] = field(default_factory=list)


def status(config: Config, *, limit: int = 10) -> Status:
    """What an admin checks in the morning: the last runs, queued digests, the lock holder."""
    out = Status(queued=[str(p) for p in queued(config.digest.outbox)],
                 expired=expired_count(config.digest.outbox),
                 refused=[r.describe() for r in kept_for_refused(config.digest.outbox)],
                 gave_up=[r.describe() for r in given_up(config.digest.outbox)])
    store = StateStore.for_reading(config.state_url)  # a read-only folder will do
    if store is not None:
        try:
            out.runs = [{"id": r.id, "started_at": r.started_at, "finished_at": r.finished_at,
                         "as_of": r.as_of, "mode": r.mode, "baseline": r.baseline,
                         "status": r.status, "exit_code": r.exit_code, "message": r.message,
                         "counts": r.counts} for r in store.runs(limit)]
        finally:
            store.close()
    out.lock_holder = lock_holder(config.state.dir)  # never takes the run lock
    return out
